//! Verification and signing of every provider's scheme.
//!
//! All schemes are HMAC-SHA256 over the raw request bytes with a hex digest; they differ in the
//! header and in what is appended to or prepended before the body. Verification never parses
//! the body: a body that is not JSON (or not UTF-8) verifies or fails on its signature alone,
//! and only the parser refuses it afterwards.

pub(crate) mod calcom;
pub(crate) mod retell;
pub(crate) mod stripe;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::diagnosis;
use crate::error::{HeaderPart, Skew, VerifyError};
use crate::headers::HeaderLookup;
use crate::provider::{Provider, Scheme};
use crate::secret::Secret;

/// A successful verification: which scheme and which configured secret verified. The secret
/// itself is deliberately absent, so the result can be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub provider: Provider,
    pub scheme: Scheme,
    /// Index into the `secrets` slice passed to [`verify`]: tells an operator whether the old
    /// or the new secret is still in use during a rotation.
    pub secret_index: usize,
    /// The signed timestamp, for the schemes that sign one (Retell SDK, Stripe).
    pub signed_at_unix_ms: Option<i64>,
}

/// One signature found in the headers, ready to be checked against each secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub scheme: Scheme,
    /// The timestamp exactly as it appears in the header (ms for Retell, s for Stripe); the
    /// decimal digits are part of what is signed.
    pub timestamp: Option<i64>,
    pub digest: [u8; 32],
}

/// Verifies a delivery's signature against every configured secret of its provider.
///
/// `now_unix_ms` is the current time: the crate never reads a clock, so tests can pin it and
/// the caller decides what "now" is. Checks, in order: a secret is configured; the signature
/// header is present and well-formed; some secret and some signature in the header match
/// (every Stripe `v1` entry is tried); the signed timestamp, if the scheme has one, is within
/// the window in either direction.
pub fn verify<H: HeaderLookup + ?Sized>(
    provider: Provider,
    headers: &H,
    body: &[u8],
    secrets: &[Secret],
    now_unix_ms: i64,
) -> Result<Verified, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecretConfigured { provider });
    }
    let candidates = candidates(provider, headers)?;
    // One MAC per secret and signed message: all of a Stripe header's `v1` entries share one
    // timestamp, so a header with several signatures costs one HMAC of the body, not several.
    let matched = secrets.iter().enumerate().find_map(|(index, secret)| {
        let key = secret.expose().as_bytes();
        let mut computed: Option<(Scheme, Option<i64>, [u8; 32])> = None;
        candidates
            .iter()
            .find(|candidate| {
                let expected = match computed {
                    Some((scheme, ts, mac))
                        if scheme == candidate.scheme && ts == candidate.timestamp =>
                    {
                        mac
                    }
                    _ => {
                        let mac = compute(candidate.scheme, key, body, candidate.timestamp);
                        computed = Some((candidate.scheme, candidate.timestamp, mac));
                        mac
                    }
                };
                bool::from(expected.ct_eq(&candidate.digest))
            })
            .map(|candidate| (index, candidate))
    });
    let Some((secret_index, candidate)) = matched else {
        return Err(VerifyError::SignatureMismatch {
            scheme: candidates[0].scheme,
            secrets_tried: secrets.len(),
            signatures_tried: candidates.len(),
            diagnosis: diagnosis::diagnose_candidates(provider, &candidates, body, secrets),
        });
    };
    // The window is checked after the digest, as Stripe's SDKs do: an unauthenticated
    // timestamp says nothing, and a forged request should read "invalid", not "stale".
    let signed_at_unix_ms = candidate
        .timestamp
        .map(|ts| check_window(candidate.scheme, ts, now_unix_ms))
        .transpose()?;
    Ok(Verified {
        provider,
        scheme: candidate.scheme,
        secret_index,
        signed_at_unix_ms,
    })
}

/// Guesses the provider from the signature header a request carries, for the unified
/// endpoint `/api/webhook`. `None` means the request is unsigned (`missing_signature`).
pub fn detect_provider<H: HeaderLookup + ?Sized>(headers: &H) -> Option<Provider> {
    [
        (stripe::HEADER, Provider::Stripe),
        (retell::HEADER, Provider::Retell),
        (calcom::APP_HEADER, Provider::Calcom),
        (calcom::DOCUMENTED_HEADER, Provider::Calcom),
    ]
    .into_iter()
    .find(|(header, _)| headers.header(header).is_some())
    .map(|(_, provider)| provider)
}

/// The headers to send with `body` so that `verify` (and the provider's own SDK) accepts it.
/// Content-Type is not included: it is not part of any signature.
pub fn sign(
    scheme: Scheme,
    secret: &Secret,
    body: &[u8],
    now_unix_ms: i64,
) -> Vec<(String, String)> {
    let key = secret.expose().as_bytes();
    match scheme {
        Scheme::RetellDocumented | Scheme::RetellSdk => {
            retell::sign(scheme, key, body, now_unix_ms)
        }
        Scheme::CalcomDocumented | Scheme::CalcomApp => {
            calcom::sign(scheme, key, body, now_unix_ms)
        }
        Scheme::Stripe => stripe::sign(key, body, now_unix_ms),
    }
}

/// Every signature the request's headers carry for `provider`.
pub(crate) fn candidates<H: HeaderLookup + ?Sized>(
    provider: Provider,
    headers: &H,
) -> Result<Vec<Candidate>, VerifyError> {
    let found = match provider {
        Provider::Retell => retell::candidates(headers),
        Provider::Calcom => calcom::candidates(headers),
        Provider::Stripe => stripe::candidates(headers),
    }?;
    if found.is_empty() {
        let found_instead = detect_provider(headers).filter(|other| *other != provider);
        return Err(VerifyError::MissingSignature {
            provider,
            expected: provider.signature_headers(),
            found_instead,
        });
    }
    Ok(found)
}

/// Computes the MAC a scheme prescribes. `timestamp` is the header's timestamp for the schemes
/// that sign one and is ignored by the others.
pub(crate) fn compute(scheme: Scheme, key: &[u8], body: &[u8], timestamp: Option<i64>) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    match (scheme, timestamp) {
        (Scheme::RetellSdk, Some(ts)) => {
            mac.update(body);
            mac.update(ts.to_string().as_bytes());
        }
        (Scheme::Stripe, Some(ts)) => {
            mac.update(ts.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
        }
        _ => mac.update(body),
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn digest_matches(candidate: &Candidate, key: &[u8], body: &[u8]) -> bool {
    let computed = compute(candidate.scheme, key, body, candidate.timestamp);
    computed.ct_eq(&candidate.digest).into()
}

/// A header value as trimmed ASCII text; a value with other bytes has no scheme's form.
pub(crate) fn header_text<'a, H: HeaderLookup + ?Sized>(
    headers: &'a H,
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let Some(raw) = headers.header(name) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(raw)
        .ok()
        .filter(|text| {
            text.bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        })
        .ok_or_else(|| VerifyError::MalformedHeader {
            header: name,
            part: HeaderPart::Encoding,
            detail: "the value contains bytes that are not printable ASCII".into(),
        })?;
    Ok(Some(text.trim()))
}

/// Decodes a 64-digit hex digest in either case.
pub(crate) fn parse_digest(header: &'static str, text: &str) -> Result<[u8; 32], VerifyError> {
    let text = text.trim();
    let mut digest = [0u8; 32];
    match hex::decode_to_slice(text, &mut digest) {
        Ok(()) => Ok(digest),
        Err(_) => {
            let detail = if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                "the digest is not hexadecimal".to_owned()
            } else {
                format!(
                    "the digest has {} hex digits; an HMAC-SHA256 has 64",
                    text.len()
                )
            };
            Err(VerifyError::MalformedHeader {
                header,
                part: HeaderPart::Digest,
                detail,
            })
        }
    }
}

pub(crate) fn parse_timestamp(
    header: &'static str,
    key: &str,
    text: &str,
) -> Result<i64, VerifyError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader {
            header,
            part: HeaderPart::Timestamp,
            detail: format!("`{key}=` must be a decimal unix timestamp, found `{text}`"),
        });
    }
    text.parse().map_err(|_| VerifyError::MalformedHeader {
        header,
        part: HeaderPart::Timestamp,
        detail: format!("`{key}=` is out of range"),
    })
}

/// Splits `k=v,k=v` into trimmed pairs (the Retell SDK and Stripe formats).
pub(crate) fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',').filter_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        Some((key.trim(), value.trim()))
    })
}

/// Refuses a timestamp outside the scheme's window, in either direction.
fn check_window(scheme: Scheme, timestamp: i64, now_unix_ms: i64) -> Result<i64, VerifyError> {
    let (signed_at_ms, tolerance_ms) = match scheme {
        Scheme::RetellSdk => (timestamp, retell::SDK_TOLERANCE_MS),
        Scheme::Stripe => (timestamp.saturating_mul(1000), stripe::TOLERANCE_MS),
        _ => return Ok(timestamp),
    };
    let age_ms = (now_unix_ms as i128) - (signed_at_ms as i128);
    if age_ms.abs() <= tolerance_ms as i128 {
        return Ok(signed_at_ms);
    }
    Err(VerifyError::TimestampOutsideWindow {
        header: scheme.header(),
        skew: if age_ms > 0 {
            Skew::Stale
        } else {
            Skew::Future
        },
        off_by_seconds: i64::try_from(age_ms.abs() / 1000).unwrap_or(i64::MAX),
        tolerance_seconds: tolerance_ms / 1000,
    })
}
