//! Flags win over environment variables (clap's `env`), which win over `--config FILE`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use switchboard_projections::ReadModelsAt;
use switchboard_server::config::{
    Config, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_MAX_BODY, LogFormat, ProviderSecrets,
    RateLimit, ReadModelsLocation, StoreLocation,
};

use switchboard_webhooks::Secret;

use crate::CliError;

/// Where the store is: shared by every command that reads it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded event store and the read models.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `embedded` (default), `postgres://…`, `kurrentdb://…` or `esdb://…`.
    #[arg(long, env = "SWITCHBOARD_STORE")]
    pub store: Option<String>,
    /// Where the read models live: `embedded` (SQLite in the data dir) or `postgres://…`
    /// (`?schema=` chooses the schema). Default: beside the events — the same PostgreSQL
    /// database for a PostgreSQL store, the data dir otherwise.
    #[arg(long, env = "SWITCHBOARD_READ_MODELS")]
    pub read_models: Option<String>,
    /// Optional TOML file with the same settings (flags and environment win).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<String>,
    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "SWITCHBOARD_MAX_BODY")]
    pub max_body: Option<usize>,
    /// Requests per second per provider endpoint (off unless set; 429 with Retry-After beyond).
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Burst allowed above the rate limit (default: one second's worth).
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// `human` (default) or `json`.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// The TOML file: every key optional, same names as the flags (with underscores).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub read_models: Option<String>,
    pub max_body: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub log_format: Option<String>,
    pub admin_token: Option<String>,
    #[serde(default)]
    pub secrets: FileSecrets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecrets {
    #[serde(default)]
    pub retell: Vec<String>,
    #[serde(default)]
    pub calcom: Vec<String>,
    #[serde(default)]
    pub stripe: Vec<String>,
}

impl FileSettings {
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(FileSettings::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("--config {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("--config {}: {e}", path.display())))
    }
}

/// The resolved store location and data dir for commands that only read the store.
pub fn resolve_store(args: &StoreArgs) -> Result<(StoreLocation, PathBuf), CliError> {
    let file = FileSettings::load(args.config.as_deref())?;
    store_from(args, &file)
}

fn store_from(args: &StoreArgs, file: &FileSettings) -> Result<(StoreLocation, PathBuf), CliError> {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let store = args
        .store
        .as_deref()
        .or(file.store.as_deref())
        .unwrap_or("");
    let location = StoreLocation::parse(store)?;
    Ok((location, data_dir))
}

/// Where the read models of the store `args` name live.
pub fn resolve_read_models(args: &StoreArgs) -> Result<ReadModelsAt, CliError> {
    let file = FileSettings::load(args.config.as_deref())?;
    let (store, data_dir) = store_from(args, &file)?;
    let read_models = read_models_from(args, &file)?;
    Ok(switchboard_server::backend::read_models_at(
        &store,
        &read_models,
        &data_dir,
    ))
}

fn read_models_from(args: &StoreArgs, file: &FileSettings) -> Result<ReadModelsLocation, CliError> {
    let value = args
        .read_models
        .as_deref()
        .or(file.read_models.as_deref())
        .unwrap_or("");
    Ok(ReadModelsLocation::parse(value)?)
}

/// Environment variables only (INTERFACE.md): secrets and the admin token never go on a
/// command line, where `ps` would show them.
pub struct EnvSecrets {
    pub retell: Option<String>,
    pub calcom: Option<String>,
    pub stripe: Option<String>,
    pub admin_token: Option<String>,
}

impl EnvSecrets {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        EnvSecrets {
            retell: var("SWITCHBOARD_RETELL_SECRETS"),
            calcom: var("SWITCHBOARD_CALCOM_SECRETS"),
            stripe: var("SWITCHBOARD_STRIPE_SECRETS"),
            admin_token: var("SWITCHBOARD_ADMIN_TOKEN"),
        }
    }
}

pub fn resolve_serve(args: &ServeArgs, env: EnvSecrets) -> Result<(Config, LogFormat), CliError> {
    let file = FileSettings::load(args.store.config.as_deref())?;
    let (store, data_dir) = store_from(&args.store, &file)?;
    let read_models = read_models_from(&args.store, &file)?;
    let listen_text = args
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text
        .parse()
        .map_err(|e| CliError::Usage(format!("--listen {listen_text}: {e}")))?;
    let max_body = args.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 {
        return Err(CliError::Usage("--max-body must be at least 1 byte".into()));
    }
    let rate_limit = match args.rate_limit.or(file.rate_limit) {
        None | Some(0) => None,
        Some(per_second) => Some(RateLimit {
            per_second,
            burst: args
                .rate_limit_burst
                .or(file.rate_limit_burst)
                .unwrap_or(per_second)
                .max(1),
        }),
    };
    let log_format = match args
        .log_format
        .as_deref()
        .or(file.log_format.as_deref())
        .unwrap_or("human")
    {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            return Err(CliError::Usage(format!(
                "--log-format {other}: expected `human` or `json`"
            )));
        }
    };
    // The environment's comma-separated list and the file's array are read alike: trimmed,
    // blanks dropped (a trailing comma is formatting, not a secret).
    let pick = |env: Option<String>, file: &[String]| match env {
        Some(list) => Secret::parse_list(&list),
        None => file
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect(),
    };
    let secrets = ProviderSecrets {
        retell: pick(env.retell, &file.secrets.retell),
        calcom: pick(env.calcom, &file.secrets.calcom),
        stripe: pick(env.stripe, &file.secrets.stripe),
    };
    secrets.validate()?;
    let config = Config {
        listen,
        data_dir,
        store,
        read_models,
        secrets,
        admin_token: env.admin_token.or(file.admin_token).map(Secret::new),
        max_body,
        rate_limit,
        ..Config::default()
    };
    Ok((config, log_format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args() -> ServeArgs {
        ServeArgs {
            store: StoreArgs {
                data_dir: None,
                store: None,
                read_models: None,
                config: None,
            },
            listen: None,
            max_body: None,
            rate_limit: None,
            rate_limit_burst: None,
            log_format: None,
        }
    }

    fn no_env() -> EnvSecrets {
        EnvSecrets {
            retell: None,
            calcom: None,
            stripe: None,
            admin_token: None,
        }
    }

    #[test]
    fn defaults_follow_the_interface() {
        let (config, log) = resolve_serve(&serve_args(), no_env()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./switchboard-data"));
        assert_eq!(config.store, StoreLocation::Embedded);
        assert_eq!(config.max_body, 1_048_576);
        assert_eq!(config.rate_limit, None);
        assert_eq!(log, LogFormat::Human);
    }

    #[test]
    fn flags_win_over_the_file_and_env_secrets_win_over_file_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax_body = 10\n[secrets]\nretell = [\"file\"]\ncalcom = [\"c\"]\n",
        )
        .unwrap();
        let mut args = serve_args();
        args.store.config = Some(path);
        args.max_body = Some(20);
        let mut env = no_env();
        env.retell = Some("env1,env2".into());
        let (config, _) = resolve_serve(&args, env).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.max_body, 20);
        let exposed = |list: &[Secret]| {
            list.iter()
                .map(|s| s.expose().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(exposed(&config.secrets.retell), ["env1", "env2"]);
        assert_eq!(exposed(&config.secrets.calcom), ["c"]);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let mut args = serve_args();
        args.store.config = Some(path);
        let err = resolve_serve(&args, no_env()).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
    }
}
