//! Switchboard's domain: events, commands and the aggregates that rule on them (Call, Booking,
//! Tenant with its Billing, EventType). Pure: no IO, no clock, nothing of ours.
//!
//! The server's loop, in terms of this crate:
//! 1. a delivery becomes `(StreamId, Command)` (the `switchboard-intake` crate);
//! 2. read the stream, [`Event::from_parts`] each stored event;
//! 3. [`decide`]: `Ok(events)` → append them (`Ok(vec![])` is a duplicate: append nothing);
//!    `Err(rejection)` → append [`record_rejection`] and answer `anomaly`;
//! 4. for each appended event, [`policy::react`] gives commands for other streams; run them
//!    the same way (they are idempotent) until nothing more follows.
//!
//! Read models fold the same events; [`Call`], [`Booking`] and [`Tenant`] expose the derived
//! views they need (call status and linked booking, booking status by provider time, …).

pub mod aggregate;
pub mod appointment;
pub mod booking;
pub mod call;
pub mod command;
pub mod event;
pub mod event_type;
pub mod memory;
pub mod policy;
pub mod rejection;
pub mod stream;
pub mod tenant;

pub use aggregate::{Aggregate, decide, record_rejection, replay};
pub use booking::{Booking, BookingStatus, BookingView};
pub use call::{Call, CallStatus};
pub use command::{
    BillingCommand, BookingCommand, CallCommand, Command, EventTypeCommand, TenantCommand,
};
pub use event::{Event, EventData, EventDecodeError, EventPayload};
pub use event_type::EventType;
pub use memory::{Handled, InMemoryStreams};
pub use rejection::Rejection;
pub use stream::{AggregateKind, StreamId, StreamIdError};
pub use tenant::{Billing, Tenant};
