//! The events this process appended last, kept in memory so that live subscribers (the
//! projections, the policy, `events tail`) read them without going back to the file.
//!
//! Every subscriber that has caught up reads each new commit right after the head moved, and
//! those pages sit in the WAL, which SQLite reads into a fresh page cache for every read
//! transaction: with the ingest path at full load those reads were 12–13 % of the server's CPU
//! samples (perf). The syncer puts each group's events here once they are durable and before
//! the head moves, so a page up to the head is here whenever the file holds nothing else in
//! that range.
//!
//! What it holds is one unbroken run of positions, each an event this store's writer appended
//! and synced, exactly as a read of the file would return it. A commit by another connection
//! (say, a second process on the same file) shows up as a jump in positions; the run then
//! starts again, and a read reaching into what it does not hold goes to the file.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::RecordedEvent;

/// At most this many events are kept…
const MAX_EVENTS: usize = 8192;
/// …and at most this many bytes of their data and metadata.
const MAX_BYTES: usize = 16 << 20;

#[derive(Default)]
pub(crate) struct RecentEvents {
    run: Mutex<Run>,
}

#[derive(Default)]
struct Run {
    events: VecDeque<RecordedEvent>,
    bytes: usize,
}

fn size(event: &RecordedEvent) -> usize {
    event.data.as_str().len() + event.metadata.as_str().len()
}

impl RecentEvents {
    /// Adds durable events in position order; called before the head moves past them.
    pub(crate) fn extend(&self, events: impl IntoIterator<Item = RecordedEvent>) {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            if run
                .events
                .back()
                .is_some_and(|last| last.position + 1 != event.position)
            {
                run.events.clear();
                run.bytes = 0;
            }
            run.bytes += size(&event);
            run.events.push_back(event);
            while run.events.len() > MAX_EVENTS || (run.bytes > MAX_BYTES && run.events.len() > 1) {
                let dropped = run.events.pop_front().expect("not empty");
                run.bytes -= size(&dropped);
            }
        }
    }

    /// The page `read_all(from, limit)` returns with the store's head at `head`, when this
    /// run holds all of it; None when the file has to be read.
    pub(crate) fn read(&self, from: u64, limit: usize, head: u64) -> Option<Vec<RecordedEvent>> {
        let run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        let first = run.events.front()?.position;
        let last = run.events.back()?.position;
        if from < first || from > last || limit == 0 {
            return None;
        }
        let wanted_last = from.saturating_add(limit as u64 - 1).min(head);
        // Positions past the run but not past the head were written by someone else.
        if wanted_last > last {
            return None;
        }
        let start = (from - first) as usize;
        let end = (wanted_last - first) as usize;
        Some(run.events.range(start..=end).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::sqlite::reader;
    use crate::sqlite::schema::open_reader;
    use crate::{
        EventStore, ExpectedVersion, NewEvent, RawJson, SqliteOptions, SqliteStore, StoreError,
    };

    fn event(position: u64, data: &str) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::new_v4(),
            stream: "call-1".to_owned(),
            version: position,
            position,
            event_type: "Noted".to_owned(),
            schema_version: 1,
            occurred_at: Utc::now(),
            recorded_at: Utc::now(),
            data: RawJson::from_text(data.to_owned()).unwrap(),
            metadata: RawJson::from_text("{}").unwrap(),
        }
    }

    fn positions(page: Option<Vec<RecordedEvent>>) -> Option<Vec<u64>> {
        page.map(|events| events.iter().map(|e| e.position).collect())
    }

    fn new_event(n: u64) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Noted".to_owned(),
            schema_version: 2,
            occurred_at: Utc::now(),
            data: json!({ "n": n, "text": "ä \" \n" }),
            metadata: json!({ "correlation": n }),
        }
    }

    /// What live readers are handed from memory is what the file holds, field for field:
    /// appends of one and of several events, from writers at once, with retries (already
    /// recorded) and refusals in the same groups.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_from_memory_equals_the_same_page_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let writers = (0..8u64).map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let stream = format!("call-{writer}");
                for round in 0..20u64 {
                    let events: Vec<_> = (0..1 + round % 3)
                        .map(|i| new_event(round * 10 + i))
                        .collect();
                    let again = events.clone();
                    store
                        .append(&stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                    let retried = store
                        .append(&stream, ExpectedVersion::Any, again)
                        .await
                        .unwrap();
                    assert!(retried.already_recorded);
                    let refused = store
                        .append(&stream, ExpectedVersion::NoStream, vec![new_event(0)])
                        .await;
                    assert!(matches!(
                        refused,
                        Err(StoreError::WrongExpectedVersion { .. })
                    ));
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        let head = store.head_position().await.unwrap();
        assert_eq!(head, 8 * (7 + 7 * 2 + 6 * 3));
        assert!(
            store.recent.read(1, head as usize, head).is_some(),
            "every event this store appended is still in memory"
        );
        let live = store.read_all(1, head as usize).await.unwrap();
        let conn = open_reader(&path, std::time::Duration::from_secs(5)).unwrap();
        let file = reader::read_all(&conn, 1, head as usize, head)
            .ok()
            .unwrap();
        assert_eq!(live.len(), head as usize);
        assert_eq!(live, file);
    }

    #[test]
    fn a_page_inside_the_run_is_answered_up_to_the_limit_and_the_head() {
        let recent = RecentEvents::default();
        recent.extend((10..=20).map(|p| event(p, "1")));
        assert_eq!(positions(recent.read(12, 3, 20)), Some(vec![12, 13, 14]));
        assert_eq!(positions(recent.read(18, 100, 20)), Some(vec![18, 19, 20]));
        // The head caps what is shown, as it caps a read of the file.
        assert_eq!(positions(recent.read(18, 100, 19)), Some(vec![18, 19]));
    }

    #[test]
    fn a_page_reaching_outside_the_run_goes_to_the_file() {
        let recent = RecentEvents::default();
        assert_eq!(positions(recent.read(1, 10, 0)), None, "empty run");
        recent.extend((10..=20).map(|p| event(p, "1")));
        assert_eq!(positions(recent.read(9, 10, 20)), None, "before the run");
        assert_eq!(positions(recent.read(21, 10, 25)), None, "after the run");
        // The head is past the run: positions 21..=25 are someone else's commits.
        assert_eq!(positions(recent.read(19, 10, 25)), None);
        assert_eq!(positions(recent.read(15, 3, 25)), Some(vec![15, 16, 17]));
    }

    #[test]
    fn a_jump_in_positions_starts_the_run_again() {
        let recent = RecentEvents::default();
        recent.extend((10..=20).map(|p| event(p, "1")));
        // Another connection wrote 21..=24; this writer's next event is 25.
        recent.extend([event(25, "1")]);
        assert_eq!(positions(recent.read(20, 10, 25)), None);
        assert_eq!(positions(recent.read(25, 10, 25)), Some(vec![25]));
    }

    #[test]
    fn the_oldest_events_go_first_when_the_run_is_full() {
        let recent = RecentEvents::default();
        recent.extend((1..=(MAX_EVENTS as u64 + 5)).map(|p| event(p, "1")));
        assert_eq!(positions(recent.read(5, 1, u64::MAX)), None);
        assert_eq!(positions(recent.read(6, 1, u64::MAX)), Some(vec![6]));
        // By bytes too: two events of over half the budget each leave one.
        let big = format!("\"{}\"", "x".repeat(MAX_BYTES / 2 + 1));
        recent.extend([
            event(MAX_EVENTS as u64 + 6, &big),
            event(MAX_EVENTS as u64 + 7, &big),
        ]);
        let last = MAX_EVENTS as u64 + 7;
        assert_eq!(positions(recent.read(last - 1, 2, last)), None);
        assert_eq!(positions(recent.read(last, 2, last)), Some(vec![last]));
    }
}
