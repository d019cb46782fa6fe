//! Durable appends per second (1 and 64 concurrent writers, 1 KiB events) and `$all` read
//! events per second on the embedded store. Figures and method: docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, SqliteOptions, SqliteStore};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// The allocator the `switchboard` binary runs with, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

type MakeEvent = fn(usize) -> NewEvent;

fn small_event(n: usize) -> NewEvent {
    NewEvent {
        data: json!({"n": n}),
        metadata: json!({}),
        ..event_of_1kib()
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &TempDir, name: &str) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.path().join(name), SqliteOptions::default()).unwrap())
}

/// `appends` single-event appends of 1 KiB, spread over `writers` concurrent tasks, each to its
/// own stream with `Any` (so writers never conflict); returns the wall time.
async fn append_concurrently(
    store: &Arc<SqliteStore>,
    writers: u64,
    appends: u64,
    round: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = Arc::clone(store);
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
    let rt = runtime();
    let dir = TempDir::new().unwrap();
    let mut group = c.benchmark_group("durable_append_1kib");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for writers in [1u64, 64] {
        let store = open(&dir, &format!("append-{writers}.db"));
        let mut round = 0;
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                round += 1;
                rt.block_on(append_concurrently(&store, writers, iters, round))
            })
        });
        // How well group commit grouped: the figure that explains the throughput.
        let stats = store.writer_stats();
        eprintln!(
            "{writers} writers: {} appends in {} commits, {:.1} appends per commit",
            stats.appends,
            stats.batches,
            stats.appends as f64 / stats.batches.max(1) as f64
        );
    }
    group.finish();
}

/// Fills a store with `count` events, 100 per append, from a few tasks.
fn populate(rt: &Runtime, store: &Arc<SqliteStore>, count: usize, make: MakeEvent) {
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    for chunk in (task * 100..count).step_by(800) {
                        let events = (chunk..(chunk + 100).min(count)).map(make).collect();
                        store
                            .append(&format!("fill-{chunk}"), ExpectedVersion::NoStream, events)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

async fn read_everything(store: &Arc<SqliteStore>, page: usize) -> usize {
    let mut next = 0;
    let mut seen = 0;
    loop {
        let events = store.read_all(next, page).await.unwrap();
        let Some(last) = events.last() else {
            return seen;
        };
        next = last.position + 1;
        seen += events.len();
    }
}

fn read_all(c: &mut Criterion) {
    const EVENTS: usize = 100_000;
    let rt = runtime();
    let dir = TempDir::new().unwrap();
    let mut group = c.benchmark_group("read_all");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let cases: [(&str, MakeEvent); 2] = [
        ("1kib_events", |_| event_of_1kib()),
        ("small_events", small_event),
    ];
    for (name, make) in cases {
        let store = open(&dir, &format!("read-{name}.db"));
        populate(&rt, &store, EVENTS, make);
        group.bench_function(format!("{name}_pages_of_1000"), |b| {
            b.iter(|| assert_eq!(rt.block_on(read_everything(&store, 1000)), EVENTS))
        });
    }
    group.finish();
}

/// The raw cost of one durable 4 KiB write on this disk at the time of the run: a single
/// writer cannot append faster than this, and group commit exists to amortise it.
fn fsync_probe(c: &mut Criterion) {
    use std::io::Write;
    let dir = TempDir::new().unwrap();
    let mut file = std::fs::File::create(dir.path().join("probe")).unwrap();
    let page = [7u8; 4096];
    let mut group = c.benchmark_group("disk");
    group.sample_size(10);
    group.bench_function("write_4kib_and_fsync", |b| {
        b.iter(|| {
            file.write_all(&page).unwrap();
            file.sync_all().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, fsync_probe, appends, read_all);
criterion_main!(benches);
