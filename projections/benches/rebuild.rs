//! Rebuild benchmark: replays a generated history of 1,000,000 events (by default) from the
//! embedded store into fresh read models and swaps them in; prints events/s and the peak
//! resident memory (VmHWM).
//!
//! `cargo bench -p switchboard-projections` — set `SWITCHBOARD_BENCH_EVENTS` for another size.
//! The generated store is kept in the temp dir and reused by later runs (generating takes
//! longer than rebuilding); it is generated in a child process so that the generator's memory
//! does not count towards the rebuild's peak. `SWITCHBOARD_BENCH_KEEP=FILE` copies the rebuilt
//! read models to FILE, to compare what two builds fold from the same history.

#[allow(dead_code, reason = "the generator is shared with the tests")]
#[path = "../tests/support/history.rs"]
mod history;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use switchboard_projections::rebuild;
use switchboard_store::{EventStore, SqliteOptions, SqliteStore};

/// The allocator the `switchboard` binary runs with, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_EVENTS: u64 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events = std::env::var("SWITCHBOARD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENTS);
    let dir = std::env::temp_dir().join(format!("switchboard-bench-projections-{events}"));
    let store_path = dir.join("events.sqlite");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    if args.iter().any(|a| a == "--generate") {
        runtime.block_on(generate(&store_path, events));
        return;
    }
    if !dir.join("complete").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("generating {events} events into {} …", dir.display());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--generate")
            .env("SWITCHBOARD_BENCH_EVENTS", events.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "generation failed");
        std::fs::write(dir.join("complete"), b"").unwrap();
    }

    let data_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&store_path, SqliteOptions::default()).unwrap());
    let head = runtime.block_on(store.head_position()).unwrap();
    if std::env::var_os("SWITCHBOARD_BENCH_READ_ONLY").is_some() {
        runtime.block_on(read_only(store.as_ref()));
        return;
    }
    let started = Instant::now();
    let replayed_at = Arc::new(std::sync::Mutex::new(None));
    let mark = Arc::clone(&replayed_at);
    // Resident memory at each quarter of the replay: flat means it does not grow with the
    // number of events folded.
    let quarters = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fold_cpu = Arc::new(std::sync::Mutex::new(None));
    let fold_cpu_mark = Arc::clone(&fold_cpu);
    let cpu_before = cpu_seconds("/proc/self/stat");
    let seen = Arc::clone(&quarters);
    let report = runtime
        .block_on(rebuild(
            store.clone(),
            data_dir.path(),
            None,
            None,
            move |done, total| {
                let mut seen = seen.lock().unwrap();
                if done * 4 >= total * (seen.len() as u64 + 1) {
                    seen.push((
                        done,
                        status_kib("VmRSS:"),
                        status_kib("RssAnon:"),
                        status_kib("RssFile:"),
                    ));
                }
                if done >= total {
                    *mark.lock().unwrap() = Some(Instant::now());
                    // The progress callback runs on the fold thread: its CPU time is the
                    // fold's own cost, apart from the store read on the other threads.
                    *fold_cpu_mark.lock().unwrap() = Some(cpu_seconds("/proc/thread-self/stat"));
                }
            },
        ))
        .unwrap();
    let total = started.elapsed();
    let process_cpu = cpu_seconds("/proc/self/stat") - cpu_before;
    if let Some(keep) = std::env::var_os("SWITCHBOARD_BENCH_KEEP") {
        std::fs::copy(data_dir.path().join("read_models.sqlite"), keep).unwrap();
    }
    let replay = replayed_at
        .lock()
        .unwrap()
        .map(|at| at - started)
        .unwrap_or(total);
    let peak_kib = status_kib("VmHWM:");
    let read_models = std::fs::metadata(data_dir.path().join("read_models.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);

    println!(
        "projections/rebuild: {} events (store head {head})",
        report.events
    );
    println!(
        "  replay into fresh tables: {:.2} s = {:.0} events/s",
        replay.as_secs_f64(),
        report.events as f64 / replay.as_secs_f64()
    );
    println!(
        "  replay + atomic swap:     {:.2} s = {:.0} events/s",
        total.as_secs_f64(),
        report.events as f64 / total.as_secs_f64()
    );
    println!(
        "  CPU: fold thread {:.2} s, whole process {:.2} s (user + system, replay + swap)",
        fold_cpu.lock().unwrap().unwrap_or(0.0),
        process_cpu
    );
    // The store's readers map the event file (mmap), so reading it makes file pages resident:
    // RssFile grows with the history read, RssAnon (the heap) is what the rebuild itself holds.
    for (done, rss, anon, file) in quarters.lock().unwrap().iter() {
        println!(
            "  at position {done}: VmRSS {} MiB = RssAnon {} MiB + RssFile {} MiB",
            rss / 1024,
            anon / 1024,
            file / 1024
        );
    }
    println!("  peak resident memory (VmHWM): {} MiB", peak_kib / 1024);
    println!("  read models file: {} MiB", read_models / (1024 * 1024));
    print_table_sizes(&data_dir.path().join("read_models.sqlite"));
}

/// The floor the store sets: `$all` read page by page as the rebuild reads it, folded nowhere.
async fn read_only(store: &SqliteStore) {
    let started = Instant::now();
    let cpu_before = cpu_seconds("/proc/self/stat");
    let (mut next, mut events) = (1, 0u64);
    loop {
        let page = store.read_all(next, 4_096).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        events += page.len() as u64;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "store read only: {events} events in {took:.2} s = {:.0} events/s, CPU {:.2} s",
        events as f64 / took,
        cpu_seconds("/proc/self/stat") - cpu_before
    );
}

async fn generate(store_path: &Path, events: u64) {
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(store_path, SqliteOptions::default()).unwrap());
    let generated = history::generate(store, events, 42).await;
    eprintln!(
        "generated {} events from {} deliveries ({} duplicates)",
        generated.events, generated.deliveries, generated.duplicates
    );
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a `/proc/.../stat` file, in seconds (clock ticks of 10 ms).
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // The command name (field 2) may contain spaces; the fields after it are plain numbers.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is index 0, utime index 11, stime index 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn print_table_sizes(path: &PathBuf) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for table in [
        "calls",
        "appointments",
        "customers",
        "tenants",
        "payments",
        "anomalies",
    ] {
        let rows: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        println!("  {table}: {rows} rows");
    }
}
