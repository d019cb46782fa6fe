//! The service's resolved configuration. The CLI layers flags over environment variables over
//! an optional TOML file and hands the result here; the server never reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use switchboard_webhooks::{Keyring, Provider, Secret};

use crate::Error;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./switchboard-data";
pub const DEFAULT_MAX_BODY: usize = 1_048_576;

/// Where the events live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite files in the data dir: nothing to install.
    Embedded,
    Postgres(String),
    KurrentDb(String),
}

impl StoreLocation {
    /// `embedded` (or empty), `postgres://…` / `postgresql://…`, `kurrentdb://…` / `esdb://…`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("embedded") {
            return Ok(StoreLocation::Embedded);
        }
        let scheme = value.split("://").next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(StoreLocation::Postgres(value.to_owned())),
            "kurrentdb" | "esdb" | "esdb+discover" | "kurrentdb+discover" => {
                Ok(StoreLocation::KurrentDb(value.to_owned()))
            }
            _ => Err(Error::Config(format!(
                "--store {}: expected `embedded`, a postgres://… URL or a kurrentdb://… / esdb://… URL",
                redact_url(value)
            ))),
        }
    }

    /// For logs: the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Embedded => "embedded".to_owned(),
            StoreLocation::Postgres(url) | StoreLocation::KurrentDb(url) => redact_url(url),
        }
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Requests per second and burst per provider endpoint; off unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// One provider's secrets, newest first; any one verifies (rotation).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretList(pub Vec<String>);

impl SecretList {
    /// A comma-separated list as `SWITCHBOARD_*_SECRETS` carries it; blanks are dropped.
    pub fn from_comma_separated(value: &str) -> Self {
        SecretList(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl std::fmt::Debug for SecretList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} secret(s) redacted]", self.0.len())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProviderSecrets {
    pub retell: SecretList,
    pub calcom: SecretList,
    pub stripe: SecretList,
}

impl ProviderSecrets {
    pub fn keyring(&self) -> Keyring {
        let secrets = |list: &SecretList| list.0.iter().cloned().map(Secret::new).collect();
        Keyring::new()
            .with(Provider::Retell, secrets(&self.retell))
            .with(Provider::Calcom, secrets(&self.calcom))
            .with(Provider::Stripe, secrets(&self.stripe))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub secrets: ProviderSecrets,
    /// Bearer token with full read and admin access; without it only tenant tokens work.
    pub admin_token: Option<String>,
    pub max_body: usize,
    pub rate_limit: Option<RateLimit>,
    /// How many refused deliveries the quarantine keeps.
    pub quarantine_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            store: StoreLocation::Embedded,
            secrets: ProviderSecrets::default(),
            admin_token: None,
            max_body: DEFAULT_MAX_BODY,
            rate_limit: None,
            quarantine_capacity: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations_parse_by_scheme() {
        assert_eq!(StoreLocation::parse("").unwrap(), StoreLocation::Embedded);
        assert_eq!(
            StoreLocation::parse("postgres://u@h/db").unwrap(),
            StoreLocation::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("esdb://h:2113?tls=false").unwrap(),
            StoreLocation::KurrentDb("esdb://h:2113?tls=false".into())
        );
        let err = StoreLocation::parse("mysql://root:hunter2@h/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        assert_eq!(
            redact_url("postgres://sb:s3cret@db:5432/switchboard"),
            "postgres://sb:***@db:5432/switchboard"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn secret_lists_split_on_commas_and_never_print() {
        let list = SecretList::from_comma_separated(" a, ,b ");
        assert_eq!(list.0, ["a", "b"]);
        assert_eq!(format!("{list:?}"), "[2 secret(s) redacted]");
    }
}
