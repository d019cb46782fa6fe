//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use switchboard_projections::ProjectionLag;
use switchboard_store::EventStore;

use switchboard_webhooks::Keyring;

use crate::config::Config;
use crate::ledger::StreamLocks;
use crate::quarantine::Quarantine;
use crate::rate_limit::EndpointLimits;
use crate::read_models::ReadModelHandle;

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub config: Config,
    pub keyring: Keyring,
    pub locks: Arc<StreamLocks>,
    pub quarantine: Quarantine,
    pub limits: Option<EndpointLimits>,
    pub metrics: PrometheusHandle,
    /// How far the read models trail the store.
    pub lag: ProjectionLag,
    pub read_models: ReadModelHandle,
}

impl AppState {
    /// The global position up to which the read models are built.
    pub fn projected_position(&self) -> u64 {
        self.lag.checkpoint()
    }
}
