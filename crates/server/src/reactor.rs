//! Runs the domain's policy: facts on one stream that call for a fact on another (a booking
//! names its call → the call is linked; a reschedule names the old booking → it is marked).
//!
//! A delivery is one atomic append to one stream, so the cross-stream effects follow from the
//! log, at least once. They are idempotent twice over: each reaction has a dedupe key derived
//! from the event it reacts to, and the aggregates treat a repeated link as no change. So the
//! checkpoint only saves work on restart; losing it is harmless.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_domain::{Event, policy};
use switchboard_store::{EventStore, RecordedEvent, StoreError, Subscription};
use tokio::sync::watch;

use crate::ledger::{Ledger, Provenance, StreamLocks, Target};

pub const CHECKPOINT_FILE: &str = "policy.checkpoint";

/// How often the checkpoint is saved while events flow; also saved on shutdown.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Asked to stop in the middle of a reaction: its event is not past the checkpoint.
struct Stopped;

pub struct Reactor {
    pub store: Arc<dyn EventStore>,
    pub locks: Arc<StreamLocks>,
    pub checkpoint_path: PathBuf,
}

impl Reactor {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut next = read_checkpoint(&self.checkpoint_path);
        let mut saved = (next, Instant::now());
        let mut subscription = Subscription::new(self.store.clone(), next);
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => break,
                event = subscription.next() => event,
            };
            match event {
                Ok(event) => {
                    if self.react_to(&event, &mut shutdown).await.is_err() {
                        break;
                    }
                    next = event.position + 1;
                    if saved.1.elapsed() >= CHECKPOINT_INTERVAL {
                        save_checkpoint(&self.checkpoint_path, next).await;
                        saved = (next, Instant::now());
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "policy: reading the log failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => break,
                    }
                    subscription = Subscription::new(self.store.clone(), next);
                }
            }
        }
        if saved.0 != next {
            save_checkpoint(&self.checkpoint_path, next).await;
        }
    }

    fn ledger(&self) -> Ledger<'_> {
        Ledger {
            store: self.store.as_ref(),
            locks: &self.locks,
        }
    }

    async fn react_to(
        &self,
        recorded: &RecordedEvent,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        if !policy::REACTS_TO.contains(&recorded.event_type.as_str()) {
            return Ok(());
        }
        let Ok(event) = Event::from_parts(
            &recorded.event_type,
            recorded.schema_version,
            recorded.data.as_str(),
        ) else {
            return Ok(());
        };
        for (index, (stream, command)) in policy::react(&event).into_iter().enumerate() {
            let target = Target::Decide { stream, command };
            let provenance = Provenance {
                dedupe_key: format!("policy:{}:{index}", recorded.event_id),
                provider: "switchboard".to_owned(),
                request_id: String::new(),
                causation: recorded.event_id.to_string(),
                correlation: recorded
                    .metadata
                    .parse::<Correlation>()
                    .ok()
                    .and_then(|m| m.correlation),
                raw_delivery: None,
                occurred_at: recorded.occurred_at,
                keep_rejections: true,
            };
            // A store outage or a contended stream must not drop a reaction: retry until it
            // is recorded or we are asked to stop (the checkpoint then stays before it).
            let mut delay = Duration::from_millis(100);
            loop {
                match self.ledger().execute(&target, &provenance).await {
                    Ok(_) => break,
                    Err(crate::Error::Store(error))
                        if error.is_transient()
                            || matches!(error, StoreError::WrongExpectedVersion { .. }) =>
                    {
                        tracing::warn!(%error, ?target, "policy reaction failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return Err(Stopped),
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                    Err(error) => {
                        // Not something waiting fixes: keep going, loudly; the reaction can be
                        // replayed by deleting the checkpoint once the cause is fixed.
                        tracing::error!(%error, ?target, event = %recorded.event_id,
                            "policy reaction could not be recorded");
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

fn read_checkpoint(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Write, fsync, rename: a crash leaves the old or the new checkpoint, never a torn one. Off
/// the async threads, since it waits for the disk.
async fn save_checkpoint(path: &Path, next: u64) {
    let path = path.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let temp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(next.to_string().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "policy checkpoint not saved"),
        Err(error) => tracing::warn!(%error, "policy checkpoint task failed"),
    }
}

/// The metadata field a reaction carries over from the event it reacts to.
#[derive(serde::Deserialize)]
struct Correlation {
    correlation: Option<String>,
}
