//! Running the service: open the store and the read models, start the projections and the
//! policy, listen, and shut down cleanly.

use std::future::Future;
use std::sync::Arc;

use switchboard_projections::{Projector, ReadModels};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::reactor::{CHECKPOINT_FILE, Reactor};
use crate::{AppState, Error, backend};

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns. A delivery
/// is answered only after its append returned, so nothing unacknowledged is lost and nothing
/// acknowledged is missing.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = backend::open_store(
        &config.store,
        &config.data_dir,
        crate::config::max_event_bytes(config.max_body),
    )
    .await?;
    let read_models_at =
        backend::read_models_at(&config.store, &config.read_models, &config.data_dir);
    let (projector, read_models, store) = tokio::task::spawn_blocking(move || {
        let projector = Projector::open_at(store.clone(), read_models_at.clone())?;
        let read_models = ReadModels::open_at(&read_models_at)?;
        switchboard_projections::warm_up_phone_numbers();
        Ok::<_, Error>((projector, read_models, store))
    })
    .await
    .map_err(|e| Error::Internal(format!("opening the read models: {e}")))??;
    let lag = projector.lag();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let state = Arc::new(AppState::new(store, config, read_models, lag));
    let (stop_background, background_stopped) = watch::channel(false);
    let projections = tokio::spawn(projector.run(background_stopped.clone()));
    let reactor = Reactor {
        store: state.store.clone(),
        locks: state.locks.clone(),
        checkpoint_path: state.config.data_dir.join(CHECKPOINT_FILE),
    };
    let policy = tokio::spawn(reactor.run(background_stopped));

    warn_about_missing_secrets(&state);
    tracing::info!(
        address = %local,
        store = %state.config.store.describe(),
        data_dir = %state.config.data_dir.display(),
        "switchboard listening"
    );
    // Tests and scripts read this line to find an ephemeral port.
    println!("switchboard listening on http://{local}");
    let served = axum::serve(listener, crate::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    // In-flight deliveries are answered; now let the projections finish their batch.
    let _ = stop_background.send(true);
    if let Ok(Err(error)) = projections.await {
        tracing::warn!(%error, "projections stopped with an error");
    }
    let _ = policy.await;
    served.map_err(|e| Error::Internal(format!("server: {e}")))?;
    tracing::info!("switchboard stopped");
    Ok(())
}

fn warn_about_missing_secrets(state: &AppState) {
    use switchboard_webhooks::Provider;
    for provider in [Provider::Retell, Provider::Calcom, Provider::Stripe] {
        if state.keyring.secrets(provider).is_empty() {
            tracing::warn!(
                provider = provider.as_str(),
                "no secret configured: every {} delivery will be refused (401 no_secret_configured)",
                provider.display_name()
            );
        }
    }
}
