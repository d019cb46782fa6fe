//! Runs the domain's policy: facts on one stream that call for a fact on another (a booking
//! names its call → the call is linked; a reschedule names the old booking → it is marked).
//!
//! A delivery is one atomic append to one stream, so the cross-stream effects follow from the
//! log, at least once. They are idempotent twice over: each reaction has a dedupe key derived
//! from the event it reacts to, and the aggregates treat a repeated link as no change. So the
//! checkpoint only saves work on restart; losing it is harmless.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_domain::{Event, policy};
use switchboard_store::{EventStore, RecordedEvent, Subscription};
use tokio::sync::watch;

use crate::ledger::{DELIVERY_RECEIVED, Ledger, Provenance, StreamLocks, Target};

pub const CHECKPOINT_FILE: &str = "policy.checkpoint";

/// How many events between checkpoint writes while catching up.
const CHECKPOINT_EVERY: u64 = 500;

pub struct Reactor {
    pub store: Arc<dyn EventStore>,
    pub locks: Arc<StreamLocks>,
    pub checkpoint_path: PathBuf,
}

impl Reactor {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut next = read_checkpoint(&self.checkpoint_path);
        let mut since_saved = 0u64;
        let mut subscription = Subscription::new(self.store.clone(), next);
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => break,
                event = subscription.next() => event,
            };
            match event {
                Ok(event) => {
                    self.react_to(&event).await;
                    next = event.position + 1;
                    since_saved += 1;
                    let caught_up =
                        self.store.watch_head().borrow().checked_sub(event.position) == Some(0);
                    if since_saved >= CHECKPOINT_EVERY || caught_up {
                        write_checkpoint(&self.checkpoint_path, next);
                        since_saved = 0;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "policy: reading the log failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    subscription = Subscription::new(self.store.clone(), next);
                }
            }
        }
        write_checkpoint(&self.checkpoint_path, next);
    }

    async fn react_to(&self, recorded: &RecordedEvent) {
        if recorded.event_type == DELIVERY_RECEIVED {
            return;
        }
        let Ok(event) = Event::from_parts(
            &recorded.event_type,
            recorded.schema_version,
            recorded.data.clone(),
        ) else {
            return;
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
                    .get("correlation")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                raw_delivery: None,
                occurred_at: recorded.occurred_at,
                keep_rejections: true,
            };
            let ledger = Ledger {
                store: self.store.as_ref(),
                locks: &self.locks,
            };
            // A store outage must not drop a reaction: retry until it is recorded or we stop.
            let mut delay = Duration::from_millis(100);
            loop {
                match ledger.execute(&target, &provenance).await {
                    Ok(_) => break,
                    Err(crate::Error::Store(error)) if error.is_transient() => {
                        tracing::warn!(%error, ?target, "policy reaction failed; retrying");
                        tokio::time::sleep(delay).await;
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
    }
}

fn read_checkpoint(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Write-then-rename, so a crash leaves the old or the new checkpoint, never a torn one.
fn write_checkpoint(path: &std::path::Path, next: u64) {
    let temp = path.with_extension("tmp");
    let result =
        std::fs::write(&temp, next.to_string()).and_then(|()| std::fs::rename(&temp, path));
    if let Err(error) = result {
        tracing::warn!(%error, path = %path.display(), "policy checkpoint not saved");
    }
}
