//! HTTP: one module per resource, each exporting `router()`; errors map in `error`.

mod error;
mod health;

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
