//! End to end: the real `switchboard serve` on a temp data dir, spoken to over HTTP.
//! Every status of INTERFACE.md's ingest table, rotation, duplicates across endpoints,
//! concurrency on one stream, SIGKILL and restart, graceful shutdown.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::*;
use switchboard_webhooks::Scheme;

/// A Tuesday four to five weeks ahead: inside the bookable range, on an opening day.
fn future_tuesday() -> String {
    use chrono::Datelike;
    let mut day = chrono::Utc::now().date_naive() + chrono::Duration::days(28);
    while day.weekday() != chrono::Weekday::Tue {
        day += chrono::Duration::days(1);
    }
    day.format("%Y-%m-%d").to_string()
}

fn call_event(event: &str, call_id: &str) -> Value {
    json!({
        "event": event,
        "call": {
            "call_id": call_id,
            "from_number": "+4915123456789",
            "to_number": "+493083793369",
            "direction": "inbound",
            "agent_id": "agent_abc123def456",
            "start_timestamp": 1703244123456i64,
            "end_timestamp": 1703244423456i64,
            "duration": 300,
            "transcript": "Agent: Guten Tag\nKunde: Termin bitte",
        },
        "timestamp": 1703244423456i64
    })
}

fn booking(trigger: &str, uid: &str, created_at: &str) -> Value {
    json!({
        "triggerEvent": trigger,
        "createdAt": created_at,
        "payload": {
            "id": 2026361,
            "uid": uid,
            "title": "Herrenhaarschnitt mit Max Mustermann",
            "startTime": "2025-04-15T12:30:00.000Z",
            "endTime": "2025-04-15T13:00:00.000Z",
            "organizer": {"id": 12345, "name": "Marie Schmidt", "email": "marie@salon.de"},
            "attendees": [{"email": "max@example.com", "name": "Max Mustermann"}],
            "metadata": {"call_id": "call-story"},
            "status": "ACCEPTED"
        }
    })
}

async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    scheme: Scheme,
    secret: &str,
    body: &[u8],
    at_ms: i64,
) -> (u16, Value) {
    let response = signed_post(client, url, scheme, secret, body, at_ms)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn retell(client: &reqwest::Client, server: &TestServer, body: &Value) -> (u16, Value) {
    post_signed(
        client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellDocumented,
        RETELL_SECRET,
        body.to_string().as_bytes(),
        now_ms(),
    )
    .await
}

async fn calcom(client: &reqwest::Client, server: &TestServer, body: &Value) -> (u16, Value) {
    post_signed(
        client,
        &server.url("/api/calcom/webhook"),
        Scheme::CalcomDocumented,
        CALCOM_SECRET,
        body.to_string().as_bytes(),
        now_ms(),
    )
    .await
}

async fn stream(client: &reqwest::Client, server: &TestServer, name: &str) -> Vec<Value> {
    let response = client
        .get(server.url(&format!("/api/streams/{name}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("stream request");
    assert_eq!(response.status().as_u16(), 200, "GET /api/streams/{name}");
    let body: Value = response.json().await.expect("json");
    body["events"].as_array().cloned().unwrap_or_default()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_status_of_the_ingest_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    // No Stripe secret: Stripe deliveries must be refused with no_secret_configured.
    options
        .env
        .retain(|(k, _)| k != "SWITCHBOARD_STRIPE_SECRETS");
    options.extra_args = vec!["--max-body".into(), "4096".into()];
    let server = TestServer::start(options);
    let client = client();

    // 200 accepted: the raw delivery and the decided events, with their versions.
    let (status, body) = retell(&client, &server, &call_event("call_ended", "call-a")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");
    assert!(body["delivery_id"].is_string());
    let types: Vec<_> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types[0], "DeliveryReceived");
    assert!(types.contains(&"CallEnded".to_owned()), "{types:?}");
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["stream"] == "call-call-a")
    );

    // 409 duplicate: the same delivery again, also through the unified endpoint.
    let (status, body) = retell(&client, &server, &call_event("call_ended", "call-a")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("duplicate")),
        "{body}"
    );
    let raw = call_event("call_ended", "call-a").to_string();
    let (status, _) = post_signed(
        &client,
        &server.url("/api/webhook"),
        Scheme::RetellDocumented,
        RETELL_SECRET,
        raw.as_bytes(),
        now_ms(),
    )
    .await;
    assert_eq!(status, 409);
    let events = stream(&client, &server, "call-call-a").await;
    assert_eq!(events.len(), 2, "a duplicate appends nothing: {events:#?}");

    // 200 anomaly: a reschedule after a cancellation is recorded, not refused.
    let (status, _) = calcom(
        &client,
        &server,
        &booking("BOOKING_CREATED", "bkg-1", "2025-04-14T10:30:00.000Z"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = calcom(
        &client,
        &server,
        &booking("BOOKING_CANCELLED", "bkg-1", "2025-04-14T15:00:00.000Z"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = calcom(
        &client,
        &server,
        &booking("BOOKING_RESCHEDULED", "bkg-1", "2025-04-14T16:00:00.000Z"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("anomaly")),
        "{body}"
    );
    assert!(body["reason"].is_string());

    // 200 function call: the answer in the seed's shape.
    let tuesday = future_tuesday();
    let function_call = json!({
        "event": "function_call", "call_id": "call-a", "function_name": "check_availability",
        "arguments": {"date": tuesday, "time": "14:30", "duration": 30, "staff": "Marie"},
        "request_id": "req_xyz789", "timestamp": 1703244223456i64
    });
    let (status, body) = retell(&client, &server, &function_call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request_id"], "req_xyz789");
    assert_eq!(body["result"]["available"], true, "{body}");
    let start = body["result"]["slots"][0]["start"].as_str().unwrap();
    assert!(
        start.starts_with(&format!("{tuesday}T14:30:00+0")),
        "{start}"
    );
    // The same function call again: the answer it was given, not a 409 the agent cannot use.
    let (status, again) = retell(&client, &server, &function_call).await;
    assert_eq!((status, &again), (200, &body));

    // 400 malformed: not JSON; and a payload missing what its event needs, with the path.
    let (status, body) = post_signed(
        &client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellDocumented,
        RETELL_SECRET,
        b"{not json",
        now_ms(),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "malformed_payload"), "{body}");
    let missing = json!({"event": "call_ended", "call": {"from_number": "+49"}});
    let (status, body) = retell(&client, &server, &missing).await;
    assert_eq!((status, code(&body)), (400, "malformed_payload"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$.call.call_id"),
        "{body}"
    );

    // 401: unsigned, mis-signed, stale, and a provider with no secret.
    let response = client
        .post(server.url("/api/webhook"))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(code(&response.json().await.unwrap()), "missing_signature");
    let (status, body) = post_signed(
        &client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellDocumented,
        "wrong-secret",
        raw.as_bytes(),
        now_ms(),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "invalid_signature"), "{body}");
    let (status, body) = post_signed(
        &client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellSdk,
        RETELL_SECRET,
        raw.as_bytes(),
        now_ms() - 10 * 60 * 1000,
    )
    .await;
    assert_eq!((status, code(&body)), (401, "stale_timestamp"), "{body}");
    let (status, body) = post_signed(
        &client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellSdk,
        RETELL_SECRET,
        raw.as_bytes(),
        now_ms() + 10 * 60 * 1000,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (401, "stale_timestamp"),
        "a future timestamp is refused too: {body}"
    );
    let stripe_event = json!({"id": "evt_1", "object": "event", "type": "invoice.payment_succeeded", "created": 1703244123, "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_1", "amount_paid": 9900, "currency": "eur"}}});
    let (status, body) = post_signed(
        &client,
        &server.url("/api/stripe/webhook"),
        Scheme::Stripe,
        "whsec_x",
        stripe_event.to_string().as_bytes(),
        now_ms(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (401, "no_secret_configured"),
        "{body}"
    );

    // 413: over --max-body, refused before it is read.
    let big = vec![b' '; 8192];
    let (status, body) = post_signed(
        &client,
        &server.url("/api/retell/webhook"),
        Scheme::RetellDocumented,
        RETELL_SECRET,
        &big,
        now_ms(),
    )
    .await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"), "{body}");

    // A mistyped URL or method gets the same error shape as every other refusal.
    let response = client
        .post(server.url("/api/retel/webhook"))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "not_found", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/retell/webhook"),
        "{body}"
    );
    let response = client
        .get(server.url("/api/retell/webhook"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "method_not_allowed", "{body}");

    // None of the refusals changed a stream; all of them are in the quarantine.
    assert_eq!(
        stream(&client, &server, "call-call-a").await.len(),
        4,
        "call_ended (2 events) + function call (2 events)"
    );
    let quarantine: Value = client
        .get(server.url("/api/quarantine"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: HashSet<_> = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["code"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "malformed_payload",
        "missing_signature",
        "invalid_signature",
        "stale_timestamp",
        "no_secret_configured",
        "payload_too_large",
    ] {
        assert!(
            codes.contains(expected),
            "quarantine lacks {expected}: {codes:?}"
        );
    }
    let metrics = metrics_text(&client, &server).await;
    assert!(
        metrics.contains("switchboard_verification_failures_total"),
        "{metrics}"
    );
}

/// Every delivery within `--max-body` is recorded whole, however much escaping its body needs
/// as a JSON string in the raw delivery (each `"` of this transcript is two bytes in the body
/// and four in the store): it was refused with a 400 once the escaped body passed the store's
/// fixed 2 MiB event limit.
#[tokio::test]
async fn a_delivery_within_max_body_is_recorded_however_much_escaping_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.extra_args = vec!["--max-body".into(), "3000000".into()];
    let server = TestServer::start(options);
    let client = client();
    let mut delivery = call_event("call_ended", "call-quoted");
    delivery["call"]["transcript"] = Value::from("\"".repeat(1_400_000));
    let body = delivery.to_string();
    assert!(
        (2_800_000..3_000_000).contains(&body.len()),
        "{}",
        body.len()
    );
    let (status, answer) = retell(&client, &server, &delivery).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let events = stream(&client, &server, "call-call-quoted").await;
    let raw = events
        .iter()
        .find(|e| e["event_type"] == "DeliveryReceived")
        .expect("the raw delivery is stored");
    assert_eq!(raw["data"]["body"].as_str(), Some(body.as_str()));
}

/// Retell's custom functions: `POST /api/retell/functions/{name}` answers with the result
/// object itself, recorded on the call's stream; the same request again gets the same answer;
/// a body that names another function than its path is refused with the path of the field.
#[tokio::test]
async fn the_custom_function_endpoint_answers_with_the_result_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let request = |name: &str| {
        json!({
            "name": name,
            "args": {"date": future_tuesday(), "time": "14:30", "duration": 30, "staff": "Marie"},
            "call": {
                "call_id": "fn-call", "from_number": "+4915123456789",
                "to_number": "+493083793369", "direction": "inbound", "call_status": "ongoing",
                "start_timestamp": 1703244123456i64
            }
        })
        .to_string()
    };
    let post = |path: &str, body: String| {
        let url = server.url(path);
        let client = client.clone();
        async move {
            post_signed(
                &client,
                &url,
                Scheme::RetellDocumented,
                RETELL_SECRET,
                body.as_bytes(),
                now_ms(),
            )
            .await
        }
    };

    let path = "/api/retell/functions/check_availability";
    let (status, answer) = post(path, request("check_availability")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["available"], true,
        "the result object itself: {answer}"
    );
    assert!(
        answer["slots"].is_array() && answer["message"].is_string(),
        "{answer}"
    );
    let (status, again) = post(path, request("check_availability")).await;
    assert_eq!((status, &again), (200, &answer), "the answer it was given");
    let types: Vec<Value> = stream(&client, &server, "call-fn-call")
        .await
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![json!("DeliveryReceived"), json!("AvailabilityChecked")],
        "recorded once on the call's stream"
    );

    // Posted to another function's path: refused, nothing recorded.
    let (status, refused) = post(
        "/api/retell/functions/book_appointment",
        request("check_availability"),
    )
    .await;
    assert_eq!(
        (status, code(&refused)),
        (400, "malformed_payload"),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("$.name") && message.contains("book_appointment"),
        "{message}"
    );
    assert_eq!(stream(&client, &server, "call-fn-call").await.len(), 2);

    // A function no rule knows, at its own path: kept, answered `accepted`.
    let (status, kept) = post(
        "/api/retell/functions/transfer_call",
        request("transfer_call"),
    )
    .await;
    assert_eq!(
        (status, kept["status"].as_str()),
        (200, Some("accepted")),
        "{kept}"
    );
}

/// Store trouble against the real server: while another process holds the event store's
/// write lock past its bound (5 s), a delivery answers 503 `store_unavailable` with
/// `Retry-After` and nothing is recorded; once the lock is gone the service takes the same
/// delivery (200, not 409: it was never half-recorded), without a restart.
#[tokio::test]
async fn a_store_locked_past_its_bound_answers_503_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let (status, body) = retell(&client, &server, &call_event("call_started", "call-before")).await;
    assert_eq!(status, 200, "{body}");

    // Another process's write transaction on the store's file: SQLite's write lock.
    let locker = rusqlite::Connection::open(server.data_dir.join("events.sqlite")).unwrap();
    locker.busy_timeout(Duration::from_secs(10)).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked = call_event("call_started", "call-locked");
    let response = retell_post(
        &client,
        &server.url("/api/retell/webhook"),
        &locked.to_string(),
    )
    .send()
    .await
    .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap();
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!((status, code(&body)), (503, "store_unavailable"), "{body}");
    assert!(retry_after.is_some(), "503 says when to come back");

    let (status, body) = retell(&client, &server, &locked).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "the same delivery once the lock is gone: {body}"
    );
    assert_eq!(stream(&client, &server, "call-call-locked").await.len(), 2);
}

#[tokio::test]
async fn rate_limited_deliveries_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options.extra_args = vec![
        "--rate-limit".into(),
        "1".into(),
        "--rate-limit-burst".into(),
        "2".into(),
    ];
    let server = TestServer::start(options);
    let client = client();
    let mut limited = None;
    for i in 0..5 {
        let body = call_event("call_started", &format!("rl-{i}")).to_string();
        let response = retell_post(&client, &server.url("/api/retell/webhook"), &body)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("a burst of 5 over a quota of 1/s with burst 2 is limited");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(code(&response.json().await.unwrap()), "rate_limited");
}

#[tokio::test]
async fn a_rotated_secret_verifies_alongside_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(dir.path());
    options
        .env
        .retain(|(k, _)| k != "SWITCHBOARD_RETELL_SECRETS");
    options.env.push((
        "SWITCHBOARD_RETELL_SECRETS".into(),
        "old-secret, new-secret".into(),
    ));
    let server = TestServer::start(options);
    let client = client();
    for (i, secret) in ["old-secret", "new-secret"].iter().enumerate() {
        let body = call_event("call_started", &format!("rot-{i}")).to_string();
        let (status, body) = post_signed(
            &client,
            &server.url("/api/retell/webhook"),
            Scheme::RetellSdk,
            secret,
            body.as_bytes(),
            now_ms(),
        )
        .await;
        assert_eq!(status, 200, "{secret}: {body}");
    }
}

#[tokio::test]
async fn a_hundred_parallel_deliveries_to_one_call_make_one_consistent_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let url = server.url("/api/retell/webhook");
    let mut tasks = Vec::new();
    for i in 0..100 {
        // 50 distinct facts (function calls), each sent twice, plus the call's lifecycle.
        let body = match i % 4 {
            0 => call_event("call_started", "busy-call"),
            1 => call_event("call_ended", "busy-call"),
            _ => json!({
                "event": "function_call", "call_id": "busy-call", "function_name": "check_availability",
                "arguments": {"date": future_tuesday(), "time": "10:00"},
                "request_id": format!("req-{}", i / 2), "timestamp": 1703244223456i64
            }),
        };
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            post_signed(
                &client,
                &url,
                Scheme::RetellDocumented,
                RETELL_SECRET,
                body.to_string().as_bytes(),
                now_ms(),
            )
            .await
        }));
    }
    let mut recorded = [0, 0];
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert!(
            matches!(status, 200 | 409),
            "no 5xx under contention: {status} {body}"
        );
        // 25 copies each of call_started (i % 4 == 0) and call_ended (i % 4 == 1): one records.
        if i % 4 < 2 && status == 200 {
            recorded[i % 4] += 1;
        }
    }
    assert_eq!(
        recorded,
        [1, 1],
        "exactly one copy of started and of ended is recorded"
    );
    let events = stream(&client, &server, "call-busy-call").await;
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (0..events.len() as u64).collect::<Vec<_>>(),
        "contiguous versions"
    );
    let keys: Vec<&str> = events
        .iter()
        .filter_map(|e| e["metadata"]["dedupe_key"].as_str())
        .collect();
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "no delivery recorded twice");
    // started, ended, and the distinct function calls (request ids req-1, req-3, …, 25 of them
    // from i%4 in {2,3} → i/2 distinct per pair).
    let distinct_requests: HashSet<_> = (0..100).filter(|i| i % 4 >= 2).map(|i| i / 2).collect();
    assert_eq!(keys.len(), 2 + distinct_requests.len());
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let url = server.url("/api/retell/webhook");
    let (tx, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let mut senders = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let url = url.clone();
        let tx = tx.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..2000 {
                let body = call_event("call_ended", &format!("kill-{worker}-{n}")).to_string();
                match retell_post(&client, &url, &body).send().await {
                    Ok(response) if response.status().as_u16() == 200 => {
                        let _ = tx.send(body);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    // Let some deliveries through, then kill without warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for sender in senders {
        let _ = sender.await;
    }
    let mut acknowledged = Vec::new();
    while let Ok(body) = acked.try_recv() {
        acknowledged.push(body);
    }
    assert!(
        !acknowledged.is_empty(),
        "some deliveries were acknowledged before the kill"
    );

    let server = TestServer::start(ServerOptions::new(dir.path()));
    let url = server.url("/api/retell/webhook");
    for body in &acknowledged {
        let (status, response) = post_signed(
            &client,
            &url,
            Scheme::RetellDocumented,
            RETELL_SECRET,
            body.as_bytes(),
            now_ms(),
        )
        .await;
        assert_eq!(
            status, 409,
            "an acknowledged delivery must be stored: {response}"
        );
    }
}

#[tokio::test]
async fn sigterm_finishes_in_flight_deliveries_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let url = server.url("/api/retell/webhook");
    let mut tasks = Vec::new();
    for n in 0..50 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let body = call_event("call_ended", &format!("term-{n}")).to_string();
            let result = retell_post(&client, &url, &body).send().await;
            (body, result.map(|r| r.status().as_u16()).ok())
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let (body, Some(200)) = task.await.unwrap() {
            acknowledged.push(body);
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "deliveries in flight or sent before the signal were answered"
    );
    let server = TestServer::start(ServerOptions::new(dir.path()));
    for body in &acknowledged {
        let (status, _) = post_signed(
            &client,
            &server.url("/api/retell/webhook"),
            Scheme::RetellDocumented,
            RETELL_SECRET,
            body.as_bytes(),
            now_ms(),
        )
        .await;
        assert_eq!(status, 409);
    }
}
