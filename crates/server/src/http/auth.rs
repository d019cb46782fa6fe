//! Bearer tokens: the admin token sees everything; a tenant token sees its own tenant.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_intake::tenant::token_sha256;

use crate::{AppState, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Admin,
    Tenant(String),
}

impl Access {
    /// Whether this caller may see records of `tenant_id`. Another tenant's records answer
    /// 404, not 403, so their existence is not revealed.
    pub fn sees(&self, tenant_id: Option<&str>) -> bool {
        match self {
            Access::Admin => true,
            Access::Tenant(own) => tenant_id == Some(own.as_str()),
        }
    }

    pub fn require_admin(&self) -> Result<(), Error> {
        match self {
            Access::Admin => Ok(()),
            Access::Tenant(_) => Err(Error::Forbidden(
                "this endpoint needs the admin token".to_owned(),
            )),
        }
    }
}

/// The caller, from its bearer token. As an extractor it runs before the query string's and
/// the body's, so a request without a valid token answers 401 whatever else is wrong with it.
impl FromRequestParts<Arc<AppState>> for Access {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Error> {
        authenticate(state, &parts.headers).await
    }
}

/// A caller holding the admin token; a tenant token answers 403 before anything else is read.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Error> {
        Access::from_request_parts(parts, state)
            .await?
            .require_admin()?;
        Ok(Admin)
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Access, Error> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::Unauthorized {
            code: "missing_token",
            message: "send `Authorization: Bearer <token>`".to_owned(),
        })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthorized {
            code: "invalid_token",
            message: "the Authorization header must be `Bearer <token>`".to_owned(),
        })?;
    if let Some(admin) = &state.config.admin_token {
        // Compare digests so the comparison is constant-time and length-independent.
        let given = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(admin.expose().as_bytes());
        if bool::from(given.ct_eq(&expected)) {
            return Ok(Access::Admin);
        }
    }
    match state
        .read_models
        .tenant_for_token_hash(&token_sha256(token))
        .await?
    {
        Some(tenant_id) => Ok(Access::Tenant(tenant_id)),
        None => Err(Error::Unauthorized {
            code: "invalid_token",
            message: "the token is not valid".to_owned(),
        }),
    }
}
