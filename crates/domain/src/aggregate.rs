//! The decide/evolve contract every aggregate follows, and the one entry point the server
//! (and the scenario runner) use: given a stream's history and a command, which events.

use crate::booking::Booking;
use crate::call::Call;
use crate::command::Command;
use crate::event::{Event, TransitionRejected};
use crate::event_type::EventType;
use crate::rejection::Rejection;
use crate::stream::{AggregateKind, StreamId};
use crate::tenant::{Billing, Tenant};

/// A consistency boundary: one stream's state, the rules for changing it, and the fold that
/// rebuilds it. Both functions are pure.
pub trait Aggregate: Default + Clone {
    type Command;

    /// Which events the command makes, given the state. `Ok(vec![])` means "already
    /// recorded" (a duplicate); `Err` means the transition is refused.
    fn decide(&self, command: Self::Command) -> Result<Vec<Event>, Rejection>;

    /// The state after one more event. Events that do not concern this aggregate
    /// (including [`TransitionRejected`]) leave it unchanged.
    fn evolve(self, event: &Event) -> Self;
}

/// Folds a stream's events into its state.
pub fn replay<'a, A: Aggregate>(events: impl IntoIterator<Item = &'a Event>) -> A {
    events.into_iter().fold(A::default(), A::evolve)
}

/// Decides `command` on `stream`, whose events so far are `history`.
///
/// The stream name says which aggregate rules; a command for another kind of aggregate, or
/// naming another instance than the stream, is refused (a routing bug, recorded not applied).
pub fn decide(
    stream: &StreamId,
    history: &[Event],
    command: Command,
) -> Result<Vec<Event>, Rejection> {
    if !command.applies_to(stream.kind()) {
        return Err(Rejection::CommandNotForStream {
            command: command.name().to_owned(),
            stream_kind: stream.kind(),
        });
    }
    if let Some(named) = command.named_stream().filter(|named| named != stream) {
        return Err(Rejection::WrongStream {
            command: command.name().to_owned(),
            named: named.to_string(),
            stream_id: stream.to_string(),
        });
    }
    match (stream.kind(), command) {
        (AggregateKind::Call, Command::Call(command)) => replay::<Call>(history).decide(command),
        (AggregateKind::Booking, Command::Booking(command)) => {
            replay::<Booking>(history).decide(command)
        }
        (AggregateKind::Tenant, Command::Tenant(command)) => {
            replay::<Tenant>(history).decide(command)
        }
        (AggregateKind::Tenant, Command::Billing(command)) => {
            replay::<Tenant>(history).billing().decide(command)
        }
        (AggregateKind::Billing, Command::Billing(command)) => {
            replay::<Billing>(history).decide(command)
        }
        (AggregateKind::EventType, Command::EventType(command)) => {
            replay::<EventType>(history).decide(command)
        }
        (kind, command) => {
            unreachable!("applies_to accepted {} for a {kind} stream", command.name())
        }
    }
}

/// The event that records a refused command on its stream, so the refusal is kept and the
/// anomalies read model can be rebuilt from the streams.
pub fn record_rejection(command: &Command, reason: Rejection) -> Event {
    TransitionRejected {
        occurred_at: command.occurred_at(),
        command: command.name().to_owned(),
        reason,
        // Commands are plain data; a failure here is a programming error.
        payload: serde_json::to_value(command).expect("commands serialize to JSON"),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CancelBooking, LinkBooking};
    use chrono::{TimeZone, Utc};

    fn cancel(uid: &str) -> Command {
        CancelBooking {
            booking_uid: uid.into(),
            occurred_at: Utc.timestamp_opt(100, 0).unwrap(),
            reason: None,
            cancelled_by: None,
            call_id: None,
        }
        .into()
    }

    #[test]
    fn the_stream_kind_chooses_the_aggregate() {
        let events = decide(&StreamId::booking("bkg_1"), &[], cancel("bkg_1")).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type(), "BookingCancelled");
    }

    #[test]
    fn a_command_for_another_kind_of_stream_is_refused() {
        assert_eq!(
            decide(&StreamId::call("bkg_1"), &[], cancel("bkg_1")),
            Err(Rejection::CommandNotForStream {
                command: "CancelBooking".into(),
                stream_kind: AggregateKind::Call
            })
        );
    }

    #[test]
    fn a_command_naming_another_instance_is_refused() {
        assert_eq!(
            decide(&StreamId::booking("bkg_2"), &[], cancel("bkg_1")),
            Err(Rejection::WrongStream {
                command: "CancelBooking".into(),
                named: "booking-bkg_1".into(),
                stream_id: "booking-bkg_2".into()
            })
        );
    }

    #[test]
    fn a_rejection_is_recorded_with_the_whole_command() {
        let command: Command = LinkBooking {
            call_id: "call_1".into(),
            booking_uid: "bkg_1".into(),
            occurred_at: Utc.timestamp_opt(5, 0).unwrap(),
        }
        .into();
        let reason = Rejection::EmptyTenantName;
        let Event::TransitionRejected(recorded) = record_rejection(&command, reason.clone()) else {
            panic!("not a TransitionRejected");
        };
        assert_eq!(recorded.command, "LinkBooking");
        assert_eq!(recorded.reason, reason);
        assert_eq!(recorded.occurred_at, Utc.timestamp_opt(5, 0).unwrap());
        assert_eq!(recorded.payload["LinkBooking"]["booking_uid"], "bkg_1");
    }
}
