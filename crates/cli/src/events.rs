//! `switchboard events read STREAM` / `events tail`: the store as JSON lines.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use switchboard_store::{RecordedEvent, Subscription};

use crate::settings::StoreArgs;
use crate::{CliError, open_store};

/// How often `events tail` looks for commits of another process (a running server).
const OBSERVE_INTERVAL: Duration = Duration::from_millis(200);

/// Looks in a row that may fail before `events tail` gives up (5 s at the interval above).
const OBSERVE_ATTEMPTS: u32 = 25;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print one stream's events with their envelope, one JSON object a line.
    Read {
        stream: String,
        #[command(flatten)]
        store: StoreArgs,
        /// First version to print.
        #[arg(long, default_value_t = 0)]
        from_version: u64,
    },
    /// Follow the global order (`$all`): print what is stored, then each new event.
    Tail {
        #[command(flatten)]
        store: StoreArgs,
        /// Start at this global position (default: the beginning).
        #[arg(long, default_value_t = 0)]
        from_position: u64,
        /// Stop after printing what is stored instead of following new commits.
        #[arg(long)]
        no_follow: bool,
    },
}

pub async fn run(command: EventsCommand) -> Result<(), CliError> {
    match command {
        EventsCommand::Read {
            stream,
            store,
            from_version,
        } => {
            let store = open_store(&store).await?;
            let mut next = from_version;
            let mut printed = 0usize;
            loop {
                let page = store.read_stream(&stream, next, 500).await?;
                let Some(last) = page.last() else { break };
                next = last.version + 1;
                printed += page.len();
                if !print_events(&page)? {
                    return Ok(());
                }
            }
            if printed == 0 {
                return Err(CliError::Failed(format!("stream {stream} has no events")));
            }
            Ok(())
        }
        EventsCommand::Tail {
            store,
            from_position,
            no_follow,
        } => {
            let store = open_store(&store).await?;
            if no_follow {
                let mut next = from_position;
                loop {
                    let page = store.read_all(next, 500).await?;
                    let Some(last) = page.last() else { break };
                    next = last.position + 1;
                    if !print_events(&page)? {
                        break;
                    }
                }
                return Ok(());
            }
            // The server appending to this store is another process: look for its commits
            // now and then, so the subscription wakes for them (the embedded store's own head
            // only moves with this process's appends).
            let observed = Arc::clone(&store);
            let mut watcher = tokio::spawn(async move {
                let mut every = tokio::time::interval(OBSERVE_INTERVAL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut failures = 0;
                loop {
                    every.tick().await;
                    match observed.observe_other_writers().await {
                        Ok(_) => failures = 0,
                        // A busy moment is tried again; a store that keeps failing ends the
                        // command with its error.
                        Err(error) if failures >= OBSERVE_ATTEMPTS => return error,
                        Err(_) => failures += 1,
                    }
                }
            });
            let mut subscription = Subscription::new(store, from_position);
            let result = loop {
                let event = tokio::select! {
                    event = subscription.next() => event,
                    error = &mut watcher => {
                        break Err(match error {
                            Ok(error) => error.into(),
                            Err(panic) => CliError::Failed(panic.to_string()),
                        });
                    }
                };
                match event.map_err(CliError::from) {
                    Ok(event) => match print_events(std::slice::from_ref(&event)) {
                        Ok(true) => {}
                        // The reader went away (`| head`): done.
                        Ok(false) => break Ok(()),
                        Err(error) => break Err(error),
                    },
                    Err(error) => break Err(error),
                }
            };
            watcher.abort();
            result
        }
    }
}

/// Prints events as JSON lines; false once the output is closed (`| head`), which ends the
/// command quietly.
fn print_events(events: &[RecordedEvent]) -> Result<bool, CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for event in events {
        let line = serde_json::to_string(event).map_err(|e| CliError::Failed(e.to_string()))?;
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}
