//! CPU cost of the embedded store, for comparing code changes on a shared machine.
//!
//! Wall-clock figures (the criterion bench) move with whatever else the machine's cores and
//! disk are doing; the CPU time the writer thread spends per append, and the CPU time a read
//! spends per event, move much less. Compare variants with this, confirm with the bench.
//!
//! ```text
//! cargo run --release -p switchboard-store --example cpu_cost            # 100,000 appends, 64 writers
//! cargo run --release -p switchboard-store --example cpu_cost -- 20000 read   # reads only
//! ```
//!
//! Linux only: thread and process CPU times come from /proc.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, SqliteOptions, SqliteStore};
use tokio::runtime::Runtime;
use uuid::Uuid;

const WRITERS: u64 = 64;
const READ_ROUNDS: usize = 5;

/// The same ~1 KiB event as benches/append.rs, with ids that cost no random numbers.
fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::from_u128(u128::from(n) | (7 << 100)),
        event_type: "CallEnded".to_owned(),
        schema_version: 1,
        occurred_at: Utc::now(),
        data: json!({"call_id": "call_8f14e45fceea167a", "transcript": "x".repeat(900)}),
        metadata: json!({"provider": "retell", "tenant": "tenant-1", "delivery_id": Uuid::from_u128(u128::from(n))}),
    }
}

/// User and system CPU seconds from a /proc `stat` file.
fn cpu_seconds(stat: &str) -> (f64, f64) {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().unwrap() / 100.0;
    (ticks(11), ticks(12))
}

fn writer_thread_cpu() -> (f64, f64) {
    // The thread names itself once it runs, which may be just after `open` returned.
    for _ in 0..100 {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            // Thread names are cut to 15 bytes: "event-store-writer" reads "event-store-wri".
            if name.trim_end() == "event-store-wri" {
                return cpu_seconds(&std::fs::read_to_string(path.join("stat")).unwrap());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no writer thread")
}

fn process_cpu() -> f64 {
    let (user, system) = cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap());
    user + system
}

fn load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap();
    load.split(' ').next().unwrap().to_owned()
}

fn appends(rt: &Runtime, store: &Arc<SqliteStore>, count: u64) {
    let (user0, system0) = writer_thread_cpu();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let stream = format!("cost-{writer}");
                    for i in 0..count / WRITERS {
                        let events = vec![event(writer << 32 | i)];
                        store
                            .append(&stream, ExpectedVersion::Any, events)
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
    let wall = start.elapsed().as_secs_f64();
    let (user1, system1) = writer_thread_cpu();
    let stats = store.writer_stats();
    let n = stats.appends as f64;
    println!(
        "{} appends, {WRITERS} writers: {:.0}/s wall; writer thread CPU per append: \
         user {:.1} µs, system {:.1} µs; {:.1} appends per commit; load {}",
        stats.appends,
        n / wall,
        (user1 - user0) / n * 1e6,
        (system1 - system0) / n * 1e6,
        n / stats.batches as f64,
        load()
    );
}

fn reads(rt: &Runtime, store: &Arc<SqliteStore>) {
    for _ in 0..READ_ROUNDS {
        let cpu = process_cpu();
        let start = Instant::now();
        let read = rt.block_on(async {
            let (mut next, mut seen) = (0, 0);
            loop {
                let page = store.read_all(next, 1000).await.unwrap();
                let Some(last) = page.last() else {
                    return seen;
                };
                next = last.position + 1;
                seen += page.len();
            }
        });
        let wall = start.elapsed().as_secs_f64();
        println!(
            "read_all: {read} events, {:.0}/s wall, process CPU {:.2} µs per event; load {}",
            read as f64 / wall,
            (process_cpu() - cpu) / read as f64 * 1e6,
            load()
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map_or(100_000, |a| a.parse().unwrap());
    let reads_only = args.next().is_some_and(|a| a == "read");
    let dir = tempfile::TempDir::new().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("cost.db"), SqliteOptions::default()).unwrap());
    if reads_only {
        // Filled quickly, in appends of 100, as the bench does.
        rt.block_on(async {
            for chunk in 0..count / 100 {
                let events = (0..100).map(|i| event(chunk << 8 | i)).collect();
                let stream = format!("fill-{chunk}");
                store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await
                    .unwrap();
            }
        });
    } else {
        appends(&rt, &store, count);
    }
    reads(&rt, &store);
}
