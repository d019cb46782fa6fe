//! The Booking aggregate (`booking-{uid}`): created → rescheduled* → cancelled (terminal).
//!
//! Cal.com delivers out of order, so every fact is ordered by its provider time
//! (`createdAt`), never by arrival:
//! * a `rescheduled` or `cancelled` before `created` is recorded and the booking resolves
//!   when `created` arrives (until then it reads [`BookingStatus::Pending`], or cancelled);
//! * a reschedule later (by provider time) than the cancellation is refused
//!   ([`Rejection::RescheduleAfterCancellation`]); one that arrived first but happened later
//!   than a cancellation that arrives after it is kept but superseded: it never reactivates
//!   the booking nor moves its slot;
//! * a second `created` or `cancelled`, or the same reschedule twice, is a duplicate;
//! * a booking whose metadata names a call records `BookingLinkedToCall` once; the policy
//!   carries the link to the call's stream. The first call named wins.
//! * Cal.com's real reschedule makes a new uid: the new booking is created with
//!   `rescheduled_from`, and the policy marks the old one rescheduled with `rescheduled_to`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::command::{
    BookingCommand, CancelBooking, CreateBooking, MarkRescheduledTo, RescheduleBooking,
};
use crate::event::{
    BookingCancelled, BookingCreated, BookingLinkedToCall, BookingRescheduled, Event,
};
use crate::rejection::Rejection;

/// Where a booking stands, by provider time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Changes arrived before `created`; the booking resolves when it does.
    Pending,
    Booked,
    Rescheduled,
    Cancelled,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Booking {
    created: Option<BookingCreated>,
    /// Sorted by provider time (ties by target uid, then slot) so arrival order does not show.
    reschedules: Vec<BookingRescheduled>,
    cancellation: Option<BookingCancelled>,
    call_id: Option<String>,
}

/// What a booking reads as: the parts of the state that do not depend on arrival order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookingView {
    pub status: Option<BookingStatus>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub service: Option<String>,
    pub call_id: Option<String>,
    pub rescheduled_from: Option<String>,
    pub rescheduled_to: Option<String>,
    pub reschedules: usize,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Provider time first: reschedules are ordered by when they happened, never by arrival.
type RescheduleKey<'a> = (
    DateTime<Utc>,
    Option<&'a str>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn reschedule_key(change: &BookingRescheduled) -> RescheduleKey<'_> {
    (
        change.occurred_at,
        change.rescheduled_to.as_deref(),
        change.start,
        change.end,
    )
}

impl Booking {
    /// None for a stream with no booking facts at all.
    pub fn status(&self) -> Option<BookingStatus> {
        if self.cancellation.is_some() {
            Some(BookingStatus::Cancelled)
        } else if self.created.is_none() {
            (!self.reschedules.is_empty()).then_some(BookingStatus::Pending)
        } else if self.effective_reschedules().next().is_some() {
            Some(BookingStatus::Rescheduled)
        } else {
            Some(BookingStatus::Booked)
        }
    }

    pub fn created(&self) -> Option<&BookingCreated> {
        self.created.as_ref()
    }
    pub fn cancellation(&self) -> Option<&BookingCancelled> {
        self.cancellation.as_ref()
    }
    pub fn call_id(&self) -> Option<&str> {
        self.call_id.as_deref()
    }

    /// The reschedules that count: not later than the cancellation, by provider time.
    pub fn effective_reschedules(&self) -> impl DoubleEndedIterator<Item = &BookingRescheduled> {
        let cancelled_at = self.cancellation.as_ref().map(|c| c.occurred_at);
        self.reschedules
            .iter()
            .filter(move |change| cancelled_at.is_none_or(|at| change.occurred_at <= at))
    }

    /// Reschedules that happened after the cancellation but arrived before it: kept as facts,
    /// without effect. The anomalies read model may list them.
    pub fn superseded_reschedules(&self) -> impl DoubleEndedIterator<Item = &BookingRescheduled> {
        let cancelled_at = self.cancellation.as_ref().map(|c| c.occurred_at);
        self.reschedules
            .iter()
            .filter(move |change| cancelled_at.is_some_and(|at| change.occurred_at > at))
    }

    /// The current slot: the latest effective reschedule that names one, else the created one.
    pub fn slot(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.effective_reschedules()
            .filter_map(|change| change.start.zip(change.end))
            .next_back()
            .or_else(|| {
                self.created
                    .as_ref()
                    .map(|c| (c.details.start, c.details.end))
            })
    }

    /// The uid this booking moved to, if Cal.com rescheduled it into a new booking.
    pub fn rescheduled_to(&self) -> Option<&str> {
        self.effective_reschedules()
            .filter_map(|change| change.rescheduled_to.as_deref())
            .next_back()
    }

    pub fn view(&self) -> BookingView {
        let slot = self.slot();
        BookingView {
            status: self.status(),
            start: slot.map(|(start, _)| start),
            end: slot.map(|(_, end)| end),
            service: self
                .created
                .as_ref()
                .and_then(|c| c.details.service.clone()),
            call_id: self.call_id.clone(),
            rescheduled_from: self
                .created
                .as_ref()
                .and_then(|c| c.rescheduled_from.clone()),
            rescheduled_to: self.rescheduled_to().map(str::to_owned),
            reschedules: self.effective_reschedules().count(),
            cancelled_at: self.cancellation.as_ref().map(|c| c.occurred_at),
        }
    }

    /// `BookingLinkedToCall` when the delivery names a call and the booking has none yet.
    fn link(
        &self,
        booking_uid: &str,
        call_id: Option<String>,
        occurred_at: DateTime<Utc>,
    ) -> Option<Event> {
        if self.call_id.is_some() {
            return None;
        }
        call_id.map(|call_id| {
            BookingLinkedToCall {
                booking_uid: booking_uid.to_owned(),
                call_id,
                occurred_at,
            }
            .into()
        })
    }

    fn refuse_after_cancellation(
        &self,
        booking_uid: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        match &self.cancellation {
            Some(cancellation) if occurred_at > cancellation.occurred_at => {
                Err(Rejection::RescheduleAfterCancellation {
                    booking_uid: booking_uid.to_owned(),
                    cancelled_at: cancellation.occurred_at,
                })
            }
            _ => Ok(()),
        }
    }

    fn decide_create(&self, command: CreateBooking) -> Vec<Event> {
        let link = self.link(
            &command.booking_uid,
            command.call_id.clone(),
            command.occurred_at,
        );
        if self.created.is_some() {
            return link.into_iter().collect();
        }
        let created = BookingCreated {
            booking_uid: command.booking_uid,
            occurred_at: command.occurred_at,
            details: command.details,
            call_id: command.call_id,
            rescheduled_from: command.rescheduled_from,
        };
        std::iter::once(created.into()).chain(link).collect()
    }

    fn decide_reschedule(&self, command: RescheduleBooking) -> Result<Vec<Event>, Rejection> {
        self.refuse_after_cancellation(&command.booking_uid, command.occurred_at)?;
        let link = self.link(&command.booking_uid, command.call_id, command.occurred_at);
        let change = BookingRescheduled {
            booking_uid: command.booking_uid,
            occurred_at: command.occurred_at,
            previous_start: command.previous_start,
            previous_end: command.previous_end,
            start: command.start,
            end: command.end,
            reason: command.reason,
            rescheduled_by: command.rescheduled_by,
            rescheduled_to: None,
        };
        let seen = self
            .reschedules
            .iter()
            .any(|recorded| reschedule_key(recorded) == reschedule_key(&change));
        let change = (!seen).then(|| change.into());
        Ok(change.into_iter().chain(link).collect())
    }

    fn decide_cancel(&self, command: CancelBooking) -> Vec<Event> {
        let link = self.link(&command.booking_uid, command.call_id, command.occurred_at);
        if self.cancellation.is_some() {
            return link.into_iter().collect();
        }
        let cancelled = BookingCancelled {
            booking_uid: command.booking_uid,
            occurred_at: command.occurred_at,
            reason: command.reason,
            cancelled_by: command.cancelled_by,
        };
        std::iter::once(cancelled.into()).chain(link).collect()
    }

    fn decide_moved(&self, command: MarkRescheduledTo) -> Result<Vec<Event>, Rejection> {
        self.refuse_after_cancellation(&command.booking_uid, command.occurred_at)?;
        let seen = self
            .reschedules
            .iter()
            .any(|recorded| recorded.rescheduled_to.as_deref() == Some(&command.new_booking_uid));
        if seen {
            return Ok(vec![]);
        }
        Ok(vec![
            BookingRescheduled {
                booking_uid: command.booking_uid,
                occurred_at: command.occurred_at,
                // Cal.com's new booking does not repeat the old slot; it is in this
                // booking's BookingCreated.
                previous_start: None,
                previous_end: None,
                start: Some(command.start),
                end: Some(command.end),
                reason: None,
                rescheduled_by: None,
                rescheduled_to: Some(command.new_booking_uid),
            }
            .into(),
        ])
    }
}

impl Aggregate for Booking {
    type Command = BookingCommand;

    fn decide(&self, command: BookingCommand) -> Result<Vec<Event>, Rejection> {
        match command {
            BookingCommand::CreateBooking(command) => Ok(self.decide_create(command)),
            BookingCommand::RescheduleBooking(command) => self.decide_reschedule(command),
            BookingCommand::CancelBooking(command) => Ok(self.decide_cancel(command)),
            BookingCommand::MarkRescheduledTo(command) => self.decide_moved(command),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::BookingCreated(created) => {
                self.created.get_or_insert_with(|| created.clone());
            }
            Event::BookingRescheduled(change) => {
                let key = reschedule_key(change);
                let at = self
                    .reschedules
                    .partition_point(|recorded| reschedule_key(recorded) < key);
                let repeated = self
                    .reschedules
                    .get(at)
                    .is_some_and(|recorded| reschedule_key(recorded) == key);
                if !repeated {
                    self.reschedules.insert(at, change.clone());
                }
            }
            Event::BookingCancelled(cancelled) => {
                self.cancellation.get_or_insert_with(|| cancelled.clone());
            }
            Event::BookingLinkedToCall(link) => {
                self.call_id.get_or_insert_with(|| link.call_id.clone());
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;
    use crate::event::BookingDetails;
    use chrono::TimeZone;

    const UID: &str = "bkg_1";

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 4, 14, hour, 0, 0).unwrap()
    }

    fn create(call_id: Option<&str>) -> BookingCommand {
        BookingCommand::CreateBooking(CreateBooking {
            booking_uid: UID.into(),
            occurred_at: at(10),
            details: BookingDetails {
                calcom_booking_id: Some(1),
                title: None,
                description: None,
                start: Utc.with_ymd_and_hms(2025, 4, 15, 12, 30, 0).unwrap(),
                end: Utc.with_ymd_and_hms(2025, 4, 15, 13, 0, 0).unwrap(),
                service: Some("Herrenhaarschnitt".into()),
                event_type_id: None,
                organizer: None,
                attendees: vec![],
                location: None,
                provider_status: None,
            },
            call_id: call_id.map(Into::into),
            rescheduled_from: None,
        })
    }

    fn reschedule(hour: u32, new_start_hour: u32) -> BookingCommand {
        BookingCommand::RescheduleBooking(RescheduleBooking {
            booking_uid: UID.into(),
            occurred_at: at(hour),
            previous_start: None,
            previous_end: None,
            start: Some(
                Utc.with_ymd_and_hms(2025, 4, 15, new_start_hour, 0, 0)
                    .unwrap(),
            ),
            end: Some(
                Utc.with_ymd_and_hms(2025, 4, 15, new_start_hour, 30, 0)
                    .unwrap(),
            ),
            reason: None,
            rescheduled_by: None,
            call_id: None,
        })
    }

    fn cancel(hour: u32) -> BookingCommand {
        BookingCommand::CancelBooking(CancelBooking {
            booking_uid: UID.into(),
            occurred_at: at(hour),
            reason: Some("Customer requested cancellation".into()),
            cancelled_by: None,
            call_id: None,
        })
    }

    fn run(
        commands: impl IntoIterator<Item = BookingCommand>,
    ) -> (Booking, Vec<Result<Vec<Event>, Rejection>>) {
        let mut booking = Booking::default();
        let mut outcomes = vec![];
        for command in commands {
            let outcome = booking.decide(command);
            if let Ok(events) = &outcome {
                booking = events.iter().fold(booking, Booking::evolve);
            }
            outcomes.push(outcome);
        }
        (booking, outcomes)
    }

    #[test]
    fn created_rescheduled_cancelled() {
        let (booking, outcomes) = run([create(None), reschedule(12, 15), cancel(13)]);
        assert!(
            outcomes
                .iter()
                .all(|o| o.as_ref().is_ok_and(|e| e.len() == 1))
        );
        assert_eq!(booking.status(), Some(BookingStatus::Cancelled));
        assert_eq!(booking.slot().unwrap().0.format("%H").to_string(), "15");
    }

    #[test]
    fn reschedule_after_cancellation_is_refused_and_does_not_reactivate() {
        let (booking, outcomes) = run([create(None), cancel(13), reschedule(14, 15)]);
        assert_eq!(
            outcomes[2],
            Err(Rejection::RescheduleAfterCancellation {
                booking_uid: UID.into(),
                cancelled_at: at(13)
            })
        );
        assert_eq!(booking.status(), Some(BookingStatus::Cancelled));
        assert_eq!(
            booking.slot().unwrap().0.format("%H:%M").to_string(),
            "12:30"
        );
    }

    #[test]
    fn a_reschedule_that_arrives_late_but_happened_before_the_cancellation_is_history() {
        let (booking, outcomes) = run([create(None), cancel(13), reschedule(12, 15)]);
        assert!(outcomes[2].is_ok());
        assert_eq!(booking.status(), Some(BookingStatus::Cancelled));
        assert_eq!(booking.effective_reschedules().count(), 1);
    }

    #[test]
    fn a_later_reschedule_that_arrived_before_the_cancellation_is_superseded() {
        let (late_cancel, _) = run([create(None), reschedule(14, 15), cancel(13)]);
        let (in_order, _) = run([create(None), cancel(13), reschedule(14, 15)]);
        assert_eq!(late_cancel.superseded_reschedules().count(), 1);
        assert_eq!(late_cancel.view(), in_order.view());
    }

    #[test]
    fn changes_before_created_are_kept_and_resolve_when_it_arrives() {
        let (booking, outcomes) = run([reschedule(12, 15)]);
        assert!(outcomes[0].as_ref().is_ok_and(|e| e.len() == 1));
        assert_eq!(booking.status(), Some(BookingStatus::Pending));
        let (booking, _) = run([reschedule(12, 15), create(None)]);
        assert_eq!(booking.status(), Some(BookingStatus::Rescheduled));
        let (in_order, _) = run([create(None), reschedule(12, 15)]);
        assert_eq!(booking.view(), in_order.view());
    }

    #[test]
    fn a_cancellation_before_created_reads_cancelled() {
        let (booking, _) = run([cancel(13), create(None)]);
        assert_eq!(booking.status(), Some(BookingStatus::Cancelled));
        assert!(booking.created().is_some());
    }

    #[test]
    fn repeats_are_duplicates() {
        let (_, outcomes) = run([
            create(None),
            create(None),
            reschedule(12, 15),
            reschedule(12, 15),
            cancel(13),
            cancel(13),
        ]);
        let counts: Vec<usize> = outcomes.into_iter().map(|o| o.unwrap().len()).collect();
        assert_eq!(counts, [1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn a_booking_naming_a_call_links_once() {
        let (booking, outcomes) = run([create(Some("call_1")), cancel(13)]);
        let types: Vec<_> = outcomes[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(Event::event_type)
            .collect();
        assert_eq!(types, ["BookingCreated", "BookingLinkedToCall"]);
        assert_eq!(booking.call_id(), Some("call_1"));
        let (_, outcomes) = run([create(Some("call_1")), create(Some("call_2"))]);
        assert_eq!(outcomes[1], Ok(vec![]), "the first call named wins");
    }

    #[test]
    fn being_moved_to_a_new_uid_reads_rescheduled_with_the_link() {
        let moved = || {
            BookingCommand::MarkRescheduledTo(MarkRescheduledTo {
                booking_uid: UID.into(),
                occurred_at: at(12),
                new_booking_uid: "bkg_2".into(),
                start: Utc.with_ymd_and_hms(2025, 4, 16, 9, 0, 0).unwrap(),
                end: Utc.with_ymd_and_hms(2025, 4, 16, 9, 30, 0).unwrap(),
            })
        };
        let (booking, outcomes) = run([create(None), moved(), moved()]);
        assert_eq!(outcomes[2], Ok(vec![]));
        assert_eq!(booking.status(), Some(BookingStatus::Rescheduled));
        assert_eq!(booking.rescheduled_to(), Some("bkg_2"));
    }

    #[test]
    fn the_state_is_the_fold_of_its_events() {
        let (booking, outcomes) = run([reschedule(12, 15), create(Some("call_1")), cancel(13)]);
        let events: Vec<Event> = outcomes.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(replay::<Booking>(&events), booking);
    }
}
