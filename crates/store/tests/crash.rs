//! SIGKILL at an arbitrary instant loses no acknowledged append and leaves no partial one.
//!
//! The parent re-runs this test binary as a child (only `appends_until_killed`, selected by
//! name and by an environment variable naming the store file). The child appends from several
//! tasks, three events per append, and prints `acked N` once `append` returned Ok for append N.
//! The parent kills the child after some hundreds of acks, reopens the store, and checks; three
//! rounds on the same file.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_store::conformance::new_event;
use switchboard_store::{EventStore, ExpectedVersion, SqliteOptions, SqliteStore};
use uuid::Uuid;

const CHILD_ENV: &str = "SWITCHBOARD_CRASH_TEST_STORE";
/// The number of the child's first append, so each round appends streams of its own.
const FIRST_APPEND_ENV: &str = "SWITCHBOARD_CRASH_TEST_FIRST_APPEND";
/// Kill, reopen and check this many times on the same file: recovery must also hold for a file
/// that was itself recovered after a kill.
const ROUNDS: u64 = 3;
const EVENTS_PER_APPEND: u64 = 3;
const CHILD_TASKS: u64 = 8;
/// The child stops by itself after this many appends, should the parent never kill it.
const CHILD_MAX_APPENDS: u64 = 200_000;
const KILL_AFTER_ACKS: usize = 500;
const KILL_AFTER: Duration = Duration::from_secs(3);

/// Append N goes to its own stream and has event ids derived from N, so the parent knows
/// exactly what a complete append N looks like.
fn stream_of(append: u64) -> String {
    format!("crash-{append}")
}

fn event_id(append: u64, index: u64) -> Uuid {
    Uuid::from_u128(((append as u128) << 8) | index as u128 | (0xC0FFEE << 64))
}

#[test]
#[ignore = "the child process of `acknowledged_appends_survive_sigkill`; does nothing by itself"]
fn appends_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let first: u64 = std::env::var(FIRST_APPEND_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = std::sync::Arc::new(
            SqliteStore::open(Path::new(&path), SqliteOptions::default()).unwrap(),
        );
        let tasks: Vec<_> = (0..CHILD_TASKS)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for append in
                        (first + task..first + CHILD_MAX_APPENDS).step_by(CHILD_TASKS as usize)
                    {
                        let events = (0..EVENTS_PER_APPEND)
                            .map(|i| {
                                new_event(
                                    event_id(append, i),
                                    "CrashTested",
                                    json!({"append": append, "i": i}),
                                )
                            })
                            .collect();
                        store
                            .append(&stream_of(append), ExpectedVersion::NoStream, events)
                            .await
                            .unwrap();
                        // stdout is line-buffered: the line leaves the process when printed.
                        println!("acked {append}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test]
async fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("events.db");
    let mut acked = HashSet::new();
    for round in 0..ROUNDS {
        let acked_now = run_child_and_kill(&path, round * CHILD_MAX_APPENDS);
        assert!(
            !acked_now.is_empty(),
            "round {round}: the child acknowledged no append before it was killed"
        );
        acked.extend(acked_now);
        check_after_crash(&path, &acked).await;
    }
}

/// Runs the child on `path` until it has acknowledged enough appends (or for a bounded time),
/// SIGKILLs it, and returns the appends it acknowledged.
fn run_child_and_kill(path: &Path, first_append: u64) -> HashSet<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "appends_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(FIRST_APPEND_ENV, first_append.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");

    // Read the child's lines on a thread, so the parent can stop waiting at a deadline.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = HashSet::new();
    let deadline = Instant::now() + KILL_AFTER;
    while acked.len() < KILL_AFTER_ACKS {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => record_ack(&mut acked, &line),
            Err(_) => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child must have been killed, not have finished: {status}"
    );
    // Lines printed before the kill are still in the pipe: they were acknowledged too.
    reader.join().unwrap();
    for line in lines.try_iter() {
        record_ack(&mut acked, &line);
    }
    acked
}

/// Reopens the store and checks that every acknowledged append is there in full and that no
/// append is there in part.
async fn check_after_crash(path: &Path, acked: &HashSet<u64>) {
    let store = SqliteStore::open(path, SqliteOptions::default()).expect("reopen after SIGKILL");
    let mut by_stream: BTreeMap<String, Vec<(u64, Uuid)>> = BTreeMap::new();
    let mut next = 0;
    loop {
        let page = store.read_all(next, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        for event in page {
            by_stream
                .entry(event.stream)
                .or_default()
                .push((event.version, event.event_id));
        }
    }

    for (stream, events) in &by_stream {
        let append: u64 = stream
            .strip_prefix("crash-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected stream {stream}"));
        let complete: Vec<(u64, Uuid)> = (0..EVENTS_PER_APPEND)
            .map(|i| (i, event_id(append, i)))
            .collect();
        assert_eq!(events, &complete, "{stream} is half-written");
    }
    for append in acked {
        assert!(
            by_stream.contains_key(&stream_of(*append)),
            "append {append} was acknowledged but is missing after the crash ({} acked, {} stored)",
            acked.len(),
            by_stream.len()
        );
    }
    eprintln!(
        "crash test: {} appends acknowledged so far, {} stored after SIGKILL",
        acked.len(),
        by_stream.len()
    );
}

fn record_ack(acked: &mut HashSet<u64>, line: &str) {
    // The first ack shares its line with libtest's "test appends_until_killed ... ".
    if let Some((_, n)) = line.rsplit_once("acked ") {
        acked.insert(n.trim().parse().expect("an ack line holds a number"));
    }
}
