//! The embedded store: the shared conformance suite, then what only SQLite has (its file, its
//! writer thread, its group commit).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use switchboard_store::conformance::{self, new_event};
use switchboard_store::sqlite::{APPLICATION_ID, SCHEMA_VERSION};
use switchboard_store::{
    AppendOutcome, EventStore, ExpectedVersion, NewEvent, SqliteOptions, SqliteStore, StoreError,
};
use tempfile::TempDir;
use uuid::Uuid;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn one(label: &str) -> Vec<NewEvent> {
    vec![new_event(Uuid::new_v4(), "Tested", json!({"label": label}))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = TempDir::new().unwrap();
    let counter = AtomicUsize::new(0);
    conformance::run(|| {
        let path = dir.path().join(format!(
            "store-{}.db",
            counter.fetch_add(1, Ordering::Relaxed)
        ));
        async move { Arc::new(open(&path)) as Arc<dyn EventStore> }
    })
    .await;
}

fn assert_corrupt_naming(result: Result<SqliteStore, StoreError>, path: &Path, says: &str) {
    match result {
        Err(err @ StoreError::Corrupt { .. }) => {
            let StoreError::Corrupt {
                path: named,
                reason,
            } = &err
            else {
                unreachable!()
            };
            assert_eq!(named, path, "the error must name the file");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "the message must name the file: {err}"
            );
            assert!(
                reason.contains(says),
                "the reason should say {says:?}: {reason}"
            );
        }
        Err(other) => panic!("expected Corrupt for {}, got {other:?}", path.display()),
        Ok(_) => panic!("{} was opened, but must be refused", path.display()),
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let contents = b"call_id,tenant\nc1,t1\n".repeat(100);
    std::fs::write(&path, &contents).unwrap();

    assert_corrupt_naming(
        SqliteStore::open(&path, SqliteOptions::default()),
        &path,
        "not an SQLite database",
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        contents,
        "the file must not be modified"
    );
}

#[test]
fn a_damaged_sqlite_file_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    // SQLite's magic, then a header that no SQLite wrote (page size 0x0101 is not a power of two).
    let mut contents = b"SQLite format 3\0".to_vec();
    contents.extend([1u8; 4096]);
    std::fs::write(&path, &contents).unwrap();

    let result = SqliteStore::open(&path, SqliteOptions::default());
    assert!(
        matches!(&result, Err(StoreError::Corrupt { path: named, .. }) if named == &path),
        "expected Corrupt naming {}, got {:?}",
        path.display(),
        result.as_ref().err()
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        contents,
        "the file must not be modified"
    );
}

#[test]
fn another_applications_sqlite_database_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');")
            .unwrap();
    }
    assert_corrupt_naming(
        SqliteStore::open(&path, SqliteOptions::default()),
        &path,
        "another application",
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ada", "the foreign database must be left as it was");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tables, 0,
        "no store tables may be added to a foreign database"
    );
}

#[test]
fn a_foreign_application_id_is_refused_even_when_empty() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "application_id", 0x1234)
        .unwrap();
    assert_corrupt_naming(
        SqliteStore::open(&path, SqliteOptions::default()),
        &path,
        "0x1234",
    );
}

#[tokio::test]
async fn a_newer_schema_version_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        id, APPLICATION_ID,
        "a new store is stamped with the application id"
    );
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);

    assert_corrupt_naming(
        SqliteStore::open(&path, SqliteOptions::default()),
        &path,
        "newer",
    );
}

#[tokio::test]
async fn reopening_keeps_the_events_and_continues_the_order() {
    let dir = TempDir::new().unwrap();
    let path: PathBuf = dir.path().join("nested/dir/events.db");
    let first = {
        let store = open(&path);
        let outcome = store
            .append("call-1", ExpectedVersion::NoStream, one("before"))
            .await
            .unwrap();
        let read = store.read_all(0, 10).await.unwrap();
        (outcome, read)
    };

    let store = open(&path);
    assert_eq!(
        store.read_all(0, 10).await.unwrap(),
        first.1,
        "events must survive reopening"
    );
    assert_eq!(
        store.head_position().await.unwrap(),
        first.0.events[0].position
    );
    assert_eq!(
        *store.watch_head().borrow(),
        first.0.events[0].position,
        "the head watch starts at the stored head"
    );
    assert_eq!(store.stream_version("call-1").await.unwrap(), Some(0));

    let after = store
        .append("call-1", ExpectedVersion::Exact(0), one("after"))
        .await
        .unwrap();
    assert_eq!(after.events[0].version, 1);
    assert!(after.events[0].position > first.0.events[0].position);
}

#[tokio::test]
async fn a_reader_beside_another_process_sees_its_commits_once_it_observes_them() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    // Two opens of one file stand for two processes: a server that writes, and a rebuild or
    // `events tail` opened (for reading, as the CLI does) before the server's latest commits.
    let server = open(&path);
    server
        .append("call-1", ExpectedVersion::NoStream, one("first"))
        .await
        .unwrap();
    let beside = SqliteStore::open_reading(&path, SqliteOptions::default()).unwrap();
    let later = server
        .append("call-2", ExpectedVersion::NoStream, one("later"))
        .await
        .unwrap();
    let later_at = later.events[0].position;

    assert_eq!(beside.read_all(0, 10).await.unwrap().len(), 1);
    assert_eq!(beside.head_position().await.unwrap(), later_at - 1);
    let mut head = beside.watch_head();
    head.borrow_and_update();

    assert_eq!(beside.observe_other_writers().await.unwrap(), later_at);
    assert!(head.has_changed().unwrap(), "subscribers are woken");
    assert_eq!(*head.borrow(), later_at);
    assert_eq!(beside.read_all(0, 10).await.unwrap().len(), 2);
    assert_eq!(beside.head_position().await.unwrap(), later_at);
    // Nothing new: the head stays.
    assert_eq!(beside.observe_other_writers().await.unwrap(), later_at);
}

#[tokio::test]
async fn a_store_opened_for_reading_refuses_appends_and_leaves_the_file_as_it_was() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let server = open(&path);
    let first = server
        .append("call-1", ExpectedVersion::NoStream, one("first"))
        .await
        .unwrap();
    let reading = SqliteStore::open_reading(&path, SqliteOptions::default()).unwrap();
    assert_eq!(reading.read_stream("call-1", 0, 10).await.unwrap().len(), 1);

    let err = reading
        .append("call-1", ExpectedVersion::Exact(0), one("second"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("opened for reading only"),
        "a clear refusal: {err}"
    );
    drop(reading);
    // The server goes on where it was: nothing was appended beside it.
    let next = server
        .append("call-1", ExpectedVersion::Exact(0), one("second"))
        .await
        .unwrap();
    assert_eq!(next.events[0].position, first.events[0].position + 1);
}

#[tokio::test]
async fn a_store_opened_for_reading_on_a_new_data_dir_is_an_empty_store() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("new").join("events.db");
    let reading = SqliteStore::open_reading(&path, SqliteOptions::default()).unwrap();
    assert_eq!(reading.head_position().await.unwrap(), 0);
    assert!(reading.read_all(0, 10).await.unwrap().is_empty());
    drop(reading);
    // A file that is not a store is refused, as by a writing open.
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"not a database at all, just text").unwrap();
    assert!(matches!(
        SqliteStore::open_reading(&other, SqliteOptions::default()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn oversize_events_are_refused_against_the_configured_limit() {
    let dir = TempDir::new().unwrap();
    let options = SqliteOptions {
        max_event_bytes: 100,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("events.db"), options).unwrap();
    let fits = new_event(Uuid::new_v4(), "Small", json!("x".repeat(10)));
    let id = Uuid::new_v4();
    let too_big = new_event(id, "Big", json!("x".repeat(100)));

    let err = store
        .append("s", ExpectedVersion::Any, vec![fits, too_big])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::EventTooLarge { event_id, limit: 100, size } if event_id == id && size > 100),
        "{err:?}"
    );
    assert_eq!(
        store.head_position().await.unwrap(),
        0,
        "nothing of the append may be written"
    );
}

/// Holds SQLite's write lock from another connection, as a second process would.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(path: &Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(conn)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    // A wait, not a timing assertion: it ends as soon as the condition holds.
    for _ in 0..60_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("gave up waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_and_the_writer_survives() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options).unwrap();
    store
        .append("s", ExpectedVersion::NoStream, one("first"))
        .await
        .unwrap();

    let lock = WriteLock::take(&path);
    let err = store
        .append("s", ExpectedVersion::Exact(0), one("blocked"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("locked") && m.contains("events.db")),
        "{err:?}"
    );
    assert!(err.is_transient());
    // Reads do not wait for writers.
    assert_eq!(store.stream_version("s").await.unwrap(), Some(0));
    lock.release();

    let later = store
        .append("s", ExpectedVersion::Exact(0), one("after"))
        .await
        .expect("the writer must keep serving after a failed batch");
    assert_eq!(later.events[0].version, 1);
}

/// A WAL that passive checkpoints cannot finish (appends keep coming) starts over all the
/// same, once it is 2,000 frames long: the writer copies what the checkpointer's passes left
/// and its next transaction rewrites the WAL from the start. Before, only the writer's
/// automatic checkpoint at 10,000 frames did that, copying up to 200 ms of appends while
/// every append waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wal_starts_over_while_appends_go_on() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let wal_path = dir.path().join("events.db-wal");
    let store = open(&path);
    let payload = "x".repeat(1_000);
    let append = async |n: u64| {
        let event = new_event(Uuid::new_v4(), "Sized", json!({"n": n, "payload": payload}));
        store
            .append("steady", ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    };
    // The WAL file keeps the length of its longest run (SQLite rewrites it from the start).
    let frames = || std::fs::metadata(&wal_path).unwrap().len() / (4096 + 24);

    // A reader's snapshot keeps every checkpoint from copying past it: the WAL grows long,
    // and shows how many frames an append writes.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    reader
        .query_row("SELECT count(*) FROM events", [], |_| Ok(()))
        .unwrap();
    let mut n = 0;
    while frames() < 2_500 {
        append(n).await;
        n += 1;
    }
    reader.execute_batch("COMMIT").unwrap();
    // (A request made while the reader held on could copy nothing: it does not count.)
    let before = store.writer_stats().restart_checkpoints;

    // Appends go on without a pause, enough for 12,000 frames: a WAL that never started over
    // would reach the automatic checkpoint's 10,000.
    let more = 12_000 * n / frames();
    for _ in 0..more {
        append(n).await;
        n += 1;
    }
    assert!(
        store.writer_stats().restart_checkpoints > before,
        "the writer never ran the checkpoint that lets the WAL start over"
    );
    assert!(
        frames() < 9_000,
        "the WAL grew to {} frames over {more} appends",
        frames()
    );
}

/// Appends queued while the writer is busy are committed in one transaction, and each caller
/// gets its own result: successes, a conflict, retries and a partial retry side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_gives_each_caller_its_own_result() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_secs(120),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(&path, options).unwrap());
    store
        .append("contended", ExpectedVersion::NoStream, one("v0"))
        .await
        .unwrap();

    // Stall the writer on a blocker append, so everything sent next queues behind it.
    let lock = WriteLock::take(&path);
    let blocker_events = vec![
        new_event(Uuid::new_v4(), "Blocker", json!(1)),
        new_event(Uuid::new_v4(), "Blocker", json!(2)),
    ];
    let blocker = {
        let (store, events) = (Arc::clone(&store), blocker_events.clone());
        tokio::spawn(async move {
            store
                .append("blocker", ExpectedVersion::NoStream, events)
                .await
        })
    };
    wait_until("the writer holds the blocker", || {
        store.writer_stats().appends == 2
    })
    .await;
    let before = store.writer_stats();

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Contended,
        NewStream,
        Retry,
        Partial,
        SameNewTwice,
    }
    let twin = new_event(Uuid::new_v4(), "Twin", json!("twin"));
    let mut requests: Vec<(Kind, String, ExpectedVersion, Vec<NewEvent>)> = Vec::new();
    for i in 0..16 {
        requests.push((
            Kind::Contended,
            "contended".into(),
            ExpectedVersion::Exact(0),
            one("c"),
        ));
        requests.push((
            Kind::NewStream,
            format!("new-{i}"),
            ExpectedVersion::NoStream,
            one("n"),
        ));
        requests.push((
            Kind::Retry,
            "blocker".into(),
            ExpectedVersion::NoStream,
            blocker_events.clone(),
        ));
    }
    for _ in 0..8 {
        let events = vec![
            blocker_events[0].clone(),
            new_event(Uuid::new_v4(), "Extra", json!(0)),
        ];
        requests.push((
            Kind::Partial,
            "blocker".into(),
            ExpectedVersion::Any,
            events,
        ));
    }
    for _ in 0..2 {
        requests.push((
            Kind::SameNewTwice,
            "twins".into(),
            ExpectedVersion::Any,
            vec![twin.clone()],
        ));
    }
    let count = requests.len() as u64;
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(kind, stream, expected, events)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                (
                    kind,
                    stream.clone(),
                    store.append(&stream, expected, events).await,
                )
            })
        })
        .collect();
    wait_until("every append is queued", || {
        store.pending_appends() as u64 == count
    })
    .await;
    lock.release();

    let blocker: AppendOutcome = blocker.await.unwrap().expect("the blocker commits");
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let after = store.writer_stats();
    assert_eq!(
        (
            after.batches - before.batches,
            after.appends - before.appends
        ),
        (1, count),
        "all {count} appends queued behind the blocker must be one transaction"
    );

    let of = |kind: Kind| results.iter().filter(move |(k, _, _)| *k == kind);
    let contended_ok: Vec<_> = of(Kind::Contended).filter(|(_, _, r)| r.is_ok()).collect();
    assert_eq!(
        contended_ok.len(),
        1,
        "exactly one Exact(0) append to `contended` wins"
    );
    assert_eq!(contended_ok[0].2.as_ref().unwrap().events[0].version, 1);
    for (_, _, result) in of(Kind::Contended).filter(|(_, _, r)| r.is_err()) {
        assert_eq!(
            result.as_ref().unwrap_err(),
            &StoreError::WrongExpectedVersion {
                stream: "contended".into(),
                expected: ExpectedVersion::Exact(0),
                actual: Some(1)
            }
        );
    }
    for (_, stream, result) in of(Kind::NewStream) {
        let outcome = result.as_ref().unwrap_or_else(|e| panic!("{stream}: {e}"));
        assert_eq!(
            (outcome.stream.as_str(), outcome.events[0].version),
            (stream.as_str(), 0)
        );
        assert!(!outcome.already_recorded);
    }
    for (_, _, result) in of(Kind::Retry) {
        let outcome = result
            .as_ref()
            .expect("a retry of a committed append succeeds");
        assert!(outcome.already_recorded);
        assert_eq!(outcome.events, blocker.events);
    }
    for (_, _, result) in of(Kind::Partial) {
        assert_eq!(
            result.as_ref().unwrap_err(),
            &StoreError::PartiallyRecorded {
                stream: "blocker".into(),
                event_id: blocker_events[0].event_id
            }
        );
    }
    let twins: Vec<&AppendOutcome> = of(Kind::SameNewTwice)
        .map(|(_, _, r)| r.as_ref().unwrap())
        .collect();
    assert_eq!(
        twins.iter().filter(|o| o.already_recorded).count(),
        1,
        "the second of two identical appends in one batch is a retry of the first"
    );
    assert_eq!(twins[0].events, twins[1].events);

    assert_eq!(store.stream_version("contended").await.unwrap(), Some(1));
    assert_eq!(store.stream_version("blocker").await.unwrap(), Some(1));
    assert_eq!(store.stream_version("twins").await.unwrap(), Some(0));
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.len(),
        1 + 2 + 1 + 16 + 1,
        "contended v0, blocker ×2, contended v1, 16 new streams, one twin"
    );
}

/// A file written by schema version 1 (which also had a `UNIQUE (stream, event_id)` index) is
/// migrated in place when opened: its events keep their positions and versions, and retries
/// of them are still recognised.
#[tokio::test]
async fn a_version_1_file_is_migrated_keeping_its_events() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let id = Uuid::new_v4();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../src/sqlite/sql/schema_v1.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO events VALUES (7, 'call-1', 0, ?1, 'Tested', 1, 0, 0, 0, 0, '{\"v\":1}', '{}')",
            [id.as_bytes().as_slice()],
        )
        .unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }

    let store = open(&path);
    let read = store.read_all(0, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].position, read[0].version), (7, 0));
    assert_eq!(read[0].data, json!({"v": 1}));
    let retry = store
        .append(
            "call-1",
            ExpectedVersion::Any,
            vec![new_event(id, "Tested", json!({"v": 1}))],
        )
        .await
        .unwrap();
    assert!(
        retry.already_recorded,
        "a v1 event's id must still be known"
    );
    assert_eq!((retry.events[0].version, retry.events[0].position), (0, 7));
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, SCHEMA_VERSION,
        "the file is stamped with the new version"
    );
}

/// The writer remembers each stream's last version and ids; a commit by another connection
/// (another process on the same file) must make it read them again, not trust its memory.
#[tokio::test]
async fn the_writer_sees_appends_made_by_another_connection() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path);
    store
        .append("call-1", ExpectedVersion::NoStream, one("ours"))
        .await
        .unwrap();

    let theirs = Uuid::new_v4();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO events (stream, version, event_id, event_type, schema_version,
                 occurred_s, occurred_ns, recorded_s, recorded_ns, data, metadata)
             VALUES ('call-1', 1, ?1, 'Tested', 1, 0, 0, 0, 0, '{}', '{}')",
            [theirs.as_bytes().as_slice()],
        )
        .unwrap();
    }

    let err = store
        .append("call-1", ExpectedVersion::Exact(0), one("stale"))
        .await
        .expect_err("the stream is at version 1 now");
    assert!(
        matches!(
            err,
            StoreError::WrongExpectedVersion {
                actual: Some(1),
                ..
            }
        ),
        "{err}"
    );
    // Reads stop at the head, which the refused append moved past their commit: a caller
    // told "actual: 1" can read version 1 and decide again.
    assert_eq!(store.stream_version("call-1").await.unwrap(), Some(1));
    let stream = store.read_stream("call-1", 0, 10).await.unwrap();
    assert_eq!(stream.last().map(|e| e.event_id), Some(theirs));
    let retry = store
        .append(
            "call-1",
            ExpectedVersion::Any,
            vec![new_event(theirs, "Tested", json!({}))],
        )
        .await
        .unwrap();
    assert!(retry.already_recorded, "their event's id must be known");
    let next = store
        .append("call-1", ExpectedVersion::Exact(1), one("after"))
        .await
        .unwrap();
    assert_eq!(next.events[0].version, 2);
}

/// Large pages are read in two halves at once; the result is exactly what small pages give,
/// also over a stretch of positions with no events (a file migrated from an older layout may
/// have such gaps; this store never makes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pages_read_in_halves_equal_small_pages_even_across_gaps() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path);
    for i in 0..3_000 {
        store
            .append(
                &format!("page-{}", i % 13),
                ExpectedVersion::Any,
                one(&i.to_string()),
            )
            .await
            .unwrap();
    }
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM events WHERE position BETWEEN 100 AND 400", [])
        .unwrap();
    let store = open(&path);

    let read_in = |page: usize| {
        let store = &store;
        async move {
            let mut all = Vec::new();
            let mut next = 1;
            loop {
                let events = store.read_all(next, page).await.unwrap();
                let Some(last) = events.last() else {
                    return all;
                };
                next = last.position + 1;
                let full = events.len() == page;
                all.extend(events.into_iter().map(|e| e.position));
                assert!(
                    full || store_is_exhausted(store, next).await,
                    "a short page before the end"
                );
            }
        }
    };
    let small = read_in(10).await;
    assert_eq!(small.len(), 3_000 - 301);
    assert_eq!(read_in(1_000).await, small, "pages of 1000");
    assert_eq!(read_in(777).await, small, "pages of 777");
    // A page from just before the gap: its first half is short, the rest is filled.
    let page = store.read_all(50, 1_000).await.unwrap();
    let expected: Vec<u64> = small
        .iter()
        .copied()
        .filter(|p| *p >= 50)
        .take(1_000)
        .collect();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        expected
    );
}

async fn store_is_exhausted(store: &SqliteStore, next: u64) -> bool {
    store.read_all(next, 1).await.unwrap().is_empty()
}
