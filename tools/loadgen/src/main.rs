//! Sends signed Retell deliveries to a running `switchboard serve` and reports throughput and
//! latency percentiles. By default every delivery is a new call (`call_ended` with an
//! appointment request), so each one is a real append, not a duplicate; with
//! `--lifecycle-lag` the deliveries follow calls through their life instead (`call_started`,
//! later `call_ended`, later still `call_analyzed`), as a phone line's traffic does. Optionally
//! runs `check_availability` function calls alongside and reports their latency separately.
//!
//! Bounded by design: it stops after `--duration` seconds or `--count` deliveries and only
//! talks to the URL it is given (the bench script passes a loopback address).
//!
//! It shares the machine's cores with the server it measures, so it is built to cost little
//! per request: one thread, one plain HTTP/1 connection per task (keep-alive, no pool), each
//! task keeping its own figures until the end. It reports its own CPU time per response.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Uri, header};
use hyper_util::rt::TokioIo;
use switchboard_webhooks::{Scheme, Secret, sign};
use tokio::net::TcpStream;

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
    /// Number the calls `load-<run>-0`, `-1`, … instead of scattering their ids. Real call
    /// ids are random, so each new call's stream lands in a different leaf of the store's
    /// stream index; sequential ids fill one leaf after another (figures before 2026-12-06
    /// evening were measured with them).
    #[arg(long)]
    sequential_ids: bool,
    /// Follow calls through their life: a third of the deliveries start a new call
    /// (`call_started`), a third end the call started this many calls earlier (`call_ended`),
    /// a third analyse the one started twice as many earlier (`call_analyzed`), so two of three
    /// deliveries go to a stream that exists, written a while ago. Until a run has started
    /// that many calls (twice as many for the analyses), the deliveries whose call does not
    /// exist yet start calls of their own, which are never ended. 0 (the default): every
    /// delivery a new call's `call_ended`.
    #[arg(long, default_value_t = 0)]
    lifecycle_lag: u64,
}

/// What one task saw; merged once every task has finished.
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

impl Stats {
    fn record(&mut self, outcome: Result<u16, Failure>, due: Instant) {
        match outcome {
            Ok(status) => {
                let micros = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
                self.latencies_us.push(micros);
                *self.statuses.entry(status).or_default() += 1;
            }
            Err(_) => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
    }
}

fn main() {
    let args = Args::parse();
    // One thread: no work stealing and no wake-ups across threads, the cheapest way to keep
    // dozens of connections busy.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("async runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let secret = Secret::new(args.secret.clone());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let next_id = Arc::new(AtomicU64::new(0));
    let run_id = chrono::Utc::now().timestamp_millis();
    let transcript = "Kunde: Ich möchte einen Termin. ".repeat(args.transcript_bytes / 32 + 1);
    let transcript = &transcript[..args.transcript_bytes.min(transcript.len())];
    // Escaped once: every body is the same template with a new call id and times.
    let transcript: Arc<str> = Arc::from(serde_json::to_string(transcript).expect("a string"));

    let started = Instant::now();
    let cpu_before = cpu_time();
    let mut ingest_tasks = Vec::new();
    // Each connection paces itself to its share of the rate.
    let per_connection_interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.connections as f64 / args.rate as f64));
    let connections = args.connections;
    for connection in 0..connections {
        let mut target = Connection::new(&args.url[connection % args.url.len()]);
        let secret = secret.clone();
        let next_id = next_id.clone();
        let transcript = transcript.clone();
        let count = args.count;
        let sequential_ids = args.sequential_ids;
        let lifecycle_lag = args.lifecycle_lag;
        ingest_tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
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
                // Scattered: the random part first, so that every run's calls spread over
                // the whole index like real ids, not over a range of their own; the run id
                // after it keeps runs apart.
                let call_id = |call: u64| {
                    if sequential_ids {
                        format!("{run_id}-{call}")
                    } else {
                        format!("{:016x}-{run_id}", scatter(call))
                    }
                };
                let body = match lifecycle(n, lifecycle_lag) {
                    Phase::NewCallEnded => call_ended(&call_id(n), n, &transcript),
                    Phase::Started(call) => call_started(&call_id(call), call),
                    Phase::WarmUp => call_started(&format!("warm{:016x}-{run_id}", scatter(n)), n),
                    Phase::Ended(call) => call_ended(&call_id(call), call, &transcript),
                    Phase::Analyzed(call) => call_analyzed(&call_id(call), call, &transcript),
                };
                let outcome = target.post("/api/retell/webhook", &secret, body).await;
                stats.record(outcome, due);
            }
            stats
        }));
    }
    let function_task = (args.function_rate > 0).then(|| {
        let mut target = Connection::new(&args.url[0]);
        let secret = secret.clone();
        let every = Duration::from_secs_f64(1.0 / args.function_rate as f64);
        tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut ticker = tokio::time::interval(every);
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
                let outcome = target
                    .post("/api/retell/functions/check_availability", &secret, body)
                    .await;
                stats.record(outcome, due);
            }
            stats
        })
    });
    let mut ingest = Stats::default();
    for task in ingest_tasks {
        ingest.merge(task.await.expect("a connection task panicked"));
    }
    let functions = match function_task {
        Some(task) => Some(task.await.expect("the function-call task panicked")),
        None => None,
    };
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let responses =
        ingest.latencies_us.len() + functions.as_ref().map_or(0, |f| f.latencies_us.len());
    let name = if args.lifecycle_lag > 0 {
        "ingest (calls started, ended, analysed)"
    } else {
        "ingest (call_ended)"
    };
    report(name, ingest, elapsed);
    if let Some(functions) = functions {
        report("check_availability", functions, elapsed);
    }
    if responses > 0 {
        println!(
            "load generator CPU: {:.1} µs per response ({:.2} s in all)",
            cpu.as_secs_f64() * 1e6 / responses as f64,
            cpu.as_secs_f64()
        );
    }
}

/// One keep-alive HTTP/1 connection to the server, opened on first use and again after an
/// error.
struct Connection {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(base_url: &str) -> Self {
        let uri: Uri = base_url.parse().expect("--url: an http:// URL");
        assert!(
            uri.scheme_str() == Some("http"),
            "--url {base_url}: only plain http:// is supported"
        );
        let authority = uri.authority().expect("--url: a host and port").to_string();
        Connection {
            authority,
            sender: None,
        }
    }

    async fn post(&mut self, path: &str, secret: &Secret, body: String) -> Result<u16, Failure> {
        let outcome = self.try_post(path, secret, body).await;
        if outcome.is_err() {
            // Whatever broke, the next request starts on a fresh connection.
            self.sender = None;
        }
        outcome
    }

    async fn try_post(
        &mut self,
        path: &str,
        secret: &Secret,
        body: String,
    ) -> Result<u16, Failure> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            slot @ None => slot.insert(connect(&self.authority).await?),
        };
        sender.ready().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut request = Request::post(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in sign(Scheme::RetellDocumented, secret, body.as_bytes(), now) {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request");
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// Why a request got no answer.
type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = match TcpStream::connect(authority).await {
        Ok(stream) => stream,
        Err(error) => {
            // Counted as a transport error; a short pause keeps a task whose server is gone
            // from spinning until the deadline.
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Err(error.into());
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A bijection of u64 (SplitMix64's finalizer): distinct deliveries keep distinct call ids,
/// spread over the whole range like random ones.
fn scatter(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What delivery `n` is.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// `call_ended` of a call nothing was sent for before (the default mix).
    NewCallEnded,
    /// `call_started` of call number `.0`.
    Started(u64),
    /// `call_started` of a call that is never ended: the run is younger than the lag.
    WarmUp,
    Ended(u64),
    Analyzed(u64),
}

/// Delivery `n` with calls `lag` apart between their phases (see `--lifecycle-lag`): the
/// phases take turns, and delivery 3j + p belongs to call j - p·lag.
fn lifecycle(n: u64, lag: u64) -> Phase {
    if lag == 0 {
        return Phase::NewCallEnded;
    }
    let (turn, phase) = (n / 3, n % 3);
    match (phase, turn.checked_sub(phase * lag)) {
        (0, _) => Phase::Started(turn),
        (_, None) => Phase::WarmUp,
        (1, Some(call)) => Phase::Ended(call),
        (_, Some(call)) => Phase::Analyzed(call),
    }
}

const FROM: &str = "+4915123456789";
const TO: &str = "+493083793369";

fn call_started(call_id: &str, n: u64) -> String {
    let start = 1_900_000_000_000i64 + n as i64;
    format!(
        r#"{{"event":"call_started","call":{{"call_id":"load-{call_id}","from_number":"{FROM}","to_number":"{TO}","direction":"inbound","agent_id":"agent_load","call_status":"ongoing","start_timestamp":{start}}},"timestamp":{start}}}"#
    )
}

fn call_analyzed(call_id: &str, n: u64, transcript_json: &str) -> String {
    let start = 1_900_000_000_000i64 + n as i64;
    let end = start + 300_000;
    let at = end + 60_000;
    format!(
        r#"{{"event":"call_analyzed","call":{{"call_id":"load-{call_id}","from_number":"{FROM}","to_number":"{TO}","direction":"inbound","agent_id":"agent_load","call_status":"ended","start_timestamp":{start},"end_timestamp":{end},"duration_ms":300000,"disconnection_reason":"user_hangup","transcript":{transcript_json},"call_analysis":{{"call_summary":"Kunde möchte einen Termin","user_sentiment":"Positive","call_successful":true,"in_voicemail":false,"custom_analysis_data":{{"datum":"15.04.2030","uhrzeit":"14:30","dienstleistung":"Herrenhaarschnitt","name":"Max Mustermann","telefonnummer":"{FROM}"}}}}}},"timestamp":{at}}}"#
    )
}

fn call_ended(call_id: &str, n: u64, transcript_json: &str) -> String {
    let start = 1_900_000_000_000i64 + n as i64;
    let end = start + 300_000;
    format!(
        r#"{{"event":"call_ended","call":{{"call_id":"load-{call_id}","from_number":"{FROM}","to_number":"{TO}","direction":"inbound","agent_id":"agent_load","start_timestamp":{start},"end_timestamp":{end},"duration":300,"status":"completed","end_reason":"agent_ended","transcript":{transcript_json},"summary":"Kunde möchte einen Termin","custom_data":{{"collect_appointment_data":{{"datum":"15.04.2030","uhrzeit":"14:30","dienstleistung":"Herrenhaarschnitt","name":"Max Mustermann","telefonnummer":"{FROM}"}}}}}},"timestamp":{end}}}"#
    )
}

/// User and system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn report(name: &str, stats: Stats, elapsed: Duration) {
    let mut latencies = stats.latencies_us;
    latencies.sort_unstable();
    let done = latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((p / 100.0) * (done as f64 - 1.0)).round() as usize;
        latencies[index] as f64 / 1000.0
    };
    // Throughput counts only what the server accepted; anything else is listed beside it.
    let accepted: u64 = stats
        .statuses
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
        stats.statuses,
        stats.errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_phases_follow_each_call_in_order_lag_calls_apart() {
        assert_eq!(lifecycle(7, 0), Phase::NewCallEnded);
        let lag = 2;
        let phases: Vec<Phase> = (0..18).map(|n| lifecycle(n, lag)).collect();
        // Turn j starts call j, ends call j - 2, analyses call j - 4.
        assert_eq!(phases[0], Phase::Started(0));
        assert_eq!(phases[1], Phase::WarmUp);
        assert_eq!(phases[2], Phase::WarmUp);
        assert_eq!(phases[6], Phase::Started(2));
        assert_eq!(phases[7], Phase::Ended(0));
        assert_eq!(phases[8], Phase::WarmUp);
        assert_eq!(phases[14], Phase::Analyzed(0));
        assert_eq!(phases[16], Phase::Ended(3));
        // Every call that is ended or analysed was started before.
        for (n, phase) in phases.iter().enumerate() {
            if let Phase::Ended(call) | Phase::Analyzed(call) = phase {
                let started = phases.iter().position(|p| *p == Phase::Started(*call));
                assert!(started.is_some_and(|s| s < n), "call {call} at {n}");
            }
        }
    }

    #[test]
    fn every_body_parses_as_the_retell_event_it_names() {
        use switchboard_webhooks::payload::retell::{RetellCallEvent, RetellEvent};
        use switchboard_webhooks::{Delivery, Provider, parse};
        let transcript = serde_json::to_string("Kunde: \"Termin\" bitte.").unwrap();
        let parsed = |body: String| match parse(Provider::Retell, body.as_bytes()) {
            Ok(Delivery::Retell(event)) => event,
            other => panic!("{body}: {other:?}"),
        };
        let call_id = |call: &RetellCallEvent| call.call.call_id.clone();
        match parsed(call_started("a", 1)) {
            RetellEvent::CallStarted(call) => assert_eq!(call_id(&call), "load-a"),
            other => panic!("{other:?}"),
        }
        match parsed(call_ended("a", 1, &transcript)) {
            RetellEvent::CallEnded(call) => assert_eq!(call_id(&call), "load-a"),
            other => panic!("{other:?}"),
        }
        match parsed(call_analyzed("a", 1, &transcript)) {
            RetellEvent::CallAnalyzed(call) => assert_eq!(call_id(&call), "load-a"),
            other => panic!("{other:?}"),
        }
    }
}
