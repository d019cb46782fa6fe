//! Providers deliver in any order and more than once. For one call and its bookings, every
//! interleaving (permutation plus repeats) of the deliveries must leave the call and the
//! bookings reading exactly as in-order delivery does: the rules order facts by provider time
//! and by which facts exist, never by arrival.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use switchboard_domain::command::{
    AnalyzeCall, CancelBooking, CreateBooking, EndCall, RecordAvailabilityCheck, RescheduleBooking,
    StartCall,
};
use switchboard_domain::event::{
    AppointmentForm, AvailabilityAnswer, BookingDetails, CallAnalysis, CallOutcome, CallParties,
};
use switchboard_domain::{Booking, BookingView, Call, Command, InMemoryStreams, StreamId};

const CALL: &str = "call_1";
const BOOKING: &str = "bkg_1";
const NEW_BOOKING: &str = "bkg_2";

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 4, 14, hour, minute, 0).unwrap()
}

fn details(start_hour: u32) -> BookingDetails {
    BookingDetails {
        calcom_booking_id: Some(2026361),
        title: Some("Herrenhaarschnitt mit Max Mustermann".into()),
        description: None,
        start: Utc
            .with_ymd_and_hms(2025, 4, 15, start_hour, 30, 0)
            .unwrap(),
        end: Utc
            .with_ymd_and_hms(2025, 4, 15, start_hour + 1, 0, 0)
            .unwrap(),
        service: Some("Herrenhaarschnitt".into()),
        event_type_id: Some(7890),
        organizer: None,
        attendees: vec![],
        location: None,
        provider_status: Some("ACCEPTED".into()),
    }
}

fn reschedule(hour: u32, start_hour: u32) -> Command {
    RescheduleBooking {
        booking_uid: BOOKING.into(),
        occurred_at: at(hour, 0),
        previous_start: None,
        previous_end: None,
        start: Some(Utc.with_ymd_and_hms(2025, 4, 15, start_hour, 0, 0).unwrap()),
        end: Some(
            Utc.with_ymd_and_hms(2025, 4, 15, start_hour, 30, 0)
                .unwrap(),
        ),
        reason: None,
        rescheduled_by: None,
        call_id: None,
    }
    .into()
}

/// The deliveries of one call, in provider order.
fn call_deliveries() -> Vec<(StreamId, Command)> {
    let parties = |from: &str| CallParties {
        from_number: Some(from.into()),
        to_number: Some("+493083793369".into()),
        ..CallParties::default()
    };
    let call = StreamId::call(CALL);
    vec![
        (
            call.clone(),
            StartCall {
                call_id: CALL.into(),
                occurred_at: at(9, 0),
                parties: parties("+4915123456789"),
            }
            .into(),
        ),
        (
            call.clone(),
            RecordAvailabilityCheck {
                call_id: CALL.into(),
                occurred_at: at(9, 2),
                request_id: Some("req_1".into()),
                function_name: "check_availability".into(),
                arguments: serde_json::json!({"date": "2025-04-15", "time": "14:30"}),
                answer: AvailabilityAnswer {
                    available: true,
                    slots: vec![],
                    message: "Der Termin ist verfügbar".into(),
                },
            }
            .into(),
        ),
        (
            call.clone(),
            EndCall {
                call_id: CALL.into(),
                occurred_at: at(9, 5),
                parties: parties("+4915123456789"),
                outcome: CallOutcome {
                    duration_s: Some(300),
                    customer_name: Some("Max Mustermann".into()),
                    ..CallOutcome::default()
                },
                appointment_form: Some(AppointmentForm {
                    date: Some("15.04.2025".into()),
                    time: Some("14:30".into()),
                    ..AppointmentForm::default()
                }),
                time_zone: chrono_tz::Europe::Berlin,
            }
            .into(),
        ),
        (
            call,
            AnalyzeCall {
                call_id: CALL.into(),
                occurred_at: at(9, 7),
                analysis: CallAnalysis {
                    appointment_booked: Some(true),
                    ..CallAnalysis::default()
                },
                appointment_form: None,
                time_zone: chrono_tz::Europe::Berlin,
            }
            .into(),
        ),
    ]
}

/// Its booking: created, rescheduled in place, moved to a new uid by Cal.com, cancelled, and
/// a reschedule after the cancellation that must never count.
fn booking_deliveries() -> Vec<(StreamId, Command)> {
    let booking = StreamId::booking(BOOKING);
    vec![
        (
            booking.clone(),
            CreateBooking {
                booking_uid: BOOKING.into(),
                occurred_at: at(10, 0),
                details: details(12),
                call_id: Some(CALL.into()),
                rescheduled_from: None,
            }
            .into(),
        ),
        (booking.clone(), reschedule(11, 15)),
        (
            StreamId::booking(NEW_BOOKING),
            CreateBooking {
                booking_uid: NEW_BOOKING.into(),
                occurred_at: at(12, 0),
                details: details(16),
                call_id: Some(CALL.into()),
                rescheduled_from: Some(BOOKING.into()),
            }
            .into(),
        ),
        (
            booking.clone(),
            CancelBooking {
                booking_uid: BOOKING.into(),
                occurred_at: at(13, 0),
                reason: Some("Customer requested cancellation".into()),
                cancelled_by: Some("attendee".into()),
                call_id: None,
            }
            .into(),
        ),
        (booking, reschedule(14, 17)),
    ]
}

fn all_deliveries() -> Vec<(StreamId, Command)> {
    call_deliveries()
        .into_iter()
        .chain(booking_deliveries())
        .collect()
}

/// What a reader sees: the whole call state (its fields are order-independent by
/// construction) and the views of both bookings.
fn outcome(
    deliveries: impl IntoIterator<Item = (StreamId, Command)>,
) -> (Call, BookingView, BookingView) {
    let mut streams = InMemoryStreams::new();
    for (stream, command) in deliveries {
        streams.handle(stream, command);
    }
    let booking = |uid| streams.state::<Booking>(&StreamId::booking(uid)).view();
    (
        streams.state(&StreamId::call(CALL)),
        booking(BOOKING),
        booking(NEW_BOOKING),
    )
}

/// Deliveries in some order, some of them repeated (providers retry).
fn interleavings() -> impl Strategy<Value = Vec<(StreamId, Command)>> {
    let deliveries = all_deliveries();
    let count = deliveries.len();
    (
        Just(deliveries).prop_shuffle(),
        proptest::collection::vec((0..count, 0..=count), 0..6),
    )
        .prop_map(|(mut shuffled, repeats)| {
            for (which, position) in repeats {
                let repeat = shuffled[which].clone();
                shuffled.insert(position.min(shuffled.len()), repeat);
            }
            shuffled
        })
}

#[test]
fn in_order_delivery_reads_as_the_rules_say() {
    let (call, booking, new_booking) = outcome(all_deliveries());
    assert_eq!(
        call.status(),
        Some(switchboard_domain::CallStatus::Analyzed)
    );
    assert_eq!(
        call.booking_uid(),
        Some(NEW_BOOKING),
        "the latest booking is the appointment"
    );
    assert_eq!(call.linked_bookings().len(), 2);
    assert_eq!(
        booking.status,
        Some(switchboard_domain::BookingStatus::Cancelled)
    );
    assert_eq!(booking.rescheduled_to.as_deref(), Some(NEW_BOOKING));
    assert_eq!(
        booking.reschedules, 2,
        "in place at 11:00 and to the new uid at 12:00, not 14:00"
    );
    assert_eq!(
        new_booking.status,
        Some(switchboard_domain::BookingStatus::Booked)
    );
    assert_eq!(new_booking.rescheduled_from.as_deref(), Some(BOOKING));
    assert_eq!(new_booking.call_id.as_deref(), Some(CALL));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_interleaving_reads_as_in_order_delivery(deliveries in interleavings()) {
        prop_assert_eq!(outcome(deliveries), outcome(all_deliveries()));
    }

    #[test]
    fn the_call_alone_reads_the_same_in_any_order(
        deliveries in Just(call_deliveries()).prop_shuffle()
    ) {
        prop_assert_eq!(outcome(deliveries).0, outcome(call_deliveries()).0);
    }
}
