//! Which provider sent a delivery, and which of its signature schemes signed it.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A webhook provider Switchboard accepts deliveries from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Retell,
    Calcom,
    Stripe,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Retell, Provider::Calcom, Provider::Stripe];

    /// The lowercase name used in URLs, configuration and dedupe keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Retell => "retell",
            Provider::Calcom => "calcom",
            Provider::Stripe => "stripe",
        }
    }

    /// The name a human reads in messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Retell => "Retell",
            Provider::Calcom => "Cal.com",
            Provider::Stripe => "Stripe",
        }
    }

    /// The scheme `sign` uses when the caller does not choose one: the one the provider
    /// documents for webhooks.
    pub fn default_scheme(self) -> Scheme {
        match self {
            Provider::Retell => Scheme::RetellDocumented,
            Provider::Calcom => Scheme::CalcomDocumented,
            Provider::Stripe => Scheme::Stripe,
        }
    }

    /// Every scheme this provider may sign with; `verify` accepts any of them.
    pub fn schemes(self) -> &'static [Scheme] {
        match self {
            Provider::Retell => &[Scheme::RetellDocumented, Scheme::RetellSdk],
            Provider::Calcom => &[Scheme::CalcomDocumented, Scheme::CalcomApp],
            Provider::Stripe => &[Scheme::Stripe],
        }
    }

    /// The signature headers this provider's schemes use, as they are usually spelled.
    pub fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Provider::Retell => &[crate::signature::retell::HEADER],
            Provider::Calcom => &[
                crate::signature::calcom::DOCUMENTED_HEADER,
                crate::signature::calcom::APP_HEADER,
            ],
            Provider::Stripe => &[crate::signature::stripe::HEADER],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown provider `{0}`: expected retell, calcom or stripe")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "retell" | "retellai" | "retell.ai" => Ok(Provider::Retell),
            "calcom" | "cal.com" | "cal" => Ok(Provider::Calcom),
            "stripe" => Ok(Provider::Stripe),
            _ => Err(UnknownProvider(s.to_owned())),
        }
    }
}

/// One way of signing a delivery. Every scheme is HMAC-SHA256 with hex digests; they differ in
/// the header, its format and what exactly is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `X-Retell-Signature: sha256=<hex(HMAC(secret, body))>`.
    RetellDocumented,
    /// `X-Retell-Signature: v=<unix ms>,d=<hex(HMAC(api_key, body ‖ ms))>`, as Retell's SDKs
    /// verify it; the key is the account's API key.
    RetellSdk,
    /// `X-Cal-Signature: sha256=<hex(HMAC(secret, body))>` (+ optional `X-Cal-Timestamp`).
    CalcomDocumented,
    /// `X-Cal-Signature-256: <hex(HMAC(secret, body))>`, as the Cal.com app sends it.
    CalcomApp,
    /// `Stripe-Signature: t=<unix s>,v1=<hex(HMAC(secret, "{t}.{body}"))>`.
    Stripe,
}

impl Scheme {
    pub fn provider(self) -> Provider {
        match self {
            Scheme::RetellDocumented | Scheme::RetellSdk => Provider::Retell,
            Scheme::CalcomDocumented | Scheme::CalcomApp => Provider::Calcom,
            Scheme::Stripe => Provider::Stripe,
        }
    }

    /// The short name used by `--scheme`: `documented`, `sdk`, `app` (Stripe has only
    /// `documented`).
    pub fn short_name(self) -> &'static str {
        match self {
            Scheme::RetellDocumented | Scheme::CalcomDocumented | Scheme::Stripe => "documented",
            Scheme::RetellSdk => "sdk",
            Scheme::CalcomApp => "app",
        }
    }

    /// The header this scheme carries its signature in.
    pub fn header(self) -> &'static str {
        match self {
            Scheme::RetellDocumented | Scheme::RetellSdk => crate::signature::retell::HEADER,
            Scheme::CalcomDocumented => crate::signature::calcom::DOCUMENTED_HEADER,
            Scheme::CalcomApp => crate::signature::calcom::APP_HEADER,
            Scheme::Stripe => crate::signature::stripe::HEADER,
        }
    }

    /// Resolves `--scheme NAME` for a provider; `None` means the provider's default.
    pub fn for_provider(provider: Provider, name: Option<&str>) -> Result<Scheme, UnknownScheme> {
        let Some(name) = name else {
            return Ok(provider.default_scheme());
        };
        provider
            .schemes()
            .iter()
            .copied()
            .find(|scheme| scheme.short_name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownScheme {
                provider,
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.provider().display_name(),
            self.short_name()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{provider} has no `{name}` scheme; choose one of: {}", provider.schemes().iter().map(|s| s.short_name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownScheme {
    pub provider: Provider,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>(), Ok(provider));
            for &scheme in provider.schemes() {
                assert_eq!(
                    Scheme::for_provider(provider, Some(scheme.short_name())),
                    Ok(scheme)
                );
                assert_eq!(scheme.provider(), provider);
            }
        }
        assert_eq!("Cal.com".parse::<Provider>(), Ok(Provider::Calcom));
        assert!("twilio".parse::<Provider>().is_err());
    }

    #[test]
    fn scheme_names_are_per_provider() {
        assert_eq!(
            Scheme::for_provider(Provider::Retell, Some("SDK")),
            Ok(Scheme::RetellSdk)
        );
        assert_eq!(
            Scheme::for_provider(Provider::Calcom, None),
            Ok(Scheme::CalcomDocumented)
        );
        let err = Scheme::for_provider(Provider::Stripe, Some("sdk")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stripe has no `sdk` scheme; choose one of: documented"
        );
    }
}
