//! Rebuilds: a full rebuild equals what live processing built, row for row, and is installed
//! under the readers and the runner of a running server; one projection's rebuild swaps only
//! its tables; `until` builds the past into its own file.

mod support;

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use support::history::generate;
use support::*;
use switchboard_projections::{
    ProjectionError, ProjectionName, Projector, ReadModels, RebuildReport, Until, read_models_path,
    rebuild,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_equals_the_live_read_models_row_for_row() {
    let h = Harness::new();
    // Live: the runner follows the subscription while the history is being appended, in
    // whatever batches the timing gives it, as a server would.
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    let running = run_in_background(projector);
    let lag = running.lag.clone();
    let generated = generate(h.dyn_store(), 50_000, 7).await;
    assert!(generated.events >= 50_000);
    assert!(
        generated.duplicates > 0,
        "the history has duplicate deliveries"
    );
    let head = h.head();
    lag.watch_checkpoint()
        .wait_for(|c| *c >= head)
        .await
        .unwrap();
    running.stop().await;
    let live = dump(&read_models_path(h.data_dir()));
    let rows = |dump: &[(String, Vec<String>)], table: &str| {
        dump.iter()
            .find(|(t, _)| t == table)
            .map(|(_, rows)| rows.len())
            .unwrap()
    };
    for table in [
        "calls",
        "appointments",
        "customers",
        "tenants",
        "branches",
        "payments",
        "anomalies",
    ] {
        assert!(
            rows(&live, table) > 0,
            "{table} is empty: the history does not exercise it"
        );
    }
    let anomalies = Connection::open(read_models_path(h.data_dir())).unwrap();
    let reasons: Vec<String> = anomalies
        .prepare("SELECT DISTINCT reason FROM anomalies ORDER BY reason")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for reason in [
        "reschedule_after_cancellation",
        "unattributed_call",
        "unattributed_payment",
        "unknown_event_type",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} in {reasons:?}"
        );
    }
    let resolved: i64 = anomalies
        .query_row(
            "SELECT COUNT(*) FROM anomalies WHERE resolved_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        resolved > 0,
        "late registrations resolve unattributed records"
    );
    drop(anomalies);

    // Rebuild, and compare every table.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let report = rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        None,
        move |done, total| {
            seen.lock().unwrap().push((done, total));
        },
    )
    .await
    .unwrap();
    assert_eq!(report.checkpoint, h.head());
    assert_eq!(report.swapped.len(), ProjectionName::ALL.len());
    let progress = calls.lock().unwrap().clone();
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress only moves forward"
    );
    assert_eq!(progress.last().map(|p| p.0), Some(h.head()));

    let rebuilt = dump(&read_models_path(h.data_dir()));
    assert_eq!(live.len(), rebuilt.len());
    for ((table, live_rows), (_, rebuilt_rows)) in live.iter().zip(&rebuilt) {
        assert_eq!(live_rows.len(), rebuilt_rows.len(), "{table}: row count");
        for (a, b) in live_rows.iter().zip(rebuilt_rows) {
            assert_eq!(a, b, "{table}: first differing row");
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_is_installed_under_running_readers_and_runner() {
    let h = Harness::new();
    generate(h.dyn_store(), 2_000, 5).await;
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    let running = run_in_background(projector);
    let lag = running.lag.clone();
    let caught_up = |head: u64| {
        let mut checkpoint = lag.watch_checkpoint();
        async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                checkpoint.wait_for(|c| *c >= head),
            )
            .await
            .expect("the runner catches up")
            .unwrap();
        }
    };
    caught_up(h.head()).await;
    let link = read_models_path(h.data_dir());
    assert!(
        !link.is_symlink(),
        "a plain file until the first full rebuild"
    );
    let read = ReadModels::open(h.data_dir()).unwrap();

    // Damage the live file by hand, so that it tells from the rebuilt one.
    let conn = Connection::open(&link).unwrap();
    conn.execute_batch("UPDATE calls SET status = 'broken'")
        .unwrap();
    let call_id: String = conn
        .query_row("SELECT call_id FROM calls LIMIT 1", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let status = |read: &ReadModels| read.call(&call_id).unwrap().unwrap().status;
    assert_eq!(status(&read), "broken");

    rebuild(h.dyn_store(), h.data_dir(), None, None, |_, _| {})
        .await
        .unwrap();
    let first = std::fs::read_link(&link).expect("the live path is a link now");
    assert!(
        first.to_string_lossy().starts_with("read_models.") && first.parent() == Some("".as_ref()),
        "a file beside the link: {first:?}"
    );
    assert_ne!(
        status(&read),
        "broken",
        "an open reader's next query reads the installed file"
    );
    assert_eq!(indexes(&link), expected_indexes());
    let journal: String = Connection::open(&link)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal", "the installed file is a live one");

    // A rebuild while events keep coming: new events are appended, and folded by the runner,
    // while the rebuild replays up to the head it started from; it catches up with the runner
    // before the switch, and the runner goes on in the new file.
    let replaying_to = h.head();
    let runtime = tokio::runtime::Handle::current();
    let (store, checkpoint) = (h.dyn_store(), lag.watch_checkpoint());
    let mut appended = false;
    let report = rebuild(h.dyn_store(), h.data_dir(), None, None, move |_, _| {
        if std::mem::replace(&mut appended, true) {
            return;
        }
        // On the rebuild's fold thread, after its first page: the replay waits meanwhile.
        let (store, mut checkpoint) = (store.clone(), checkpoint.clone());
        runtime.block_on(async move {
            generate(store.clone(), 1_000, 6).await;
            let head = *store.watch_head().borrow();
            checkpoint.wait_for(|c| *c >= head).await.unwrap();
        });
    })
    .await
    .unwrap();
    let head = h.head();
    assert!(head > replaying_to);
    assert_eq!(
        report.checkpoint, head,
        "the rebuild caught up with the runner before the switch"
    );
    let second = std::fs::read_link(&link).unwrap();
    assert_ne!(first, second);
    caught_up(head).await;
    assert_eq!(read.checkpoint().unwrap(), head);
    running.stop().await;

    // Each event once: what the runner built equals a rebuild, row for row.
    let live = dump(&link);
    rebuild(h.dyn_store(), h.data_dir(), None, None, |_, _| {})
        .await
        .unwrap();
    let third = std::fs::read_link(&link).unwrap();
    assert_eq!(
        dump(&link),
        live,
        "the runner's work equals a rebuild, row for row"
    );

    // The file before the last install stays for readers still on it; older ones go, and so
    // do the plain file's WAL and shared memory.
    assert!(!h.data_dir().join(&first).exists(), "{first:?} stayed");
    assert!(h.data_dir().join(&second).exists());
    assert!(h.data_dir().join(&third).exists());
    for companion in ["read_models.sqlite-wal", "read_models.sqlite-shm"] {
        assert!(!h.data_dir().join(companion).exists(), "{companion} stayed");
    }
}

/// Upgrading: a server of the older build may still answer from its read models while this
/// build's full rebuild replays, so the rebuild must not empty them first (as opening them to
/// fold would); the install replaces them whole.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rebuild_replaces_read_models_of_an_older_layout_without_emptying_them_first() {
    let h = Harness::new();
    generate(h.dyn_store(), 500, 5).await;
    drop(h.project().await);
    let link = read_models_path(h.data_dir());
    let current = dump(&link);
    turn_into_layout_1(&link);
    let tenants = |path: &std::path::Path| -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
            .unwrap()
    };
    let before = tenants(&link);
    assert!(before > 0);

    // What the live file holds while the rebuild replays.
    let during = Arc::new(Mutex::new(None));
    let (seen, live) = (Arc::clone(&during), link.clone());
    rebuild(h.dyn_store(), h.data_dir(), None, None, move |_, _| {
        let mut seen = seen.lock().unwrap();
        if seen.is_none() {
            *seen = Some((layout_and_customers(&live).0, tenants(&live)));
        }
    })
    .await
    .unwrap();
    assert_eq!(
        *during.lock().unwrap(),
        Some((1, before)),
        "the older read models stay whole until the install"
    );
    assert_eq!(dump(&link), current, "the installed file, row for row");
    let (layout, customers) = layout_and_customers(&link);
    assert_eq!(layout, switchboard_projections::LAYOUT_VERSION);
    assert!(customers.ends_with("WITHOUT ROWID"), "{customers}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_waited_out_a_switch_goes_to_the_new_file_not_the_old_one() {
    let h = Harness::new();
    generate(h.dyn_store(), 300, 9).await;
    let head = h.head();
    let link = read_models_path(h.data_dir());
    let mut projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    // Empty read models to switch to, as a rebuild would install its file.
    let elsewhere = tempfile::tempdir().unwrap();
    drop(ReadModels::open(elsewhere.path()).unwrap());
    let installed = "read_models.0000000000aa.sqlite";
    std::fs::copy(
        read_models_path(elsewhere.path()),
        h.data_dir().join(installed),
    )
    .unwrap();

    // Hold the live file's write lock, as an install does while it moves the link.
    let old_file = Connection::open(&link).unwrap();
    old_file.execute_batch("BEGIN IMMEDIATE").unwrap();
    let folding = tokio::spawn(async move {
        let result = projector.catch_up().await;
        (projector, result)
    });
    // Time for the batch to reach the lock and wait for it (were it not there yet, it would
    // find the link moved all the same, and the test would pass without testing the wait).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    move_link_to(h.data_dir(), installed);
    old_file.execute_batch("ROLLBACK").unwrap();

    let (mut projector, result) = folding.await.unwrap();
    assert!(
        matches!(result, Err(ProjectionError::Superseded(_))),
        "{result:?}"
    );
    let in_old_file: i64 = old_file
        .query_row("SELECT position FROM checkpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(in_old_file, 0, "nothing was committed to the replaced file");
    assert_eq!(projector.catch_up().await.unwrap(), head);
    assert_eq!(
        ReadModels::open(h.data_dir())
            .unwrap()
            .checkpoint()
            .unwrap(),
        head
    );
}

/// Read models a runner cannot fold into (here: a newer build's, installed underneath it)
/// pause it; the lag says why until it goes on.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_runner_says_why_and_goes_on_once_the_trouble_is_gone() {
    let h = Harness::new();
    generate(h.dyn_store(), 200, 4).await;
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    let running = run_in_background(projector);
    let lag = running.lag.clone();
    let head = h.head();
    let wait = std::time::Duration::from_secs(30);
    tokio::time::timeout(wait, lag.watch_checkpoint().wait_for(|c| *c >= head))
        .await
        .expect("caught up")
        .unwrap();
    assert_eq!(lag.paused(), None);

    // A newer build's read models, installed as a rebuild installs its file.
    let elsewhere = tempfile::tempdir().unwrap();
    drop(ReadModels::open(elsewhere.path()).unwrap());
    let installed = h.data_dir().join("read_models.0000000000bb.sqlite");
    std::fs::copy(read_models_path(elsewhere.path()), &installed).unwrap();
    let newer = switchboard_projections::LAYOUT_VERSION + 1;
    let set_layout = |layout: i64| {
        Connection::open(&installed)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {layout}"))
            .unwrap();
    };
    set_layout(newer);
    move_link_to(h.data_dir(), "read_models.0000000000bb.sqlite");
    generate(h.dyn_store(), 50, 5).await;

    let paused = tokio::time::timeout(wait, lag.watch_paused().wait_for(Option::is_some))
        .await
        .expect("paused")
        .unwrap()
        .clone()
        .unwrap();
    assert!(paused.contains("newer"), "{paused}");
    assert_eq!(
        lag.paused().as_deref(),
        Some(paused.as_str()),
        "and stays so"
    );

    // The trouble goes (here: the file is of this layout after all); the runner folds on.
    set_layout(switchboard_projections::LAYOUT_VERSION);
    let head = h.head();
    tokio::time::timeout(wait, lag.watch_checkpoint().wait_for(|c| *c >= head))
        .await
        .expect("folds on")
        .unwrap();
    assert_eq!(lag.paused(), None);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_beside_a_running_server_catches_up_with_what_the_server_appended_since() {
    use switchboard_store::{EventStore, SqliteOptions, SqliteStore};
    let h = Harness::new();
    generate(h.dyn_store(), 500, 12).await;
    // Each rebuild's process opens the store for reading, as the CLI does; the server
    // (h.store) appends and folds on.
    let open = || -> Arc<dyn EventStore> {
        Arc::new(
            SqliteStore::open_reading(
                &h.data_dir().join("events.sqlite"),
                SqliteOptions::default(),
            )
            .unwrap(),
        )
    };
    let (one, all) = (open(), open());
    generate(h.dyn_store(), 500, 13).await;
    drop(h.project().await);
    let head = h.head();
    let link = read_models_path(h.data_dir());
    let live = dump(&link);

    for (store, projection) in [(one, Some(ProjectionName::Calls)), (all, None)] {
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            rebuild(store, h.data_dir(), projection, None, |_, _| {}),
        )
        .await
        .expect("the rebuild reads what the server appended instead of waiting for it forever")
        .unwrap();
        assert_eq!(report.checkpoint, head, "{projection:?}");
        assert_eq!(dump(&link), live, "{projection:?}");
    }
}

#[tokio::test]
async fn read_models_of_another_store_are_refused_by_a_rebuild_not_waited_for() {
    let h = Harness::new();
    generate(h.dyn_store(), 500, 14).await;
    drop(h.project().await);
    let link = read_models_path(h.data_dir());
    let before = dump(&link);
    let other = Harness::new();
    generate(other.dyn_store(), 100, 15).await;

    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        rebuild(other.dyn_store(), h.data_dir(), None, None, |_, _| {}),
    )
    .await
    .expect("refused, not waited for");
    assert!(
        matches!(refused, Err(ProjectionError::StoreBehind { .. })),
        "{refused:?}"
    );
    assert_eq!(dump(&link), before, "the live read models are left alone");
}

#[tokio::test]
async fn a_rebuild_while_another_runs_is_refused_and_changes_nothing() {
    let h = Harness::new();
    generate(h.dyn_store(), 500, 8).await;
    drop(h.project().await);
    let link = read_models_path(h.data_dir());
    let before = dump(&link);
    let other = std::fs::File::create(h.data_dir().join("read_models.lock")).unwrap();
    other.lock().unwrap();

    let refused = rebuild(h.dyn_store(), h.data_dir(), None, None, |_, _| {}).await;
    assert!(
        matches!(refused, Err(ProjectionError::RebuildRunning(_))),
        "{refused:?}"
    );
    assert_eq!(dump(&link), before);
    let names: Vec<String> = std::fs::read_dir(h.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("read_models."))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("read_models.sqlite") || n == "read_models.lock"),
        "{names:?}"
    );

    drop(other);
    rebuild(h.dyn_store(), h.data_dir(), None, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(dump(&link), before);
}

#[tokio::test]
async fn rebuilding_one_projection_swaps_only_its_tables() {
    let h = Harness::new();
    generate(h.dyn_store(), 2_000, 11).await;
    drop(h.project().await);
    let path = read_models_path(h.data_dir());
    let expected = dump(&path);

    // Damage two read models by hand, as a bug would.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("UPDATE calls SET status = 'broken'; UPDATE tenants SET name = 'broken';")
        .unwrap();
    drop(conn);

    let report = rebuild(
        h.dyn_store(),
        h.data_dir(),
        Some(ProjectionName::Calls),
        None,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.swapped, vec![ProjectionName::Calls]);
    assert_eq!(
        indexes(&path),
        expected_indexes(),
        "every index after the swap"
    );
    let after = dump(&path);
    for ((table, want), (_, got)) in expected.iter().zip(&after) {
        if table == "tenants" {
            assert!(
                got.iter().all(|row| row.contains("broken")),
                "tenants was rebuilt"
            );
        } else {
            assert_eq!(want, got, "{table}");
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(h.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("rebuild"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn until_builds_the_past_into_its_own_file_and_leaves_the_live_tables_alone() {
    let h = Harness::new();
    generate(h.dyn_store(), 1_500, 3).await;
    drop(h.project().await);
    let then = h.head();
    let as_it_was = dump(&read_models_path(h.data_dir()));
    // Every event so far was recorded before this moment, every later one after it.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let moment = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    generate(h.dyn_store(), 1_500, 4).await;
    drop(h.project().await);
    let now = dump(&read_models_path(h.data_dir()));
    assert_ne!(now, as_it_was);

    let report = build_until(&h, then).await.unwrap();
    let path = report.at.file().unwrap().to_path_buf();
    assert_eq!(
        path,
        h.data_dir()
            .join(format!("read_models-until-{then}.sqlite"))
    );
    assert_eq!(report.checkpoint, then);
    assert!(report.swapped.is_empty());
    assert_eq!(dump(&path), as_it_was, "the past, row for row");
    assert_eq!(
        indexes(&path),
        expected_indexes(),
        "every index in the past"
    );
    assert_eq!(
        dump(&read_models_path(h.data_dir())),
        now,
        "live tables untouched"
    );

    let by_time = rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        Some(Until::Time(moment)),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(by_time.checkpoint, then);
    assert_ne!(by_time.at, report.at);
    assert_eq!(
        dump(by_time.at.file().unwrap()),
        as_it_was,
        "the past by time, row for row"
    );
}

/// `rebuild --until POSITION` of the harness's store, without progress.
async fn build_until(h: &Harness, position: u64) -> Result<RebuildReport, ProjectionError> {
    rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        Some(Until::Position(position)),
        |_, _| {},
    )
    .await
}

/// The names in the data dir that start with `prefix`, sorted.
fn names_starting(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn until_builds_one_moment_one_run_at_a_time_and_removes_what_a_crashed_run_left() {
    let h = Harness::new();
    generate(h.dyn_store(), 300, 21).await;
    let then = h.head();
    let target = format!("read_models-until-{then}.sqlite");
    // What runs that died before their rename left: this build's name and an older build's.
    for leftover in [
        ".building",
        ".building-journal",
        ".building-4242",
        ".building-4242-journal",
    ] {
        std::fs::write(h.data_dir().join(format!("{target}{leftover}")), b"half").unwrap();
    }
    // Not a build's: someone's copy, kept.
    let copy = format!("{target}.building.bak");
    std::fs::write(h.data_dir().join(&copy), b"mine").unwrap();
    let lock = h.data_dir().join(format!("read_models-until-{then}.lock"));
    let running = std::fs::File::create(&lock).unwrap();
    running.lock().unwrap();

    let refused = build_until(&h, then).await;
    assert!(
        matches!(refused, Err(ProjectionError::RebuildRunning(_))),
        "{refused:?}"
    );
    assert_eq!(
        names_starting(h.data_dir(), &target).len(),
        5,
        "a refused run touches nothing, not even what may be the running one's file"
    );

    drop(running);
    // While the run builds, the lock is its own: every try from outside would block.
    let tries = Arc::new(Mutex::new(Vec::new()));
    let report = rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        Some(Until::Position(then)),
        {
            let (tries, lock) = (Arc::clone(&tries), lock.clone());
            move |_, _| {
                let outside = std::fs::File::open(&lock).unwrap();
                let blocked = matches!(outside.try_lock(), Err(std::fs::TryLockError::WouldBlock));
                tries.lock().unwrap().push(blocked);
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(report.checkpoint, then);
    let tries = tries.lock().unwrap().clone();
    assert!(
        !tries.is_empty() && tries.iter().all(|&blocked| blocked),
        "{tries:?}"
    );
    assert_eq!(
        names_starting(h.data_dir(), &target),
        vec![target.clone(), copy]
    );
}

#[tokio::test]
async fn an_until_build_that_fails_leaves_no_unfinished_file_behind() {
    let h = Harness::new();
    generate(h.dyn_store(), 300, 22).await;
    let then = h.head();
    let target = format!("read_models-until-{then}.sqlite");
    // A directory where the finished file is to go: the build's rename fails.
    let occupied = h.data_dir().join(&target);
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep"), b"").unwrap();

    let failed = build_until(&h, then).await;
    assert!(
        matches!(failed, Err(ProjectionError::Io { .. })),
        "{failed:?}"
    );
    assert_eq!(
        names_starting(h.data_dir(), &target),
        vec![target.clone()],
        "only the directory that was there"
    );

    // The failed run let go of its lock: once the way is clear, the next run builds the file.
    std::fs::remove_dir_all(&occupied).unwrap();
    let report = build_until(&h, then).await.unwrap();
    assert_eq!(report.checkpoint, then);
    assert!(occupied.is_file());
}

#[tokio::test]
async fn an_until_build_replaces_an_earlier_file_without_its_wal() {
    let h = Harness::new();
    generate(h.dyn_store(), 300, 23).await;
    let then = h.head();
    build_until(&h, then).await.unwrap();
    let target = h
        .data_dir()
        .join(format!("read_models-until-{then}.sqlite"));
    let built = dump(&target);
    // An analyst's session on the earlier file: switched to WAL, deleted the calls, and left
    // the WAL behind (here: a copy taken while it was open, put back after it closed). SQLite
    // applies a WAL it finds beside a database to whatever file bears the name.
    let wal = format!("{}-wal", target.display());
    let analyst = Connection::open(&target).unwrap();
    analyst
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; DELETE FROM calls;",
        )
        .unwrap();
    let left_behind = std::fs::read(&wal).unwrap();
    drop(analyst);
    std::fs::write(&wal, &left_behind).unwrap();
    assert_ne!(dump(&target), built, "the WAL, applied, empties the calls");
    // That look took the WAL in: it is left behind again.
    std::fs::write(&wal, &left_behind).unwrap();

    build_until(&h, then).await.unwrap();
    assert_eq!(dump(&target), built);
    let names = names_starting(h.data_dir(), &format!("read_models-until-{then}.sqlite"));
    assert_eq!(names, vec![format!("read_models-until-{then}.sqlite")]);
}

/// The indexes of a read-models file, by name and definition.
fn indexes(path: &std::path::Path) -> Vec<(String, String)> {
    Connection::open(path)
        .unwrap()
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The indexes of live read models opened from scratch: a rebuild (which builds the
/// query-only ones after its replay) must leave the same.
fn expected_indexes() -> Vec<(String, String)> {
    let h = Harness::new();
    drop(Projector::open(h.dyn_store(), h.data_dir()).unwrap());
    indexes(&read_models_path(h.data_dir()))
}
