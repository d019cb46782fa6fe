//! Liveness, readiness (with projection lag) and Prometheus metrics: no token needed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Alive unless the store has stopped for good in this process (the embedded store after a
/// failed sync): then no delivery can be acknowledged until the process is restarted, so
/// liveness fails and a supervisor restarts it. Trouble the store recovers from by itself
/// only fails readiness.
async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.store.stopped() {
        None => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        // The reason names files: it stays in the log, where the store wrote it when it stopped.
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "stopped",
                "store": { "error": "the store stopped for good; restart the process (the log says why)" },
            })),
        ),
    }
}

/// Ready when the store answers; reports how far the read models trail the streams.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.store.head_position().await {
        Ok(head) => {
            let applied = state.projected_position();
            let lag = head.saturating_sub(applied);
            crate::metrics::projection_lag("all", lag);
            let mut projections = json!({ "position": applied, "lag_events": lag });
            // Still ready: deliveries are taken and queries answered (from read models that
            // stand still), but the reason is one request away rather than in the logs.
            if let Some(reason) = state.lag.paused() {
                projections["paused"] = json!(reason);
            }
            (
                StatusCode::OK,
                Json(json!({
                    "status": "ready",
                    "store": { "head_position": head },
                    "projections": projections,
                })),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "readiness check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "store": { "error": "store unavailable" } })),
            )
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if let Ok(head) = state.store.head_position().await {
        crate::metrics::projection_lag("all", head.saturating_sub(state.projected_position()));
    }
    crate::metrics::projections_paused(state.lag.paused().is_some());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
