//! Durable appends per second on PostgreSQL: 1 and 64 concurrent writers in one store, and 64
//! writers split over two stores (two service instances sharing the database), 1 KiB events.
//! Figures and method: docs/benchmarks.md, section "Event store (PostgreSQL)".
//!
//! Needs SWITCHBOARD_TEST_POSTGRES_URL; each run uses its own schema and drops it afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use switchboard_store::{EventStore, ExpectedVersion, NewEvent};
use switchboard_store_postgres::{PostgresOptions, PostgresStore};
use tokio::runtime::Runtime;
use uuid::Uuid;

use switchboard_store::conformance::POSTGRES_URL_VARIABLE as URL_VARIABLE;

/// An event of about 1 KiB serialized (data plus metadata), like a typical webhook fact.
fn event_of_1kib() -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "CallEnded".to_owned(),
        schema_version: 1,
        occurred_at: Utc::now(),
        data: json!({"call_id": "call_8f14e45fceea167a", "transcript": "x".repeat(900)}),
        metadata: json!({"provider": "retell", "tenant": "tenant-1", "delivery_id": Uuid::new_v4()}),
    }
}

/// `appends` single-event appends spread over `writers` tasks, round-robin over `stores`,
/// each writer to its own stream with `Any` (so writers never conflict); the wall time.
async fn append_concurrently(
    stores: &[Arc<PostgresStore>],
    writers: u64,
    appends: u64,
    round: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = Arc::clone(&stores[writer as usize % stores.len()]);
            let share = appends / writers + u64::from(writer < appends % writers);
            tokio::spawn(async move {
                let stream = format!("bench-{round}-{writer}");
                for _ in 0..share {
                    store
                        .append(&stream, ExpectedVersion::Any, vec![event_of_1kib()])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let Ok(url) = std::env::var(URL_VARIABLE) else {
        eprintln!("PostgreSQL append benchmark skipped: {URL_VARIABLE} is not set");
        return;
    };
    let rt = Runtime::new().unwrap();
    let schema = format!("sb_bench_{}", Uuid::new_v4().simple());
    let open = || {
        let options = PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        };
        Arc::new(rt.block_on(PostgresStore::connect(&url, options)).unwrap())
    };
    let one_store = vec![open()];
    let two_stores = vec![open(), open()];

    let mut group = c.benchmark_group("postgres_durable_append_1kib");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let cases: [(&str, &[Arc<PostgresStore>], u64); 3] = [
        ("1_writer", &one_store, 1),
        ("64_writers", &one_store, 64),
        ("64_writers_over_2_stores", &two_stores, 64),
    ];
    let mut round = 0;
    for (name, stores, writers) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                round += 1;
                rt.block_on(append_concurrently(stores, writers, iters, round))
            })
        });
    }
    group.finish();

    drop((one_store, two_stores));
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}

criterion_group!(benches, appends);
criterion_main!(benches);
