//! `switchboard`: serve the service, rebuild read models, sign/send/verify webhooks, export
//! read models, inspect streams.

mod events;
mod read_models;
mod settings;
mod webhook_tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use settings::{ServeArgs, StoreArgs};

/// jemalloc rather than glibc's malloc: the store's readers allocate envelopes on one thread
/// that the fold or a handler frees on another, which glibc serves with per-arena locks and
/// consolidation. Measured (docs/benchmarks.md, "Allocator"): `$all` reads +10–17 %, a rebuild's
/// fold thread −8 to −12 % CPU and the whole process −11 to −23 %.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Verified webhooks become events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: ingest, query API, metrics, health.
    Serve(ServeArgs),
    /// Replay the streams into fresh read models, then swap them in.
    Rebuild(read_models::RebuildArgs),
    /// Write a read model to stdout as JSON lines or CSV.
    Export(read_models::ExportArgs),
    /// Print the signature headers a provider would send with FILE.
    Sign(webhook_tools::SignArgs),
    /// Sign FILEs and POST them to URL, printing each status.
    Send(webhook_tools::SendArgs),
    /// Check a received delivery's signature; exit 0 if valid, else say why.
    Verify(webhook_tools::VerifyArgs),
    /// Inspect the event store.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
}

/// What a command can fail with; printed as one line, exit code 1 (2 for usage).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Server(#[from] switchboard_server::Error),
    #[error(transparent)]
    Store(#[from] switchboard_store::StoreError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Events { command } => events::run(command).await,
            Command::Rebuild(args) => read_models::run_rebuild(args).await,
            Command::Export(args) => read_models::run_export(args).await,
            Command::Sign(args) => webhook_tools::run_sign(args),
            Command::Send(args) => webhook_tools::run_send(args).await,
            Command::Verify(args) => webhook_tools::run_verify(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (config, log_format) = settings::resolve_serve(&args, settings::EnvSecrets::from_env())?;
    init_tracing(log_format);
    switchboard_server::serve(config, shutdown_signal()).await?;
    Ok(())
}

fn init_tracing(format: switchboard_server::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        switchboard_server::config::LogFormat::Json => builder.json().init(),
        switchboard_server::config::LogFormat::Human => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight deliveries");
}

/// Opens the store a command names, for reading: no command but `serve` appends.
pub async fn open_store(
    args: &StoreArgs,
) -> Result<std::sync::Arc<dyn switchboard_store::EventStore>, CliError> {
    let (location, data_dir) = settings::resolve_store(args)?;
    Ok(switchboard_server::backend::open_store_reading(&location, &data_dir).await?)
}
