//! The webhook endpoints: thin handlers over [`crate::ingest`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;

use crate::AppState;
use crate::ingest::{Acknowledgement, Endpoint, Incoming};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/retell/webhook", post(retell))
        .route("/api/retell/functions/{name}", post(retell_function))
        .route("/api/calcom/webhook", post(calcom))
        .route("/api/stripe/webhook", post(stripe))
        .route("/api/webhook", post(unified))
}

async fn retell(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle(state, Endpoint::Retell, headers, body).await
}

async fn retell_function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Endpoint::RetellFunction { name }, headers, body).await
}

async fn calcom(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle(state, Endpoint::Calcom, headers, body).await
}

async fn stripe(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle(state, Endpoint::Stripe, headers, body).await
}

async fn unified(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle(state, Endpoint::Unified, headers, body).await
}

async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("delivery", %request_id, endpoint = endpoint.name());
    let incoming = Incoming {
        endpoint,
        request_id: request_id.clone(),
        headers,
    };
    let result = crate::ingest::ingest(&state, incoming, body)
        .instrument(span)
        .await;
    let mut response = match result {
        Ok(ack) => answer(ack),
        Err(error) => error.into_response(),
    };
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn answer(ack: Acknowledgement) -> Response {
    match ack {
        Acknowledgement::Accepted {
            delivery_id,
            events,
        } => (
            StatusCode::OK,
            Json(json!({ "status": "accepted", "delivery_id": delivery_id, "events": events })),
        )
            .into_response(),
        Acknowledgement::Anomaly {
            delivery_id,
            events,
            reason,
            message,
        } => (
            StatusCode::OK,
            Json(json!({
                "status": "anomaly",
                "delivery_id": delivery_id,
                "reason": reason,
                "message": message,
                "events": events,
            })),
        )
            .into_response(),
        Acknowledgement::Duplicate {
            delivery_id,
            stream,
        } => (
            StatusCode::CONFLICT,
            Json(json!({
                "status": "duplicate",
                "delivery_id": delivery_id,
                "stream": stream,
                "message": "this delivery was already recorded; nothing was appended",
            })),
        )
            .into_response(),
        Acknowledgement::FunctionResult { body } => (StatusCode::OK, Json(body)).into_response(),
    }
}
