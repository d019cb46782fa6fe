//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…][,v0=…]`, where each `v1` is
//! HMAC(secret, "{t}.{body}") and the secret is the whole `whsec_…` string, as Stripe's SDKs
//! use it. During a secret roll Stripe sends one `v1` per active secret, so every entry is
//! tried: a verifier keeping only the last one refuses valid events.

use crate::error::{HeaderPart, VerifyError};
use crate::headers::HeaderLookup;
use crate::provider::Scheme;

use super::{Candidate, compute, header_text, key_values, parse_digest, parse_timestamp};

pub const HEADER: &str = "Stripe-Signature";

/// Stripe's default tolerance; applied in both directions (Stripe's SDKs accept any future
/// timestamp, which lets a captured future-dated request be replayed for longer).
pub(crate) const TOLERANCE_MS: i64 = 300 * 1000;

pub(crate) fn candidates<H: HeaderLookup + ?Sized>(
    headers: &H,
) -> Result<Vec<Candidate>, VerifyError> {
    let Some(value) = header_text(headers, HEADER)? else {
        return Ok(Vec::new());
    };
    if value.to_ascii_lowercase().starts_with("sha256=") {
        return Err(malformed(
            HeaderPart::Format,
            "the value has the `sha256=<hex>` form of Retell/Cal.com; Stripe signs as `t=<unix s>,v1=<hex>`".into(),
        ));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    let mut first_bad_digest = None;
    for (key, value) in key_values(value) {
        match key {
            "t" if timestamp.is_none() => timestamp = Some(parse_timestamp(HEADER, "t", value)?),
            // A v1 entry that is not a digest cannot match; it is skipped rather than refused
            // so that one bad entry does not hide a good one next to it.
            "v1" => match parse_digest(HEADER, value) {
                Ok(digest) => signatures.push(digest),
                Err(err) => {
                    first_bad_digest.get_or_insert(err);
                }
            },
            _ => {}
        }
    }
    // Stripe sends one `v1` per active secret (two during a roll). A header with dozens is
    // not Stripe, and each entry would cost work: refuse it before any HMAC.
    if signatures.len() > MAX_SIGNATURES {
        return Err(malformed(
            HeaderPart::Digest,
            format!(
                "{} `v1=` entries; Stripe sends at most a few (one per active secret), we accept up to {MAX_SIGNATURES}",
                signatures.len()
            ),
        ));
    }
    let Some(timestamp) = timestamp else {
        return Err(malformed(
            HeaderPart::Timestamp,
            "there is no `t=` entry".into(),
        ));
    };
    if signatures.is_empty() {
        return Err(first_bad_digest.unwrap_or_else(|| {
            malformed(
                HeaderPart::Digest,
                "there is no `v1=` entry (`v0=` entries are test-mode only and never accepted)"
                    .into(),
            )
        }));
    }
    Ok(signatures
        .into_iter()
        .map(|digest| Candidate {
            scheme: Scheme::Stripe,
            timestamp: Some(timestamp),
            digest,
        })
        .collect())
}

/// The most `v1` signatures one header may carry.
pub(crate) const MAX_SIGNATURES: usize = 8;

pub(crate) fn sign(key: &[u8], body: &[u8], now_unix_ms: i64) -> Vec<(String, String)> {
    let t = now_unix_ms.div_euclid(1000);
    let digest = compute(Scheme::Stripe, key, body, Some(t));
    vec![(
        HEADER.to_owned(),
        format!("t={t},v1={}", hex::encode(digest)),
    )]
}

fn malformed(part: HeaderPart, detail: String) -> VerifyError {
    VerifyError::MalformedHeader {
        header: HEADER,
        part,
        detail,
    }
}
