//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use switchboard_store::EventStore;
use tokio::sync::watch;

use crate::config::Config;
use crate::quarantine::Quarantine;
use crate::rate_limit::EndpointLimits;

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub config: Config,
    pub quarantine: Quarantine,
    pub limits: Option<EndpointLimits>,
    pub metrics: PrometheusHandle,
    /// The global position up to which the read models are built.
    pub projected: watch::Receiver<u64>,
}

impl AppState {
    pub fn projected_position(&self) -> u64 {
        *self.projected.borrow()
    }
}
