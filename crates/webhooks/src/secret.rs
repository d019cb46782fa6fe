//! Webhook secrets: never printed, several per provider so a secret can be rotated.

use std::fmt;

use crate::provider::Provider;

/// One signing secret. `Debug` and `Display` are redacted, so a secret cannot end up in a log
/// line or an error message by accident; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Keeps the value exactly as given: whitespace is not trimmed, because a secret with a
    /// stray newline is a classic cause of failures that the diagnosis reports.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Parses a comma-separated list, as `SWITCHBOARD_*_SECRETS` hold it. Entries are trimmed
    /// (a space after a comma is formatting, never part of a secret) and empty ones dropped.
    pub fn parse_list(list: &str) -> Vec<Secret> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect()
    }

    /// The secret's value, for computing HMACs. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

/// The secrets configured for every provider. Any one of a provider's secrets verifies, which
/// is how a secret is rotated: add the new one, switch the provider over, remove the old one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    retell: Vec<Secret>,
    calcom: Vec<Secret>,
    stripe: Vec<Secret>,
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the secrets of one provider.
    pub fn with(mut self, provider: Provider, secrets: Vec<Secret>) -> Self {
        *self.slot(provider) = secrets;
        self
    }

    /// Appends one secret to a provider's list.
    pub fn add(&mut self, provider: Provider, secret: Secret) {
        self.slot(provider).push(secret);
    }

    pub fn secrets(&self, provider: Provider) -> &[Secret] {
        match provider {
            Provider::Retell => &self.retell,
            Provider::Calcom => &self.calcom,
            Provider::Stripe => &self.stripe,
        }
    }

    fn slot(&mut self, provider: Provider) -> &mut Vec<Secret> {
        match provider {
            Provider::Retell => &mut self.retell,
            Provider::Calcom => &mut self.calcom,
            Provider::Stripe => &mut self.stripe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let keyring = Keyring::new().with(Provider::Stripe, vec![Secret::new("whsec_topsecret")]);
        let printed = format!("{keyring:?} {:?}", Secret::new("whsec_topsecret"));
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn parse_list_splits_and_trims() {
        let secrets = Secret::parse_list(" whsec_a, whsec_b ,,");
        let values: Vec<_> = secrets.iter().map(Secret::expose).collect();
        assert_eq!(values, ["whsec_a", "whsec_b"]);
    }

    #[test]
    fn keyring_keeps_providers_apart() {
        let mut keyring = Keyring::new().with(Provider::Retell, Secret::parse_list("r1,r2"));
        keyring.add(Provider::Calcom, Secret::new("c1"));
        assert_eq!(keyring.secrets(Provider::Retell).len(), 2);
        assert_eq!(keyring.secrets(Provider::Calcom)[0].expose(), "c1");
        assert!(keyring.secrets(Provider::Stripe).is_empty());
    }
}
