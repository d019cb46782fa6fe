//! HTTP: one module per resource, each exporting `router()`; errors map in `error`.

mod admin;
mod auth;
mod error;
mod health;
mod ingest;
mod params;
mod query;

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ingest::router())
        .merge(query::router())
        .merge(admin::router())
        .with_state(state)
}
