//! Why a delivery was refused. Every variant names the provider's header or the JSON path
//! involved, so the provider's engineer can act on the message alone; none carries a secret or
//! an expected digest.

use std::fmt;

use thiserror::Error;

use crate::diagnosis::Diagnosis;
use crate::provider::{Provider, Scheme};

/// Which part of a signature header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPart {
    /// The value is not visible ASCII (HTTP allows opaque bytes; no scheme uses them).
    Encoding,
    /// The value has none of the forms this provider's schemes use.
    Format,
    /// The timestamp (`v=` for Retell's SDK, `t=` for Stripe) is missing or not an integer.
    Timestamp,
    /// The digest is missing, not hex, or not 64 hex digits long.
    Digest,
}

impl fmt::Display for HeaderPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderPart::Encoding => "encoding",
            HeaderPart::Format => "format",
            HeaderPart::Timestamp => "timestamp",
            HeaderPart::Digest => "digest",
        })
    }
}

/// On which side of the window a signature timestamp fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// Older than the window: a replay, a very late retry, or a sender clock behind ours.
    Stale,
    /// Ahead of the window: a sender clock ahead of ours (or a pre-signed replay). Stripe's
    /// SDKs accept these; we do not, since a future timestamp extends a replay's lifetime.
    Future,
}

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("{}", missing_message(*.provider, .expected, *.found_instead))]
    MissingSignature {
        provider: Provider,
        /// The headers that would have carried a signature.
        expected: &'static [&'static str],
        /// Another provider whose signature header the request carries instead: a delivery
        /// sent to the wrong endpoint.
        found_instead: Option<Provider>,
    },

    #[error("the {header} header is malformed ({part}): {detail}")]
    MalformedHeader {
        header: &'static str,
        part: HeaderPart,
        detail: String,
    },

    #[error(
        "no {} secret is configured, so every {} delivery is refused; set {}",
        provider.display_name(),
        provider.display_name(),
        secrets_variable(*provider)
    )]
    NoSecretConfigured { provider: Provider },

    #[error("{}", window_message(.header, *.skew, *.off_by_seconds, *.tolerance_seconds))]
    TimestampOutsideWindow {
        header: &'static str,
        skew: Skew,
        /// How far the signed timestamp is from the current time, in whole seconds.
        off_by_seconds: i64,
        tolerance_seconds: i64,
    },

    #[error(
        "the {} signature does not match the body with any of the {} configured secret(s) \
         ({} signature(s) tried): {}",
        scheme,
        secrets_tried,
        signatures_tried,
        diagnosis
    )]
    SignatureMismatch {
        scheme: Scheme,
        secrets_tried: usize,
        signatures_tried: usize,
        diagnosis: Diagnosis,
    },
}

impl VerifyError {
    /// The stable error code of INTERFACE.md, used in HTTP responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature { .. } => "missing_signature",
            VerifyError::MalformedHeader { .. } | VerifyError::SignatureMismatch { .. } => {
                "invalid_signature"
            }
            VerifyError::NoSecretConfigured { .. } => "no_secret_configured",
            VerifyError::TimestampOutsideWindow { .. } => "stale_timestamp",
        }
    }

    /// The diagnosis of a digest mismatch, if this is one.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            VerifyError::SignatureMismatch { diagnosis, .. } => Some(diagnosis),
            _ => None,
        }
    }
}

fn missing_message(
    provider: Provider,
    expected: &[&str],
    found_instead: Option<Provider>,
) -> String {
    let mut message = format!(
        "the request carries no {} signature (expected {})",
        provider.display_name(),
        expected.join(" or ")
    );
    if let Some(other) = found_instead {
        message.push_str(&format!(
            "; it carries a {} signature header instead: was it sent to the wrong endpoint?",
            other.display_name()
        ));
    }
    message
}

fn secrets_variable(provider: Provider) -> &'static str {
    match provider {
        Provider::Retell => "SWITCHBOARD_RETELL_SECRETS",
        Provider::Calcom => "SWITCHBOARD_CALCOM_SECRETS",
        Provider::Stripe => "SWITCHBOARD_STRIPE_SECRETS",
    }
}

fn window_message(header: &str, skew: Skew, off_by: i64, tolerance: i64) -> String {
    match skew {
        Skew::Stale => format!(
            "the {header} timestamp is {off_by} s in the past, outside the {tolerance} s window: \
             a replayed or very late delivery, or the sender's clock is behind"
        ),
        Skew::Future => format!(
            "the {header} timestamp is {off_by} s in the future, outside the {tolerance} s window: \
             the sender's clock is ahead (or the timestamp is in the wrong unit)"
        ),
    }
}

/// Why a verified body could not be turned into a typed delivery. Every variant maps to the
/// `malformed_payload` code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("the body is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },

    #[error("the body is not JSON: {reason}")]
    NotJson { reason: String },

    #[error("{path} is missing")]
    MissingField { path: String },

    #[error("{path} is invalid: {reason}")]
    InvalidField { path: String, reason: String },
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        "malformed_payload"
    }

    /// The JSON path (`$.call.call_id`) of the missing or invalid value, if there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::MissingField { path } | ParseError::InvalidField { path, .. } => Some(path),
            ParseError::NotUtf8 { .. } | ParseError::NotJson { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_interface_codes() {
        let missing = VerifyError::MissingSignature {
            provider: Provider::Retell,
            expected: Provider::Retell.signature_headers(),
            found_instead: Some(Provider::Stripe),
        };
        assert_eq!(missing.code(), "missing_signature");
        assert!(
            missing
                .to_string()
                .contains("Stripe signature header instead")
        );
        let malformed = VerifyError::MalformedHeader {
            header: "Stripe-Signature",
            part: HeaderPart::Timestamp,
            detail: "no t= entry".into(),
        };
        assert_eq!(malformed.code(), "invalid_signature");
        let stale = VerifyError::TimestampOutsideWindow {
            header: "Stripe-Signature",
            skew: Skew::Future,
            off_by_seconds: 900,
            tolerance_seconds: 300,
        };
        assert_eq!(stale.code(), "stale_timestamp");
        assert!(stale.to_string().contains("900 s in the future"));
        let none = VerifyError::NoSecretConfigured {
            provider: Provider::Calcom,
        };
        assert_eq!(none.code(), "no_secret_configured");
        assert!(none.to_string().contains("SWITCHBOARD_CALCOM_SECRETS"));
        let parse = ParseError::MissingField {
            path: "$.call.call_id".into(),
        };
        assert_eq!(parse.code(), "malformed_payload");
        assert_eq!(parse.path(), Some("$.call.call_id"));
    }
}
