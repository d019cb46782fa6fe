//! Admin views: the quarantine of refused deliveries and a stream's events with envelope.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Admin;
use super::params::{self, Params};
use crate::{AppState, Error};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/quarantine", get(quarantine))
        .route("/api/streams/{stream}", get(stream))
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    limit: Option<String>,
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    from_version: Option<String>,
}

fn parse_number(name: &str, value: Option<&str>, default: u64, max: u64) -> Result<u64, Error> {
    match value {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                Error::bad_request(
                    "invalid_query",
                    format!("{name}={raw:?} is not a whole number from 0 to {max}"),
                )
            }),
    }
}

async fn quarantine(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Params(query): Params<LimitQuery>,
) -> Result<Json<Value>, Error> {
    let limit = params::limit(query.limit.as_deref(), 100)?;
    Ok(Json(json!({ "items": state.quarantine.list(limit) })))
}

async fn stream(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(stream): Path<String>,
    Params(query): Params<LimitQuery>,
) -> Result<Json<Value>, Error> {
    let limit = params::limit(query.limit.as_deref(), 1000)?.min(10_000);
    let from = parse_number("from_version", query.from_version.as_deref(), 0, u64::MAX)?;
    let events = state.store.read_stream(&stream, from, limit).await?;
    if events.is_empty() && state.store.stream_version(&stream).await?.is_none() {
        return Err(Error::not_found(format!("stream {stream}")));
    }
    Ok(Json(json!({ "stream": stream, "events": events })))
}
