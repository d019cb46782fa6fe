//! Read models in PostgreSQL: the same folds give the same rows as in SQLite, a rebuild (whole,
//! one projection, or `until`) equals live processing, the queries answer alike, and of several
//! projectors on one schema exactly one folds, another taking over when it dies.
//!
//! Needs SWITCHBOARD_TEST_POSTGRES_URL (CI sets it); without it each test says it is skipped,
//! and with CI=true a missing variable fails the run. Every test works in schemas of its own
//! and drops them when it ends.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::history::generate;
use support::*;
use switchboard_projections::{
    AnomalyFilter, LEADER_RETRY, ProjectionName, Projector, ReadModels, ReadModelsAt, Until,
    rebuild, rebuild_at,
};
use switchboard_store::conformance::postgres_test_url;

/// The test's schemas (`{prefix}` and `{prefix}_…`), dropped however the test ends.
struct Schemas {
    url: String,
    prefix: String,
}

impl Schemas {
    fn new(url: String, test: &str) -> Schemas {
        let prefix = format!("rm_{test}_{}", std::process::id());
        let schemas = Schemas { url, prefix };
        schemas.drop_all();
        schemas
    }

    fn live(&self) -> ReadModelsAt {
        ReadModelsAt::Postgres {
            url: self.url.clone(),
            schema: self.prefix.clone(),
        }
    }

    fn drop_all(&self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // The synchronous client may not run on an async thread: a thread of its own.
        let _ = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let names: Vec<String> = client
                .query(
                    "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
                    &[&prefix, &format!("{prefix}\\_%")],
                )
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            for name in names {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .unwrap();
            }
        })
        .join();
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        self.drop_all();
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

async fn dump_at(at: &ReadModelsAt) -> Vec<(String, Vec<String>)> {
    let at = at.clone();
    blocking(move || support::dump_at(&at)).await
}

async fn open_projector(h: &Harness, at: &ReadModelsAt) -> Projector {
    let (store, at) = (h.dyn_store(), at.clone());
    blocking(move || Projector::open_at(store, at).unwrap()).await
}

async fn open_read_models(at: &ReadModelsAt) -> Arc<ReadModels> {
    let at = at.clone();
    blocking(move || Arc::new(ReadModels::open_at(&at).unwrap())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_equal_the_sqlite_ones_and_every_kind_of_rebuild() {
    let Some(url) =
        postgres_test_url("postgres_read_models_equal_the_sqlite_ones_and_every_kind_of_rebuild")
    else {
        return;
    };
    let schemas = Schemas::new(url, "equal");
    let h = Harness::new();
    let generated = generate(h.dyn_store(), 6_000, 11).await;
    assert!(generated.duplicates > 0);
    let sqlite = ReadModelsAt::data_dir(h.data_dir());
    drop(h.project().await);

    let live = schemas.live();
    let mut projector = open_projector(&h, &live).await;
    assert_eq!(projector.catch_up().await.unwrap(), h.head());
    drop(projector);
    let expected = dump_at(&sqlite).await;
    for table in [
        "calls",
        "appointments",
        "customers",
        "tenants",
        "payments",
        "anomalies",
    ] {
        let rows = expected
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, r)| r.len());
        assert!(
            rows > Some(0),
            "{table} is empty: the history does not exercise it"
        );
    }
    assert_eq!(dump_at(&live).await, expected, "PostgreSQL equals SQLite");

    // The queries answer alike from either database.
    let (from_sqlite, from_postgres) = (
        open_read_models(&sqlite).await,
        open_read_models(&live).await,
    );
    let answers = |rm: Arc<ReadModels>| {
        blocking(move || {
            let calls = rm.calls(None, 200, None).unwrap();
            let appointments = rm.appointments(None, 200, None).unwrap();
            let second_page = rm.calls(None, 50, calls.next.as_deref()).unwrap();
            let anomalies = rm.anomalies(&AnomalyFilter::default(), 100, None).unwrap();
            let tenants: Vec<_> = ["t000", "t001", "t002"]
                .iter()
                .map(|t| rm.tenant(t).unwrap())
                .collect();
            let first_call = calls.items.first().map(|c| rm.call(&c.call_id).unwrap());
            (
                serde_json::to_value((calls, appointments, second_page, anomalies)).unwrap(),
                serde_json::to_value((tenants, first_call, rm.checkpoint().unwrap())).unwrap(),
            )
        })
    };
    let sqlite_answers = answers(from_sqlite).await;
    assert_eq!(answers(from_postgres).await, sqlite_answers);
    assert!(
        sqlite_answers.1[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| !t.is_null()),
        "the history registers tenants the queries find"
    );

    // A full rebuild swaps fresh tables into the live schema: the same rows.
    let report = rebuild_at(h.dyn_store(), &live, None, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.checkpoint, h.head());
    assert_eq!(
        dump_at(&live).await,
        expected,
        "a full rebuild, row for row"
    );
    // One projection's rebuild leaves the others' tables as they were.
    let report = rebuild_at(
        h.dyn_store(),
        &live,
        Some(ProjectionName::Appointments),
        None,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.swapped, vec![ProjectionName::Appointments]);
    assert_eq!(dump_at(&live).await, expected, "one projection rebuilt");

    // `until` builds the past into a schema of its own, equal to SQLite's past.
    let then = h.head() / 2;
    let past_sqlite = rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        Some(Until::Position(then)),
        |_, _| {},
    )
    .await
    .unwrap();
    let past_postgres = rebuild_at(
        h.dyn_store(),
        &live,
        None,
        Some(Until::Position(then)),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        past_postgres.at,
        ReadModelsAt::Postgres {
            url: schemas.url.clone(),
            schema: format!("{}_until_{then}", schemas.prefix),
        }
    );
    assert_eq!(past_postgres.checkpoint, then);
    let past = dump_at(&past_postgres.at).await;
    assert_eq!(
        past,
        dump_at(&past_sqlite.at).await,
        "the past, row for row"
    );
    assert_ne!(past, expected);
    assert_eq!(dump_at(&live).await, expected, "live tables untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_projector_leads_and_another_takes_over_from_the_checkpoint_when_it_dies() {
    let Some(url) = postgres_test_url(
        "one_projector_leads_and_another_takes_over_from_the_checkpoint_when_it_dies",
    ) else {
        return;
    };
    let schemas = Schemas::new(url, "leader");
    let h = Harness::new();
    let live = schemas.live();
    generate(h.dyn_store(), 1_000, 5).await;

    // The first instance leads: it folds everything there is.
    let first = open_projector(&h, &live).await;
    let first_lag = first.lag();
    let (_stop_first, shutdown) = tokio::sync::watch::channel(false);
    let first_running = tokio::spawn(first.run(shutdown));
    let head = h.head();
    tokio::time::timeout(
        Duration::from_secs(30),
        first_lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the leader folds")
    .unwrap();

    // The second stands by: it follows the leader's checkpoint without folding.
    let second = open_projector(&h, &live).await;
    let second_lag = second.lag();
    let (stop_second, shutdown) = tokio::sync::watch::channel(false);
    let second_running = tokio::spawn(second.run(shutdown));
    generate(h.dyn_store(), 1_000, 6).await;
    let head = h.head();
    tokio::time::timeout(
        Duration::from_secs(30),
        first_lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the leader keeps folding")
    .unwrap();
    tokio::time::timeout(
        LEADER_RETRY * 5,
        second_lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the standby reports the leader's checkpoint")
    .unwrap();

    // The leader dies (its task and session gone, no shutdown); the standby takes over within
    // seconds and folds what came since, from the checkpoint.
    first_running.abort();
    let _ = first_running.await;
    generate(h.dyn_store(), 1_000, 7).await;
    let head = h.head();
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(30),
        second_lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the standby takes over")
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took over in {:?}",
        started.elapsed()
    );
    stop_second.send(true).unwrap();
    second_running.await.unwrap().unwrap();

    // Each event took effect once: the shared read models equal a fold into SQLite.
    drop(h.project().await);
    assert_eq!(
        dump_at(&live).await,
        dump_at(&ReadModelsAt::data_dir(h.data_dir())).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_of_a_newer_layout_are_refused_and_left_alone() {
    let Some(url) =
        postgres_test_url("postgres_read_models_of_a_newer_layout_are_refused_and_left_alone")
    else {
        return;
    };
    let schemas = Schemas::new(url, "layout");
    let h = Harness::new();
    let live = schemas.live();
    drop(open_projector(&h, &live).await);
    let newer = switchboard_projections::LAYOUT_VERSION + 1;
    let (url, schema) = (schemas.url.clone(), schemas.prefix.clone());
    let refused = blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "UPDATE \"{schema}\".layout SET version = {newer};
                 INSERT INTO \"{schema}\".tenants (tenant_id, seq, name, updated_at)
                 VALUES ('t-newer', 1, 'from a newer build', 'x')"
            ))
            .unwrap();
        let refused = Projector::open_at(h.dyn_store(), live).err();
        let kept: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM \"{schema}\".tenants WHERE tenant_id = 't-newer'"),
                &[],
            )
            .unwrap()
            .get(0);
        (refused, kept)
    })
    .await;
    match refused {
        (Some(switchboard_projections::ProjectionError::NewerLayout { found, at }), 1) => {
            assert_eq!(found, newer);
            assert!(at.contains(&schemas.prefix), "names the schema: {at}");
        }
        (other, kept) => panic!("expected a refusal leaving the row: {other:?}, {kept} rows"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_reconnect_by_themselves_when_postgresql_drops_their_sessions() {
    let Some(url) = postgres_test_url(
        "read_models_reconnect_by_themselves_when_postgresql_drops_their_sessions",
    ) else {
        return;
    };
    let schemas = Schemas::new(url, "reconnect");
    let h = Harness::new();
    let live = schemas.live();
    generate(h.dyn_store(), 300, 8).await;
    let projector = open_projector(&h, &live).await;
    let running = run_in_background(projector);
    let lag = running.lag.clone();
    let head = h.head();
    tokio::time::timeout(
        Duration::from_secs(30),
        lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("folds")
    .unwrap();
    let read_models = open_read_models(&live).await;
    let calls =
        |rm: Arc<ReadModels>| blocking(move || rm.calls(None, 500, None).map(|p| p.items.len()));
    let before = calls(read_models.clone()).await.unwrap();
    assert!(before > 0);

    // PostgreSQL ends every read-model session of this test (a restart, a failover, an admin).
    let (url, schema) = (schemas.url.clone(), schemas.prefix.clone());
    let terminated: i64 = blocking(move || {
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'switchboard-read-models ' || $1",
                &[&schema],
            )
            .unwrap()
            .get(0)
    })
    .await;
    assert!(
        terminated >= 2,
        "the folder and a reader were connected: {terminated}"
    );

    // A query answers (its pooled connection is dead; one retry on a fresh one), and the
    // projector folds what comes next without being restarted.
    assert_eq!(calls(read_models.clone()).await.unwrap(), before);
    generate(h.dyn_store(), 300, 9).await;
    let head = h.head();
    tokio::time::timeout(
        Duration::from_secs(30),
        lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the projector reconnects and folds on")
    .unwrap();
    let checkpoint = blocking(move || read_models.checkpoint()).await.unwrap();
    assert_eq!(
        checkpoint, head,
        "the readers see what the reconnected folder wrote"
    );
    running.stop().await;
    drop(h.project().await);
    assert_eq!(
        dump_at(&live).await,
        dump_at(&ReadModelsAt::data_dir(h.data_dir())).await,
        "each event once"
    );
}

/// PostgreSQL's text cannot hold NUL, which a provider's transcript may carry: the read model
/// shows it as U+FFFD (as SQLite's does) instead of refusing the event's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_text_reaches_postgresql_read_models_as_the_replacement_character() {
    let Some(url) = postgres_test_url(
        "nul_in_text_reaches_postgresql_read_models_as_the_replacement_character",
    ) else {
        return;
    };
    let schemas = Schemas::new(url, "nul");
    let h = Harness::new();
    let with_nul: switchboard_domain::event::Event = switchboard_domain::event::CallEnded {
        call_id: "c1".into(),
        occurred_at: at(1),
        parties: parties("+4915123456789", "+493083793369"),
        outcome: switchboard_domain::event::CallOutcome {
            transcript: Some("Agent: a\u{0}b".into()),
            ..Default::default()
        },
    }
    .into();
    h.append("call-c1", vec![with_nul]).await;
    let live = schemas.live();
    let mut projector = open_projector(&h, &live).await;
    assert_eq!(projector.catch_up().await.unwrap(), h.head());
    drop(projector);
    let read = open_read_models(&live).await;
    let (call, anomalies) = blocking(move || {
        let call = read.call("c1").unwrap().unwrap();
        let anomalies = read
            .anomalies(&AnomalyFilter::default(), 50, None)
            .unwrap()
            .items;
        (call, anomalies)
    })
    .await;
    assert_eq!(call.transcript.as_deref(), Some("Agent: a\u{FFFD}b"));
    assert!(
        anomalies.iter().all(|a| a.reason != "apply_failed"),
        "{anomalies:?}"
    );
}

/// A value PostgreSQL refuses and SQLite stores (here a service name too long for its index
/// entry): the event that carries it fails on its own (`apply_failed`), and the events after it
/// in the same batch still apply, so where batches end (live or rebuild) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_postgresql_refuses_fails_its_own_event_wherever_the_batch_ends() {
    let Some(url) =
        postgres_test_url("a_value_postgresql_refuses_fails_its_own_event_wherever_the_batch_ends")
    else {
        return;
    };
    let schemas = Schemas::new(url, "refused");
    let h = Harness::new();
    let mut details = booking_details(1, 7, None);
    // Random hex, so PostgreSQL cannot compress the entry under its ~2.7 KB limit.
    details.service = Some(
        (0..300)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect(),
    );
    let too_long: switchboard_domain::event::Event = switchboard_domain::event::BookingCreated {
        booking_uid: "b1".into(),
        occurred_at: at(1),
        details,
        call_id: None,
        rescheduled_from: None,
    }
    .into();
    h.append("booking-b1", vec![too_long]).await;
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", "+493083793369", 2)],
    )
    .await;
    let live = schemas.live();
    let mut projector = open_projector(&h, &live).await;
    assert_eq!(projector.catch_up().await.unwrap(), h.head());
    drop(projector);
    let read = open_read_models(&live).await;
    let (call, booking, failed) = blocking(move || {
        let call = read.call("c1").unwrap();
        let booking = read.appointment("b1").unwrap();
        let failed: Vec<_> = read
            .anomalies(&AnomalyFilter::default(), 50, None)
            .unwrap()
            .items
            .into_iter()
            .filter(|a| a.reason == "apply_failed")
            .collect();
        (call, booking, failed)
    })
    .await;
    assert!(call.is_some(), "the event after the refused one applies");
    assert!(booking.is_none(), "{booking:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].position, 1);
}
