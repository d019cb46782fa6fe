//! Cross-stream effects. One delivery is one atomic append to one stream, so when a fact on
//! one stream implies a fact on another, the server runs this pure policy over the event log
//! and sends the resulting commands to the other streams. Every command it produces is
//! idempotent by the target aggregate's rules (a second link, a second "moved to" is a
//! duplicate), so running the policy again — after a crash, or on a rebuild — changes nothing.

use crate::command::{Command, LinkBooking, MarkRescheduledTo};
use crate::event::Event;
use crate::stream::StreamId;

/// The event types [`react`] may answer with commands: a reader of the log can skip decoding
/// every other event.
pub const REACTS_TO: [&str; 2] = ["BookingLinkedToCall", "BookingCreated"];

/// The commands an event implies on other streams.
///
/// * `BookingLinkedToCall` → the call links back (`LinkBooking` on `call-{call_id}`), even if
///   the call has not arrived yet: the link becomes the first event of its stream.
/// * `BookingCreated` with `rescheduled_from` → the old booking is marked rescheduled to the
///   new uid (`MarkRescheduledTo` on `booking-{old uid}`).
pub fn react(event: &Event) -> Vec<(StreamId, Command)> {
    match event {
        Event::BookingLinkedToCall(link) => vec![(
            StreamId::call(&link.call_id),
            LinkBooking {
                call_id: link.call_id.clone(),
                booking_uid: link.booking_uid.clone(),
                occurred_at: link.occurred_at,
            }
            .into(),
        )],
        Event::BookingCreated(created) => match &created.rescheduled_from {
            // A booking naming itself as its predecessor would mark itself; ignore that.
            Some(old_uid) if *old_uid != created.booking_uid => vec![(
                StreamId::booking(old_uid),
                MarkRescheduledTo {
                    booking_uid: old_uid.clone(),
                    occurred_at: created.occurred_at,
                    new_booking_uid: created.booking_uid.clone(),
                    start: created.details.start,
                    end: created.details.end,
                }
                .into(),
            )],
            _ => vec![],
        },
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_types_that_react_are_listed_and_exist() {
        for listed in REACTS_TO {
            assert!(
                Event::TYPES.iter().any(|(t, _)| *t == listed),
                "{listed} is not an event type"
            );
        }
        let reacting = created("bkg_new", Some("bkg_old"));
        assert!(!react(&reacting).is_empty());
        assert!(REACTS_TO.contains(&reacting.event_type()));
    }
    use crate::event::{BookingCancelled, BookingCreated, BookingDetails, BookingLinkedToCall};
    use chrono::{TimeZone, Utc};

    fn created(uid: &str, rescheduled_from: Option<&str>) -> Event {
        BookingCreated {
            booking_uid: uid.into(),
            occurred_at: Utc.timestamp_opt(10, 0).unwrap(),
            details: BookingDetails {
                calcom_booking_id: None,
                title: None,
                description: None,
                start: Utc.timestamp_opt(100, 0).unwrap(),
                end: Utc.timestamp_opt(200, 0).unwrap(),
                service: None,
                event_type_id: None,
                organizer: None,
                attendees: vec![],
                location: None,
                provider_status: None,
            },
            call_id: None,
            rescheduled_from: rescheduled_from.map(Into::into),
        }
        .into()
    }

    #[test]
    fn a_booking_linked_to_a_call_links_the_call_back() {
        let reactions = react(
            &BookingLinkedToCall {
                booking_uid: "bkg_1".into(),
                call_id: "call_1".into(),
                occurred_at: Utc.timestamp_opt(10, 0).unwrap(),
            }
            .into(),
        );
        assert_eq!(reactions.len(), 1);
        let (stream, command) = &reactions[0];
        assert_eq!(*stream, StreamId::call("call_1"));
        assert_eq!(command.name(), "LinkBooking");
        assert_eq!(command.named_stream().as_ref(), Some(stream));
    }

    #[test]
    fn a_booking_replacing_another_marks_the_old_one() {
        let reactions = react(&created("bkg_new", Some("bkg_old")));
        let (stream, command) = &reactions[0];
        assert_eq!(*stream, StreamId::booking("bkg_old"));
        let Command::Booking(crate::command::BookingCommand::MarkRescheduledTo(moved)) = command
        else {
            panic!("unexpected {command:?}");
        };
        assert_eq!(moved.new_booking_uid, "bkg_new");
        assert_eq!(moved.start, Utc.timestamp_opt(100, 0).unwrap());
    }

    #[test]
    fn other_events_imply_nothing() {
        assert!(react(&created("bkg_1", None)).is_empty());
        assert!(react(&created("bkg_1", Some("bkg_1"))).is_empty());
        let cancelled = BookingCancelled {
            booking_uid: "bkg_1".into(),
            occurred_at: Utc.timestamp_opt(10, 0).unwrap(),
            reason: None,
            cancelled_by: None,
        };
        assert!(react(&cancelled.into()).is_empty());
    }
}
