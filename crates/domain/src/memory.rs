//! Streams held in memory: the server's decide → append → policy loop without a store, for
//! tests, scenarios and examples. Still pure (no IO, no clock).

use std::collections::{BTreeMap, VecDeque};

use crate::aggregate::{Aggregate, decide, record_rejection, replay};
use crate::command::Command;
use crate::event::Event;
use crate::policy;
use crate::rejection::Rejection;
use crate::stream::StreamId;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemoryStreams {
    streams: BTreeMap<StreamId, Vec<Event>>,
}

/// What one command did, including what the policy did after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handled {
    /// Every event appended, on which stream, in append order (rejections included, as
    /// `TransitionRejected`).
    pub appended: Vec<(StreamId, Event)>,
    /// The refusals among them.
    pub rejections: Vec<(StreamId, Rejection)>,
}

impl InMemoryStreams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides `command` on `stream`, appends the outcome (events, or the recorded
    /// rejection), then runs [`policy::react`] on everything appended until nothing follows.
    ///
    /// That terminates: the policy's commands make only events it does not react to.
    pub fn handle(&mut self, stream: StreamId, command: Command) -> Handled {
        let mut handled = Handled::default();
        let mut pending = VecDeque::from([(stream, command)]);
        while let Some((stream, command)) = pending.pop_front() {
            let history = self
                .streams
                .get(&stream)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let events = match decide(&stream, history, command.clone()) {
                Ok(events) => events,
                Err(rejection) => {
                    handled.rejections.push((stream.clone(), rejection.clone()));
                    vec![record_rejection(&command, rejection)]
                }
            };
            for event in events {
                pending.extend(policy::react(&event));
                self.streams
                    .entry(stream.clone())
                    .or_default()
                    .push(event.clone());
                handled.appended.push((stream.clone(), event));
            }
        }
        handled
    }

    pub fn events(&self, stream: &StreamId) -> &[Event] {
        self.streams
            .get(stream)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every stream with its events, ordered by stream name.
    pub fn streams(&self) -> impl Iterator<Item = (&StreamId, &[Event])> {
        self.streams
            .iter()
            .map(|(stream, events)| (stream, events.as_slice()))
    }

    /// The state of `stream` folded as aggregate `A`.
    pub fn state<A: Aggregate>(&self, stream: &StreamId) -> A {
        replay(self.events(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::{Booking, BookingStatus};
    use crate::call::Call;
    use crate::command::{CancelBooking, CreateBooking, RescheduleBooking};
    use crate::event::BookingDetails;
    use chrono::{TimeZone, Utc};

    fn create() -> Command {
        CreateBooking {
            booking_uid: "bkg_1".into(),
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
            call_id: Some("call_1".into()),
            rescheduled_from: None,
        }
        .into()
    }

    #[test]
    fn a_command_and_the_policy_after_it_append_to_both_streams() {
        let mut streams = InMemoryStreams::new();
        let handled = streams.handle(StreamId::booking("bkg_1"), create());
        let appended: Vec<_> = handled
            .appended
            .iter()
            .map(|(stream, event)| (stream.to_string(), event.event_type()))
            .collect();
        assert_eq!(
            appended,
            [
                ("booking-bkg_1".to_owned(), "BookingCreated"),
                ("booking-bkg_1".to_owned(), "BookingLinkedToCall"),
                ("call-call_1".to_owned(), "CallLinkedToBooking"),
            ]
        );
        let call: Call = streams.state(&StreamId::call("call_1"));
        assert_eq!(call.booking_uid(), Some("bkg_1"));
        assert_eq!(
            streams.handle(StreamId::booking("bkg_1"), create()),
            Handled::default()
        );
    }

    #[test]
    fn a_refusal_is_appended_as_transition_rejected() {
        let mut streams = InMemoryStreams::new();
        let stream = StreamId::booking("bkg_1");
        streams.handle(stream.clone(), create());
        streams.handle(
            stream.clone(),
            CancelBooking {
                booking_uid: "bkg_1".into(),
                occurred_at: Utc.timestamp_opt(20, 0).unwrap(),
                reason: None,
                cancelled_by: None,
                call_id: None,
            }
            .into(),
        );
        let handled = streams.handle(
            stream.clone(),
            RescheduleBooking {
                booking_uid: "bkg_1".into(),
                occurred_at: Utc.timestamp_opt(30, 0).unwrap(),
                previous_start: None,
                previous_end: None,
                start: None,
                end: None,
                reason: None,
                rescheduled_by: None,
                call_id: None,
            }
            .into(),
        );
        assert_eq!(handled.rejections.len(), 1);
        assert_eq!(
            handled.rejections[0].1.code(),
            "reschedule_after_cancellation"
        );
        assert_eq!(handled.appended[0].1.event_type(), "TransitionRejected");
        let booking: Booking = streams.state(&stream);
        assert_eq!(booking.status(), Some(BookingStatus::Cancelled));
    }
}
