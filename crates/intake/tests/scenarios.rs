//! Scenario tests: each file in fixtures/scenarios/ is a sequence of provider deliveries; the
//! runner parses each with the webhooks crate, routes it, decides it on in-memory streams,
//! runs the policy to quiescence, and snapshots every stream's events (refusals included, as
//! `TransitionRejected`) and what each stream then reads as. fixtures/scenarios/README.md
//! explains the format.
//!
//! A scenario without a reviewed snapshot fails: insta fails on a missing snapshot, and the
//! runner checks that every scenario has its `.snap` and every `.snap` its scenario.
//! Write new snapshots with `INSTA_UPDATE=always cargo test -p switchboard-intake --test
//! scenarios`, then read every one before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_domain::event::AvailabilityAnswer;
use switchboard_domain::{
    AggregateKind, Billing, Booking, Call, Event, EventType, InMemoryStreams, StreamId, Tenant,
};
use switchboard_intake::tenant::{TenantRegistrationRequest, register_tenant};
use switchboard_intake::{BranchRef, Context, Route, route};
use switchboard_webhooks::{Provider, parse, parse_retell_function};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

// ---------------------------------------------------------------------------------------------
// The scenario file
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    deliveries: Vec<DeliverySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverySpec {
    /// `retell`, `retell_function` (`POST /api/retell/functions/{name}`), `calcom`, `stripe`,
    /// or `tenant` (`PUT /api/tenants/{tenant_id}`). Defaults to the fixture's directory.
    provider: Option<String>,
    /// A file under fixtures/providers/, e.g. `calcom/booking_created.json`.
    fixture: Option<String>,
    /// The body inline, instead of a fixture.
    body: Option<Value>,
    /// A JSON merge patch (RFC 7396) applied to the fixture or body: change ids, times,
    /// triggers; `null` removes a field.
    merge: Option<Value>,
    /// For `tenant`: the tenant id in the URL.
    tenant_id: Option<String>,
    /// For a `check_availability` call: the answer the server gave.
    answer: Option<AvailabilityAnswer>,
    /// When the server received it (the time of facts that carry none).
    received_at: Option<DateTime<Utc>>,
}

const DEFAULT_RECEIVED_AT: &str = "2026-01-01T00:00:00Z";

impl DeliverySpec {
    fn label(&self) -> String {
        let source = match (&self.fixture, &self.tenant_id) {
            (Some(fixture), _) => fixture.clone(),
            (None, Some(tenant_id)) => format!("PUT /api/tenants/{tenant_id}"),
            (None, None) => format!("inline {}", self.provider.as_deref().unwrap_or("?")),
        };
        match &self.merge {
            Some(merge) => format!("{source} + {}", serde_json::to_string(merge).unwrap()),
            None => source,
        }
    }

    fn provider(&self) -> String {
        self.provider
            .clone()
            .or_else(|| Some(self.fixture.as_ref()?.split('/').next()?.to_owned()))
            .expect("a delivery names a provider or a fixture")
    }

    fn body(&self) -> Value {
        let mut body = match (&self.fixture, &self.body) {
            (Some(fixture), None) => {
                let path = repo_path("fixtures/providers").join(fixture);
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
                serde_json::from_str(&text).expect("fixtures are JSON")
            }
            (None, Some(body)) => body.clone(),
            _ => panic!("a delivery has exactly one of `fixture` and `body`"),
        };
        if let Some(patch) = &self.merge {
            merge_patch(&mut body, patch);
        }
        body
    }
}

/// RFC 7396.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running one
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Snapshot {
    deliveries: Vec<DeliveryOutcome>,
    streams: BTreeMap<String, StreamSnapshot>,
}

#[derive(Debug, Serialize)]
struct DeliveryOutcome {
    delivery: String,
    /// `recorded`, `duplicate` (nothing appended), `anomaly` (a refusal was recorded),
    /// `unhandled` (no domain rule) or `refused` (before any stream: malformed payload, …).
    outcome: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    appended: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The status of each call or booking the delivery touched, right after it: pins what
    /// a stream reads in between (pending, started before ended, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    then: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct StreamSnapshot {
    events: Vec<Value>,
    reads: Value,
}

fn run(scenario: &Scenario) -> Snapshot {
    let mut streams = InMemoryStreams::new();
    let deliveries = scenario
        .deliveries
        .iter()
        .map(|spec| deliver(&mut streams, spec))
        .collect();
    let streams = streams
        .streams()
        .map(|(stream, events)| {
            let snapshot = StreamSnapshot {
                events: events.iter().map(readable_event).collect(),
                reads: reads(&streams, stream),
            };
            (stream.to_string(), snapshot)
        })
        .collect();
    Snapshot {
        deliveries,
        streams,
    }
}

fn deliver(streams: &mut InMemoryStreams, spec: &DeliverySpec) -> DeliveryOutcome {
    let outcome = |outcome, appended, reason| DeliveryOutcome {
        delivery: spec.label(),
        outcome,
        appended,
        reason,
        then: BTreeMap::new(),
    };
    let body = spec.body();
    let bytes = serde_json::to_vec_pretty(&body).unwrap();
    let received_at = spec
        .received_at
        .unwrap_or_else(|| DEFAULT_RECEIVED_AT.parse().unwrap());

    let routed = match spec.provider().as_str() {
        "tenant" => {
            let tenant_id = spec
                .tenant_id
                .as_deref()
                .expect("a tenant delivery names tenant_id");
            let request: TenantRegistrationRequest =
                serde_json::from_value(body).expect("a valid PUT body");
            register_tenant(tenant_id, request, received_at)
                .map(|(stream, command)| Route::Decide { stream, command })
                .map_err(|e| format!("{}: {e}", e.code()))
        }
        provider => {
            let parsed = match provider {
                "retell_function" => parse_retell_function(&bytes),
                other => parse(other.parse::<Provider>().expect("a known provider"), &bytes),
            };
            match parsed {
                Err(error) => Err(format!("{}: {error}", error.code())),
                Ok(delivery) => {
                    let directory = branch_directory(streams);
                    let mut context = Context::new(received_at, &directory);
                    context.availability_answer = spec.answer.clone();
                    route(&delivery, &context).map_err(|e| format!("{}: {e}", e.code()))
                }
            }
        }
    };
    match routed {
        Err(reason) => outcome("refused", vec![], Some(reason)),
        Ok(Route::Unhandled { event_type, reason }) => {
            outcome("unhandled", vec![], Some(format!("{event_type}: {reason}")))
        }
        Ok(Route::Decide { stream, command }) => {
            let handled = streams.handle(stream, command);
            let then = handled
                .appended
                .iter()
                .filter_map(|(stream, _)| Some((stream.to_string(), status_of(streams, stream)?)))
                .collect();
            let appended = handled
                .appended
                .iter()
                .map(|(stream, event)| format!("{stream}: {}", event.event_type()))
                .collect();
            let result = if let Some((_, rejection)) = handled.rejections.first() {
                outcome("anomaly", appended, Some(rejection.code().to_owned()))
            } else if handled.appended.is_empty() {
                outcome("duplicate", appended, None)
            } else {
                outcome("recorded", appended, None)
            };
            DeliveryOutcome { then, ..result }
        }
    }
}

/// A call's or booking's status in one word (`none` while nothing says it yet).
fn status_of(streams: &InMemoryStreams, stream: &StreamId) -> Option<String> {
    let status = match stream.kind() {
        AggregateKind::Call => serde_json::to_value(streams.state::<Call>(stream).status()),
        AggregateKind::Booking => serde_json::to_value(streams.state::<Booking>(stream).status()),
        _ => return None,
    };
    Some(status.ok()?.as_str().unwrap_or("none").to_owned())
}

/// What the server's tenants read model would answer: which branch each number rings at.
fn branch_directory(streams: &InMemoryStreams) -> BTreeMap<String, BranchRef> {
    let mut directory = BTreeMap::new();
    for (stream, _) in streams.streams() {
        if stream.kind() != AggregateKind::Tenant {
            continue;
        }
        let tenant: Tenant = streams.state(stream);
        for (phone_number, branch_id) in tenant.phone_numbers() {
            let time_zone = tenant.branches()[branch_id]
                .time_zone
                .as_deref()
                .and_then(|tz| tz.parse().ok());
            directory.insert(
                phone_number.clone(),
                BranchRef {
                    tenant_id: stream.id().to_owned(),
                    branch_id: branch_id.clone(),
                    time_zone,
                },
            );
        }
    }
    directory
}

/// `{EventType: data}` without the null fields, so a reviewer reads what was said.
fn readable_event(event: &Event) -> Value {
    let mut data = event.to_json();
    drop_nulls(&mut data);
    Value::Object(Map::from_iter([(event.event_type().to_owned(), data)]))
}

fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, v| !v.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// What a stream reads as, through the aggregate's own accessors (what the read models use).
fn reads(streams: &InMemoryStreams, stream: &StreamId) -> Value {
    let mut reads = match stream.kind() {
        AggregateKind::Call => {
            let call: Call = streams.state(stream);
            let appointment = call.booking_uid().map(|uid| {
                let booking: Booking = streams.state(&StreamId::booking(uid));
                serde_json::json!({"booking_uid": uid, "status": booking.status()})
            });
            let request = call.appointment_request();
            serde_json::json!({
                "status": call.status(),
                "from_number": call.from_number(),
                "to_number": call.to_number(),
                "tenant_id": call.tenant_id(),
                "branch_id": call.branch_id(),
                "customer_name": call.customer_name(),
                "duration_s": call.ended().and_then(|e| e.outcome.duration_s),
                "requested_start": request.map(|r| r.requested_start),
                "availability_checks": call.availability_checks().len(),
                "appointment": appointment,
            })
        }
        AggregateKind::Booking => {
            let booking: Booking = streams.state(stream);
            let mut view = serde_json::to_value(booking.view()).unwrap();
            view["superseded_reschedules"] = booking.superseded_reschedules().count().into();
            view
        }
        AggregateKind::Tenant => {
            let tenant: Tenant = streams.state(stream);
            serde_json::json!({
                "name": tenant.name(),
                "branches": tenant.branches(),
                "phone_numbers": tenant.phone_numbers(),
                "calcom_organizer_ids": tenant.calcom_organizer_ids(),
                "stripe_customer_ids": tenant.stripe_customer_ids(),
                "api_tokens": tenant.api_token_sha256().len(),
                "billing": billing_reads(tenant.billing()),
            })
        }
        AggregateKind::Billing => billing_reads(&streams.state::<Billing>(stream)),
        AggregateKind::EventType => {
            let event_type: EventType = streams.state(stream);
            let created = event_type.created();
            serde_json::json!({
                "title": created.and_then(|c| c.details.title.clone()),
                "duration_min": created.and_then(|c| c.details.duration_min),
            })
        }
    };
    drop_nulls(&mut reads);
    reads
}

fn billing_reads(billing: &Billing) -> Value {
    let subscriptions: BTreeMap<_, _> = billing
        .subscriptions()
        .iter()
        .map(|(id, history)| {
            (
                id.clone(),
                serde_json::json!({"status": history.status(), "plan": history.plan()}),
            )
        })
        .collect();
    let invoices: BTreeMap<_, _> = billing
        .invoices()
        .iter()
        .map(|(id, history)| {
            (
                id.clone(),
                serde_json::json!({
                    "paid": history.succeeded.is_some(),
                    "failed_attempts": history.failures.len(),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "current_subscription": billing.current_subscription().map(|(id, _)| id),
        "subscriptions": subscriptions,
        "invoices": invoices,
    })
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo_path("fixtures/scenarios"))
        .expect("fixtures/scenarios exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn name_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_scenario_matches_its_reviewed_snapshot() {
    let files = scenario_files();
    assert!(
        files.len() >= 25,
        "the rules need at least 25 scenarios, found {}",
        files.len()
    );
    let mut failures = vec![];
    for path in &files {
        let name = name_of(path);
        let text = fs::read_to_string(path).unwrap();
        let scenario: Scenario = match serde_json::from_str(&text) {
            Ok(scenario) => scenario,
            Err(error) => {
                failures.push(format!("{name}: not a scenario: {error}"));
                continue;
            }
        };
        let checked = catch_unwind(AssertUnwindSafe(|| {
            let snapshot = run(&scenario);
            insta::with_settings!({
                snapshot_path => snapshot_dir(),
                prepend_module_to_snapshot => false,
                omit_expression => true,
                description => scenario.description.clone(),
            }, {
                insta::assert_yaml_snapshot!(name.as_str(), snapshot);
            });
        }));
        if checked.is_err() {
            failures.push(format!("{name}: does not match its snapshot (see above)"));
        }
    }
    // insta may be told to pass anyway (INSTA_FORCE_PASS) or to write `.snap.new` files;
    // neither is a review, so the reviewed files must be there.
    for path in &files {
        let name = name_of(path);
        if !snapshot_dir().join(format!("{name}.snap")).is_file() {
            failures.push(format!(
                "{name}: no reviewed snapshot tests/snapshots/{name}.snap"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "scenario failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_snapshot_belongs_to_a_scenario() {
    let names: Vec<String> = scenario_files().iter().map(|p| name_of(p)).collect();
    let orphans: Vec<String> = fs::read_dir(snapshot_dir())
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
                .map(|path| name_of(&path))
                .filter(|name| !names.contains(name))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        orphans.is_empty(),
        "snapshots without a scenario: {orphans:?}"
    );
}

/// Every event the scenarios record is valid against its checked-in JSON Schema.
#[test]
fn recorded_events_match_their_schemas() {
    let mut validators = BTreeMap::new();
    for path in scenario_files() {
        let scenario: Scenario = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let mut streams = InMemoryStreams::new();
        for spec in &scenario.deliveries {
            deliver(&mut streams, spec);
        }
        for (_, events) in streams.streams() {
            for event in events {
                let file = format!("{}.v{}.json", event.event_type(), event.schema_version());
                let validator = validators.entry(file.clone()).or_insert_with(|| {
                    let schema: Value = serde_json::from_str(
                        &fs::read_to_string(repo_path("schemas/events").join(&file))
                            .unwrap_or_else(|e| panic!("schemas/events/{file}: {e}")),
                    )
                    .unwrap();
                    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
                });
                let data = event.to_json();
                let errors: Vec<String> = validator
                    .iter_errors(&data)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{} in {}: {errors:?}",
                    file,
                    name_of(&path)
                );
            }
        }
    }
    assert!(
        validators.len() >= 20,
        "the scenarios exercise most event types"
    );
}

#[test]
fn merge_patch_follows_rfc_7396() {
    let mut target = serde_json::json!({"a": "b", "c": {"d": "e", "f": "g"}});
    merge_patch(
        &mut target,
        &serde_json::json!({"a": "z", "c": {"f": null}}),
    );
    assert_eq!(target, serde_json::json!({"a": "z", "c": {"d": "e"}}));
}
