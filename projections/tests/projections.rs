//! The behaviour of each projection, on events appended to a real store and folded by the
//! real projector.

mod support;

use serde_json::json;
use support::*;
use switchboard_domain::Rejection;
use switchboard_domain::event::*;
use switchboard_projections::{
    AnomalyFilter, ExportFormat, ProjectionError, ProjectionName, Projector, ReadModels, export,
};
use switchboard_store::EventStore;

const SALON: &str = "+493083793369";

async fn open_tenant(h: &Harness, tenant: &str, minute: i64) {
    h.append(
        &format!("tenant-{tenant}"),
        vec![
            registered(tenant, minute),
            phone_assigned(tenant, "b1", SALON, minute),
            organizer_linked(tenant, 42, minute),
        ],
    )
    .await;
}

fn anomalies_with(read: &ReadModels, reason: &str) -> Vec<switchboard_projections::AnomalyView> {
    read.anomalies(&AnomalyFilter::default(), 500, None)
        .unwrap()
        .items
        .into_iter()
        .filter(|a| a.reason == reason)
        .collect()
}

#[tokio::test]
async fn a_call_before_its_number_is_registered_is_attributed_when_the_number_is() {
    let h = Harness::new();
    h.append(
        "call-c1",
        vec![call_ended("c1", "0151 23456789", "030 83793369", 0)],
    )
    .await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.tenant_id, None);
    assert_eq!(call.customer_id, None, "a customer belongs to a tenant");
    let open = anomalies_with(&read, "unattributed_call");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].subject_id.as_deref(), Some("c1"));
    assert_eq!(open[0].resolved_at, None);

    open_tenant(&h, "t1", 10).await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.tenant_id.as_deref(), Some("t1"));
    assert_eq!(call.branch_id.as_deref(), Some("b1"));
    assert!(call.customer_id.is_some());
    let resolved = anomalies_with(&read, "unattributed_call");
    assert_eq!(
        resolved.len(),
        1,
        "resolved, not deleted and not duplicated"
    );
    assert!(resolved[0].resolved_at.is_some());
    assert_eq!(resolved[0].tenant_id.as_deref(), Some("t1"));
    let tenant = read.tenant("t1").unwrap().unwrap();
    assert_eq!(tenant.counts.calls, 1);
    assert_eq!(tenant.counts.customers, 1);
    let branch = tenant
        .branches
        .iter()
        .find(|b| b.branch_id == "b1")
        .unwrap();
    assert_eq!(branch.calls, 1);
    assert_eq!(branch.phone_numbers, vec![SALON.to_owned()]);
}

/// A registry takes any number written in E.164; one libphonenumber does not know as valid
/// (here an unassigned country code) still attributes the calls to it, waiting or not.
#[tokio::test]
async fn a_registered_number_libphonenumber_does_not_know_still_attributes_its_calls() {
    const UNKNOWN_RANGE: &str = "+999123456789";
    let h = Harness::new();
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", UNKNOWN_RANGE, 0)],
    )
    .await;
    h.append(
        "tenant-t1",
        vec![
            registered("t1", 1),
            phone_assigned("t1", "b1", UNKNOWN_RANGE, 1),
        ],
    )
    .await;
    h.append(
        "call-c2",
        vec![call_ended("c2", "+4915123456780", UNKNOWN_RANGE, 2)],
    )
    .await;
    let read = h.project().await;
    for call_id in ["c1", "c2"] {
        let call = read.call(call_id).unwrap().unwrap();
        assert_eq!(
            (call.tenant_id.as_deref(), call.branch_id.as_deref()),
            (Some("t1"), Some("b1")),
            "{call_id}"
        );
    }
    assert!(
        anomalies_with(&read, "unattributed_call")
            .iter()
            .all(|a| a.resolved_at.is_some())
    );
}

/// An outbound call belongs to the tenant whose number it came from, whatever the delivery's
/// routing said: events stored before outbound calls were routed by that number carry the
/// tenant of the number called, and a rebuild must not keep it.
#[tokio::test]
async fn an_outbound_call_belongs_to_the_number_it_came_from_whatever_its_old_routing_said() {
    const OTHER: &str = "+493012345678";
    let h = Harness::new();
    open_tenant(&h, "salon", 0).await;
    h.append(
        "tenant-other",
        vec![
            registered("other", 0),
            phone_assigned("other", "o1", OTHER, 0),
        ],
    )
    .await;
    let routed_by_the_callee: Event = CallEnded {
        call_id: "out1".into(),
        occurred_at: at(1),
        parties: CallParties {
            direction: Some("outbound".into()),
            tenant_id: Some("other".into()),
            branch_id: Some("o1".into()),
            ..parties(SALON, OTHER)
        },
        outcome: CallOutcome::default(),
    }
    .into();
    h.append("call-out1", vec![routed_by_the_callee]).await;
    let read = h.project().await;
    let call = read.call("out1").unwrap().unwrap();
    assert_eq!(
        (call.tenant_id.as_deref(), call.branch_id.as_deref()),
        (Some("salon"), Some("b1"))
    );
    assert_eq!(read.tenant("other").unwrap().unwrap().counts.calls, 0);
}

/// The calls waiting for a number are found by number, in the table: the calls of the same
/// batch, still held in memory, must be found too.
#[tokio::test]
async fn a_call_and_its_number_registered_within_one_batch_are_attributed() {
    let h = Harness::new();
    h.append(
        "call-c1",
        vec![call_ended("c1", "0151 23456789", "030 83793369", 0)],
    )
    .await;
    open_tenant(&h, "t1", 10).await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.tenant_id.as_deref(), Some("t1"));
    assert_eq!(call.branch_id.as_deref(), Some("b1"));
    assert!(call.customer_id.is_some());
    let anomaly = anomalies_with(&read, "unattributed_call");
    assert_eq!(anomaly.len(), 1);
    assert_eq!(anomaly[0].tenant_id.as_deref(), Some("t1"));
    assert!(anomaly[0].resolved_at.is_some());
}

/// A batch remembers who owns the numbers it looked up: an unassignment in the same batch
/// must make it forget, so that a later call to the number is not attributed to the old owner.
#[tokio::test]
async fn a_call_after_its_number_is_unassigned_within_one_batch_stays_unattributed() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1)],
    )
    .await;
    h.append("tenant-t1", vec![phone_unassigned("t1", "b1", SALON, 2)])
        .await;
    h.append(
        "call-c2",
        vec![call_ended("c2", "+4915123456780", SALON, 3)],
    )
    .await;
    let read = h.project().await;
    let first = read.call("c1").unwrap().unwrap();
    assert_eq!(
        first.tenant_id.as_deref(),
        Some("t1"),
        "rang while assigned"
    );
    let second = read.call("c2").unwrap().unwrap();
    assert_eq!(second.tenant_id, None, "rang after the number was given up");
    let open = anomalies_with(&read, "unattributed_call");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].subject_id.as_deref(), Some("c2"));
}

#[tokio::test]
async fn ended_then_booked_then_cancelled_reads_cancelled_on_the_call() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1)],
    )
    .await;
    h.append(
        "booking-bk1",
        vec![
            booking_created("bk1", Some("c1"), 5, 42),
            BookingLinkedToCall {
                booking_uid: "bk1".into(),
                call_id: "c1".into(),
                occurred_at: at(5),
            }
            .into(),
        ],
    )
    .await;
    h.append(
        "call-c1",
        vec![
            CallLinkedToBooking {
                call_id: "c1".into(),
                booking_uid: "bk1".into(),
                occurred_at: at(5),
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let appointment = read.call("c1").unwrap().unwrap().appointment.unwrap();
    assert_eq!(
        (
            appointment.booking_uid.as_str(),
            appointment.status.as_deref()
        ),
        ("bk1", Some("booked"))
    );

    h.append(
        "booking-bk1",
        vec![
            BookingCancelled {
                booking_uid: "bk1".into(),
                occurred_at: at(30),
                reason: Some("ill".into()),
                cancelled_by: None,
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.status, "ended");
    assert_eq!(
        call.appointment.unwrap().status.as_deref(),
        Some("cancelled")
    );
    let booking = read.appointment("bk1").unwrap().unwrap();
    assert_eq!(booking.status, "cancelled");
    assert_eq!(booking.call_id.as_deref(), Some("c1"));
    assert_eq!(booking.tenant_id.as_deref(), Some("t1"));
    let changes: Vec<_> = booking
        .history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].clone())
        .collect();
    assert_eq!(changes, vec![json!("created"), json!("cancelled")]);
}

/// The folds hold a batch's calls in memory and write them at its end; a booking's status is
/// copied onto its calls by booking uid, so it must reach a call the table does not have yet.
#[tokio::test]
async fn a_call_booked_and_cancelled_within_one_batch_reads_cancelled() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1)],
    )
    .await;
    h.append(
        "booking-bk1",
        vec![
            booking_created("bk1", Some("c1"), 5, 42),
            BookingCancelled {
                booking_uid: "bk1".into(),
                occurred_at: at(30),
                reason: None,
                cancelled_by: None,
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let appointment = read.call("c1").unwrap().unwrap().appointment.unwrap();
    assert_eq!(
        (
            appointment.booking_uid.as_str(),
            appointment.status.as_deref()
        ),
        ("bk1", Some("cancelled"))
    );
}

#[tokio::test]
async fn a_cancellation_that_overtakes_the_creation_stays_cancelled() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append(
        "booking-bk1",
        vec![
            BookingCancelled {
                booking_uid: "bk1".into(),
                occurred_at: at(30),
                reason: None,
                cancelled_by: None,
            }
            .into(),
            booking_created("bk1", None, 5, 42),
        ],
    )
    .await;
    let read = h.project().await;
    let booking = read.appointment("bk1").unwrap().unwrap();
    assert_eq!(booking.status, "cancelled");
    assert_eq!(booking.service.as_deref(), Some("Herrenhaarschnitt"));
    assert_eq!(
        booking.tenant_id.as_deref(),
        Some("t1"),
        "attributed by its organizer"
    );
}

#[tokio::test]
async fn a_calcom_reschedule_links_the_old_and_the_new_booking() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append("booking-bk1", vec![booking_created("bk1", None, 5, 42)])
        .await;
    h.append(
        "booking-bk2",
        vec![
            BookingCreated {
                booking_uid: "bk2".into(),
                occurred_at: at(20),
                details: booking_details(60, 42, None),
                call_id: None,
                rescheduled_from: Some("bk1".into()),
            }
            .into(),
        ],
    )
    .await;
    h.append(
        "booking-bk1",
        vec![
            BookingRescheduled {
                booking_uid: "bk1".into(),
                occurred_at: at(20),
                previous_start: None,
                previous_end: None,
                start: None,
                end: None,
                reason: None,
                rescheduled_by: None,
                rescheduled_to: Some("bk2".into()),
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let old = read.appointment("bk1").unwrap().unwrap();
    assert_eq!(old.status, "rescheduled");
    assert_eq!(old.rescheduled_to.as_deref(), Some("bk2"));
    let new = read.appointment("bk2").unwrap().unwrap();
    assert_eq!(new.status, "booked");
    assert_eq!(new.rescheduled_from.as_deref(), Some("bk1"));
    let changes: Vec<_> = new
        .history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![json!("created"), json!("created")],
        "the old booking's history first"
    );
    assert_eq!(new.history[1]["rescheduled_from"], "bk1");
}

#[tokio::test]
async fn a_customer_merges_what_the_call_and_the_booking_say() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append("call-c1", vec![call_ended("c1", "0151 23456789", SALON, 1)])
        .await;
    h.append(
        "booking-bk1",
        vec![
            BookingCreated {
                booking_uid: "bk1".into(),
                occurred_at: at(5),
                details: booking_details(5, 42, Some("+49 151 23456789")),
                call_id: None,
                rescheduled_from: None,
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let customer = read
        .customer_by_phone("t1", "0049 151 23456789")
        .unwrap()
        .unwrap();
    assert_eq!(customer.phone, "+4915123456789");
    assert_eq!(
        customer.name.as_deref(),
        Some("Erika M."),
        "what the person typed wins"
    );
    assert_eq!(customer.email.as_deref(), Some("erika@example.com"));
    assert_eq!(customer.calls.len(), 1);
    assert_eq!(customer.appointments.len(), 1);
    assert_eq!(
        read.call("c1").unwrap().unwrap().customer_id.as_deref(),
        Some(customer.customer_id.as_str())
    );
    assert_eq!(
        read.customer(&customer.customer_id)
            .unwrap()
            .unwrap()
            .appointments[0]
            .booking_uid
            .as_deref(),
        Some("bk1")
    );
    assert!(
        read.customer_by_phone("t2", "+4915123456789")
            .unwrap()
            .is_none(),
        "per tenant"
    );
}

#[tokio::test]
async fn an_appointment_request_is_fulfilled_by_the_booking_that_links_to_its_call() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    let requested: Event = AppointmentRequested {
        call_id: "c1".into(),
        occurred_at: at(3),
        form: AppointmentForm {
            date: Some("15.04.2025".into()),
            time: Some("14:30".into()),
            service: Some("Färben".into()),
            ..AppointmentForm::default()
        },
        requested_start: None,
        time_zone: "Europe/Berlin".into(),
    }
    .into();
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1), requested],
    )
    .await;
    let read = h.project().await;
    let request = read.appointment("request-c1").unwrap().unwrap();
    assert_eq!(request.status, "requested");
    assert_eq!(request.tenant_id.as_deref(), Some("t1"));
    assert_eq!(read.tenant("t1").unwrap().unwrap().counts.appointments, 1);

    h.append(
        "booking-bk1",
        vec![booking_created("bk1", Some("c1"), 5, 42)],
    )
    .await;
    let read = h.project().await;
    assert!(
        read.appointment("request-c1").unwrap().is_none(),
        "one appointment, one row"
    );
    let booking = read.appointment("bk1").unwrap().unwrap();
    let changes: Vec<_> = booking
        .history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].clone())
        .collect();
    assert_eq!(changes, vec![json!("requested"), json!("created")]);
    assert_eq!(read.tenant("t1").unwrap().unwrap().counts.appointments, 1);
    assert_eq!(
        read.call("c1")
            .unwrap()
            .unwrap()
            .appointment
            .unwrap()
            .booking_uid,
        "bk1"
    );
}

#[tokio::test]
async fn what_cannot_be_applied_becomes_an_anomaly_and_the_fold_goes_on() {
    let h = Harness::new();
    h.append(
        "booking-bk1",
        vec![
            TransitionRejected {
                occurred_at: at(1),
                command: "RescheduleBooking".into(),
                reason: Rejection::RescheduleAfterCancellation {
                    booking_uid: "bk1".into(),
                    cancelled_at: at(0),
                },
                payload: json!({"booking_uid": "bk1"}),
            }
            .into(),
        ],
    )
    .await;
    h.append_raw("call-c9", "CallTeleported", json!({"call_id": "c9"}))
        .await;
    h.append_raw("booking-bk2", "BookingCancelled", json!({"booking_uid": 5}))
        .await;
    h.append_raw("call-c9", "DeliveryReceived", json!({"body": "{}"}))
        .await;
    h.append(
        "call-c2",
        vec![call_ended("c2", "+4915123456789", SALON, 2)],
    )
    .await;
    let read = h.project().await;
    let all = read
        .anomalies(&AnomalyFilter::default(), 100, None)
        .unwrap()
        .items;
    let reasons: Vec<&str> = all.iter().map(|a| a.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "reschedule_after_cancellation",
            "unknown_event_type",
            "invalid_event_data",
            "unattributed_call"
        ]
    );
    assert_eq!(all[0].stream, "booking-bk1");
    assert_eq!(all[1].event_type, "CallTeleported");
    assert!(
        read.call("c2").unwrap().is_some(),
        "events after the bad ones are applied"
    );
    assert_eq!(read.checkpoint().unwrap(), h.head());
}

/// A NUL in a provider's text reads as U+FFFD in the read models, as it must in PostgreSQL's
/// (whose text cannot hold one), so both databases hold the same rows; the event keeps it.
#[tokio::test]
async fn a_nul_in_a_providers_text_reads_as_the_replacement_character() {
    let h = Harness::new();
    let ended = CallEnded {
        call_id: "c1".into(),
        occurred_at: at(1),
        parties: parties("+4915123456789", SALON),
        outcome: CallOutcome {
            transcript: Some("Agent: a\u{0}b".into()),
            ..Default::default()
        },
    };
    h.append("call-c1", vec![ended.into()]).await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.transcript.as_deref(), Some("Agent: a\u{FFFD}b"));
    let stored = h.store.read_stream("call-c1", 0, 1).await.unwrap();
    assert!(
        stored[0].data.as_str().contains("a\\u0000b"),
        "the event keeps the NUL: {}",
        stored[0].data.as_str()
    );
}

fn rejection(minute: i64, command: &str, reason: Rejection) -> Event {
    TransitionRejected {
        occurred_at: at(minute),
        command: command.into(),
        reason,
        payload: json!({}),
    }
    .into()
}

/// A tenant's token lists the anomalies of its own calls, bookings, registry and Stripe
/// customers: an anomaly names the tenant of the aggregate it was recorded on, and one recorded
/// before that aggregate was attributed names it from the event that attributes it.
#[tokio::test]
async fn an_anomaly_names_the_tenant_of_what_it_is_about_once_that_is_known() {
    let h = Harness::new();
    let cancelled = |uid: &str| Rejection::RescheduleAfterCancellation {
        booking_uid: uid.into(),
        cancelled_at: at(0),
    };
    let wrong = |named: &str, stream: &str| Rejection::WrongStream {
        command: "EndCall".into(),
        named: named.into(),
        stream_id: stream.into(),
    };
    // Recorded while nobody owns the call's number, the booking's organizer or the Stripe
    // customer.
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1)],
    )
    .await;
    h.append(
        "call-c1",
        vec![rejection(2, "EndCall", wrong("c2", "call-c1"))],
    )
    .await;
    h.append("booking-bk1", vec![booking_created("bk1", None, 3, 42)])
        .await;
    h.append(
        "booking-bk1",
        vec![rejection(4, "RescheduleBooking", cancelled("bk1"))],
    )
    .await;
    let update_after_cancel = || Rejection::SubscriptionUpdateAfterCancellation {
        subscription_id: "sub_1".into(),
        cancelled_at: at(0),
    };
    h.append(
        "billing-cus_1",
        vec![rejection(5, "UpdateSubscription", update_after_cancel())],
    )
    .await;
    let read = h.project().await;
    let tenants = |reason: &str| -> Vec<Option<String>> {
        anomalies_with(&read, reason)
            .into_iter()
            .map(|a| a.tenant_id)
            .collect()
    };
    assert_eq!(tenants("wrong_stream"), vec![None]);
    assert_eq!(tenants("reschedule_after_cancellation"), vec![None]);
    assert_eq!(
        tenants("subscription_update_after_cancellation"),
        vec![None]
    );

    // The number, the organizer and the customer are registered: what was refused on their
    // records becomes the tenant's, and stays unresolved (attribution does not undo a refusal).
    open_tenant(&h, "t1", 6).await;
    h.append(
        "tenant-t1",
        vec![
            StripeCustomerLinked {
                tenant_id: "t1".into(),
                stripe_customer_id: "cus_1".into(),
                occurred_at: at(6),
            }
            .into(),
        ],
    )
    .await;
    // Refused after the attribution: the tenant is named at once, on every kind of stream.
    h.append(
        "booking-bk1",
        vec![rejection(7, "RescheduleBooking", cancelled("bk1"))],
    )
    .await;
    h.append(
        "call-c1",
        vec![rejection(8, "EndCall", wrong("c3", "call-c1"))],
    )
    .await;
    h.append(
        "tenant-t1",
        vec![rejection(9, "UpdateSubscription", update_after_cancel())],
    )
    .await;
    let read = h.project().await;
    let t1 = Some("t1".to_owned());
    let tenants = |reason: &str| -> Vec<Option<String>> {
        anomalies_with(&read, reason)
            .into_iter()
            .map(|a| a.tenant_id)
            .collect()
    };
    assert_eq!(tenants("wrong_stream"), vec![t1.clone(), t1.clone()]);
    assert_eq!(
        tenants("reschedule_after_cancellation"),
        vec![t1.clone(), t1.clone()]
    );
    assert_eq!(
        tenants("subscription_update_after_cancellation"),
        vec![t1.clone(), t1.clone()]
    );
    let refused = anomalies_with(&read, "reschedule_after_cancellation");
    assert_eq!(refused[0].subject_kind.as_deref(), Some("booking"));
    assert_eq!(refused[0].subject_id.as_deref(), Some("bk1"));
    assert!(refused.iter().all(|a| a.resolved_at.is_none()));

    // What the tenant's token lists: its six refusals and its two resolved records.
    let own = read
        .anomalies(
            &AnomalyFilter {
                tenant_id: t1.clone(),
                open_only: false,
            },
            100,
            None,
        )
        .unwrap()
        .items;
    let mut reasons: Vec<&str> = own.iter().map(|a| a.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        vec![
            "reschedule_after_cancellation",
            "reschedule_after_cancellation",
            "subscription_update_after_cancellation",
            "subscription_update_after_cancellation",
            "unattributed_booking",
            "unattributed_call",
            "wrong_stream",
            "wrong_stream",
        ]
    );
}

/// An anomaly recorded on a call's stream before any event made the call's row (a Retell
/// event no rule applies to, delivered before `call_started`) names the tenant once the call
/// is attributed, even by the event that creates the row.
#[tokio::test]
async fn an_anomaly_before_the_calls_first_event_names_the_tenant_that_event_attributes() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    h.append_raw(
        "call-c9",
        "DeliveryReceived",
        json!({"provider": "retell", "body": "{}",
               "unhandled": {"event_type": "transcript_updated", "reason": "no rule"}}),
    )
    .await;
    let read = h.project().await;
    let unknown = anomalies_with(&read, "unknown_event_type");
    assert_eq!(
        (
            unknown[0].subject_id.as_deref(),
            unknown[0].tenant_id.as_deref()
        ),
        (Some("c9"), None)
    );
    h.append(
        "call-c9",
        vec![call_ended("c9", "+4915123456789", SALON, 1)],
    )
    .await;
    let read = h.project().await;
    assert_eq!(
        read.call("c9").unwrap().unwrap().tenant_id.as_deref(),
        Some("t1")
    );
    let unknown = anomalies_with(&read, "unknown_event_type");
    assert_eq!(unknown[0].tenant_id.as_deref(), Some("t1"));
    assert!(unknown[0].resolved_at.is_none(), "named, not resolved");
}

#[tokio::test]
async fn a_delivery_the_domain_has_no_rule_for_is_listed_as_an_unknown_event_type() {
    let h = Harness::new();
    // What the server keeps for a verified `charge.refunded`: the raw delivery, marked.
    h.append_raw(
        "delivery-d1",
        "DeliveryReceived",
        json!({"provider": "stripe", "body": "{}",
               "unhandled": {"event_type": "charge.refunded", "reason": "no rule for this Stripe event type"}}),
    )
    .await;
    // A raw delivery whose events were decided is not an anomaly.
    h.append_raw(
        "call-c1",
        "DeliveryReceived",
        json!({"provider": "retell", "body": "{}"}),
    )
    .await;
    let read = h.project().await;
    let unknown = anomalies_with(&read, "unknown_event_type");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].stream, "delivery-d1");
    assert_eq!(unknown[0].event_type, "stripe:charge.refunded");
    assert!(
        unknown[0].message.contains("charge.refunded"),
        "{}",
        unknown[0].message
    );
    assert_eq!(read.checkpoint().unwrap(), h.head());
}

#[tokio::test]
async fn a_payment_for_an_unknown_customer_is_attributed_when_the_customer_is_linked() {
    let h = Harness::new();
    let invoice = InvoiceFacts {
        tenant_id: None,
        stripe_customer_id: "cus_1".into(),
        invoice_id: "in_1".into(),
        subscription_id: Some("sub_1".into()),
        amount: 4900,
        currency: "eur".into(),
        plan: Some("pro".into()),
    };
    let subscription = SubscriptionFacts {
        tenant_id: None,
        stripe_customer_id: "cus_1".into(),
        subscription_id: "sub_1".into(),
        status: "active".into(),
        plan: Some("pro".into()),
        amount: Some(4900),
        currency: Some("eur".into()),
        interval: Some("month".into()),
        current_period_start: None,
        current_period_end: None,
        cancel_at_period_end: None,
    };
    h.append(
        "billing-cus_1",
        vec![
            SubscriptionStarted {
                stripe_event_id: "evt_1".into(),
                occurred_at: at(0),
                subscription,
            }
            .into(),
            PaymentSucceeded {
                stripe_event_id: "evt_2".into(),
                occurred_at: at(1),
                invoice,
                paid_at: None,
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    assert_eq!(anomalies_with(&read, "unattributed_payment").len(), 1);
    assert_eq!(anomalies_with(&read, "unattributed_subscription").len(), 1);

    h.append(
        "tenant-t1",
        vec![
            registered("t1", 5),
            StripeCustomerLinked {
                tenant_id: "t1".into(),
                stripe_customer_id: "cus_1".into(),
                occurred_at: at(5),
            }
            .into(),
        ],
    )
    .await;
    let read = h.project().await;
    let tenant = read.tenant("t1").unwrap().unwrap();
    assert_eq!(tenant.payments.succeeded, 1);
    assert_eq!(tenant.payments.revenue_cents, 4900);
    assert_eq!(tenant.subscription.status.as_deref(), Some("active"));
    assert_eq!(tenant.subscription.plan.as_deref(), Some("pro"));
    assert_eq!(tenant.stripe_customer_ids, vec!["cus_1".to_owned()]);
    let open = read
        .anomalies(
            &AnomalyFilter {
                tenant_id: None,
                open_only: true,
            },
            100,
            None,
        )
        .unwrap();
    assert!(open.items.is_empty(), "{:?}", open.items);
}

#[tokio::test]
async fn lists_page_with_an_opaque_cursor_and_refuse_a_foreign_one() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    for i in 0..5 {
        h.append(
            &format!("call-c{i}"),
            vec![call_ended(&format!("c{i}"), "+4915123456789", SALON, i)],
        )
        .await;
    }
    h.append(
        "call-x",
        vec![call_ended("x", "+4915123456789", "+4940123456", 9)],
    )
    .await;
    let read = h.project().await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = read.calls(Some("t1"), 2, after.as_deref()).unwrap();
        seen.extend(page.items.iter().map(|c| c.call_id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec!["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(
        read.calls(None, 100, None).unwrap().items.len(),
        6,
        "the admin sees every tenant's"
    );
    assert!(matches!(
        read.calls(Some("t1"), 2, Some("garbage")),
        Err(ProjectionError::BadCursor(_))
    ));
    assert!(matches!(
        read.calls(Some("t1"), 0, None),
        Err(ProjectionError::BadLimit(0))
    ));
    assert!(
        read.appointments(Some("t1"), 10, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn tokens_availability_and_exports_read_from_the_tables() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    let hash = "ab".repeat(32);
    h.append(
        "tenant-t1",
        vec![
            ApiTokensSet {
                tenant_id: "t1".into(),
                token_sha256: vec![hash.clone()],
                occurred_at: at(0),
            }
            .into(),
        ],
    )
    .await;
    h.append("booking-bk1", vec![booking_created("bk1", None, 0, 42)])
        .await;
    h.append("booking-bk2", vec![booking_created("bk2", None, 600, 42)])
        .await;
    h.append(
        "call-c1",
        vec![call_ended("c1", "+4915123456789", SALON, 1)],
    )
    .await;
    let read = h.project().await;
    assert_eq!(
        read.tenant_by_token_hash(&hash).unwrap().as_deref(),
        Some("t1")
    );
    assert_eq!(read.tenant_by_token_hash(&"cd".repeat(32)).unwrap(), None);

    let availability = read
        .availability("t1", Some("b1"), Some("Anna"), at(1400), at(1500))
        .unwrap();
    assert!(availability.default_hours);
    assert_eq!(availability.time_zone, "Europe/Berlin");
    assert_eq!(availability.busy.len(), 1);
    assert_eq!(availability.busy[0].appointment_id, "bk1");
    assert!(
        read.availability("t1", None, Some("Bob"), at(1400), at(1500))
            .unwrap()
            .busy
            .is_empty()
    );
    // Both bookings are 30-minute "Herrenhaarschnitt"s; nothing says how long another
    // service takes, nor this one at another tenant.
    assert_eq!(
        read.service_minutes("t1", "Herrenhaarschnitt").unwrap(),
        Some(30)
    );
    assert_eq!(read.service_minutes("t1", "Färben").unwrap(), None);
    assert_eq!(
        read.service_minutes("t2", "Herrenhaarschnitt").unwrap(),
        None
    );

    let mut jsonl = Vec::new();
    assert_eq!(
        export(
            &read,
            ProjectionName::Appointments,
            ExportFormat::Jsonl,
            &mut jsonl
        )
        .unwrap(),
        2
    );
    let first: serde_json::Value =
        serde_json::from_slice(jsonl.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["appointment_id"], "bk1");
    assert!(first["history"].is_array(), "nested JSON stays JSON");
    let mut csv = Vec::new();
    assert_eq!(
        export(&read, ProjectionName::Calls, ExportFormat::Csv, &mut csv).unwrap(),
        1
    );
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("call_id,seq,tenant_id"));
    assert_eq!(csv.lines().count(), 2);
    // Every projection exports: the customers in the order they were first seen, the
    // anomalies in the order they were recorded.
    let mut customers = Vec::new();
    assert_eq!(
        export(
            &read,
            ProjectionName::Customers,
            ExportFormat::Jsonl,
            &mut customers
        )
        .unwrap(),
        1
    );
    let customer: serde_json::Value = serde_json::from_slice(&customers).unwrap();
    assert_eq!(customer["tenant_id"], "t1", "{customer}");
    let mut anomalies = Vec::new();
    let count = export(
        &read,
        ProjectionName::Anomalies,
        ExportFormat::Csv,
        &mut anomalies,
    )
    .unwrap() as usize;
    let anomalies = String::from_utf8(anomalies).unwrap();
    assert!(
        anomalies.starts_with("anomaly_id,position,stream"),
        "{anomalies}"
    );
    assert_eq!(anomalies.lines().count(), count + 1);
}

#[tokio::test]
async fn the_live_runner_applies_each_event_once_across_restarts() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    for i in 0..30 {
        h.append(
            &format!("call-c{i}"),
            vec![call_ended(&format!("c{i}"), "+4915123456789", SALON, i)],
        )
        .await;
    }
    for round in 0..2 {
        let projector = Projector::open(h.dyn_store(), h.data_dir())
            .unwrap()
            .with_max_batch(7);
        let running = run_in_background(projector);
        let lag = running.lag.clone();
        let mut checkpoint = lag.watch_checkpoint();
        let head = h.head();
        checkpoint.wait_for(|c| *c >= head).await.unwrap();
        assert_eq!(lag.behind(), 0);
        running.stop().await;
        if round == 0 {
            for i in 30..40 {
                h.append(
                    &format!("call-c{i}"),
                    vec![call_ended(&format!("c{i}"), "+4915123456789", SALON, i)],
                )
                .await;
            }
        }
    }
    let read = ReadModels::open(h.data_dir()).unwrap();
    let tenant = read.tenant("t1").unwrap().unwrap();
    assert_eq!(tenant.counts.calls, 40);
    assert_eq!(
        read.customer_by_phone("t1", "+4915123456789")
            .unwrap()
            .unwrap()
            .calls
            .len(),
        40
    );
}

#[tokio::test]
async fn an_event_the_read_models_refuse_is_undone_as_a_whole_and_recorded() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    // A trigger stands in for any row an event cannot write (a constraint, a bad value). The
    // call's row is written last (at the end of the batch, or of the event when retried
    // carefully), after the event already linked the caller as a customer.
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    rusqlite::Connection::open(projector.at().file().unwrap())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.call_id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
        )
        .unwrap();
    drop(projector);
    for id in ["c1", "poison", "c2"] {
        h.append(
            &format!("call-{id}"),
            vec![call_ended(id, "+4915123456789", SALON, 1)],
        )
        .await;
    }
    let read = h.project().await;
    assert!(read.call("c1").unwrap().is_some());
    assert!(read.call("c2").unwrap().is_some());
    assert!(read.call("poison").unwrap().is_none());
    let customer_calls: i64 =
        rusqlite::Connection::open(switchboard_projections::read_models_path(h.data_dir()))
            .unwrap()
            .query_row("SELECT calls_count FROM customers", [], |r| r.get(0))
            .unwrap();
    assert_eq!(
        customer_calls, 2,
        "what the event wrote before its call is undone too"
    );
    let failed = anomalies_with(&read, "apply_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].stream, "call-poison");
    assert!(
        failed[0].message.contains("poisoned row"),
        "{}",
        failed[0].message
    );
    assert_eq!(read.tenant("t1").unwrap().unwrap().counts.calls, 2);
    assert_eq!(read.checkpoint().unwrap(), h.head());
}

/// A batch holds its calls in memory: what an event the read models refused had changed in a
/// held call must go with its savepoint, not reach the table with the call's next event.
#[tokio::test]
async fn a_refused_event_leaves_nothing_behind_for_the_same_calls_next_event() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    // The analysis at minute 2 gives the call a sentiment the table refuses. The batch writes
    // the call once, at its end (as a new row or over the stored one), so the refusal finds
    // the batch first and then, retried with a savepoint per event, that analysis.
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    rusqlite::Connection::open(projector.at().file().unwrap())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison_insert BEFORE INSERT ON calls WHEN NEW.sentiment = 'Negative'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;
             CREATE TRIGGER poison_update BEFORE UPDATE ON calls WHEN NEW.sentiment = 'Negative'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
        )
        .unwrap();
    drop(projector);
    let analysis = |minute: i64, summary: &str, sentiment: Option<&str>| -> Event {
        CallAnalyzed {
            call_id: "c1".into(),
            occurred_at: at(minute),
            analysis: CallAnalysis {
                summary: Some(summary.into()),
                sentiment: sentiment.map(str::to_owned),
                sentiment_score: None,
                successful: None,
                appointment_booked: None,
                details: json!({}),
            },
        }
        .into()
    };
    h.append(
        "call-c1",
        vec![
            call_ended("c1", "+4915123456789", SALON, 1),
            analysis(2, "refused", Some("Negative")),
            analysis(3, "considered", None),
        ],
    )
    .await;
    let read = h.project().await;
    let call = read.call("c1").unwrap().unwrap();
    assert_eq!(call.summary.as_deref(), Some("considered"));
    assert_eq!(
        call.sentiment, None,
        "the refused analysis left its sentiment behind"
    );
    let failed = anomalies_with(&read, "apply_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_type, "CallAnalyzed");
    assert_eq!(failed[0].occurred_at, switchboard_projections::ts(at(2)));
}

#[tokio::test]
async fn read_models_of_a_newer_layout_are_refused_and_left_alone() {
    let h = Harness::new();
    open_tenant(&h, "t1", 0).await;
    drop(h.project().await);
    let path = switchboard_projections::read_models_path(h.data_dir());
    let newer = switchboard_projections::LAYOUT_VERSION + 1;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "UPDATE tenants SET name = 'from a newer build'; PRAGMA user_version = {newer};"
    ))
    .unwrap();
    drop(conn);

    let Err(refused) = Projector::open(h.dyn_store(), h.data_dir()) else {
        panic!("read models of a newer layout were opened");
    };
    assert!(
        matches!(refused, ProjectionError::NewerLayout { found, .. } if found == newer),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("read_models.sqlite"),
        "names the file: {message}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (name, layout): (String, i64) = conn
        .query_row(
            "SELECT name, (SELECT user_version FROM pragma_user_version) FROM tenants",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (name.as_str(), layout),
        ("from a newer build", newer),
        "untouched"
    );
}

#[tokio::test]
async fn read_models_of_an_older_layout_are_refolded_in_this_one() {
    let h = Harness::new();
    support::history::generate(h.dyn_store(), 500, 5).await;
    drop(h.project().await);
    let path = switchboard_projections::read_models_path(h.data_dir());
    let current = dump(&path);
    turn_into_layout_1(&path);

    let mut projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    assert_eq!(projector.catch_up().await.unwrap(), h.head());
    assert_eq!(dump(&path), current, "refolded from the start, row for row");
    let (layout, customers) = layout_and_customers(&path);
    assert_eq!(layout, switchboard_projections::LAYOUT_VERSION);
    assert!(customers.ends_with("WITHOUT ROWID"), "{customers}");
    assert!(!customers.contains("UNIQUE"), "{customers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_read_models_are_emptied_underneath_refolds_from_the_start() {
    let h = Harness::new();
    support::history::generate(h.dyn_store(), 500, 3).await;
    let projector = Projector::open(h.dyn_store(), h.data_dir()).unwrap();
    let running = run_in_background(projector);
    let lag = running.lag.clone();
    let head = h.head();
    lag.watch_checkpoint()
        .wait_for(|c| *c >= head)
        .await
        .unwrap();

    // Another process (a newer build replacing an older layout, say) empties the tables and
    // resets the checkpoint while this runner is live.
    let path = switchboard_projections::read_models_path(h.data_dir());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut reset = String::from("BEGIN IMMEDIATE; UPDATE checkpoint SET position = 0;");
    for projection in ProjectionName::ALL {
        for table in projection.tables() {
            reset.push_str(&format!("DELETE FROM {table};"));
        }
    }
    reset.push_str("COMMIT;");
    conn.execute_batch(&reset).unwrap();
    drop(conn);

    // The next batch finds the checkpoint behind what the runner folded: it starts over from
    // the stored checkpoint rather than folding the new events on top of a gap.
    open_tenant(&h, "late", 9_000).await;
    let head = h.head();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        lag.watch_checkpoint().wait_for(|c| *c >= head),
    )
    .await
    .expect("the runner catches up")
    .unwrap();
    running.stop().await;
    let report = switchboard_projections::rebuild(
        h.dyn_store(),
        h.data_dir(),
        None,
        Some(switchboard_projections::Until::Position(head)),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        dump(&path),
        dump(report.at.file().unwrap()),
        "everything, once"
    );
}
