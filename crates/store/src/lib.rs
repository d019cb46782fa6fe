//! The event store: one trait, one envelope, interchangeable backends.
//!
//! Every backend (embedded SQLite here; PostgreSQL and KurrentDB later) implements
//! [`EventStore`] and proves it by running [`conformance::run`].

pub mod conformance;
mod error;
mod event;
mod nul;
mod raw_json;
pub mod sqlite;
mod store;
mod subscription;
pub mod url;
mod validation;

pub use error::StoreError;
pub use event::{AppendOutcome, AppendedEvent, ExpectedVersion, NewEvent, RecordedEvent};
pub use nul::{json_without_nul, text_without_nul};
pub use raw_json::RawJson;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::EventStore;
pub use subscription::Subscription;
pub use validation::{check_append, check_event_size};

/// The largest event (data plus metadata, serialized) a store accepts unless configured otherwise.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;
