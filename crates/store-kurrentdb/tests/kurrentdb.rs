//! KurrentDB-specific behaviour beyond the conformance suite: duplicates caught without
//! KurrentDB's id cache, the head fed by commits of another process, and an unreachable server.

mod support;

use std::time::Duration;

use serde_json::json;
use switchboard_store::conformance::new_event;
use switchboard_store::{EventStore, ExpectedVersion, StoreError};
use switchboard_store_kurrentdb::{KurrentOptions, KurrentStore};
use uuid::Uuid;

/// Bounds waits that end only by the store doing its job, so a broken store fails instead of
/// hanging; never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A delivery sent again long after the first (past any id cache), decided by the ledger
/// against the stream as it was before the first was recorded: its events carry ids no cache
/// has seen, and only the expected-version check stands between it and a duplicate. The
/// server's ledger relies on exactly this (crates/server/src/ledger/mod.rs).
#[tokio::test]
async fn a_resent_delivery_is_refused_by_the_expected_version_check() {
    let Some(url) =
        support::server_url("a_resent_delivery_is_refused_by_the_expected_version_check")
    else {
        return;
    };
    let store = support::fresh_store(&url).await;
    let stream = "call-resent";
    let delivery = |id| {
        let mut event = new_event(id, "CallEnded", json!({"call_id": "resent"}));
        event.metadata = json!({"dedupe_key": "retell:call_ended:resent"});
        event
    };

    let first = store
        .append(
            stream,
            ExpectedVersion::NoStream,
            vec![delivery(Uuid::new_v4())],
        )
        .await
        .unwrap();
    assert!(!first.already_recorded);

    let err = store
        .append(
            stream,
            ExpectedVersion::NoStream,
            vec![delivery(Uuid::new_v4())],
        )
        .await
        .expect_err("the re-sent delivery must be refused");
    assert_eq!(
        err,
        StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected: ExpectedVersion::NoStream,
            actual: Some(0),
        }
    );
    let recorded = store.read_stream(stream, 0, 10).await.unwrap();
    assert_eq!(
        recorded.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        [first.events[0].event_id],
        "the stream holds the first delivery only"
    );
}

/// The same event id appended again expecting the stream's current revision: KurrentDB's own
/// check would take it as new once its id cache has forgotten the id (the expected revision
/// matches). The store finds the id in the stream and reports the original place instead.
#[tokio::test]
async fn an_event_id_is_recognised_from_the_stream_not_a_cache() {
    let Some(url) = support::server_url("an_event_id_is_recognised_from_the_stream_not_a_cache")
    else {
        return;
    };
    let store = support::fresh_store(&url).await;
    let stream = "booking-again";
    let original = new_event(Uuid::new_v4(), "BookingCreated", json!({"uid": "again"}));
    let first = store
        .append(stream, ExpectedVersion::NoStream, vec![original.clone()])
        .await
        .unwrap();
    // Other events in between, so the retry is not at the revision it was first written at.
    store
        .append(
            stream,
            ExpectedVersion::Exact(0),
            vec![new_event(Uuid::new_v4(), "BookingRescheduled", json!({}))],
        )
        .await
        .unwrap();

    let retry = store
        .append(stream, ExpectedVersion::Exact(1), vec![original])
        .await
        .unwrap();
    assert!(retry.already_recorded);
    assert_eq!(retry.events, first.events);
    assert_eq!(store.stream_version(stream).await.unwrap(), Some(1));
}

/// Commits made through another connection (another Switchboard instance) move this store's
/// head: the head subscription follows `$all`, not only this process's appends.
#[tokio::test]
async fn another_instances_commit_moves_the_head() {
    let Some(url) = support::server_url("another_instances_commit_moves_the_head") else {
        return;
    };
    let options = support::fresh_options();
    let watcher = KurrentStore::connect(&url, options.clone()).await.unwrap();
    let writer = KurrentStore::connect(&url, options).await.unwrap();
    let mut head = watcher.watch_head();
    head.borrow_and_update();

    let appended = writer
        .append(
            "tenant-other",
            ExpectedVersion::NoStream,
            vec![new_event(Uuid::new_v4(), "TenantRegistered", json!({}))],
        )
        .await
        .unwrap();
    let position = appended.events[0].position;
    tokio::time::timeout(HANG_GUARD, head.wait_for(|&h| h >= position))
        .await
        .expect("the watcher's head never reached the other instance's commit")
        .expect("the head closed");
    assert_eq!(watcher.head_position().await.unwrap(), position);
    let seen = watcher.read_all(position, 10).await.unwrap();
    assert_eq!(
        seen.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        [appended.events[0].event_id]
    );
}

/// Nothing listens on port 1: the store refuses to open with `Unavailable` (retry later),
/// naming the server and not the password. Runs everywhere.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let url = "kurrentdb://admin:changeit@127.0.0.1:1?tls=false&maxDiscoverAttempts=1";
    let err = tokio::time::timeout(
        HANG_GUARD,
        KurrentStore::connect(url, KurrentOptions::default()),
    )
    .await
    .expect("connecting to a closed port must fail, not hang")
    .err()
    .expect("nothing listens on port 1");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("127.0.0.1:1") && !m.contains("changeit")),
        "{err:?}"
    );
}
