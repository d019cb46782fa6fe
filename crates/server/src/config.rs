//! The service's resolved configuration. The CLI layers flags over environment variables over
//! an optional TOML file and hands the result here; the server never reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use switchboard_webhooks::{Keyring, Provider, Secret};

use crate::Error;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./switchboard-data";
pub const DEFAULT_MAX_BODY: usize = 1_048_576;

/// The largest request head hyper reads (its HTTP/1 buffer: 8 KiB + 100 × 4 KiB).
const HTTP1_MAX_HEAD: usize = 8192 + 4096 * 100;

/// What the kept headers (at most the whole head, escaped) and the envelope add to a raw
/// delivery beside its body.
const RAW_DELIVERY_HEAD_ROOM: usize = 1024 * 1024;
const _: () = assert!(RAW_DELIVERY_HEAD_ROOM >= 2 * HTTP1_MAX_HEAD + 64 * 1024);

/// The largest event the store must take so that a body within `max_body` is never refused
/// for the escaping it needs: the raw delivery keeps the body as a JSON string, where escaping
/// at most doubles it (a valid JSON body's `"`, `\` and raw whitespace each become two bytes,
/// nothing more), beside the headers it keeps. The raw delivery also repeats a few short fields
/// of the body (the event's name; the call id, in the metadata): a body whose own event name or
/// ids run to hundreds of KiB can still be over the limit, and is refused 413. Never below the
/// stores' default.
pub fn max_event_bytes(max_body: usize) -> usize {
    max_body
        .saturating_mul(2)
        .saturating_add(RAW_DELIVERY_HEAD_ROOM)
        .max(switchboard_store::DEFAULT_MAX_EVENT_BYTES)
}

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

/// Where the read models live (`--read-models`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadModelsLocation {
    /// Beside the events: the data dir's SQLite for the embedded store and KurrentDB (whose
    /// database holds only streams), the same database for PostgreSQL.
    FollowStore,
    /// SQLite in the data dir.
    Embedded,
    /// A PostgreSQL database; `?schema=` chooses the schema (default `switchboard_read_models`).
    Postgres(String),
}

impl ReadModelsLocation {
    /// Empty → follow the store; `embedded`; `postgres://…` / `postgresql://…`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(ReadModelsLocation::FollowStore);
        }
        if value.eq_ignore_ascii_case("embedded") {
            return Ok(ReadModelsLocation::Embedded);
        }
        let scheme = value.split("://").next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(ReadModelsLocation::Postgres(value.to_owned())),
            _ => Err(Error::Config(format!(
                "--read-models {}: expected `embedded` or a postgres://… URL",
                redact_url(value)
            ))),
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

/// Each provider's secrets; any one verifies (rotation). `Secret` never prints its value.
#[derive(Debug, Clone, Default)]
pub struct ProviderSecrets {
    pub retell: Vec<Secret>,
    pub calcom: Vec<Secret>,
    pub stripe: Vec<Secret>,
}

impl ProviderSecrets {
    /// Refuses a blank secret: HMAC with an empty key is a signature anyone can make, which
    /// would be an unsigned mode by another name.
    pub fn validate(&self) -> Result<(), Error> {
        for (provider, secrets) in [
            (Provider::Retell, &self.retell),
            (Provider::Calcom, &self.calcom),
            (Provider::Stripe, &self.stripe),
        ] {
            if secrets.iter().any(|s| s.expose().trim().is_empty()) {
                return Err(Error::Config(format!(
                    "a {} secret is empty or only whitespace; remove it or set the real secret",
                    provider.display_name()
                )));
            }
        }
        Ok(())
    }

    pub fn keyring(&self) -> Keyring {
        Keyring::new()
            .with(Provider::Retell, self.retell.clone())
            .with(Provider::Calcom, self.calcom.clone())
            .with(Provider::Stripe, self.stripe.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub read_models: ReadModelsLocation,
    pub secrets: ProviderSecrets,
    /// Bearer token with full read and admin access; without it only tenant tokens work.
    /// A `Secret`, so a printed config never shows it.
    pub admin_token: Option<Secret>,
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
            read_models: ReadModelsLocation::FollowStore,
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

    /// The bodies that grow most as a JSON string: escaped quotes and backslashes inside a
    /// string, raw newlines between tokens.
    #[test]
    fn the_store_takes_the_most_escaped_body_within_max_body() {
        let max_body = 3 * switchboard_store::DEFAULT_MAX_EVENT_BYTES;
        let pairs = (max_body - 2) / 2;
        for body in [
            format!("\"{}\"", "\\\"".repeat(pairs)),
            format!("\"{}\"", "\\\\".repeat(pairs)),
            format!("{}1{}", "\n".repeat(pairs), "\n".repeat(pairs)),
        ] {
            assert!(body.len() <= max_body);
            serde_json::from_str::<serde_json::Value>(&body).expect("valid JSON");
            let stored = serde_json::to_string(&body).unwrap().len();
            assert!(
                stored > 2 * max_body - 8,
                "the worst case is tested: {stored}"
            );
            assert!(stored + 2 * HTTP1_MAX_HEAD + 4096 <= max_event_bytes(max_body));
        }
        assert_eq!(
            max_event_bytes(1),
            switchboard_store::DEFAULT_MAX_EVENT_BYTES
        );
        assert_eq!(max_event_bytes(usize::MAX), usize::MAX);
    }

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
    fn read_model_locations_parse_and_refuse_other_databases() {
        assert_eq!(
            ReadModelsLocation::parse(" ").unwrap(),
            ReadModelsLocation::FollowStore
        );
        assert_eq!(
            ReadModelsLocation::parse("EMBEDDED").unwrap(),
            ReadModelsLocation::Embedded
        );
        assert_eq!(
            ReadModelsLocation::parse("postgresql://h/db?schema=rm").unwrap(),
            ReadModelsLocation::Postgres("postgresql://h/db?schema=rm".into())
        );
        let err = ReadModelsLocation::parse("esdb://u:hunter2@h:2113").unwrap_err();
        assert!(err.to_string().contains("--read-models"), "{err}");
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
    fn blank_secrets_are_refused_and_none_is_printed() {
        let secrets = ProviderSecrets {
            retell: Secret::parse_list("key_live_abc"),
            calcom: vec![Secret::new(" ")],
            ..ProviderSecrets::default()
        };
        let err = secrets.validate().unwrap_err().to_string();
        assert!(err.contains("Cal.com"), "{err}");
        assert!(!format!("{secrets:?}").contains("key_live_abc"));
    }
}
