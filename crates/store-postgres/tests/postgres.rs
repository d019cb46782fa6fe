//! What only the PostgreSQL store has: the global order under writers that hold positions
//! open, other processes' commits waking `watch_head`, refusals at connect, its own schema
//! management, and surviving lost connections.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_store::conformance::new_event;
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, StoreError};
use switchboard_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use tokio_postgres::Client;
use uuid::Uuid;

use support::{Schemas, database_url, raw_client};

/// Bounds a wait that can only end by the store doing what it must; never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn one(label: &str) -> Vec<NewEvent> {
    vec![new_event(Uuid::new_v4(), "Tested", json!({"label": label}))]
}

/// Waits (re-checking every few milliseconds) until `condition` holds, or panics naming it.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sessions of `application_name` that are waiting for a lock.
async fn waiting_on_a_lock(observer: &Client, application_name: &str) -> bool {
    let row = observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
            &[&application_name],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) > 0
}

/// A raw session in `schema`, as another process would have.
async fn session_in(url: &str, schema: &str) -> Client {
    let client = raw_client(url).await;
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .unwrap();
    client
}

/// The sequence-gap problem, staged: a writer takes the next position and holds its
/// transaction open; a later append must not become visible above the gap meanwhile, or a
/// reader of `$all` would pass the gap and never see the held event once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_passes_a_position_an_open_transaction_holds() {
    let Some(url) = database_url("a_reader_never_passes_a_position_an_open_transaction_holds")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let application_name = options.application_name.clone();
    let store = Arc::new(PostgresStore::connect(&url, options).await.unwrap());
    let first = store
        .append("before", ExpectedVersion::NoStream, one("before"))
        .await
        .unwrap();
    let seen = first.events[0].position;

    // Another process appends by the store's protocol (lock the counter, take the next
    // position, insert, advance the counter) and stays uncommitted.
    let mut held_session = session_in(&url, store.schema()).await;
    let held_tx = held_session.transaction().await.unwrap();
    let held_id = Uuid::new_v4();
    let last: i64 = held_tx
        .query_one("SELECT last_position FROM global_position FOR UPDATE", &[])
        .await
        .unwrap()
        .get(0);
    let held_position = last as u64 + 1;
    assert_eq!(
        held_position,
        seen + 1,
        "the held append takes the next position"
    );
    held_tx
        .execute(
            "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, \
             occurred_at, occurred_nanos, recorded_at, data, metadata) \
             VALUES ($1, 'held', 0, $2, 'Held', 1, now(), 0, now(), '{}', '{}')",
            &[&(held_position as i64), &held_id],
        )
        .await
        .unwrap();
    held_tx
        .batch_execute(&format!(
            "INSERT INTO streams (name, last_version) VALUES ('held', 0); \
             UPDATE global_position SET last_position = {held_position};"
        ))
        .await
        .unwrap();

    let later = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .append("later", ExpectedVersion::NoStream, one("later"))
                .await
        })
    };
    // Either the later append waits for the held one (as it must), or it commits: in the
    // second case the reader check below shows the damage.
    let observer = raw_client(&url).await;
    wait_until(
        "the later append waits for the held position or finishes",
        || async { later.is_finished() || waiting_on_a_lock(&observer, &application_name).await },
    )
    .await;

    let visible = store.read_all(seen + 1, 100).await.unwrap();
    assert!(
        visible.is_empty(),
        "while position {held_position} is held by an open transaction, a reader from there \
         sees {:?}: it would pass the gap and miss the held event",
        visible.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    assert_eq!(store.head_position().await.unwrap(), seen);

    held_tx.commit().await.unwrap();
    let later = tokio::time::timeout(HANG_GUARD, later)
        .await
        .expect("the later append never committed after the held one did")
        .unwrap()
        .unwrap();
    assert!(later.events[0].position > held_position);

    let after: Vec<(u64, Uuid)> = store
        .read_all(seen + 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.position, e.event_id))
        .collect();
    assert_eq!(
        after,
        [
            (held_position, held_id),
            (later.events[0].position, later.events[0].event_id)
        ],
        "the reader resumes at the held event, then the later one"
    );
}

/// Two stores on one schema stand for two service instances: a commit by one wakes the
/// other's `watch_head` through LISTEN/NOTIFY, though the other never appended anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_commit_wakes_watch_head() {
    let Some(url) = database_url("another_processs_commit_wakes_watch_head") else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let writer = PostgresStore::connect(&url, options.clone()).await.unwrap();
    let watcher = PostgresStore::connect(&url, options).await.unwrap();
    // A store in another schema of the same database must not wake it.
    let neighbour = schemas.store().await;

    let mut head = watcher.watch_head();
    assert_eq!(*head.borrow_and_update(), 0);
    // The listener reads the head once it listens; wait until it has, by seeing a commit
    // through it (the neighbour's commits are filtered out by schema).
    neighbour
        .append("elsewhere", ExpectedVersion::Any, one("neighbour"))
        .await
        .unwrap();
    let outcome = writer
        .append("s", ExpectedVersion::NoStream, one("first"))
        .await
        .unwrap();
    tokio::time::timeout(
        HANG_GUARD,
        head.wait_for(|&h| h >= outcome.events[0].position),
    )
    .await
    .expect("the watcher's head never saw the other store's commit")
    .unwrap();
    assert_eq!(
        *head.borrow_and_update(),
        outcome.events[0].position,
        "the head is the writer's commit, not the neighbour schema's"
    );

    let second = writer
        .append("s", ExpectedVersion::Exact(0), one("second"))
        .await
        .unwrap();
    tokio::time::timeout(HANG_GUARD, head.changed())
        .await
        .expect("a second commit never woke the watcher")
        .unwrap();
    assert_eq!(*head.borrow(), second.events[0].position);
    assert_eq!(
        watcher.read_all(0, 10).await.unwrap().len(),
        2,
        "the watcher reads what the other instance wrote"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_is_never_shown() {
    // Port 1 on the loopback: nothing listens there, so the connection is refused.
    let url = "postgres://switchboard:s3cret-pass@127.0.0.1:1/events";
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    };
    let err = match PostgresStore::connect(url, options).await {
        Ok(_) => panic!("nothing listens on 127.0.0.1:1, yet connect succeeded"),
        Err(err) => err,
    };
    assert!(err.is_transient(), "{err:?}");
    let message = err.to_string();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "expected Unavailable, got {err:?}"
    );
    assert!(
        message.contains("switchboard@127.0.0.1:1/events") && message.contains("unreachable"),
        "the message must name the server and the problem: {message}"
    );
    assert!(
        !message.contains("s3cret-pass"),
        "the password leaked: {message}"
    );
}

#[tokio::test]
async fn a_malformed_url_or_schema_name_is_refused_at_connect() {
    let err = PostgresStore::connect("postgres://host:notaport/db", PostgresOptions::default())
        .await
        .err()
        .expect("a URL with a non-numeric port must be refused");
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("invalid PostgreSQL URL")),
        "{err:?}"
    );
    let options = PostgresOptions {
        schema: "Robert'); DROP TABLE students;--".to_owned(),
        ..PostgresOptions::default()
    };
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test", options)
        .await
        .err()
        .expect("an invalid schema name must be refused");
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("invalid PostgreSQL schema name")),
        "{err:?}"
    );
}

/// The schema versions the store's migrations recorded, in order.
async fn recorded_versions(session: &Client) -> Vec<i32> {
    session
        .query(
            "SELECT version FROM switchboard_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn table_count(client: &Client, schema: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused_and_left_unaltered() {
    let Some(url) = database_url("a_schema_from_a_newer_build_is_refused_and_left_unaltered")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let schema = options.schema.clone();
    let store = PostgresStore::connect(&url, options.clone()).await.unwrap();
    store
        .append("kept", ExpectedVersion::NoStream, one("kept"))
        .await
        .unwrap();
    drop(store);

    let client = session_in(&url, &schema).await;
    let newer = SCHEMA_VERSION + 1;
    client
        .execute(
            "INSERT INTO switchboard_schema_version (version) VALUES ($1)",
            &[&newer],
        )
        .await
        .unwrap();
    let tables_before = table_count(&client, &schema).await;

    let err = PostgresStore::connect(&url, options.clone())
        .await
        .err()
        .expect("a schema at a newer version must be refused");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        message.contains(&format!("version {newer}")) && message.contains(&schema),
        "the message must name the schema and its version: {message}"
    );
    assert_eq!(
        recorded_versions(&client).await,
        (1..=SCHEMA_VERSION).chain([newer]).collect::<Vec<_>>(),
        "the version record must be left as it was"
    );
    assert_eq!(table_count(&client, &schema).await, tables_before);
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1, "the events must be left as they were");
}

/// A store written by schema version 1 is migrated in place: its events read back as before,
/// as the compact, key-sorted JSON every backend hands out, and it then takes what version 1
/// refused — a NUL character in an event's text — handing it back exactly, while analysts'
/// jsonb queries still work on every row, the new one showing U+FFFD for the NUL.
#[tokio::test]
async fn a_version_1_store_is_migrated_and_then_keeps_nul_characters() {
    let Some(url) = database_url("a_version_1_store_is_migrated_and_then_keeps_nul_characters")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let schema = options.schema.clone();
    let client = raw_client(&url).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema};
             CREATE TABLE switchboard_schema_version (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             {v1}
             INSERT INTO switchboard_schema_version (version) VALUES (1);
             INSERT INTO events VALUES (1, 'call-old', 0, '{id}', 'CallEnded', 1, now(), 0, now(),
                 '{{\"z\": {{\"b\": 2, \"a\": 1}}, \"call_id\": \"old\"}}'::jsonb, '{{}}'::jsonb);
             INSERT INTO streams VALUES ('call-old', 0);
             UPDATE global_position SET last_position = 1;",
            v1 = include_str!("../src/sql/schema_v1.sql"),
            id = Uuid::new_v4(),
        ))
        .await
        .unwrap();

    let store = PostgresStore::connect(&url, options).await.unwrap();
    let old = store.read_all(0, 10).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        old[0].data.as_str(),
        r#"{"call_id":"old","z":{"a":1,"b":2}}"#,
        "an event of version 1 reads back compact and key-sorted"
    );

    let text = json!({"call_id": "new", "transcript": "a\u{0}b"});
    store
        .append(
            "call-new",
            ExpectedVersion::NoStream,
            vec![new_event(Uuid::new_v4(), "CallEnded", text.clone())],
        )
        .await
        .expect("a NUL in an event's text is stored");
    let new = store.read_stream("call-new", 0, 10).await.unwrap();
    assert_eq!(new[0].data.to_value().unwrap(), text);
    assert_eq!(
        new[0].data.as_str(),
        r#"{"call_id":"new","transcript":"a\u0000b"}"#
    );

    let session = session_in(&url, &schema).await;
    assert_eq!(
        recorded_versions(&session).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    // Analysts' jsonb queries run over every row, the one with a NUL included.
    let rows: Vec<(String, Option<String>, bool)> = session
        .query(
            "SELECT data->>'call_id', data->>'transcript', data_exact IS NOT NULL
             FROM events WHERE data @> '{}'::jsonb ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("old".to_owned(), None, false),
            ("new".to_owned(), Some("a\u{FFFD}b".to_owned()), true)
        ]
    );
}

#[tokio::test]
async fn foreign_tables_with_the_stores_names_are_refused_and_left_unaltered() {
    let Some(url) =
        database_url("foreign_tables_with_the_stores_names_are_refused_and_left_unaltered")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let schema = options.schema.clone();
    let client = raw_client(&url).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; \
             CREATE TABLE {schema}.events (id serial PRIMARY KEY, what text); \
             INSERT INTO {schema}.events (what) VALUES ('not ours');"
        ))
        .await
        .unwrap();

    let err = PostgresStore::connect(&url, options)
        .await
        .err()
        .expect("a schema with someone else's `events` table must be refused");
    assert!(
        matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("events") && reason.contains("not a Switchboard event store")),
        "{err:?}"
    );
    assert_eq!(
        table_count(&client, &schema).await,
        1,
        "no table may be added to the foreign schema"
    );
    let what: String = client
        .query_one(&format!("SELECT what FROM {schema}.events"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(what, "not ours");
}

#[tokio::test]
async fn a_user_without_privileges_is_refused_with_a_message_saying_so() {
    let Some(url) = database_url("a_user_without_privileges_is_refused_with_a_message_saying_so")
    else {
        return;
    };
    let admin = raw_client(&url).await;
    let role = format!("sb_test_role_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.user(&role);
    let options = PostgresOptions {
        schema: format!("sb_test_{}", Uuid::new_v4().simple()),
        ..PostgresOptions::default()
    };
    // The URL of the same database with the unprivileged role (trust auth, no password).
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test database must be reached over TCP, not {other:?}"),
    };
    let role_url = format!(
        "postgres://{role}@{host}:{}/{}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("postgres")
    );
    let result = PostgresStore::connect(&role_url, options).await;
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();

    let err = result
        .err()
        .expect("a role that may not create the schema must be refused");
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("lacks a privilege") && m.contains(&role)),
        "{err:?}"
    );
}

/// Kills every server session of the store (as a database restart would) and checks that
/// appends, reads and the head watch recover on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_after_its_sessions_are_killed() {
    let Some(url) = database_url("the_store_reconnects_after_its_sessions_are_killed") else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let application_name = options.application_name.clone();
    let store = PostgresStore::connect(&url, options.clone()).await.unwrap();
    let other_instance = PostgresStore::connect(&url, options).await.unwrap();
    store
        .append("s", ExpectedVersion::NoStream, one("before"))
        .await
        .unwrap();
    store.read_all(0, 10).await.unwrap();

    let admin = raw_client(&url).await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) AS t",
            &[&application_name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        killed >= 2,
        "expected the store's sessions to be killed, got {killed}"
    );

    // The first request may meet a dead connection and say so; a retry gets a fresh one.
    let mut attempts = Vec::new();
    let outcome = loop {
        match store
            .append("s", ExpectedVersion::Exact(0), one("after"))
            .await
        {
            Ok(outcome) => break outcome,
            Err(err) => {
                assert!(
                    err.is_transient(),
                    "a lost connection must be transient: {err:?}"
                );
                attempts.push(err);
                assert!(attempts.len() < 8, "no recovery after {attempts:?}");
            }
        }
    };
    assert_eq!(outcome.events[0].version, 1);
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 2);

    // The listener reconnected too: a commit by the other instance still wakes this store.
    let mut head = store.watch_head();
    let theirs = loop {
        match other_instance
            .append("t", ExpectedVersion::Any, one("theirs"))
            .await
        {
            Ok(outcome) => break outcome,
            Err(err) => assert!(err.is_transient(), "{err:?}"),
        }
    };
    tokio::time::timeout(
        HANG_GUARD,
        head.wait_for(|&h| h >= theirs.events[0].position),
    )
    .await
    .expect("after the sessions were killed, another instance's commit never woke the head")
    .unwrap();
}

/// A lock held past the session's `lock_timeout` (a DBA's setting, say) leaves nothing
/// written: the append is `Unavailable` (503, retry), not a backend failure (500), and succeeds
/// once the lock is gone.
#[tokio::test]
async fn an_append_locked_out_past_the_lock_timeout_is_unavailable_and_then_succeeds() {
    let Some(url) = database_url("an_append_locked_out_past_the_lock_timeout_is_unavailable")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let separator = if url.contains('?') { '&' } else { '?' };
    let impatient = format!("{url}{separator}options=-c%20lock_timeout%3D200");
    let store = PostgresStore::connect(&impatient, schemas.options())
        .await
        .unwrap();
    store
        .append("first", ExpectedVersion::NoStream, one("first"))
        .await
        .unwrap();

    let mut holder = session_in(&url, store.schema()).await;
    let held = holder.transaction().await.unwrap();
    held.batch_execute("LOCK TABLE global_position IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let locked_out = tokio::time::timeout(
        HANG_GUARD,
        store.append("second", ExpectedVersion::NoStream, one("second")),
    )
    .await
    .expect("the lock timeout ends the wait");
    // Released before asserting: a failing test must not leave the lock to the schema's drop.
    held.rollback().await.unwrap();
    assert!(
        matches!(locked_out, Err(StoreError::Unavailable(_))),
        "{locked_out:?}"
    );

    store
        .append("second", ExpectedVersion::NoStream, one("second"))
        .await
        .expect("the same append once the lock is gone");
}

/// An append PostgreSQL itself cannot store (a stream name too long for its index, a program
/// limit no other check catches) fails the transaction it is in; the appends committed in the
/// same batch must not pay for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_postgres_refuses_does_not_fail_its_batch_neighbours() {
    let Some(url) = database_url("an_append_postgres_refuses_does_not_fail_its_batch_neighbours")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let application_name = options.application_name.clone();
    let store = Arc::new(PostgresStore::connect(&url, options).await.unwrap());

    // Stall the writer behind the position lock, so the appends sent next queue up and are
    // committed as one batch once it is released.
    let mut locker = session_in(&url, store.schema()).await;
    let lock = locker.transaction().await.unwrap();
    lock.execute("SELECT 1 FROM global_position FOR UPDATE", &[])
        .await
        .unwrap();
    let spawn_append = |stream: &'static str, events: Vec<NewEvent>| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.append(stream, ExpectedVersion::Any, events).await })
    };
    let stalled = spawn_append("stalled", one("stalled"));
    let observer = raw_client(&url).await;
    wait_until("the writer waits on the position lock", || {
        waiting_on_a_lock(&observer, &application_name)
    })
    .await;

    // Random hex, so PostgreSQL cannot compress the index entry under its ~2.7 KB limit.
    let too_long: &'static str = Box::leak(
        format!(
            "too-long-{}",
            (0..300)
                .map(|_| Uuid::new_v4().simple().to_string())
                .collect::<String>()
        )
        .into_boxed_str(),
    );
    let batch = [
        spawn_append("good-1", one("good")),
        spawn_append(too_long, one("refused")),
        spawn_append("good-2", one("good")),
    ];
    wait_until("the three appends are queued", || async {
        store.pending_appends() == 3
    })
    .await;
    lock.rollback().await.unwrap();

    stalled.await.unwrap().unwrap();
    let [good_1, refused, good_2] = batch;
    let err = refused.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidAppend(m) if m.contains("stream too-long-")),
        "{err:?}"
    );
    good_1
        .await
        .unwrap()
        .expect("a neighbour of the refused append");
    good_2
        .await
        .unwrap()
        .expect("a neighbour of the refused append");
    let mut streams: Vec<String> = store
        .read_all(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.stream)
        .collect();
    // The two neighbours were queued by separate tasks, in either order.
    streams[1..].sort();
    assert_eq!(streams, ["stalled", "good-1", "good-2"]);
}

/// Appends queued behind the position lock are committed together once it goes, in one
/// transaction, unless their JSON passes `max_batch_bytes`: then in parts, each its own
/// transaction, every append still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_its_byte_bound_is_committed_in_parts() {
    let Some(url) = database_url("a_batch_over_its_byte_bound_is_committed_in_parts") else {
        return;
    };
    let schemas = Schemas::new(&url);
    let sample = &one("queued-1")[0];
    let size = sample.data.to_string().len() + sample.metadata.to_string().len();
    for (max_batch_bytes, commits) in [(usize::MAX, 1i64), (2 * size, 2), (1, 4)] {
        let options = PostgresOptions {
            max_batch_bytes,
            ..schemas.options()
        };
        let application_name = options.application_name.clone();
        let store = Arc::new(PostgresStore::connect(&url, options).await.unwrap());
        let mut locker = session_in(&url, store.schema()).await;
        let lock = locker.transaction().await.unwrap();
        lock.execute("SELECT 1 FROM global_position FOR UPDATE", &[])
            .await
            .unwrap();
        let spawn_append = |stream: String| {
            let store = Arc::clone(&store);
            let events = one(&stream);
            tokio::spawn(async move { store.append(&stream, ExpectedVersion::Any, events).await })
        };
        let stalled = spawn_append("stalled".to_owned());
        let observer = raw_client(&url).await;
        wait_until("the writer waits on the position lock", || {
            waiting_on_a_lock(&observer, &application_name)
        })
        .await;
        let queued: Vec<_> = (1..=4)
            .map(|n| spawn_append(format!("queued-{n}")))
            .collect();
        wait_until("the four appends are queued", || async {
            store.pending_appends() == 4
        })
        .await;
        lock.rollback().await.unwrap();
        stalled.await.unwrap().unwrap();
        for append in queued {
            append
                .await
                .unwrap()
                .expect("every queued append is committed");
        }

        let events = store.read_all(0, 10).await.unwrap();
        let queued: Vec<_> = events.iter().filter(|e| e.stream != "stalled").collect();
        assert_eq!(queued.len(), 4);
        // Each transaction that wrote rows has its own id (`xmin`).
        let session = session_in(&url, store.schema()).await;
        let transactions: i64 = session
            .query_one(
                "SELECT count(DISTINCT xmin::text) FROM events WHERE stream <> 'stalled'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            transactions, commits,
            "max_batch_bytes {max_batch_bytes}: {queued:?}"
        );
    }
}

/// A schema that records the current version but whose events table lacks what this build
/// uses is refused at connect, naming what is wrong, instead of failing every append.
#[tokio::test]
async fn a_schema_whose_events_table_does_not_match_its_version_is_refused() {
    let Some(url) =
        database_url("a_schema_whose_events_table_does_not_match_its_version_is_refused")
    else {
        return;
    };
    let schemas = Schemas::new(&url);
    let options = schemas.options();
    let schema = options.schema.clone();
    drop(PostgresStore::connect(&url, options.clone()).await.unwrap());
    let session = session_in(&url, &schema).await;
    session
        .batch_execute(
            "ALTER TABLE events DROP COLUMN data_exact;
             ALTER TABLE events ALTER COLUMN metadata TYPE json USING metadata::json",
        )
        .await
        .unwrap();

    let err = PostgresStore::connect(&url, options)
        .await
        .err()
        .expect("a mismatched events table must be refused");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        message.contains("data_exact (missing)") && message.contains("metadata (not jsonb)"),
        "{message}"
    );
}
