//! End to end: the query side. Tenants registered over the API, deliveries attributed to
//! them (also after the fact), the mission's story read back, tenant isolation, bad input,
//! and `switchboard rebuild` giving the same answers as live processing.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_e2e::*;
use switchboard_webhooks::Scheme;

const SALON_TOKEN: &str = "salon-token";
const OTHER_TOKEN: &str = "other-token";

async fn deliver(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    scheme: Scheme,
    secret: &str,
    body: &Value,
) -> (u16, Value) {
    let raw = body.to_string();
    let response = signed_post(
        client,
        &server.url(path),
        scheme,
        secret,
        raw.as_bytes(),
        now_ms(),
    )
    .send()
    .await
    .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A Retell delivery, signed with the configured secret.
async fn deliver_retell(
    client: &reqwest::Client,
    server: &TestServer,
    body: &Value,
) -> (u16, Value) {
    deliver(
        client,
        server,
        "/api/retell/webhook",
        Scheme::RetellDocumented,
        RETELL_SECRET,
        body,
    )
    .await
}

async fn get(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn put_tenant(
    client: &reqwest::Client,
    server: &TestServer,
    id: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .put(server.url(&format!("/api/tenants/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Waits until the read models have caught up with the store.
async fn settle(client: &reqwest::Client, server: &TestServer) {
    for _ in 0..200 {
        let (_, ready) = get(client, server, "/readyz", None).await;
        if ready["projections"]["lag_events"] == 0 {
            // The policy may append links after the projections caught up; give it a beat.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, again) = get(client, server, "/readyz", None).await;
            if again["projections"]["lag_events"] == 0 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("read models did not catch up");
}

fn call(event: &str, call_id: &str, to: &str) -> Value {
    json!({
        "event": event,
        "call": {
            "call_id": call_id, "from_number": "+49 1512 3456789", "to_number": to,
            "direction": "inbound", "start_timestamp": 1744713000000i64, "end_timestamp": 1744713300000i64,
            "duration": 300, "transcript": "Kunde: Termin bitte", "summary": "Termin gewünscht",
            "custom_data": {"collect_appointment_data": {"datum": "15.04.2025", "uhrzeit": "14:30",
                "dienstleistung": "Herrenhaarschnitt", "name": "Max Mustermann", "telefonnummer": "+4915123456789"}}
        },
        "timestamp": 1744713300000i64
    })
}

fn booking(trigger: &str, uid: &str, created_at: &str, call_id: &str) -> Value {
    json!({
        "triggerEvent": trigger, "createdAt": created_at,
        "payload": {
            "uid": uid, "title": "Herrenhaarschnitt mit Max Mustermann",
            "startTime": "2025-04-15T12:30:00.000Z", "endTime": "2025-04-15T13:00:00.000Z",
            "organizer": {"id": 12345, "name": "Marie Schmidt", "email": "marie@salon.de"},
            "attendees": [{"email": "max@example.com", "name": "Max Mustermann"}],
            "metadata": {"call_id": call_id, "customer_phone": "+4915123456789"},
            "responses": {"phone": "+4915123456789"},
            "status": "ACCEPTED"
        }
    })
}

#[tokio::test]
async fn the_story_is_attributed_queryable_isolated_and_rebuilds_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();

    // A call before any tenant owns its number: kept, attributed later.
    let (status, body) = deliver_retell(
        &client,
        &server,
        &call("call_ended", "call-1", "+493083793369"),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = put_tenant(&client, &server, "salon", &json!({
        "name": "Salon Berlin",
        "branches": [{"branch_id": "mitte", "name": "Mitte", "phone_numbers": ["030 83793369"]}],
        "calcom_organizer_ids": [12345],
        "stripe_customer_ids": ["cus_1"],
        "api_tokens": [SALON_TOKEN]
    })).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = put_tenant(
        &client,
        &server,
        "other",
        &json!({"name": "Other", "api_tokens": [OTHER_TOKEN]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = put_tenant(
        &client,
        &server,
        "broken",
        &json!({"name": "", "branches": []}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("empty_tenant_name")),
        "an empty name is refused: {body}"
    );

    // The story: the call ended before it was booked; the booking is created, then cancelled.
    let (status, _) = deliver(
        &client,
        &server,
        "/api/calcom/webhook",
        Scheme::CalcomDocumented,
        CALCOM_SECRET,
        &booking(
            "BOOKING_CREATED",
            "bkg-1",
            "2025-04-14T10:30:00.000Z",
            "call-1",
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = deliver(
        &client,
        &server,
        "/api/calcom/webhook",
        Scheme::CalcomApp,
        CALCOM_SECRET,
        &booking(
            "booking.cancelled",
            "bkg-1",
            "2025-04-14T15:00:00.000Z",
            "call-1",
        ),
    )
    .await;
    assert_eq!(status, 200);
    // Rescheduled after it was cancelled: refused, answered 200, listed for the salon.
    let (status, body) = deliver(
        &client,
        &server,
        "/api/calcom/webhook",
        Scheme::CalcomApp,
        CALCOM_SECRET,
        &booking(
            "booking.rescheduled",
            "bkg-1",
            "2025-04-14T16:00:00.000Z",
            "call-1",
        ),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str(), body["reason"].as_str()),
        (200, Some("anomaly"), Some("reschedule_after_cancellation")),
        "{body}"
    );
    let payment = json!({"id": "evt_pay_1", "object": "event", "type": "invoice.payment_succeeded", "created": 1703244123,
        "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 9900, "currency": "eur", "customer": "cus_1",
            "status": "paid", "metadata": {"company_id": "salon", "plan": "pro"}}}});
    let (status, body) = deliver(
        &client,
        &server,
        "/api/stripe/webhook",
        Scheme::Stripe,
        STRIPE_SECRET,
        &payment,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Sent again, by Stripe and by Cal.com (under the trigger's other spelling and the other
    // signature scheme): duplicates, nothing appended.
    let (status, body) = deliver(
        &client,
        &server,
        "/api/stripe/webhook",
        Scheme::Stripe,
        STRIPE_SECRET,
        &payment,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("duplicate")),
        "{body}"
    );
    let (status, body) = deliver(
        &client,
        &server,
        "/api/calcom/webhook",
        Scheme::CalcomApp,
        CALCOM_SECRET,
        &booking(
            "booking.created",
            "bkg-1",
            "2025-04-14T10:30:00.000Z",
            "call-1",
        ),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("duplicate")),
        "{body}"
    );
    // A verified delivery the domain has no rule for is kept and listed as an anomaly.
    let refund = json!({"id": "evt_refund_1", "object": "event", "type": "charge.refunded", "created": 1703244200,
        "data": {"object": {"id": "ch_1", "object": "charge", "customer": "cus_1"}}});
    let (status, body) = deliver(
        &client,
        &server,
        "/api/stripe/webhook",
        Scheme::Stripe,
        STRIPE_SECRET,
        &refund,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    settle(&client, &server).await;
    let (status, anomalies) = get(&client, &server, "/api/anomalies", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{anomalies}");
    assert!(
        anomalies["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["reason"] == "unknown_event_type"
                && a["event_type"] == "stripe:charge.refunded"),
        "{anomalies}"
    );

    let (status, call_view) = get(&client, &server, "/api/calls/call-1", Some(SALON_TOKEN)).await;
    assert_eq!(status, 200, "{call_view}");
    assert_eq!(
        call_view["tenant_id"], "salon",
        "attributed once the number was registered: {call_view}"
    );
    assert_eq!(call_view["branch_id"], "mitte");
    assert_eq!(call_view["status"], "ended");
    assert_eq!(
        call_view["appointment"]["booking_uid"], "bkg-1",
        "{call_view}"
    );
    assert_eq!(
        call_view["appointment"]["status"], "cancelled",
        "{call_view}"
    );
    assert!(
        call_view["customer_id"].is_string(),
        "linked to its customer: {call_view}"
    );

    let (status, appointment) = get(
        &client,
        &server,
        "/api/appointments/bkg-1",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(appointment["status"], "cancelled");
    assert_eq!(appointment["call_id"], "call-1");

    let (status, customer) = get(
        &client,
        &server,
        "/api/customers?phone=%2B4915123456789",
        Some(SALON_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{customer}");
    assert_eq!(customer["name"], "Max Mustermann");
    assert_eq!(customer["calls"].as_array().unwrap().len(), 1, "{customer}");
    assert_eq!(customer["customer_id"], call_view["customer_id"]);

    // The salon's token lists the refusal on its booking; the other tenant's does not.
    let (status, own) = get(&client, &server, "/api/anomalies", Some(SALON_TOKEN)).await;
    assert_eq!(status, 200, "{own}");
    let refusal = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reason"] == "reschedule_after_cancellation")
        .unwrap_or_else(|| panic!("the salon lists its refused reschedule: {own}"));
    assert_eq!(
        (
            &refusal["subject_kind"],
            &refusal["subject_id"],
            &refusal["tenant_id"]
        ),
        (&json!("booking"), &json!("bkg-1"), &json!("salon")),
        "{refusal}"
    );
    let (_, others) = get(&client, &server, "/api/anomalies", Some(OTHER_TOKEN)).await;
    assert_eq!(others["items"], json!([]), "{others}");

    let (status, tenant) = get(&client, &server, "/api/tenants/salon", Some(SALON_TOKEN)).await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(tenant["counts"]["calls"], 1, "{tenant}");

    // Isolation: another tenant's records answer 404, lists are scoped, no token is 401.
    assert_eq!(
        get(&client, &server, "/api/calls/call-1", Some(OTHER_TOKEN))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&client, &server, "/api/tenants/salon", Some(OTHER_TOKEN))
            .await
            .0,
        404
    );
    let (_, page) = get(&client, &server, "/api/calls", Some(OTHER_TOKEN)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    // The interface's own template, with every parameter left empty, is a plain list.
    for token in [SALON_TOKEN, ADMIN_TOKEN] {
        let (status, page) = get(
            &client,
            &server,
            "/api/calls?tenant_id=&limit=&after=",
            Some(token),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["items"][0]["call_id"], "call-1", "{page}");
    }
    // A query string that does not parse is refused in the error shape, not as plain text.
    let (status, refused) = get(
        &client,
        &server,
        "/api/calls?limit=1&limit=2",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{refused}"
    );
    assert_eq!(
        get(&client, &server, "/api/calls/call-1", None).await.0,
        401
    );
    assert_eq!(
        get(&client, &server, "/api/calls/call-1", Some("nope"))
            .await
            .0,
        401
    );
    assert_eq!(
        get(&client, &server, "/api/quarantine", Some(SALON_TOKEN))
            .await
            .0,
        403
    );
    // Who is asking is settled before what is asked: a bad query string without a token is
    // 401, and with a tenant's token on an admin resource 403, never a 400 that reveals how
    // the query would have been read.
    let (status, refused) = get(&client, &server, "/api/calls?limit=1&limit=2", None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("missing_token")),
        "{refused}"
    );
    let (status, refused) = get(
        &client,
        &server,
        "/api/streams/call-call-1?limit=1&limit=2",
        Some(SALON_TOKEN),
    )
    .await;
    assert_eq!(status, 403, "{refused}");

    // Bad input: unknown ids, cursors and limits.
    assert_eq!(
        get(&client, &server, "/api/calls/none", Some(ADMIN_TOKEN))
            .await
            .0,
        404
    );
    let (status, body) = get(
        &client,
        &server,
        "/api/calls?after=garbage",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );
    let (status, body) = get(&client, &server, "/api/calls?limit=abc", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_limit")),
        "{body}"
    );

    // Paging walks every call exactly once.
    for n in 2..=5 {
        deliver_retell(
            &client,
            &server,
            &call("call_started", &format!("call-{n}"), "+493083793369"),
        )
        .await;
    }
    settle(&client, &server).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/api/calls?tenant_id=salon&limit=2&after={cursor}"),
            None => "/api/calls?tenant_id=salon&limit=2".to_owned(),
        };
        let (status, page) = get(&client, &server, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["call_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["call-1", "call-2", "call-3", "call-4", "call-5"]);

    // A rebuild while the server runs: it keeps answering, the swapped-in tables equal what
    // live processing built, and live processing goes on from the rebuilt checkpoint.
    let before = export(&server, "calls");
    output_of(
        switchboard_command()
            .args(["rebuild", "--data-dir"])
            .arg(&server.data_dir),
    );
    assert_eq!(export(&server, "calls"), before);
    assert_eq!(
        get(&client, &server, "/api/calls/call-1", Some(ADMIN_TOKEN))
            .await
            .0,
        200
    );
    deliver_retell(
        &client,
        &server,
        &call("call_started", "call-6", "+493083793369"),
    )
    .await;
    settle(&client, &server).await;
    let (status, six) = get(&client, &server, "/api/calls/call-6", Some(SALON_TOKEN)).await;
    assert_eq!(status, 200, "live processing continues after a swap: {six}");

    // A rebuild from the streams answers exactly as live processing did.
    let (_, live_call) = get(&client, &server, "/api/calls/call-1", Some(ADMIN_TOKEN)).await;
    let (_, live_tenant) = get(&client, &server, "/api/tenants/salon", Some(ADMIN_TOKEN)).await;
    const PROJECTIONS: [&str; 5] = ["calls", "appointments", "customers", "tenants", "anomalies"];
    let export_live = PROJECTIONS.map(|projection| export(&server, projection));
    server.terminate();
    output_of(
        switchboard_command()
            .args(["rebuild", "--data-dir"])
            .arg(&server.data_dir),
    );
    for (projection, live) in PROJECTIONS.iter().zip(&export_live) {
        assert!(!live.is_empty(), "{projection} has rows to compare");
        assert_eq!(&export(&server, projection), live, "{projection}");
    }
    let server = TestServer::start(ServerOptions::new(dir.path()));
    assert_eq!(
        get(&client, &server, "/api/calls/call-1", Some(ADMIN_TOKEN))
            .await
            .1,
        live_call
    );
    let (_, rebuilt_tenant) = get(&client, &server, "/api/tenants/salon", Some(ADMIN_TOKEN)).await;
    assert_eq!(rebuilt_tenant, live_tenant);
}

fn export(server: &TestServer, projection: &str) -> String {
    output_of(
        switchboard_command()
            .args([
                "export",
                "--projection",
                projection,
                "--format",
                "jsonl",
                "--data-dir",
            ])
            .arg(&server.data_dir),
    )
}

/// `check_availability` naming a service but no duration checks a slot as long as that
/// service's appointments at the tenant usually are (here 45 minutes, not the default 30).
#[tokio::test]
async fn check_availability_takes_a_services_usual_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let (status, body) = put_tenant(&client, &server, "salon", &json!({
        "name": "Salon Berlin",
        "branches": [{"branch_id": "mitte", "name": "Mitte", "phone_numbers": ["+493083793369"]}],
        "calcom_organizer_ids": [12345]
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    let mut booked = booking(
        "BOOKING_CREATED",
        "bkg-45",
        "2025-04-14T10:30:00.000Z",
        "call-x",
    );
    booked["payload"]["endTime"] = json!("2025-04-15T13:15:00.000Z");
    booked["payload"]["eventType"] = json!({"title": "Damenhaarschnitt"});
    let (status, body) = deliver(
        &client,
        &server,
        "/api/calcom/webhook",
        Scheme::CalcomDocumented,
        CALCOM_SECRET,
        &booked,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    settle(&client, &server).await;

    let date = (chrono::Utc::now() + chrono::Duration::days(28)).date_naive();
    let monday = date
        - chrono::Duration::days(i64::from(
            chrono::Datelike::weekday(&date).num_days_from_monday(),
        ));
    let ask = |args: &Value| {
        json!({
            "name": "check_availability",
            "args": args,
            "call": {"call_id": "call-svc", "from_number": "+4915123456789",
                     "to_number": "+493083793369", "direction": "inbound"}
        })
    };
    let minutes = |answer: &Value| {
        let slot = &answer["slots"][0];
        let start = chrono::DateTime::parse_from_rfc3339(slot["start"].as_str().unwrap());
        let end = chrono::DateTime::parse_from_rfc3339(slot["end"].as_str().unwrap());
        (end.unwrap() - start.unwrap()).num_minutes()
    };
    let day = monday.to_string();
    for (args, expected) in [
        (
            json!({"date": day, "time": "10:00", "service": "Damenhaarschnitt"}),
            45,
        ),
        (
            json!({"date": day, "time": "11:00", "service": "Färben"}),
            30,
        ),
        (
            json!({"date": day, "time": "12:00", "service": "Damenhaarschnitt", "duration": 20}),
            20,
        ),
    ] {
        let (status, answer) = deliver(
            &client,
            &server,
            "/api/retell/functions/check_availability",
            Scheme::RetellDocumented,
            RETELL_SECRET,
            &ask(&args),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["available"], true, "{args}: {answer}");
        assert_eq!(minutes(&answer), expected, "{args}: {answer}");
    }
}

/// Read models the server cannot fold into pause its projections. /readyz stays ready (the
/// deliveries are still taken and stored) and says why, rather than only a lag that grows.
#[cfg(unix)]
#[tokio::test]
async fn readyz_says_why_the_projections_are_paused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerOptions::new(dir.path()));
    let client = client();
    let (status, body) = deliver_retell(
        &client,
        &server,
        &call("call_ended", "call-1", "+493083793369"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    settle(&client, &server).await;
    let (_, ready) = get(&client, &server, "/readyz", None).await;
    assert!(ready["projections"].get("paused").is_none(), "{ready}");

    // A newer build's read models (a copy of these, stamped with a newer layout), put where
    // the link points, as its rebuild would install them.
    let newer = dir.path().join("read_models.0000000000cc.sqlite");
    rusqlite::Connection::open(dir.path().join("read_models.sqlite"))
        .unwrap()
        .execute("VACUUM INTO ?1", [newer.to_str().unwrap()])
        .unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1000")
        .unwrap();
    let pending = dir.path().join("pending-link");
    std::os::unix::fs::symlink(newer.file_name().unwrap(), &pending).unwrap();
    std::fs::rename(&pending, dir.path().join("read_models.sqlite")).unwrap();
    let (status, body) = deliver_retell(
        &client,
        &server,
        &call("call_ended", "call-2", "+493083793369"),
    )
    .await;
    assert_eq!(status, 200, "still taken: {body}");

    for _ in 0..300 {
        let (status, ready) = get(&client, &server, "/readyz", None).await;
        if let Some(paused) = ready["projections"]["paused"].as_str() {
            assert_eq!(status, 200);
            assert_eq!(ready["status"], "ready");
            assert!(paused.contains("newer"), "{paused}");
            let data_dir = dir.path().to_str().unwrap();
            assert!(
                !paused.contains(data_dir),
                "no paths to anyone who asks: {paused}"
            );
            let metrics = metrics_text(&client, &server).await;
            assert!(
                metrics.contains("switchboard_projections_paused 1"),
                "{metrics}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never said the projections were paused");
}
