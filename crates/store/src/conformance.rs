//! The conformance suite every backend runs.
//!
//! A backend proves it keeps the [`EventStore`] contract by calling [`run`] with a factory that
//! makes a fresh, empty store (a new file, a new PostgreSQL schema, ...). Each check gets its
//! own store, so checks can count what `$all` holds. A failed check panics with a message that
//! names the check and what differed. The checks are also public one by one, for a backend that
//! wants to run them as separate tests.
//!
//! The factory's stores must use the default event size limit ([`DEFAULT_MAX_EVENT_BYTES`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    AppendOutcome, DEFAULT_MAX_EVENT_BYTES, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError, Subscription,
};

/// Bounds a wait that can only end by the store doing what it must, so a broken backend fails
/// with a message instead of hanging the test run. Never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs every check, each on a fresh store from `new_store`.
pub async fn run<F, Fut>(mut new_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn EventStore>>,
{
    expected_version_conflicts(new_store().await).await;
    idempotent_retries(new_store().await).await;
    invalid_appends(new_store().await).await;
    read_stream_from_version(new_store().await).await;
    read_all_in_pages(new_store().await).await;
    concurrent_writers_and_reader(new_store().await).await;
    subscription_catches_up_then_goes_live(new_store().await).await;
    large_events(new_store().await).await;
    unicode(new_store().await).await;
    ten_thousand_streams(new_store().await).await;
}

/// The variable that names the PostgreSQL database the tests may use (`.ci/run` sets it).
pub const POSTGRES_URL_VARIABLE: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// The PostgreSQL test database's URL, for every crate's PostgreSQL tests; None (after saying
/// so) when the variable is unset outside CI. Under `CI=true` a missing variable fails the
/// test: CI must not pass by skipping.
pub fn postgres_test_url(test: &str) -> Option<String> {
    use std::io::Write;
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "{test}: CI=true but {POSTGRES_URL_VARIABLE} is not set; CI must run the \
                 PostgreSQL tests"
            )
        }
        _ => {
            // Straight to stderr rather than eprintln!, which the test harness captures and
            // hides for a passing test: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: SKIPPED, {POSTGRES_URL_VARIABLE} is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// An event with a recognisable id and payload, and a provider time with nanoseconds so a
/// lossy timestamp column shows.
pub fn new_event(id: Uuid, event_type: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: id,
        event_type: event_type.to_owned(),
        schema_version: 1,
        occurred_at: occurred_at(),
        data,
        metadata: json!({"provider": "conformance", "correlation": id.to_string()}),
    }
}

fn occurred_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 15, 30).unwrap()
        + chrono::Duration::nanoseconds(123_456_789)
}

fn events(prefix: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| new_event(Uuid::new_v4(), "Tested", json!({"check": prefix, "i": i})))
        .collect()
}

async fn append(
    store: &dyn EventStore,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendOutcome {
    store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append to {stream} with expected {expected}: {e}"))
}

async fn read_whole_stream(store: &dyn EventStore, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, 0, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("read_stream {stream}: {e}"))
}

async fn read_whole_all(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut next = 0;
    loop {
        let page = store
            .read_all(next, 1000)
            .await
            .unwrap_or_else(|e| panic!("read_all from {next}: {e}"));
        let Some(last) = page.last() else {
            return all;
        };
        next = last.position + 1;
        all.extend(page);
    }
}

/// Asserts that `recorded` is `appended` as it was given, with the envelope `outcome` names.
fn assert_recorded_as_appended(
    check: &str,
    recorded: &RecordedEvent,
    stream: &str,
    appended: &NewEvent,
    version: u64,
    position: u64,
) {
    let expected = (
        appended.event_id,
        stream,
        version,
        position,
        appended.event_type.as_str(),
        appended.schema_version,
        appended.occurred_at,
        Some(&appended.data),
        Some(&appended.metadata),
    );
    let (data, metadata) = (
        recorded.data.to_value().ok(),
        recorded.metadata.to_value().ok(),
    );
    let actual = (
        recorded.event_id,
        recorded.stream.as_str(),
        recorded.version,
        recorded.position,
        recorded.event_type.as_str(),
        recorded.schema_version,
        recorded.occurred_at,
        data.as_ref(),
        metadata.as_ref(),
    );
    assert_eq!(
        actual, expected,
        "{check}: the event read back differs from the one appended \
         (id, stream, version, position, type, schema version, occurred_at, data, metadata)"
    );
    assert_envelope_text_unchanged(check, recorded, appended);
}

/// The envelope as it was written out (CLI `events read`, the admin API) when data and
/// metadata were `serde_json::Value`s: same fields, same order, compact JSON, object keys
/// sorted. Handing out the stored text must not change a byte of it.
#[derive(serde::Serialize)]
struct EnvelopeOfValues<'a> {
    event_id: Uuid,
    stream: &'a str,
    version: u64,
    position: u64,
    event_type: &'a str,
    schema_version: u32,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    data: &'a serde_json::Value,
    metadata: &'a serde_json::Value,
}

fn assert_envelope_text_unchanged(check: &str, recorded: &RecordedEvent, appended: &NewEvent) {
    let expected = serde_json::to_string(&EnvelopeOfValues {
        event_id: recorded.event_id,
        stream: &recorded.stream,
        version: recorded.version,
        position: recorded.position,
        event_type: &recorded.event_type,
        schema_version: recorded.schema_version,
        occurred_at: recorded.occurred_at,
        recorded_at: recorded.recorded_at,
        data: &appended.data,
        metadata: &appended.metadata,
    })
    .expect("an envelope of values serializes");
    let actual = serde_json::to_string(recorded)
        .unwrap_or_else(|e| panic!("{check}: the recorded envelope does not serialize: {e}"));
    assert_eq!(
        actual, expected,
        "{check}: the envelope's JSON differs from the data and metadata appended"
    );
}

/// NoStream on an existing stream, a wrong Exact, Exact on a missing stream, and Any: each
/// conflict is a typed error naming stream, expectation and actual version, and writes nothing.
pub async fn expected_version_conflicts(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let stream = "expected-version-1";

    let first = append(store, stream, ExpectedVersion::NoStream, events("ev", 3)).await;
    let versions: Vec<u64> = first.events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        [0, 1, 2],
        "expected versions: a new stream starts at version 0"
    );
    assert!(
        !first.already_recorded,
        "expected versions: a first append is not a retry"
    );
    assert_eq!(first.last_version(), Some(2));

    let conflicts = [
        (ExpectedVersion::NoStream, Some(2)),
        (ExpectedVersion::Exact(5), Some(2)),
        (ExpectedVersion::Exact(1), Some(2)),
    ];
    for (expected, actual) in conflicts {
        let err = store
            .append(stream, expected, events("conflict", 1))
            .await
            .expect_err("expected versions: a wrong expectation must be refused");
        assert_eq!(
            err,
            StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual
            },
            "expected versions: appending to {stream} (at version 2) expecting {expected}"
        );
        assert!(
            err.to_string().contains(stream),
            "expected versions: the message must name the stream: {err}"
        );
    }

    let err = store
        .append(
            "expected-version-missing",
            ExpectedVersion::Exact(0),
            events("missing", 1),
        )
        .await
        .expect_err("expected versions: Exact(0) on a missing stream must be refused");
    assert_eq!(
        err,
        StoreError::WrongExpectedVersion {
            stream: "expected-version-missing".to_owned(),
            expected: ExpectedVersion::Exact(0),
            actual: None
        },
        "expected versions: Exact on a missing stream reports no stream"
    );
    assert_eq!(
        store
            .stream_version("expected-version-missing")
            .await
            .unwrap(),
        None,
        "expected versions: a refused append must create nothing"
    );
    assert_eq!(
        store.stream_version(stream).await.unwrap(),
        Some(2),
        "expected versions: refused appends must write nothing"
    );

    let exact = append(store, stream, ExpectedVersion::Exact(2), events("exact", 2)).await;
    assert_eq!(
        exact.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [3, 4]
    );
    let any = append(store, stream, ExpectedVersion::Any, events("any", 1)).await;
    assert_eq!(
        any.events[0].version, 5,
        "expected versions: Any appends at the end"
    );
    let any_new = append(
        store,
        "expected-version-2",
        ExpectedVersion::Any,
        events("any", 1),
    )
    .await;
    assert_eq!(
        any_new.events[0].version, 0,
        "expected versions: Any creates a missing stream"
    );

    assert_eq!(read_whole_stream(store, stream).await.len(), 6);
    assert!(
        first.events[0].position > 0,
        "expected versions: positions start above 0"
    );
    assert!(
        exact.events[0].position > first.events[2].position
            && any.events[0].position > exact.events[1].position,
        "expected versions: later commits must have higher positions"
    );
}

/// Re-appending the same ids returns the original versions and positions and writes nothing,
/// whatever the expectation; a batch that is only partly recorded is refused.
pub async fn idempotent_retries(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let stream = "idempotent-1";
    let batch = events("idem", 3);

    let first = append(store, stream, ExpectedVersion::NoStream, batch.clone()).await;
    let head = store.head_position().await.unwrap();

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(99),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Any,
    ] {
        let retry = append(store, stream, expected, batch.clone()).await;
        assert!(
            retry.already_recorded,
            "idempotent retries: a retry expecting {expected} must report already_recorded"
        );
        assert_eq!(
            retry.events, first.events,
            "idempotent retries: a retry expecting {expected} must return the original versions and positions"
        );
        assert_eq!(retry.stream, stream);
    }
    // A retry of a tail of the batch is a retry too: all of its ids are recorded.
    let tail = append(store, stream, ExpectedVersion::Any, batch[1..].to_vec()).await;
    assert!(tail.already_recorded);
    assert_eq!(tail.events, first.events[1..]);

    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "idempotent retries: retries must append nothing"
    );
    assert_eq!(read_whole_stream(store, stream).await.len(), 3);

    let mut partial = vec![batch[2].clone()];
    partial.extend(events("idem-new", 1));
    let err = store
        .append(stream, ExpectedVersion::Any, partial)
        .await
        .expect_err("idempotent retries: a partly recorded batch must be refused");
    assert_eq!(
        err,
        StoreError::PartiallyRecorded {
            stream: stream.to_owned(),
            event_id: batch[2].event_id
        },
        "idempotent retries: the error names the stream and a recorded event"
    );
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "idempotent retries: a refused partial batch must write nothing"
    );

    // Idempotency is per stream: the same ids are new to another stream... or refused, but
    // never reported as recorded there. (Backends differ on global vs per-stream uniqueness.)
    if let Ok(other) = store
        .append("idempotent-2", ExpectedVersion::Any, batch.clone())
        .await
    {
        assert!(
            !other.already_recorded,
            "idempotent retries: ids recorded in {stream} are not recorded in idempotent-2"
        );
    }
}

/// Appends no store can record are refused before anything is written.
pub async fn invalid_appends(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let err = store
        .append("invalid-1", ExpectedVersion::Any, Vec::new())
        .await
        .expect_err("invalid appends: an empty append must be refused");
    assert!(
        matches!(err, StoreError::InvalidAppend(_)),
        "invalid appends: empty: {err:?}"
    );

    let once = events("twice", 1);
    let twice = vec![once[0].clone(), once[0].clone()];
    let err = store
        .append("invalid-1", ExpectedVersion::Any, twice)
        .await
        .expect_err("invalid appends: one id twice in an append must be refused");
    assert!(
        matches!(err, StoreError::InvalidAppend(_)),
        "invalid appends: twice: {err:?}"
    );

    for (stream, event_type) in [("invalid-\u{0}-1", "Tested"), ("invalid-1", "Tested\u{0}")] {
        let err = store
            .append(
                stream,
                ExpectedVersion::Any,
                vec![new_event(Uuid::new_v4(), event_type, json!({}))],
            )
            .await
            .expect_err("invalid appends: a NUL in a stream name or event type must be refused");
        assert!(
            matches!(err, StoreError::InvalidAppend(_)),
            "invalid appends: NUL in {stream:?} / {event_type:?}: {err:?}"
        );
    }

    let id = Uuid::new_v4();
    let oversize = new_event(id, "Huge", json!("x".repeat(DEFAULT_MAX_EVENT_BYTES + 1)));
    let err = store
        .append("invalid-1", ExpectedVersion::Any, vec![oversize])
        .await
        .expect_err("invalid appends: an event over the size limit must be refused");
    match err {
        StoreError::EventTooLarge {
            event_id,
            size,
            limit,
        } => {
            assert_eq!(
                event_id, id,
                "invalid appends: EventTooLarge names the event"
            );
            assert_eq!(limit, DEFAULT_MAX_EVENT_BYTES);
            assert!(
                size > limit,
                "invalid appends: reported size {size} <= limit {limit}"
            );
        }
        other => panic!("invalid appends: oversize: expected EventTooLarge, got {other:?}"),
    }
    assert_eq!(store.stream_version("invalid-1").await.unwrap(), None);
    assert_eq!(
        store.head_position().await.unwrap(),
        0,
        "invalid appends: nothing may be written"
    );
}

/// read_stream returns the envelope as appended, from a version, within a limit.
pub async fn read_stream_from_version(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let stream = "read-stream-1";
    let batch = events("read-stream", 10);
    let outcome = append(store, stream, ExpectedVersion::NoStream, batch.clone()).await;
    append(
        store,
        "read-stream-other",
        ExpectedVersion::NoStream,
        events("other", 2),
    )
    .await;

    let whole = read_whole_stream(store, stream).await;
    assert_eq!(whole.len(), 10, "read_stream: the whole stream");
    for ((recorded, appended), placed) in whole.iter().zip(&batch).zip(&outcome.events) {
        assert_recorded_as_appended(
            "read_stream",
            recorded,
            stream,
            appended,
            placed.version,
            placed.position,
        );
    }
    assert!(
        whole
            .windows(2)
            .all(|w| w[0].recorded_at == w[1].recorded_at),
        "read_stream: one append is one commit with one recorded_at"
    );

    let middle = store.read_stream(stream, 4, 3).await.unwrap();
    assert_eq!(
        middle.iter().map(|e| e.version).collect::<Vec<_>>(),
        [4, 5, 6],
        "read_stream: from version 4, limit 3"
    );
    assert_eq!(
        middle,
        whole[4..7],
        "read_stream: a page equals the same events read whole"
    );
    assert!(store.read_stream(stream, 10, 5).await.unwrap().is_empty());
    assert!(
        store
            .read_stream(stream, u64::MAX, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream("read-stream-missing", 0, 5)
            .await
            .unwrap()
            .is_empty(),
        "read_stream: a missing stream reads as empty"
    );
    assert_eq!(store.stream_version(stream).await.unwrap(), Some(9));
    assert_eq!(
        store.stream_version("read-stream-missing").await.unwrap(),
        None
    );

    let all = read_whole_all(store).await;
    let from_all: Vec<&RecordedEvent> = all.iter().filter(|e| e.stream == stream).collect();
    assert_eq!(
        from_all,
        whole.iter().collect::<Vec<_>>(),
        "read_stream and read_all must return identical envelopes"
    );
}

/// `$all` pages: each within its limit, in increasing position, and together everything once.
pub async fn read_all_in_pages(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let mut appended = Vec::new();
    for round in 0..5 {
        for stream in ["pages-a", "pages-b", "pages-c"] {
            let batch = events("pages", 1 + round % 2);
            let outcome = append(store, stream, ExpectedVersion::Any, batch.clone()).await;
            for (event, placed) in batch.into_iter().zip(outcome.events) {
                appended.push((stream, event, placed));
            }
        }
    }
    let head = store.head_position().await.unwrap();
    assert_eq!(
        head,
        appended.last().unwrap().2.position,
        "read_all: head_position is the last committed position"
    );
    assert_eq!(
        *store.watch_head().borrow(),
        head,
        "read_all: watch_head is at the head"
    );

    let mut seen = Vec::new();
    let mut next = 0;
    loop {
        let page = store.read_all(next, 7).await.unwrap();
        assert!(
            page.len() <= 7,
            "read_all: a page of limit 7 held {}",
            page.len()
        );
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        seen.extend(page);
    }
    assert_eq!(
        seen.len(),
        appended.len(),
        "read_all: paging must see every event once"
    );
    for (recorded, (stream, event, placed)) in seen.iter().zip(&appended) {
        assert_recorded_as_appended(
            "read_all",
            recorded,
            stream,
            event,
            placed.version,
            placed.position,
        );
    }
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "read_all: positions must strictly increase"
    );
    assert!(store.read_all(head + 1, 10).await.unwrap().is_empty());
    assert!(store.read_all(u64::MAX, 10).await.unwrap().is_empty());
    let from_middle = store.read_all(seen[5].position, 3).await.unwrap();
    assert_eq!(
        from_middle,
        seen[5..8],
        "read_all: from a position is inclusive"
    );
}

/// 16 writers × 200 appends, some to shared streams, while a reader pages `$all` the whole
/// time. Positions strictly increase, and the reader never passes a position below which an
/// event appears later: what it saw equals, in order, what `$all` holds at the end.
pub async fn concurrent_writers_and_reader(store: Arc<dyn EventStore>) {
    const WRITERS: usize = 16;
    const APPENDS: usize = 200;
    const SHARED_STREAMS: usize = 8;

    let (done_tx, done_rx) = watch::channel(false);
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut head = store.watch_head();
            let mut done = done_rx;
            let mut seen: Vec<(u64, Uuid)> = Vec::new();
            let mut next = 0;
            // Small and large pages: a backend may read a large page in parts.
            let mut pages = 0usize;
            loop {
                pages += 1;
                let finished = *done.borrow_and_update();
                head.borrow_and_update();
                let page = store
                    .read_all(next, [100, 1000, 7][pages % 3])
                    .await
                    .unwrap();
                for event in &page {
                    if let Some(&(last, _)) = seen.last() {
                        assert!(
                            event.position > last,
                            "concurrent: the reader saw position {} after {last}",
                            event.position
                        );
                    }
                    seen.push((event.position, event.event_id));
                    next = event.position + 1;
                }
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    // Wait for a commit or for the writers to finish; never spin.
                    tokio::select! {
                        _ = head.changed() => {}
                        _ = done.changed() => {}
                    }
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut placed = Vec::with_capacity(APPENDS);
                for i in 0..APPENDS {
                    let stream = if i % 2 == 0 {
                        format!("concurrent-shared-{}", (writer + i) % SHARED_STREAMS)
                    } else {
                        format!("concurrent-{writer}-{i}")
                    };
                    let event = new_event(
                        Uuid::new_v4(),
                        "Concurrent",
                        json!({"writer": writer, "i": i}),
                    );
                    let outcome =
                        append(store.as_ref(), &stream, ExpectedVersion::Any, vec![event]).await;
                    placed.push(outcome.events[0]);
                }
                placed
            })
        })
        .collect();

    let mut appended = Vec::with_capacity(WRITERS * APPENDS);
    for writer in writers {
        let placed = writer.await.expect("concurrent: a writer task panicked");
        assert!(
            placed.windows(2).all(|w| w[0].position < w[1].position),
            "concurrent: one writer's sequential appends must get increasing positions"
        );
        appended.extend(placed);
    }
    done_tx.send(true).expect("the reader is alive");
    let seen = tokio::time::timeout(HANG_GUARD, reader)
        .await
        .expect("concurrent: the reader never reached the end of $all")
        .expect("concurrent: the reader panicked");

    let positions: HashSet<u64> = appended.iter().map(|e| e.position).collect();
    assert_eq!(
        positions.len(),
        WRITERS * APPENDS,
        "concurrent: two appends got one position"
    );

    let all: Vec<(u64, Uuid)> = read_whole_all(store.as_ref())
        .await
        .iter()
        .map(|e| (e.position, e.event_id))
        .collect();
    assert_eq!(
        all.len(),
        WRITERS * APPENDS,
        "concurrent: $all must hold every append once"
    );
    let mut expected: Vec<(u64, Uuid)> =
        appended.iter().map(|e| (e.position, e.event_id)).collect();
    expected.sort();
    assert_eq!(
        all, expected,
        "concurrent: $all must hold each event at the position append reported"
    );
    assert_eq!(
        seen.len(),
        all.len(),
        "concurrent: the live reader saw {} events, $all holds {}: an event became visible \
         below a position the reader had already passed",
        seen.len(),
        all.len()
    );
    assert_eq!(
        seen, all,
        "concurrent: the live reader must see exactly $all, in order"
    );

    for shared in 0..SHARED_STREAMS {
        let stream = format!("concurrent-shared-{shared}");
        let versions: Vec<u64> = read_whole_stream(store.as_ref(), &stream)
            .await
            .iter()
            .map(|e| e.version)
            .collect();
        assert!(
            versions.iter().enumerate().all(|(i, &v)| v == i as u64),
            "concurrent: {stream} versions must be 0..n without gaps: {versions:?}"
        );
    }
}

/// A subscription reads what is stored, then receives new commits as they happen, woken by
/// the store's head watch: while it waits it does not read.
pub async fn subscription_catches_up_then_goes_live(store: Arc<dyn EventStore>) {
    let stored = append(
        store.as_ref(),
        "subscription-1",
        ExpectedVersion::NoStream,
        events("old", 5),
    )
    .await;
    assert!(
        *store.watch_head().borrow() >= stored.events[4].position,
        "subscription: watch_head must be at the commit when append returns"
    );

    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    let mut subscription = Subscription::new(counting.clone(), 0);
    for placed in &stored.events {
        let event = subscription.next().await.unwrap();
        assert_eq!(
            (event.event_id, event.position),
            (placed.event_id, placed.position),
            "subscription: catch-up must deliver the stored events in order"
        );
    }

    let reads_before = counting.read_all_calls();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            // Let the subscription find nothing and start waiting: a polling subscription
            // would read over and over during this pause.
            tokio::time::sleep(Duration::from_millis(200)).await;
            append(
                store.as_ref(),
                "subscription-2",
                ExpectedVersion::NoStream,
                events("new", 3),
            )
            .await
        })
    };
    let mut live = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(HANG_GUARD, subscription.next())
            .await
            .expect("subscription: a new commit never reached the subscription")
            .unwrap();
        live.push((event.event_id, event.position));
    }
    let new = writer.await.unwrap();
    assert_eq!(
        live,
        new.events
            .iter()
            .map(|e| (e.event_id, e.position))
            .collect::<Vec<_>>(),
        "subscription: live events must arrive in order"
    );
    let reads = counting.read_all_calls() - reads_before;
    assert!(
        reads <= 4,
        "subscription: {reads} reads of $all while waiting for one commit: it polls instead \
         of waiting on watch_head"
    );

    let mut head = store.watch_head();
    head.borrow_and_update();
    let more = append(
        store.as_ref(),
        "subscription-3",
        ExpectedVersion::Any,
        events("more", 1),
    )
    .await;
    tokio::time::timeout(HANG_GUARD, head.changed())
        .await
        .expect("subscription: watch_head did not change after a commit")
        .expect("subscription: watch_head closed");
    assert!(*head.borrow() >= more.events[0].position);
}

/// A 1 MiB event round-trips intact.
pub async fn large_events(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    // Three-byte characters plus a one-byte tail: exactly 1 MiB of UTF-8.
    let big = "€".repeat((1024 * 1024 - 1) / 3) + "x";
    assert_eq!(big.len(), 1024 * 1024);
    let batch = vec![
        new_event(Uuid::new_v4(), "Large", json!({"body": big})),
        new_event(Uuid::new_v4(), "Small", json!({"after": "large"})),
    ];
    let outcome = append(store, "large-1", ExpectedVersion::NoStream, batch.clone()).await;
    let read = read_whole_stream(store, "large-1").await;
    assert_eq!(read.len(), 2);
    for ((recorded, appended), placed) in read.iter().zip(&batch).zip(&outcome.events) {
        assert_recorded_as_appended(
            "large events",
            recorded,
            "large-1",
            appended,
            placed.version,
            placed.position,
        );
    }
    let all = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        all, read,
        "large events: read_all must return the same envelopes"
    );
}

/// Unicode in stream names, event types, data and metadata round-trips, NUL and other control
/// characters included in data and metadata (a provider's text may carry them), and names
/// that differ only by normalisation or case are different streams.
pub async fn unicode(store: Arc<dyn EventStore>) {
    let store = store.as_ref();
    let streams = [
        "tenant-Zürich-東京-🚀",
        "booking-café",        // é precomposed
        "booking-cafe\u{301}", // e + combining acute
        "BOOKING-CAFÉ",
        "call-مرحبا-שלום",
    ];
    let mut appended = Vec::new();
    for stream in streams {
        let event = NewEvent {
            event_type: "Buchung bestätigt ✓ 予約".to_owned(),
            metadata: json!({"tenant": "Bäckerei Müller", "emoji": "👩‍👩‍👧", "nul": "\u{0}"}),
            ..new_event(
                Uuid::new_v4(),
                "",
                json!({"name": "Zoë Ångström", "text": "𝄞 \"quoted\" \\ back\nslash\t a\u{0}b \u{1}\u{7f}", "stream": stream}),
            )
        };
        let outcome = append(
            store,
            stream,
            ExpectedVersion::NoStream,
            vec![event.clone()],
        )
        .await;
        appended.push((stream, event, outcome.events[0]));
    }
    for (stream, event, placed) in &appended {
        let read = read_whole_stream(store, stream).await;
        assert_eq!(
            read.len(),
            1,
            "unicode: {stream} must hold exactly its own event"
        );
        assert_recorded_as_appended(
            "unicode",
            &read[0],
            stream,
            event,
            placed.version,
            placed.position,
        );
        // Every backend hands out the same text: compact, keys sorted, escapes as serde_json
        // writes them (NUL as `\u0000`).
        assert_eq!(
            (read[0].data.as_str(), read[0].metadata.as_str()),
            (
                event.data.to_string().as_str(),
                event.metadata.to_string().as_str()
            ),
            "unicode: {stream}: the exact text"
        );
        assert_eq!(
            store.stream_version(stream).await.unwrap(),
            Some(0),
            "unicode: {stream}"
        );
    }
    let all = read_whole_all(store).await;
    let names: Vec<&str> = all.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(
        names, streams,
        "unicode: $all must name each stream exactly as appended"
    );
}

/// 10,000 streams of one event each, appended concurrently: each stream is its own, and
/// `$all` holds them all.
pub async fn ten_thousand_streams(store: Arc<dyn EventStore>) {
    const STREAMS: usize = 10_000;
    const TASKS: usize = 32;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut placed = HashMap::new();
                for n in (task..STREAMS).step_by(TASKS) {
                    let stream = format!("many-{n}");
                    let event = new_event(Uuid::new_v4(), "Many", json!({"n": n}));
                    let outcome = append(
                        store.as_ref(),
                        &stream,
                        ExpectedVersion::NoStream,
                        vec![event],
                    )
                    .await;
                    placed.insert(stream, outcome.events[0]);
                }
                placed
            })
        })
        .collect();
    let mut placed = HashMap::with_capacity(STREAMS);
    for task in tasks {
        placed.extend(task.await.expect("10,000 streams: an append task panicked"));
    }
    assert_eq!(placed.len(), STREAMS);

    let all = read_whole_all(store.as_ref()).await;
    assert_eq!(
        all.len(),
        STREAMS,
        "10,000 streams: $all must hold one event per stream"
    );
    for event in &all {
        let expected = placed.get(&event.stream).unwrap_or_else(|| {
            panic!("10,000 streams: $all holds unknown stream {}", event.stream)
        });
        assert_eq!(
            (event.event_id, event.version, event.position),
            (expected.event_id, 0, expected.position),
            "10,000 streams: {}",
            event.stream
        );
    }
    for n in (0..STREAMS).step_by(7) {
        let stream = format!("many-{n}");
        assert_eq!(
            store.stream_version(&stream).await.unwrap(),
            Some(0),
            "10,000 streams: {stream}"
        );
    }
    let err = store
        .append("many-42", ExpectedVersion::NoStream, events("again", 1))
        .await
        .expect_err("10,000 streams: NoStream on an existing stream must be refused");
    assert!(
        matches!(
            err,
            StoreError::WrongExpectedVersion {
                actual: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
}

/// Passes everything through to a store, counting `$all` reads, to tell a subscription that
/// waits from one that polls.
struct CountingStore {
    inner: Arc<dyn EventStore>,
    read_all_calls: AtomicUsize,
}

impl CountingStore {
    fn new(inner: Arc<dyn EventStore>) -> Self {
        CountingStore {
            inner,
            read_all_calls: AtomicUsize::new(0),
        }
    }

    fn read_all_calls(&self) -> usize {
        self.read_all_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.read_all(from_position, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }
}
