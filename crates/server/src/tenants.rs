//! The tenant registry: `PUT /api/tenants/{id}` as a command on `tenant-{id}`.

use chrono::Utc;
use switchboard_intake::tenant::{TenantRegistrationRequest, register_tenant};

use crate::ledger::{EventRef, Execution, Provenance, Target};
use crate::{AppState, Error};

/// Records what differs between the registry and `request`; an invalid registry (one number
/// in two branches, an unknown time zone) is refused with its reason and records nothing.
pub async fn register(
    state: &AppState,
    tenant_id: &str,
    mut request: TenantRegistrationRequest,
) -> Result<Vec<EventRef>, Error> {
    // Numbers are recorded in E.164, the form Retell reports `to_number` in, so attribution
    // never depends on how a number was typed here.
    for branch in &mut request.branches {
        for number in &mut branch.phone_numbers {
            if let Some(e164) = switchboard_projections::normalize_business_phone(number) {
                *number = e164;
            }
        }
    }
    let now = Utc::now();
    let (stream, command) = register_tenant(tenant_id, request, now)?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let provenance = Provenance {
        // Each PUT is its own request; the aggregate records only what changed.
        dedupe_key: format!("admin:{request_id}"),
        provider: "admin".to_owned(),
        request_id: request_id.clone(),
        causation: request_id,
        correlation: None,
        raw_delivery: None,
        occurred_at: now,
        // An invalid registry is the caller's mistake to fix, not a fact to keep.
        keep_rejections: false,
    };
    match state
        .ledger()
        .execute(&Target::Decide { stream, command }, &provenance)
        .await?
    {
        Execution::Recorded { events, .. } => Ok(events),
        Execution::Refused { rejection } => Err(Error::Unprocessable {
            code: rejection.code(),
            message: rejection.to_string(),
        }),
        Execution::Duplicate { .. } => Err(Error::Internal(
            "a fresh request id was already recorded".to_owned(),
        )),
    }
}
