//! Cal.com: the documented `X-Cal-Signature: sha256=<hex>` and the app's
//! `X-Cal-Signature-256: <hex>`, both HMAC(secret, body).
//!
//! `X-Cal-Timestamp` is sent alongside but is not covered by the signature, so checking it
//! against a window would protect nothing (anyone can change it) and would only refuse honest
//! late retries; it is ignored.

use crate::error::VerifyError;
use crate::headers::HeaderLookup;
use crate::provider::Scheme;

use super::retell::strip_prefix_ignore_case;
use super::{Candidate, compute, header_text, parse_digest};

pub const DOCUMENTED_HEADER: &str = "X-Cal-Signature";
pub const APP_HEADER: &str = "X-Cal-Signature-256";
pub const TIMESTAMP_HEADER: &str = "X-Cal-Timestamp";

/// Both headers are tried when both are present; either verifies. A `sha256=` prefix is
/// accepted on both, and a bare digest on both, since the form adds no security: the digest
/// alone decides.
pub(crate) fn candidates<H: HeaderLookup + ?Sized>(
    headers: &H,
) -> Result<Vec<Candidate>, VerifyError> {
    let mut found = Vec::new();
    for (header, scheme) in [
        (APP_HEADER, Scheme::CalcomApp),
        (DOCUMENTED_HEADER, Scheme::CalcomDocumented),
    ] {
        if let Some(value) = header_text(headers, header)? {
            let hex = strip_prefix_ignore_case(value, "sha256=").unwrap_or(value);
            found.push(Candidate {
                scheme,
                timestamp: None,
                digest: parse_digest(header, hex)?,
            });
        }
    }
    Ok(found)
}

pub(crate) fn sign(
    scheme: Scheme,
    key: &[u8],
    body: &[u8],
    now_unix_ms: i64,
) -> Vec<(String, String)> {
    let digest = hex::encode(compute(scheme, key, body, None));
    match scheme {
        Scheme::CalcomApp => vec![(APP_HEADER.to_owned(), digest)],
        _ => vec![
            (DOCUMENTED_HEADER.to_owned(), format!("sha256={digest}")),
            (
                TIMESTAMP_HEADER.to_owned(),
                now_unix_ms.div_euclid(1000).to_string(),
            ),
        ],
    }
}
