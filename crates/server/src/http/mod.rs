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
use axum::http::{Method, Uri};

use crate::{AppState, Error};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ingest::router())
        .merge(query::router())
        .merge(admin::router())
        // Answered in the same error shape as everything else, so a provider's engineer who
        // mistyped a webhook URL reads what went wrong.
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

async fn unknown_path(uri: Uri) -> Error {
    Error::not_found(format!(
        "{}: no such endpoint (webhooks go to /api/retell/webhook, /api/retell/functions/{{name}}, \
         /api/calcom/webhook, /api/stripe/webhook or /api/webhook)",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
