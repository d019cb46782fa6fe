//! A generated history across all providers, driven through the domain's own `decide` (via
//! `InMemoryStreams`, which also runs the cross-stream policy), with duplicate deliveries,
//! out-of-order deliveries, late tenant registrations, unattributed billing, refused
//! transitions, unknown event types and the server's `DeliveryReceived` envelopes.
//!
//! Shared by the rebuild-equality test and the rebuild benchmark (`#[path]`-included there).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use switchboard_domain::command::*;
use switchboard_domain::event::*;
use switchboard_domain::{Command, InMemoryStreams, StreamId};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent};
use tokio::task::JoinSet;
use uuid::Uuid;

/// A small deterministic generator (xorshift64*): no dependency, same history per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TENANTS: u64 = 40;
const PEOPLE: u64 = 20_000;
/// Appends sent to the store concurrently (distinct streams in parallel, so the store's
/// group commit shares fsyncs).
const CHUNK: usize = 512;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 7, 0, 0).unwrap()
}

fn tenant_id(t: u64) -> String {
    format!("t{t:03}")
}

/// The numbers of tenant t: two branches, and a third number that rings at branch 1 from
/// the start but is assigned only halfway through the history.
fn tenant_number(t: u64, which: u64) -> String {
    format!("+49301{t:03}{which:04}")
}

/// The same person's phone in the notations providers use.
fn person_phone(p: u64, style: u64) -> String {
    match style % 3 {
        0 => format!("+49151{p:08}"),
        1 => format!("0151 {p:08}"),
        _ => format!("0049 151 {p:08}"),
    }
}

fn register(t: u64, at: DateTime<Utc>, with_late_number: bool) -> Command {
    let hours = vec![OpeningHours {
        day: Weekday::Mon,
        opens: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        closes: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
    }];
    let mut branch_1 = vec![tenant_number(t, 1)];
    if with_late_number {
        branch_1.push(tenant_number(t, 3));
    }
    RegisterTenant {
        tenant_id: tenant_id(t),
        occurred_at: at,
        name: format!("Salon {t}"),
        branches: vec![
            BranchRegistration {
                branch_id: "b1".into(),
                profile: BranchProfile {
                    name: "Mitte".into(),
                    time_zone: None,
                    opening_hours: hours,
                },
                phone_numbers: branch_1,
            },
            BranchRegistration {
                branch_id: "b2".into(),
                profile: BranchProfile {
                    name: "Nord".into(),
                    time_zone: Some("Europe/Berlin".into()),
                    opening_hours: vec![],
                },
                phone_numbers: vec![tenant_number(t, 2)],
            },
        ],
        calcom_organizer_ids: vec![1000 + t as i64],
        stripe_customer_ids: vec![format!("cus_{t:03}")],
        api_token_sha256: vec![format!("{:064x}", t + 1)],
    }
    .into()
}

/// What a generated run appended.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    pub events: u64,
    pub deliveries: u64,
    pub duplicates: u64,
}

struct Writer {
    store: Arc<dyn EventStore>,
    pending: Vec<(String, Vec<NewEvent>)>,
    generated: Generated,
}

impl Writer {
    async fn push(&mut self, stream: String, events: Vec<NewEvent>) {
        self.generated.events += events.len() as u64;
        self.pending.push((stream, events));
        if self.pending.len() >= CHUNK {
            self.flush().await;
        }
    }

    /// Appends the pending batch: one task per stream keeps each stream's order, and the
    /// streams go in parallel.
    async fn flush(&mut self) {
        let mut by_stream: HashMap<String, Vec<Vec<NewEvent>>> = HashMap::new();
        let mut order = Vec::new();
        for (stream, events) in self.pending.drain(..) {
            if !by_stream.contains_key(&stream) {
                order.push(stream.clone());
            }
            by_stream.entry(stream).or_default().push(events);
        }
        let mut tasks = JoinSet::new();
        for stream in order {
            let appends = by_stream.remove(&stream).unwrap_or_default();
            let store = Arc::clone(&self.store);
            tasks.spawn(async move {
                for events in appends {
                    store
                        .append(&stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
}

fn envelope(event: &Event, stream: &StreamId, delivery: &str, provider: &str) -> NewEvent {
    // The server's envelope (ledger.rs): no tenant; the read models attribute records
    // themselves.
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        occurred_at: event.occurred_at(),
        data: event.to_json(),
        metadata: serde_json::json!({
            "provider": provider, "delivery_id": delivery, "dedupe_key": delivery,
            "correlation": stream.to_string(), "causation": delivery,
        }),
    }
}

fn delivery_received(delivery: &str, provider: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "DeliveryReceived".into(),
        schema_version: 1,
        occurred_at: at,
        data: serde_json::json!({"body": format!("{{\"delivery\":\"{delivery}\"}}"), "scheme": "documented"}),
        metadata: serde_json::json!({"provider": provider, "delivery_id": delivery}),
    }
}

/// Decides one delivery on `streams` and queues what it appended (grouped per stream, with
/// the delivery's envelope first); a duplicate appends nothing, as the server would.
async fn deliver(
    writer: &mut Writer,
    streams: &mut InMemoryStreams,
    stream: StreamId,
    command: Command,
    provider: &str,
) {
    writer.generated.deliveries += 1;
    let delivery = format!("dlv-{}", writer.generated.deliveries);
    let at = command.occurred_at();
    let handled = streams.handle(stream, command);
    if handled.appended.is_empty() {
        writer.generated.duplicates += 1;
        return;
    }
    let mut groups: Vec<(StreamId, Vec<NewEvent>)> = Vec::new();
    for (i, (stream, event)) in handled.appended.iter().enumerate() {
        if groups.last().is_none_or(|(s, _)| s != stream) {
            let mut events = Vec::new();
            if i == 0 {
                events.push(delivery_received(&delivery, provider, at));
            }
            groups.push((stream.clone(), events));
        }
        if let Some((_, events)) = groups.last_mut() {
            events.push(envelope(event, stream, &delivery, provider));
        }
    }
    for (stream, events) in groups {
        writer.push(stream.to_string(), events).await;
    }
}

/// Appends a history of at least `target` events to `store`.
pub async fn generate(store: Arc<dyn EventStore>, target: u64, seed: u64) -> Generated {
    let mut rng = Rng::new(seed);
    let mut writer = Writer {
        store,
        pending: Vec::new(),
        generated: Generated::default(),
    };
    let mut tenants = InMemoryStreams::new();
    // A fifth of the tenants register only after their first calls, bookings and payments.
    let late = |t: u64| t % 5 == 4;
    for t in (0..TENANTS).filter(|t| !late(*t)) {
        deliver(
            &mut writer,
            &mut tenants,
            StreamId::tenant(tenant_id(t)),
            register(t, base(), false),
            "admin",
        )
        .await;
    }
    let mut billing: HashMap<u64, InMemoryStreams> = HashMap::new();
    let mut n: u64 = 0;
    let mut late_registered = false;
    let mut late_numbers_assigned = false;
    while writer.generated.events < target {
        n += 1;
        let at = base() + Duration::minutes(n as i64);
        if !late_registered && writer.generated.events > target / 3 {
            late_registered = true;
            for t in (0..TENANTS).filter(|t| late(*t)) {
                deliver(
                    &mut writer,
                    &mut tenants,
                    StreamId::tenant(tenant_id(t)),
                    register(t, at, false),
                    "admin",
                )
                .await;
            }
        }
        if !late_numbers_assigned && writer.generated.events > target / 2 {
            late_numbers_assigned = true;
            for t in 0..TENANTS {
                deliver(
                    &mut writer,
                    &mut tenants,
                    StreamId::tenant(tenant_id(t)),
                    register(t, at, true),
                    "admin",
                )
                .await;
            }
        }
        let t = rng.below(TENANTS);
        if n.is_multiple_of(25) {
            billing_story(
                &mut writer,
                billing.entry(t).or_default(),
                &mut rng,
                t,
                n,
                at,
            )
            .await;
        } else {
            call_story(&mut writer, &mut rng, t, n, at).await;
        }
        if n.is_multiple_of(499) {
            // A type this build does not know: an anomaly, never a stall.
            let stream = format!("call-c{n:08}");
            writer
                .push(
                    stream,
                    vec![NewEvent {
                        event_id: Uuid::new_v4(),
                        event_type: "CallTeleported".into(),
                        schema_version: 1,
                        occurred_at: at,
                        data: serde_json::json!({"call_id": format!("c{n:08}")}),
                        metadata: serde_json::json!({"provider": "retell"}),
                    }],
                )
                .await;
        }
    }
    writer.flush().await;
    writer.generated
}

async fn call_story(writer: &mut Writer, rng: &mut Rng, t: u64, n: u64, at: DateTime<Utc>) {
    let mut streams = InMemoryStreams::new();
    let call_id = format!("c{n:08}");
    let call = StreamId::call(&call_id);
    let person = rng.below(PEOPLE);
    let number_slot = 1 + rng.below(3);
    let parties = CallParties {
        from_number: Some(person_phone(person, rng.next())),
        to_number: Some(tenant_number(t, number_slot)),
        direction: Some("inbound".into()),
        agent_id: Some("agent_1".into()),
        started_at: Some(at),
        tenant_id: None,
        branch_id: None,
    };
    let wants_booking = rng.chance(35);
    let form = wants_booking.then(|| AppointmentForm {
        date: Some("15.12.2026".into()),
        time: Some("14:30".into()),
        service: Some("Herrenhaarschnitt".into()),
        name: Some(format!("Person {person}")),
        phone: Some(person_phone(person, rng.next())),
        email: None,
        staff_wish: Some("Anna".into()),
        preferences: None,
    });
    let mut deliveries: Vec<(StreamId, Command, &str)> = Vec::new();
    if rng.chance(75) {
        deliveries.push((
            call.clone(),
            StartCall {
                call_id: call_id.clone(),
                occurred_at: at,
                parties: parties.clone(),
            }
            .into(),
            "retell",
        ));
    }
    deliveries.push((
        call.clone(),
        EndCall {
            call_id: call_id.clone(),
            occurred_at: at + Duration::minutes(3),
            parties,
            outcome: CallOutcome {
                ended_at: Some(at + Duration::minutes(3)),
                duration_s: Some(60 + rng.below(600)),
                call_status: Some("completed".into()),
                transcript: Some(
                    "Agent: Guten Tag, Salon. Kunde: Ich hätte gern einen Termin.".into(),
                ),
                summary: Some("Appointment request".into()),
                customer_name: Some(format!("Person {person}")),
                ..CallOutcome::default()
            },
            appointment_form: form,
            time_zone: chrono_tz::Europe::Berlin,
        }
        .into(),
        "retell",
    ));
    if rng.chance(80) {
        deliveries.push((
            call.clone(),
            AnalyzeCall {
                call_id: call_id.clone(),
                occurred_at: at + Duration::minutes(4),
                analysis: CallAnalysis {
                    summary: Some("Caller booked a haircut".into()),
                    sentiment: Some("Positive".into()),
                    sentiment_score: None,
                    successful: Some(true),
                    appointment_booked: Some(wants_booking),
                    details: serde_json::json!({"call_successful": true}),
                },
                appointment_form: None,
                time_zone: chrono_tz::Europe::Berlin,
            }
            .into(),
            "retell",
        ));
    }
    if rng.chance(15) {
        deliveries.push((
            call.clone(),
            RecordAvailabilityCheck {
                call_id: call_id.clone(),
                occurred_at: at + Duration::minutes(1),
                request_id: Some(format!("req-{n}")),
                function_name: "check_availability".into(),
                arguments: serde_json::json!({"date": "15.12.2026"}),
                answer: AvailabilityAnswer {
                    available: true,
                    slots: vec![],
                    message: "Ja".into(),
                },
            }
            .into(),
            "retell",
        ));
    }
    if wants_booking && rng.chance(85) {
        let uid = format!("bk{n:08}");
        let start = at + Duration::days(3);
        deliveries.push((
            StreamId::booking(&uid),
            CreateBooking {
                booking_uid: uid.clone(),
                occurred_at: at + Duration::minutes(5),
                details: BookingDetails {
                    calcom_booking_id: Some(n as i64),
                    title: Some("Herrenhaarschnitt".into()),
                    description: None,
                    start,
                    end: start + Duration::minutes(30),
                    service: Some("Herrenhaarschnitt".into()),
                    event_type_id: Some(7),
                    organizer: Some(Organizer {
                        id: Some(1000 + t as i64),
                        name: Some("Anna".into()),
                        email: None,
                        time_zone: None,
                    }),
                    attendees: vec![Attendee {
                        name: Some(format!("Person {person}")),
                        email: Some(format!("p{person}@example.com")),
                        phone: rng.chance(70).then(|| person_phone(person, rng.next())),
                        time_zone: None,
                    }],
                    location: None,
                    provider_status: Some("ACCEPTED".into()),
                },
                call_id: Some(call_id.clone()),
                rescheduled_from: None,
            }
            .into(),
            "calcom",
        ));
        let cancel = CancelBooking {
            booking_uid: uid.clone(),
            occurred_at: at + Duration::minutes(60),
            reason: Some("Kunde verhindert".into()),
            cancelled_by: None,
            call_id: None,
        };
        let reschedule = |minutes: i64| RescheduleBooking {
            booking_uid: uid.clone(),
            occurred_at: at + Duration::minutes(minutes),
            previous_start: Some(start),
            previous_end: Some(start + Duration::minutes(30)),
            start: Some(start + Duration::hours(2)),
            end: Some(start + Duration::hours(2) + Duration::minutes(30)),
            reason: None,
            rescheduled_by: None,
            call_id: None,
        };
        match rng.below(10) {
            0..=2 => deliveries.push((StreamId::booking(&uid), cancel.into(), "calcom")),
            3 => deliveries.push((StreamId::booking(&uid), reschedule(30).into(), "calcom")),
            // Refused: a reschedule that happened after the cancellation.
            4 => {
                deliveries.push((StreamId::booking(&uid), cancel.into(), "calcom"));
                deliveries.push((StreamId::booking(&uid), reschedule(90).into(), "calcom"));
            }
            // Cal.com's real reschedule: a new uid naming the old one.
            5 => {
                let new_uid = format!("bk{n:08}r");
                deliveries.push((
                    StreamId::booking(&new_uid),
                    CreateBooking {
                        booking_uid: new_uid.clone(),
                        occurred_at: at + Duration::minutes(40),
                        details: BookingDetails {
                            calcom_booking_id: Some(n as i64 + 1),
                            title: Some("Herrenhaarschnitt".into()),
                            description: None,
                            start: start + Duration::days(1),
                            end: start + Duration::days(1) + Duration::minutes(30),
                            service: Some("Herrenhaarschnitt".into()),
                            event_type_id: Some(7),
                            organizer: Some(Organizer {
                                id: Some(1000 + t as i64),
                                name: Some("Anna".into()),
                                email: None,
                                time_zone: None,
                            }),
                            attendees: vec![],
                            location: None,
                            provider_status: Some("ACCEPTED".into()),
                        },
                        call_id: Some(call_id.clone()),
                        rescheduled_from: Some(uid.clone()),
                    }
                    .into(),
                    "calcom",
                ));
            }
            _ => {}
        }
    }
    // Providers retry and race: duplicate some deliveries, swap some neighbours.
    if deliveries.len() > 1 && rng.chance(25) {
        let i = rng.below(deliveries.len() as u64 - 1) as usize;
        deliveries.swap(i, i + 1);
    }
    if rng.chance(15) {
        let i = rng.below(deliveries.len() as u64) as usize;
        let again = deliveries[i].clone();
        deliveries.insert(i + 1, again);
    }
    for (stream, command, provider) in deliveries {
        deliver(writer, &mut streams, stream, command, provider).await;
    }
}

async fn billing_story(
    writer: &mut Writer,
    streams: &mut InMemoryStreams,
    rng: &mut Rng,
    t: u64,
    n: u64,
    at: DateTime<Utc>,
) {
    // Some Stripe events carry metadata.company_id, some only the customer; a few belong to a
    // customer no tenant ever links.
    let orphan = rng.chance(5);
    let customer = if orphan {
        format!("cus_orphan{:03}", rng.below(10))
    } else {
        format!("cus_{t:03}")
    };
    let named = (!orphan && rng.chance(50)).then(|| tenant_id(t));
    let stream = match &named {
        Some(tenant) => StreamId::tenant(tenant),
        None => StreamId::billing(&customer),
    };
    let subscription = SubscriptionFacts {
        tenant_id: named.clone(),
        stripe_customer_id: customer.clone(),
        subscription_id: format!("sub_{customer}"),
        status: "active".into(),
        plan: Some(if t.is_multiple_of(2) { "pro" } else { "basic" }.into()),
        amount: Some(4900),
        currency: Some("eur".into()),
        interval: Some("month".into()),
        current_period_start: Some(at),
        current_period_end: Some(at + Duration::days(30)),
        cancel_at_period_end: Some(false),
    };
    let change = SubscriptionChange {
        stripe_event_id: format!("evt_s{n}"),
        occurred_at: at,
        subscription,
    };
    let command = match rng.below(10) {
        0 => BillingCommand::CancelSubscription(SubscriptionChange {
            subscription: SubscriptionFacts {
                status: "canceled".into(),
                ..change.subscription.clone()
            },
            ..change.clone()
        }),
        1..=3 => BillingCommand::UpdateSubscription(change.clone()),
        _ => BillingCommand::StartSubscription(change.clone()),
    };
    deliver(
        writer,
        streams,
        stream.clone(),
        Command::Billing(command),
        "stripe",
    )
    .await;
    let invoice = InvoiceFacts {
        tenant_id: named,
        stripe_customer_id: customer.clone(),
        invoice_id: format!("in_{n}"),
        subscription_id: Some(format!("sub_{customer}")),
        amount: 4900,
        currency: "eur".into(),
        plan: Some("pro".into()),
    };
    let payment: Command = if rng.chance(85) {
        RecordPaymentSucceeded {
            stripe_event_id: format!("evt_p{n}"),
            occurred_at: at,
            invoice,
            paid_at: Some(at),
        }
        .into()
    } else {
        RecordPaymentFailed {
            stripe_event_id: format!("evt_p{n}"),
            occurred_at: at,
            invoice,
            failure: PaymentFailure {
                failure_code: Some("card_declined".into()),
                decline_code: None,
                failure_message: Some("Your card was declined.".into()),
                attempt_count: Some(1),
                next_attempt_at: None,
            },
        }
        .into()
    };
    deliver(writer, streams, stream.clone(), payment.clone(), "stripe").await;
    if rng.chance(10) {
        // Stripe retries a delivery: the same event id again.
        deliver(writer, streams, stream, payment, "stripe").await;
    }
}
