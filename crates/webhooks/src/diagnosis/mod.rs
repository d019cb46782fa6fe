//! Why a signature did not match, in terms a provider's engineer can act on.
//!
//! A mismatch alone says nothing: the body, the secret, the scheme or the header may be wrong.
//! The diagnosis recomputes the digest under the usual mistakes (a re-serialized body, a
//! trailing newline, the other scheme's message layout, a secret with whitespace or without
//! its prefix) and inspects the secret's shape. It reports only which hypothesis matched and
//! which secret index is concerned — never a secret, never an expected digest — so its text can
//! be printed by `switchboard verify` and returned to the caller.

mod reencode;

use std::fmt;

use crate::headers::HeaderLookup;
use crate::provider::{Provider, Scheme};
use crate::secret::Secret;
use crate::signature::{self, Candidate, compute};

pub use reencode::Reencoding;

/// Every finding that explains, or may explain, a mismatch. Empty when no known cause fits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn contains(&self, finding: &Finding) -> bool {
        self.findings.contains(finding)
    }

    fn push(&mut self, finding: Finding) {
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }
}

/// One explanation. Variants that say "matches" were confirmed by recomputing the digest;
/// the others are hints drawn from the shape of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The digest matches the body re-encoded this way: the body was re-serialized between
    /// signing and us (or the sender signed a re-serialization rather than the bytes it sent).
    BodyReencoded {
        secret_index: usize,
        encoding: Reencoding,
    },
    /// The digest matches the body with a trailing newline added (`added: true`) or removed.
    TrailingNewline { secret_index: usize, added: bool },
    /// The digest matches another message layout than the header's scheme prescribes.
    SignedLikeOtherScheme { secret_index: usize, layout: Layout },
    /// The secret has leading or trailing whitespace or a line break.
    SecretHasWhitespace {
        secret_index: usize,
        verifies_when_trimmed: bool,
    },
    /// The secret's shape suggests a different credential than the scheme needs.
    SecretShape {
        secret_index: usize,
        shape: SecretShape,
    },
    /// The request carries another provider's signature header (wrong endpoint).
    OtherProvidersHeader { provider: Provider },
}

/// A message layout the sender may have signed instead of the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// HMAC(body) alone, where the scheme appends or prepends a timestamp.
    BodyWithoutTimestamp,
    /// Stripe's `"{t}.{body}"`, where Retell's SDK expects `body ‖ t`.
    StripeLayout,
    /// Stripe's layout, keyed with the secret minus its `whsec_` prefix.
    StripeSecretWithoutPrefix,
}

/// A configured secret that looks like the wrong credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretShape {
    Empty,
    /// A Stripe secret that does not start with `whsec_`.
    StripeMissingWhsecPrefix,
    /// A Stripe API key (`sk_`, `rk_`, `pk_`) where the endpoint's signing secret belongs.
    StripeApiKey,
    /// A Stripe `whsec_` secret configured for Retell or Cal.com.
    StripeSecretForOtherProvider,
    /// A Retell API key (`key_…`) checked against the documented `sha256=` scheme, which Retell
    /// signs with the webhook secret.
    RetellApiKeyForDocumentedScheme,
    /// The SDK form `v=,d=` is signed with the account's API key (`key_…`); this secret does
    /// not look like one.
    NotARetellApiKeyForSdkScheme,
    /// A Cal.com API key (`cal_…`) where the webhook's secret belongs.
    CalcomApiKey,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return f.write_str(
                "no known cause found: the body differs from what was signed, or no configured \
                 secret is the one the sender signs with (compare it with the provider's dashboard)",
            );
        }
        for (i, finding) in self.findings.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{finding}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Finding::BodyReencoded {
                secret_index,
                encoding,
            } => write!(
                f,
                "the signature (secret #{secret_index}) matches a {encoding} re-encoding of the JSON: \
                 the body was re-serialized after signing; verify the raw bytes as received"
            ),
            Finding::TrailingNewline {
                secret_index,
                added: true,
            } => write!(
                f,
                "the signature (secret #{secret_index}) matches the body with a trailing newline: \
                 the newline was stripped on the way"
            ),
            Finding::TrailingNewline {
                secret_index,
                added: false,
            } => write!(
                f,
                "the signature (secret #{secret_index}) matches the body without its trailing newline: \
                 a newline was appended on the way (e.g. by a file or `echo`)"
            ),
            Finding::SignedLikeOtherScheme {
                secret_index,
                layout,
            } => {
                let what = match layout {
                    Layout::BodyWithoutTimestamp => {
                        "over the body alone, without the timestamp the header's scheme signs"
                    }
                    Layout::StripeLayout => {
                        "in Stripe's layout \"{t}.{body}\", not Retell's SDK layout body ‖ timestamp"
                    }
                    Layout::StripeSecretWithoutPrefix => {
                        "with the secret minus its `whsec_` prefix; Stripe's SDKs key the HMAC \
                         with the whole `whsec_…` string"
                    }
                };
                write!(
                    f,
                    "the signature (secret #{secret_index}) was computed {what}"
                )
            }
            Finding::SecretHasWhitespace {
                secret_index,
                verifies_when_trimmed,
            } => {
                write!(
                    f,
                    "secret #{secret_index} has leading/trailing whitespace or a line break"
                )?;
                if verifies_when_trimmed {
                    f.write_str(", and the signature matches once it is trimmed")?;
                }
                Ok(())
            }
            Finding::SecretShape {
                secret_index,
                shape,
            } => {
                let what = match shape {
                    SecretShape::Empty => "is empty",
                    SecretShape::StripeMissingWhsecPrefix => {
                        "does not start with `whsec_`: copy the endpoint's signing secret from \
                         Stripe's dashboard whole"
                    }
                    SecretShape::StripeApiKey => {
                        "looks like a Stripe API key (sk_/rk_/pk_), not the endpoint's signing \
                         secret (whsec_…)"
                    }
                    SecretShape::StripeSecretForOtherProvider => {
                        "looks like a Stripe signing secret (whsec_…), configured for another provider"
                    }
                    SecretShape::RetellApiKeyForDocumentedScheme => {
                        "looks like a Retell API key (key_…), but the header is the documented \
                         `sha256=` form, which is signed with the webhook secret"
                    }
                    SecretShape::NotARetellApiKeyForSdkScheme => {
                        "does not look like a Retell API key (key_…), but the header is the SDK \
                         form `v=…,d=…`, which Retell signs with the account's API key"
                    }
                    SecretShape::CalcomApiKey => {
                        "looks like a Cal.com API key (cal_…), not the webhook's secret"
                    }
                };
                write!(f, "secret #{secret_index} {what}")
            }
            Finding::OtherProvidersHeader { provider } => write!(
                f,
                "the request carries a {} signature header: it may have been sent to the wrong endpoint",
                provider.display_name()
            ),
        }
    }
}

/// Diagnoses a delivery that failed (or may fail) verification. Safe to call on any input: it
/// reports what it can from the headers, the body and the secrets' shapes.
pub fn diagnose<H: HeaderLookup + ?Sized>(
    provider: Provider,
    headers: &H,
    body: &[u8],
    secrets: &[Secret],
) -> Diagnosis {
    let mut diagnosis = match signature::candidates(provider, headers) {
        Ok(candidates) => diagnose_candidates(provider, &candidates, body, secrets),
        Err(_) => {
            let mut diagnosis = Diagnosis::default();
            shape_findings(provider, None, secrets, &mut diagnosis);
            diagnosis
        }
    };
    if let Some(other) = signature::detect_provider(headers).filter(|p| *p != provider) {
        diagnosis.push(Finding::OtherProvidersHeader { provider: other });
    }
    diagnosis
}

/// The largest body whose re-encodings the diagnosis tries (real webhooks are a few KiB).
pub const MAX_DIAGNOSED_BODY: usize = 64 * 1024;

/// The mismatch diagnosis `verify` attaches. Costs a handful of HMACs and JSON re-encodings
/// per secret, paid only on failures.
pub(crate) fn diagnose_candidates(
    provider: Provider,
    candidates: &[Candidate],
    body: &[u8],
    secrets: &[Secret],
) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    // Re-encoding a body and re-signing every variant costs several HMACs per secret; past a
    // size no webhook reaches, an unauthenticated sender could make that expensive, so only
    // the configuration's shape is examined.
    if body.len() > MAX_DIAGNOSED_BODY {
        shape_findings(
            provider,
            candidates.first().map(|c| c.scheme),
            secrets,
            &mut diagnosis,
        );
        return diagnosis;
    }
    let variants = body_variants(body);
    for (secret_index, secret) in secrets.iter().enumerate() {
        let key = secret.expose().as_bytes();
        for candidate in candidates {
            for (variant, finding) in &variants {
                if signature::digest_matches(candidate, key, variant) {
                    diagnosis.push(finding(secret_index));
                }
            }
            for layout in layouts(candidate.scheme) {
                if layout_matches(*layout, candidate, secret.expose(), body) {
                    diagnosis.push(Finding::SignedLikeOtherScheme {
                        secret_index,
                        layout: *layout,
                    });
                }
            }
        }
        let trimmed = secret.expose().trim();
        if trimmed.len() != secret.expose().len() || trimmed.contains(['\n', '\r']) {
            let verifies_when_trimmed = candidates
                .iter()
                .any(|candidate| signature::digest_matches(candidate, trimmed.as_bytes(), body));
            diagnosis.push(Finding::SecretHasWhitespace {
                secret_index,
                verifies_when_trimmed,
            });
        }
    }
    shape_findings(
        provider,
        candidates.first().map(|c| c.scheme),
        secrets,
        &mut diagnosis,
    );
    diagnosis
}

type FindingFor = fn(usize) -> Finding;

/// The bodies the sender may have signed instead of the one we received.
fn body_variants(body: &[u8]) -> Vec<(Vec<u8>, FindingFor)> {
    let mut variants: Vec<(Vec<u8>, FindingFor)> = Vec::new();
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        let encodings: [(Reencoding, FindingFor); 3] = [
            (Reencoding::Compact, |i| Finding::BodyReencoded {
                secret_index: i,
                encoding: Reencoding::Compact,
            }),
            (Reencoding::Pretty2, |i| Finding::BodyReencoded {
                secret_index: i,
                encoding: Reencoding::Pretty2,
            }),
            (Reencoding::Pretty4, |i| Finding::BodyReencoded {
                secret_index: i,
                encoding: Reencoding::Pretty4,
            }),
        ];
        for (encoding, finding) in encodings {
            let reencoded = encoding.apply(body);
            if reencoded != body {
                variants.push((reencoded, finding));
            }
        }
    }
    match body
        .strip_suffix(b"\r\n")
        .or_else(|| body.strip_suffix(b"\n"))
    {
        Some(stripped) => variants.push((stripped.to_vec(), |i| Finding::TrailingNewline {
            secret_index: i,
            added: false,
        })),
        None => {
            let mut with_newline = body.to_vec();
            with_newline.push(b'\n');
            variants.push((with_newline, |i| Finding::TrailingNewline {
                secret_index: i,
                added: true,
            }));
        }
    }
    variants
}

fn layouts(scheme: Scheme) -> &'static [Layout] {
    match scheme {
        Scheme::RetellSdk => &[Layout::BodyWithoutTimestamp, Layout::StripeLayout],
        Scheme::Stripe => &[
            Layout::BodyWithoutTimestamp,
            Layout::StripeSecretWithoutPrefix,
        ],
        _ => &[],
    }
}

fn layout_matches(layout: Layout, candidate: &Candidate, secret: &str, body: &[u8]) -> bool {
    let (scheme, key) = match layout {
        Layout::BodyWithoutTimestamp => (Scheme::RetellDocumented, secret),
        Layout::StripeLayout => (Scheme::Stripe, secret),
        Layout::StripeSecretWithoutPrefix => match secret.strip_prefix("whsec_") {
            Some(rest) => (Scheme::Stripe, rest),
            None => return false,
        },
    };
    let computed = compute(scheme, key.as_bytes(), body, candidate.timestamp);
    subtle::ConstantTimeEq::ct_eq(&computed[..], &candidate.digest[..]).into()
}

fn shape_findings(
    provider: Provider,
    scheme: Option<Scheme>,
    secrets: &[Secret],
    diagnosis: &mut Diagnosis,
) {
    for (secret_index, secret) in secrets.iter().enumerate() {
        let value = secret.expose().trim();
        let starts = |prefix: &str| value.starts_with(prefix);
        let shape = if value.is_empty() {
            Some(SecretShape::Empty)
        } else {
            match provider {
                Provider::Stripe if starts("sk_") || starts("rk_") || starts("pk_") => {
                    Some(SecretShape::StripeApiKey)
                }
                Provider::Stripe if !starts("whsec_") => {
                    Some(SecretShape::StripeMissingWhsecPrefix)
                }
                Provider::Retell | Provider::Calcom if starts("whsec_") => {
                    Some(SecretShape::StripeSecretForOtherProvider)
                }
                Provider::Retell if scheme == Some(Scheme::RetellDocumented) && starts("key_") => {
                    Some(SecretShape::RetellApiKeyForDocumentedScheme)
                }
                Provider::Retell if scheme == Some(Scheme::RetellSdk) && !starts("key_") => {
                    Some(SecretShape::NotARetellApiKeyForSdkScheme)
                }
                Provider::Calcom if starts("cal_") => Some(SecretShape::CalcomApiKey),
                _ => None,
            }
        };
        if let Some(shape) = shape {
            diagnosis.push(Finding::SecretShape {
                secret_index,
                shape,
            });
        }
    }
}
