//! `switchboard rebuild` and `switchboard export`: the analyst's side of the read models.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use switchboard_projections::{ExportFormat, ProjectionName, ReadModels, Until};

use crate::settings::{StoreArgs, resolve_read_models};
use crate::{CliError, open_store};

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Rebuild only this projection: calls, appointments, customers, tenants or anomalies.
    #[arg(long)]
    projection: Option<ProjectionName>,
    /// Build the read models as they stood at a global position (a number) or a time
    /// (RFC 3339, e.g. 2025-04-15T12:00:00Z) into a separate file; the live ones are untouched.
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// calls, appointments, customers, tenants or anomalies.
    #[arg(long)]
    projection: ProjectionName,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    format: ExportFormat,
}

fn parse_until(raw: &str) -> Result<Until, CliError> {
    if let Ok(position) = raw.trim().parse::<u64>() {
        return Ok(Until::Position(position));
    }
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| Until::Time(t.with_timezone(&Utc)))
        .map_err(|_| {
            CliError::Usage(format!(
                "--until {raw}: expected a global position (e.g. 1200) or an RFC 3339 time (e.g. 2025-04-15T12:00:00Z)"
            ))
        })
}

pub async fn run_rebuild(args: RebuildArgs) -> Result<(), CliError> {
    let until = args.until.as_deref().map(parse_until).transpose()?;
    let read_models = resolve_read_models(&args.store)?;
    let store = open_store(&args.store).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, ETA {eta})",
        )
        .map_err(|e| CliError::Failed(e.to_string()))?
        .progress_chars("=> "),
    );
    let progress = {
        let bar = bar.clone();
        move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    if let Some(dir) = read_models.file().and_then(|file| file.parent()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
    }
    let report =
        switchboard_projections::rebuild_at(store, &read_models, args.projection, until, progress)
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?;
    bar.finish_and_clear();
    if report.swapped.is_empty() {
        println!(
            "built {} events up to position {} into {}",
            report.events, report.checkpoint, report.at
        );
    } else {
        let names: Vec<_> = report.swapped.iter().map(|p| p.to_string()).collect();
        println!(
            "rebuilt {} from {} events up to position {}; swapped into {}",
            names.join(", "),
            report.events,
            report.checkpoint,
            report.at
        );
    }
    Ok(())
}

pub async fn run_export(args: ExportArgs) -> Result<(), CliError> {
    let at = resolve_read_models(&args.store)?;
    // The read models' client blocks (SQLite, and PostgreSQL's synchronous client refuses to
    // run on an async thread): the export runs on the blocking pool.
    tokio::task::spawn_blocking(move || {
        let read_models = ReadModels::open_at(&at).map_err(|e| CliError::Failed(e.to_string()))?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        switchboard_projections::export(&read_models, args.projection, args.format, &mut out)
            .map_err(|e| CliError::Failed(e.to_string()))?;
        out.flush().map_err(|e| CliError::Failed(e.to_string()))
    })
    .await
    .map_err(|e| CliError::Failed(format!("export: {e}")))?
}
