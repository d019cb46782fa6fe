//! Read models for Switchboard: projections folded over the event store's global order
//! (`$all`) into SQLite tables that the query API serves and analysts open directly.
//!
//! * [`Projector`] follows the store live: batches of events and the checkpoint commit in one
//!   transaction, so each event takes effect exactly once across restarts; [`ProjectionLag`]
//!   tells /readyz and /metrics how far behind it is.
//! * [`rebuild`] replays the store into fresh tables and swaps them in atomically, or builds
//!   the read models as of a moment into a separate file ([`Until`]).
//! * [`ReadModels`] answers the queries the server needs; [`export()`] writes a table as JSON
//!   lines or CSV.
//!
//! The tables, their columns and the events that feed them are documented in README.md.

mod anomalies;
mod apply;
mod appointment_rows;
mod appointments;
mod attribution;
mod call_rows;
mod calls;
mod counts;
mod customers;
mod db;
mod error;
mod export;
mod fold;
mod generation;
mod held;
mod phone;
mod query;
mod rebuild;
mod runner;
pub mod sql;
mod tenants;

pub use apply::{DELIVERY_RECEIVED, ts};
pub use customers::customer_id;
pub use db::{
    LAYOUT_VERSION, ProjectionName, READ_MODELS_FILE, ReadModelsAt, open_reader, read_models_path,
};
pub use error::ProjectionError;
pub use export::{ExportFormat, export};
pub use phone::{normalize_business as normalize_business_phone, warm_up as warm_up_phone_numbers};
pub use query::*;
pub use rebuild::{RebuildReport, Until, rebuild, rebuild_at};
pub use runner::{DEFAULT_MAX_BATCH, LEADER_RETRY, ProjectionLag, Projector};
