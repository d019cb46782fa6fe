//! Retell: `X-Retell-Signature`, in the documented `sha256=<hex>` form or the SDK's
//! `v=<unix ms>,d=<hex(HMAC(api_key, body ‖ ms))>` form. Retell's SDKs sign with the account's
//! API key, not a separate webhook secret, which is why a wrong credential is the first
//! suspect when this header fails.

use crate::error::{HeaderPart, VerifyError};
use crate::headers::HeaderLookup;
use crate::provider::Scheme;

use super::{Candidate, compute, header_text, key_values, parse_digest, parse_timestamp};

pub const HEADER: &str = "X-Retell-Signature";

/// Retell's SDKs refuse signatures older than five minutes; we refuse newer ones too.
pub(crate) const SDK_TOLERANCE_MS: i64 = 5 * 60 * 1000;

pub(crate) fn candidates<H: HeaderLookup + ?Sized>(
    headers: &H,
) -> Result<Vec<Candidate>, VerifyError> {
    let Some(value) = header_text(headers, HEADER)? else {
        return Ok(Vec::new());
    };
    if let Some(hex) = strip_prefix_ignore_case(value, "sha256=") {
        return Ok(vec![Candidate {
            scheme: Scheme::RetellDocumented,
            timestamp: None,
            digest: parse_digest(HEADER, hex)?,
        }]);
    }
    let mut timestamp = None;
    let mut digest = None;
    let mut stripe_like = false;
    for (key, value) in key_values(value) {
        match key {
            "v" => timestamp = Some(value),
            "d" => digest = Some(value),
            "t" | "v1" => stripe_like = true,
            _ => {}
        }
    }
    match (timestamp, digest) {
        (Some(ts), Some(hex)) => Ok(vec![Candidate {
            scheme: Scheme::RetellSdk,
            timestamp: Some(parse_timestamp(HEADER, "v", ts)?),
            digest: parse_digest(HEADER, hex)?,
        }]),
        (Some(_), None) => Err(malformed(
            HeaderPart::Digest,
            "the SDK form `v=<ms>,d=<hex>` has no `d=` entry",
        )),
        (None, Some(_)) => Err(malformed(
            HeaderPart::Timestamp,
            "the SDK form `v=<ms>,d=<hex>` has no `v=` entry",
        )),
        (None, None) if stripe_like => Err(malformed(
            HeaderPart::Format,
            "the value has Stripe's `t=…,v1=…` form; Retell signs as `sha256=<hex>` or `v=<ms>,d=<hex>`",
        )),
        (None, None) if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(malformed(
                HeaderPart::Format,
                "a bare hex digest; Retell's documented form is `sha256=<hex>` (a bare digest is Cal.com's X-Cal-Signature-256 form)",
            ))
        }
        (None, None) => Err(malformed(
            HeaderPart::Format,
            "expected `sha256=<hex>` or `v=<unix ms>,d=<hex>`",
        )),
    }
}

pub(crate) fn sign(
    scheme: Scheme,
    key: &[u8],
    body: &[u8],
    now_unix_ms: i64,
) -> Vec<(String, String)> {
    let value = match scheme {
        Scheme::RetellSdk => {
            let digest = compute(scheme, key, body, Some(now_unix_ms));
            format!("v={now_unix_ms},d={}", hex::encode(digest))
        }
        _ => format!("sha256={}", hex::encode(compute(scheme, key, body, None))),
    };
    vec![(HEADER.to_owned(), value)]
}

fn malformed(part: HeaderPart, detail: &str) -> VerifyError {
    VerifyError::MalformedHeader {
        header: HEADER,
        part,
        detail: detail.to_owned(),
    }
}

pub(crate) fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}
