//! The Switchboard service: ingest, query API, metrics and health over an [`EventStore`].
//!
//! [`EventStore`]: switchboard_store::EventStore

mod availability;
pub mod backend;
pub mod config;
mod error;
mod functions;
mod http;
mod ingest;
mod ledger;
pub mod metrics;
pub mod quarantine;
mod rate_limit;
mod reactor;
mod read_models;
mod routing;
mod serve;
mod state;
mod tenants;

pub use error::Error;
pub use http::router;
pub use serve::serve;
pub use state::AppState;
