//! `PUT /api/tenants/{tenant_id}`: the request body, and the `RegisterTenant` it means.
//!
//! API tokens are hashed here (SHA-256, lowercase hex) so that no raw token reaches a command,
//! an event or a log: the tenant stream records only digests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_domain::command::{BranchRegistration, RegisterTenant};
use switchboard_domain::event::{BranchProfile, OpeningHours};
use switchboard_domain::{Command, StreamId};

use crate::error::IntakeError;
use crate::required_id;

/// The body of `PUT /api/tenants/{tenant_id}` (INTERFACE.md), plus a branch's optional time
/// zone and opening hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRegistrationRequest {
    pub name: String,
    #[serde(default)]
    pub branches: Vec<BranchRequest>,
    #[serde(default)]
    pub calcom_organizer_ids: Vec<i64>,
    #[serde(default)]
    pub stripe_customer_ids: Vec<String>,
    /// Raw bearer tokens; only their SHA-256 digests are recorded.
    #[serde(default)]
    pub api_tokens: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchRequest {
    pub branch_id: String,
    pub name: String,
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// IANA name, e.g. `Europe/Berlin`.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub opening_hours: Vec<OpeningHours>,
}

/// The SHA-256 of a bearer token, as the tenant stream records it and as the server compares
/// an incoming token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The stream and command for a registry PUT received at `received_at`. Validation of the
/// registry (phone numbers, time zones, duplicates) is the Tenant aggregate's, as typed
/// rejections.
pub fn register_tenant(
    tenant_id: &str,
    request: TenantRegistrationRequest,
    received_at: DateTime<Utc>,
) -> Result<(StreamId, Command), IntakeError> {
    let tenant_id = required_id(tenant_id, "tenant_id")?;
    let command = RegisterTenant {
        tenant_id: tenant_id.clone(),
        occurred_at: received_at,
        name: request.name,
        branches: request
            .branches
            .into_iter()
            .map(|branch| BranchRegistration {
                branch_id: branch.branch_id,
                profile: BranchProfile {
                    name: branch.name,
                    time_zone: branch.time_zone,
                    opening_hours: branch.opening_hours,
                },
                phone_numbers: branch.phone_numbers,
            })
            .collect(),
        calcom_organizer_ids: request.calcom_organizer_ids,
        stripe_customer_ids: request.stripe_customer_ids,
        api_token_sha256: request.api_tokens.iter().map(|t| token_sha256(t)).collect(),
    };
    Ok((StreamId::tenant(tenant_id), command.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tokens_are_recorded_only_as_digests() {
        let request: TenantRegistrationRequest = serde_json::from_value(serde_json::json!({
            "name": "Salon Berlin",
            "branches": [{"branch_id": "mitte", "name": "Mitte", "phone_numbers": ["+493083793369"]}],
            "api_tokens": ["tok_live_abc"]
        }))
        .unwrap();
        let (stream, command) =
            register_tenant("t1", request, Utc.timestamp_opt(0, 0).unwrap()).unwrap();
        assert_eq!(stream, StreamId::tenant("t1"));
        let json = serde_json::to_string(&command).unwrap();
        assert!(!json.contains("tok_live_abc"), "{json}");
        assert!(json.contains(&token_sha256("tok_live_abc")));
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn unknown_fields_are_refused_rather_than_ignored() {
        let parsed: Result<TenantRegistrationRequest, _> =
            serde_json::from_value(serde_json::json!({"name": "S", "phone": "+49301"}));
        assert!(parsed.is_err());
    }

    #[test]
    fn an_empty_tenant_id_is_refused() {
        let request = TenantRegistrationRequest {
            name: "S".into(),
            branches: vec![],
            calcom_organizer_ids: vec![],
            stripe_customer_ids: vec![],
            api_tokens: vec![],
        };
        assert!(register_tenant(" ", request, Utc.timestamp_opt(0, 0).unwrap()).is_err());
    }
}
