//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use switchboard_projections::{ProjectionLag, ReadModels};
use switchboard_store::EventStore;

use switchboard_webhooks::Keyring;

use crate::config::Config;
use crate::ledger::{Ledger, StreamLocks};
use crate::quarantine::Quarantine;
use crate::rate_limit::EndpointLimits;
use crate::read_models::ReadModelHandle;

pub struct AppState {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) config: Config,
    pub(crate) keyring: Keyring,
    pub(crate) locks: Arc<StreamLocks>,
    pub(crate) quarantine: Quarantine,
    pub(crate) limits: Option<EndpointLimits>,
    pub(crate) metrics: PrometheusHandle,
    /// How far the read models trail the store.
    pub(crate) lag: ProjectionLag,
    pub(crate) read_models: ReadModelHandle,
}

impl AppState {
    /// Everything the handlers share, for a store and read models already open. `serve`
    /// builds one; tests build one around a store they control.
    pub fn new(
        store: Arc<dyn EventStore>,
        config: Config,
        read_models: ReadModels,
        lag: ProjectionLag,
    ) -> AppState {
        AppState {
            store,
            keyring: config.secrets.keyring(),
            locks: Arc::new(StreamLocks::default()),
            quarantine: Quarantine::new(config.quarantine_capacity),
            limits: config.rate_limit.map(EndpointLimits::new),
            metrics: crate::metrics::install(),
            lag,
            read_models: ReadModelHandle::new(read_models),
            config,
        }
    }

    /// Records commands on streams through this instance's per-stream locks.
    pub(crate) fn ledger(&self) -> Ledger<'_> {
        Ledger {
            store: self.store.as_ref(),
            locks: &self.locks,
        }
    }

    /// The global position up to which the read models are built.
    pub fn projected_position(&self) -> u64 {
        self.lag.checkpoint()
    }
}
