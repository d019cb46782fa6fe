//! The query API: tenants, calls, appointments, customers, anomalies. Read models are
//! eventually consistent with the streams; `/readyz` says how far behind they are.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_intake::tenant::TenantRegistrationRequest;
use switchboard_projections::{Page, ProjectionError, ReadModels};

use super::auth::{Access, Admin};
use super::params::{self, Params};
use crate::{AppState, Error};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/tenants/{tenant_id}", get(get_tenant).put(put_tenant))
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{call_id}", get(get_call))
        .route("/api/appointments", get(list_appointments))
        .route("/api/appointments/{booking_uid}", get(get_appointment))
        .route("/api/customers", get(find_customer))
        .route("/api/customers/{customer_id}", get(get_customer))
        .route("/api/anomalies", get(list_anomalies))
}

const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    tenant_id: Option<String>,
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    limit: Option<String>,
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    after: Option<String>,
}

/// The tenant a list is for: a tenant token only ever lists its own.
fn list_scope(access: &Access, requested: Option<String>) -> Result<Option<String>, Error> {
    match access {
        Access::Admin => Ok(requested),
        Access::Tenant(own) => match requested {
            Some(other) if &other != own => Err(Error::not_found(format!("tenant {other}"))),
            _ => Ok(Some(own.clone())),
        },
    }
}

/// A record another tenant owns answers exactly like one that does not exist.
fn visible<T>(
    access: &Access,
    record: Option<T>,
    tenant: impl Fn(&T) -> Option<&str>,
    what: String,
) -> Result<T, Error> {
    match record {
        Some(record) if access.sees(tenant(&record)) => Ok(record),
        _ => Err(Error::not_found(what)),
    }
}

/// One record by id, answered 404 when it does not exist or another tenant owns it.
async fn one<T: Serialize + Send + 'static>(
    state: &AppState,
    access: &Access,
    what: String,
    find: impl FnOnce(&ReadModels) -> Result<Option<T>, ProjectionError> + Send + 'static,
    owner: impl Fn(&T) -> Option<&str>,
) -> Result<Json<Value>, Error> {
    let record = state.read_models.query(find).await?;
    Ok(Json(json!(visible(access, record, owner, what)?)))
}

/// A page of a list, scoped to the caller's tenant.
async fn page<T: Serialize + Send + 'static>(
    state: &AppState,
    access: &Access,
    query: ListQuery,
    list: impl FnOnce(
        &ReadModels,
        Option<String>,
        usize,
        Option<&str>,
    ) -> Result<Page<T>, ProjectionError>
    + Send
    + 'static,
) -> Result<Json<Value>, Error> {
    let tenant = list_scope(access, query.tenant_id)?;
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT)?;
    let after = query.after;
    let page = state
        .read_models
        .query(move |rm| list(rm, tenant, limit, after.as_deref()))
        .await?;
    Ok(Json(json!(page)))
}

async fn get_call(
    State(state): State<Arc<AppState>>,
    access: Access,
    Path(call_id): Path<String>,
) -> Result<Json<Value>, Error> {
    let what = format!("call {call_id}");
    one(
        &state,
        &access,
        what,
        move |rm| rm.call(&call_id),
        |c| c.tenant_id.as_deref(),
    )
    .await
}

async fn list_calls(
    State(state): State<Arc<AppState>>,
    access: Access,
    Params(query): Params<ListQuery>,
) -> Result<Json<Value>, Error> {
    page(&state, &access, query, |rm, tenant, limit, after| {
        rm.calls(tenant.as_deref(), limit, after)
    })
    .await
}

async fn get_appointment(
    State(state): State<Arc<AppState>>,
    access: Access,
    Path(booking_uid): Path<String>,
) -> Result<Json<Value>, Error> {
    let what = format!("appointment {booking_uid}");
    let find = move |rm: &ReadModels| rm.appointment(&booking_uid);
    one(&state, &access, what, find, |a| a.tenant_id.as_deref()).await
}

async fn list_appointments(
    State(state): State<Arc<AppState>>,
    access: Access,
    Params(query): Params<ListQuery>,
) -> Result<Json<Value>, Error> {
    page(&state, &access, query, |rm, tenant, limit, after| {
        rm.appointments(tenant.as_deref(), limit, after)
    })
    .await
}

#[derive(Debug, Deserialize)]
struct CustomerQuery {
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    tenant_id: Option<String>,
    #[serde(default, deserialize_with = "params::blank_is_absent")]
    phone: Option<String>,
}

async fn find_customer(
    State(state): State<Arc<AppState>>,
    access: Access,
    Params(query): Params<CustomerQuery>,
) -> Result<Json<Value>, Error> {
    let tenant = list_scope(&access, query.tenant_id)?.ok_or_else(|| {
        Error::bad_request(
            "invalid_query",
            "tenant_id is required with the admin token",
        )
    })?;
    let phone = query
        .phone
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            Error::bad_request(
                "invalid_query",
                "phone is required, e.g. phone=%2B4915123456789",
            )
        })?;
    let (t, p) = (tenant.clone(), phone.clone());
    let customer = state
        .read_models
        .query(move |rm| rm.customer_by_phone(&t, &p))
        .await?
        .ok_or_else(|| Error::not_found(format!("customer {phone} of tenant {tenant}")))?;
    Ok(Json(json!(customer)))
}

async fn get_customer(
    State(state): State<Arc<AppState>>,
    access: Access,
    Path(customer_id): Path<String>,
) -> Result<Json<Value>, Error> {
    let what = format!("customer {customer_id}");
    let find = move |rm: &ReadModels| rm.customer(&customer_id);
    one(&state, &access, what, find, |c| Some(c.tenant_id.as_str())).await
}

async fn list_anomalies(
    State(state): State<Arc<AppState>>,
    access: Access,
    Params(query): Params<ListQuery>,
) -> Result<Json<Value>, Error> {
    page(&state, &access, query, |rm, tenant_id, limit, after| {
        let filter = switchboard_projections::AnomalyFilter {
            tenant_id,
            open_only: false,
        };
        rm.anomalies(&filter, limit, after)
    })
    .await
}

async fn get_tenant(
    State(state): State<Arc<AppState>>,
    access: Access,
    Path(tenant_id): Path<String>,
) -> Result<Json<Value>, Error> {
    if !access.sees(Some(&tenant_id)) {
        return Err(Error::not_found(format!("tenant {tenant_id}")));
    }
    let id = tenant_id.clone();
    let tenant = state
        .read_models
        .query(move |rm| rm.tenant(&id))
        .await?
        .ok_or_else(|| Error::not_found(format!("tenant {tenant_id}")))?;
    Ok(Json(json!(tenant)))
}

/// Registering or changing a tenant is the admin's: a tenant that could edit its own
/// registry could claim another tenant's phone number or organizer and read its calls.
async fn put_tenant(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(tenant_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, Error> {
    let request: TenantRegistrationRequest = serde_json::from_slice(&body).map_err(|e| {
        Error::bad_request("malformed_payload", format!("tenant registration: {e}"))
    })?;
    let events = crate::tenants::register(&state, &tenant_id, request).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "status": "accepted", "tenant_id": tenant_id, "events": events })),
    ))
}
