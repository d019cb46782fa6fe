//! Two `switchboard serve` instances on one PostgreSQL database: 1,000 deliveries split
//! between them, duplicates sent to both at once, one instance SIGKILLed midway. Afterwards
//! every acknowledged delivery is stored exactly once, and the shared read models (in the
//! same database, folded by whichever instance leads) equal a rebuild — in PostgreSQL and in
//! SQLite alike.
//!
//! Needs SWITCHBOARD_TEST_POSTGRES_URL (CI sets it); without it the test says it is skipped,
//! and with CI=true a missing variable fails the run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::*;
use switchboard_store::conformance::postgres_test_url;

/// Drops the test's schemas (the store's, and its `_read_models` and rebuild schemas) however
/// the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let names = client
                        .query(
                            "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
                            &[&name, &format!("{name}\\_%")],
                        )
                        .await
                        .unwrap_or_default();
                    for row in names {
                        let schema: String = row.get(0);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

fn body(n: usize) -> String {
    // Now and then a NUL, escaped in the JSON: PostgreSQL's jsonb and text cannot hold one,
    // and the delivery must still be recorded, and folded alike in both databases.
    let transcript = if n % 50 == 7 {
        "Kunde: \u{0} Termin"
    } else {
        "Kunde: Termin bitte"
    };
    json!({
        "event": "call_ended",
        "call": {"call_id": format!("mi-{n}"), "from_number": "+4915123456789", "to_number": "+493083793369",
                 "start_timestamp": 1744713000000i64 + n as i64, "end_timestamp": 1744713300000i64 + n as i64,
                 "duration": 300, "transcript": transcript},
        "timestamp": 1744713300000i64 + n as i64
    })
    .to_string()
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Option<u16> {
    retell_post(client, url, body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

fn options(dir: &std::path::Path, store: &str) -> ServerOptions {
    let mut options = ServerOptions::new(dir);
    options.extra_args = vec!["--store".into(), store.into()];
    options
}

#[tokio::test]
async fn two_instances_record_every_acknowledged_delivery_exactly_once() {
    let Some(base) =
        postgres_test_url("two_instances_record_every_acknowledged_delivery_exactly_once")
    else {
        return;
    };
    let schema = Schema {
        url: base.clone(),
        name: format!("sb_e2e_{}", uuid::Uuid::new_v4().simple()),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = format!("{base}{sep}schema={}", schema.name);
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = TestServer::start(options(dir_a.path(), &store));
    let mut b = TestServer::start(options(dir_b.path(), &store));
    let client = client();
    let urls = [a.url("/api/retell/webhook"), b.url("/api/retell/webhook")];

    // 800 distinct deliveries alternate between the instances; 100 more are the first 100
    // sent to both instances at the same moment.
    let mut acknowledged: HashMap<usize, u16> = HashMap::new();
    let mut pair_statuses = Vec::new();
    for chunk_start in (0..800).step_by(50) {
        if chunk_start == 400 {
            b.kill();
        }
        let mut tasks = Vec::new();
        for n in chunk_start..chunk_start + 50 {
            let client = client.clone();
            let url = urls[n % 2].clone();
            tasks.push(tokio::spawn(async move {
                (n, post(&client, &url, &body(n)).await)
            }));
        }
        if chunk_start < 100 {
            for n in chunk_start..chunk_start + 50 {
                let (client, urls) = (client.clone(), urls.clone());
                tasks.push(tokio::spawn(async move {
                    // The same delivery to the other instance as well: at most one records it.
                    (
                        n + 10_000,
                        post(&client, &urls[(n + 1) % 2], &body(n)).await,
                    )
                }));
            }
        }
        for task in tasks {
            let (n, status) = task.await.unwrap();
            match status {
                Some(status) => {
                    assert!(matches!(status, 200 | 409), "delivery {n}: {status}");
                    if n >= 10_000 {
                        pair_statuses.push((n - 10_000, status));
                    } else if status == 200 {
                        acknowledged.insert(n, status);
                    }
                }
                None => assert!(n % 2 == 1 || n >= 10_000, "instance A never went away: {n}"),
            }
        }
    }
    // Of each pair sent to both instances, one was recorded and the other is a duplicate.
    for (n, status) in &pair_statuses {
        let first = acknowledged.contains_key(n);
        assert!(
            (first && *status == 409) || (!first && *status == 200),
            "delivery {n}: first answer {:?}, second {status}",
            acknowledged.get(n)
        );
    }
    let recorded: HashSet<usize> = acknowledged
        .keys()
        .copied()
        .chain(
            pair_statuses
                .iter()
                .filter(|(_, s)| *s == 200)
                .map(|(n, _)| *n),
        )
        .collect();
    assert!(
        recorded.len() > 500,
        "most deliveries were acknowledged: {}",
        recorded.len()
    );

    // Every acknowledged delivery is stored exactly once: re-sending it is a duplicate, and
    // its call stream holds one raw delivery.
    for n in &recorded {
        assert_eq!(
            post(&client, &urls[0], &body(*n)).await,
            Some(409),
            "delivery {n}"
        );
        let events: Value = client
            .get(a.url(&format!("/api/streams/call-mi-{n}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let raw = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "DeliveryReceived")
            .count();
        assert_eq!(raw, 1, "delivery {n} stored once: {events}");
    }

    // The shared read models equal a rebuild from the shared streams: in PostgreSQL (the
    // rebuild swaps fresh tables in) and in SQLite (the same folds into a file).
    let switchboard = |args: &[&str]| {
        output_of(
            switchboard_command()
                .args(args)
                .arg("--store")
                .arg(&store)
                .arg("--data-dir")
                .arg(dir_a.path()),
        )
    };
    let export = ["export", "--projection", "calls", "--format", "jsonl"];
    for _ in 0..400 {
        let ready: Value = client
            .get(a.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["projections"]["lag_events"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut a = a;
    a.terminate();
    let live = switchboard(&export);
    assert_eq!(
        live.lines().count(),
        recorded.len(),
        "one row per recorded call"
    );
    switchboard(&["rebuild"]);
    assert_eq!(switchboard(&export), live, "a rebuild in PostgreSQL");
    let embedded = [&export[..], &["--read-models", "embedded"][..]].concat();
    switchboard(&["rebuild", "--read-models", "embedded"]);
    assert_eq!(switchboard(&embedded), live, "a rebuild into SQLite");
}
