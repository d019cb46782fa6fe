//! Running the service: open the store, start the projections, listen, shut down cleanly.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::quarantine::Quarantine;
use crate::rate_limit::EndpointLimits;
use crate::{AppState, Error, backend};

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns. A delivery
/// is answered only after its append returned, so nothing unacknowledged is lost and nothing
/// acknowledged is missing.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = backend::open_store(&config.store, &config.data_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (_projected_tx, projected) = watch::channel(0u64);
    let state = Arc::new(AppState {
        store,
        quarantine: Quarantine::new(config.quarantine_capacity),
        limits: config.rate_limit.map(EndpointLimits::new),
        metrics: crate::metrics::install(),
        projected,
        config,
    });
    tracing::info!(
        address = %local,
        store = %state.config.store.describe(),
        data_dir = %state.config.data_dir.display(),
        "switchboard listening"
    );
    // Tests and scripts read this line to find an ephemeral port.
    println!("switchboard listening on http://{local}");
    axum::serve(listener, crate::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")))?;
    tracing::info!("switchboard stopped");
    Ok(())
}
