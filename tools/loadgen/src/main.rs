//! Sends signed Retell deliveries to a running `switchboard serve` and reports throughput and
//! latency percentiles. Every delivery is a new call (`call_ended` with an appointment
//! request), so each one is a real append, not a duplicate. Optionally runs
//! `check_availability` function calls alongside and reports their latency separately.
//!
//! Bounded by design: it stops after `--duration` seconds or `--count` deliveries and only
//! talks to the URL it is given (the bench script passes a loopback address).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use switchboard_webhooks::{Scheme, Secret, sign};
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080. Repeat it to spread the
    /// connections over several instances (round robin).
    #[arg(long, required = true)]
    url: Vec<String>,
    /// The Retell secret the server is configured with.
    #[arg(long)]
    secret: String,
    /// Target deliveries per second in total; 0 sends as fast as the connections allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many deliveries (0: no limit but the duration).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Also send `check_availability` calls at this rate (per second) and report their latency.
    #[arg(long, default_value_t = 0)]
    function_rate: u64,
    /// Size of the transcript in each delivery, in bytes.
    #[arg(long, default_value_t = 1024)]
    transcript_bytes: usize,
}

struct Stats {
    latencies_us: Mutex<Vec<u32>>,
    statuses: Mutex<std::collections::BTreeMap<u16, u64>>,
    errors: AtomicU64,
}

impl Stats {
    fn new() -> Arc<Self> {
        Arc::new(Stats {
            latencies_us: Mutex::new(Vec::new()),
            statuses: Mutex::new(Default::default()),
            errors: AtomicU64::new(0),
        })
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let secret = Secret::new(args.secret.clone());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let next_id = Arc::new(AtomicU64::new(0));
    let ingest = Stats::new();
    let functions = Stats::new();
    let run_id = chrono::Utc::now().timestamp_millis();
    let transcript = "Kunde: Ich möchte einen Termin. ".repeat(args.transcript_bytes / 32 + 1);
    let transcript: Arc<str> =
        Arc::from(&transcript[..args.transcript_bytes.min(transcript.len())]);

    let started = Instant::now();
    let mut tasks = Vec::new();
    // Each connection paces itself to its share of the rate.
    let per_connection_interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.connections as f64 / args.rate as f64));
    let connections = args.connections;
    for connection in 0..connections {
        let client = client.clone();
        let secret = secret.clone();
        let url = format!(
            "{}/api/retell/webhook",
            args.url[connection % args.url.len()]
        );
        let next_id = next_id.clone();
        let stats = ingest.clone();
        let transcript = transcript.clone();
        let count = args.count;
        tasks.push(tokio::spawn(async move {
            let mut ticker = per_connection_interval.map(|every| {
                // Each connection starts its own fraction of an interval later, so the
                // requests arrive evenly spaced rather than in bursts of one per connection.
                let offset = every.mul_f64(connection as f64 / connections as f64);
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            loop {
                // Paced: latency counts from when the request was due, not when it could be
                // sent, so a stalling server cannot hide its stall (coordinated omission).
                let due = match ticker.as_mut() {
                    Some(t) => t.tick().await.into_std(),
                    None => Instant::now(),
                };
                let n = next_id.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline || (count > 0 && n >= count) {
                    break;
                }
                let body = call_ended(run_id, n, &transcript);
                send(&client, &url, &secret, body, due, &stats).await;
            }
        }));
    }
    if args.function_rate > 0 {
        let client = client.clone();
        let secret = secret.clone();
        let url = format!("{}/api/retell/functions/check_availability", args.url[0]);
        let stats = functions.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / args.function_rate as f64));
            let mut n = 0u64;
            let date = (chrono::Utc::now() + chrono::Duration::days(14))
                .format("%Y-%m-%d")
                .to_string();
            while Instant::now() < deadline {
                let due = ticker.tick().await.into_std();
                n += 1;
                let body = serde_json::json!({
                    "name": "check_availability",
                    "args": {"date": date, "time": "14:30", "duration": 30, "staff": "Marie"},
                    "call": {"call_id": format!("fn-{run_id}-{n}"), "to_number": "+493083793369",
                             "from_number": "+4915123456789"}
                })
                .to_string();
                send(&client, &url, &secret, body, due, &stats).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    report("ingest (call_ended)", &ingest, elapsed).await;
    if args.function_rate > 0 {
        report("check_availability", &functions, elapsed).await;
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    body: String,
    due: Instant,
    stats: &Stats,
) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone());
    for (name, value) in sign(Scheme::RetellDocumented, secret, body.as_bytes(), now) {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            let micros = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
            stats.latencies_us.lock().await.push(micros);
            *stats.statuses.lock().await.entry(status).or_default() += 1;
        }
        Err(_) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn call_ended(run_id: i64, n: u64, transcript: &str) -> String {
    let start = 1_900_000_000_000i64 + n as i64;
    serde_json::json!({
        "event": "call_ended",
        "call": {
            "call_id": format!("load-{run_id}-{n}"),
            "from_number": "+4915123456789",
            "to_number": "+493083793369",
            "direction": "inbound",
            "agent_id": "agent_load",
            "start_timestamp": start,
            "end_timestamp": start + 300_000,
            "duration": 300,
            "status": "completed",
            "end_reason": "agent_ended",
            "transcript": transcript,
            "summary": "Kunde möchte einen Termin",
            "custom_data": {"collect_appointment_data": {
                "datum": "15.04.2030", "uhrzeit": "14:30", "dienstleistung": "Herrenhaarschnitt",
                "name": "Max Mustermann", "telefonnummer": "+4915123456789"
            }}
        },
        "timestamp": start + 300_000
    })
    .to_string()
}

async fn report(name: &str, stats: &Stats, elapsed: Duration) {
    let mut latencies = stats.latencies_us.lock().await.clone();
    latencies.sort_unstable();
    let done = latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((p / 100.0) * (done as f64 - 1.0)).round() as usize;
        latencies[index] as f64 / 1000.0
    };
    let statuses = stats.statuses.lock().await.clone();
    // Throughput counts only what the server accepted; anything else is listed beside it.
    let accepted: u64 = statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, count)| count)
        .sum();
    println!(
        "{name}: {accepted} accepted of {done} responses in {:.2} s = {:.0} accepted/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; statuses {:?}; transport errors {}",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64(),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(100.0),
        statuses,
        stats.errors.load(Ordering::Relaxed)
    );
}
