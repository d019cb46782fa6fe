//! End to end: `switchboard events read` and `events tail` beside a running server on the
//! embedded store — the tail prints what was stored, then follows what the server stores
//! after it started (another process's commits).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use switchboard_e2e::*;

async fn call_started(client: &reqwest::Client, server: &TestServer, call_id: &str) -> u16 {
    let raw = json!({
        "event": "call_started",
        "call": {"call_id": call_id, "from_number": "+4915123456789", "to_number": "+493083793369",
                 "direction": "inbound", "start_timestamp": 1744713000000i64},
        "timestamp": 1744713000000i64
    })
    .to_string();
    retell_post(client, &server.url("/api/retell/webhook"), &raw)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `events tail` child, stopped however the test ends.
struct Tail(std::process::Child);

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for a line of the tail's output that names `call_id`.
fn line_naming(lines: &mpsc::Receiver<String>, call_id: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(call_id) => return line,
            Ok(_) => {}
            Err(_) => panic!("events tail printed nothing about {call_id} within 15 s"),
        }
    }
}

#[tokio::test]
async fn events_tail_follows_what_a_running_server_stores_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    assert_eq!(call_started(&client, &server, "before-tail").await, 200);

    let mut tail = Tail(
        switchboard_command()
            .args(["events", "tail", "--data-dir"])
            .arg(&server.data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = tail.0.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let before = line_naming(&lines, "before-tail");
    assert!(
        before.contains("CallStarted") || before.contains("DeliveryReceived"),
        "{before}"
    );

    // Stored by the server after the tail opened the store.
    assert_eq!(call_started(&client, &server, "after-tail").await, 200);
    let after = line_naming(&lines, "after-tail");
    let event: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert!(event["position"].as_u64().is_some(), "{after}");
    drop(tail);

    let stream = output_of(
        switchboard_command()
            .args(["events", "read", "call-after-tail", "--data-dir"])
            .arg(&server.data_dir),
    );
    let types: Vec<String> = stream
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["event_type"].to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["\"DeliveryReceived\"", "\"CallStarted\""],
        "{stream}"
    );
}
