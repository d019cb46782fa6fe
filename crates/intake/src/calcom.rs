//! Cal.com: bookings on `booking-{uid}`, event types on `event-type-{id}`.

use serde_json::Value;
use switchboard_domain::StreamId;
use switchboard_domain::command::{
    CancelBooking, CreateBooking, CreateEventType, RescheduleBooking,
};
use switchboard_domain::event::{Attendee, BookingDetails, EventTypeDetails, Organizer};
use switchboard_webhooks::payload::calcom::{
    CalcomBooking, CalcomEnvelope, CalcomEvent, CalcomEventType, CalcomPerson,
};

use crate::error::{IntakeError, missing};
use crate::{Route, optional_id, required_id};

pub(crate) fn route(event: &CalcomEvent) -> Result<Route, IntakeError> {
    match event {
        CalcomEvent::BookingCreated(envelope) => create(envelope),
        CalcomEvent::BookingRescheduled(envelope) => {
            // Cal.com's real reschedule is a new booking naming the old one; the seed's keeps
            // the uid and moves it.
            if envelope.payload.previous_uid().is_some() {
                return create(envelope);
            }
            let booking = &envelope.payload;
            let uid = required_id(&booking.uid, "$.payload.uid")?;
            Ok(Route::decide(
                StreamId::booking(&uid),
                RescheduleBooking {
                    booking_uid: uid,
                    occurred_at: envelope.created_at,
                    previous_start: booking.previous_start_time,
                    previous_end: booking.previous_end_time,
                    start: booking.start_time,
                    end: booking.end_time,
                    reason: booking.rescheduling_reason.clone(),
                    rescheduled_by: booking.rescheduled_by.clone(),
                    call_id: optional_id(booking.call_id()),
                },
            ))
        }
        CalcomEvent::BookingCancelled(envelope) => {
            let booking = &envelope.payload;
            let uid = required_id(&booking.uid, "$.payload.uid")?;
            Ok(Route::decide(
                StreamId::booking(&uid),
                CancelBooking {
                    booking_uid: uid,
                    occurred_at: envelope.created_at,
                    reason: booking.cancellation_reason.clone(),
                    cancelled_by: booking.cancelled_by.clone(),
                    call_id: optional_id(booking.call_id()),
                },
            ))
        }
        CalcomEvent::EventTypeCreated(envelope) => event_type(envelope),
        CalcomEvent::Other { trigger_event, .. } => Ok(Route::Unhandled {
            event_type: trigger_event.clone(),
            reason: "Cal.com trigger without a domain rule",
        }),
    }
}

fn create(envelope: &CalcomEnvelope<CalcomBooking>) -> Result<Route, IntakeError> {
    let booking = &envelope.payload;
    let uid = required_id(&booking.uid, "$.payload.uid")?;
    Ok(Route::decide(
        StreamId::booking(&uid),
        CreateBooking {
            booking_uid: uid,
            occurred_at: envelope.created_at,
            details: details(booking)?,
            call_id: optional_id(booking.call_id()),
            rescheduled_from: booking.previous_uid().map(str::to_owned),
        },
    ))
}

fn details(booking: &CalcomBooking) -> Result<BookingDetails, IntakeError> {
    let mut attendees: Vec<Attendee> = booking.attendees.iter().map(attendee).collect();
    // Cal.com keeps the caller's phone in the booking form, not on the attendee.
    if let Some(first) = attendees.first_mut() {
        first.phone = attendee_phone(booking);
    }
    Ok(BookingDetails {
        calcom_booking_id: booking.id.or(booking.booking_id),
        title: booking.title.clone(),
        description: booking.description.clone(),
        start: booking
            .start_time
            .ok_or_else(|| missing("$.payload.startTime"))?,
        end: booking
            .end_time
            .ok_or_else(|| missing("$.payload.endTime"))?,
        // Real deliveries name only the event type id; the appointments read model takes the
        // title from `event-type-{id}` then.
        service: booking.event_type.as_ref().and_then(|t| t.title.clone()),
        event_type_id: booking
            .event_type
            .as_ref()
            .and_then(|t| t.id)
            .or(booking.event_type_id),
        organizer: booking.organizer.as_ref().map(|person| Organizer {
            id: person.id,
            name: person.name.clone(),
            email: person.email.clone(),
            time_zone: person.time_zone.clone(),
        }),
        attendees,
        location: booking.location.as_ref().and_then(location),
        provider_status: booking.status.clone(),
    })
}

fn attendee(person: &CalcomPerson) -> Attendee {
    Attendee {
        name: person.name.clone(),
        email: person.email.clone(),
        phone: None,
        time_zone: person.time_zone.clone(),
    }
}

/// `responses.phone` (seed), `responses.attendeePhoneNumber.value` (real form), else the
/// agent's `metadata.customer_phone`.
fn attendee_phone(booking: &CalcomBooking) -> Option<String> {
    let responses = booking.responses.as_ref();
    let answer = |key: &str| {
        let value = responses?.get(key)?;
        value
            .as_str()
            .or_else(|| value.get("value")?.as_str())
            .map(str::to_owned)
    };
    answer("phone")
        .or_else(|| answer("attendeePhoneNumber"))
        .or_else(|| {
            booking
                .metadata
                .get("customer_phone")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|phone| !phone.trim().is_empty())
}

/// A string as is; an object by its address, link or type, in that order.
fn location(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()).filter(|t| !t.is_empty()),
        Value::Object(fields) => ["address", "link", "type"]
            .iter()
            .find_map(|key| fields.get(*key)?.as_str().map(str::to_owned)),
        _ => None,
    }
}

fn event_type(envelope: &CalcomEnvelope<CalcomEventType>) -> Result<Route, IntakeError> {
    let event_type = &envelope.payload;
    Ok(Route::decide(
        StreamId::event_type(event_type.id),
        CreateEventType {
            event_type_id: event_type.id,
            occurred_at: envelope.created_at,
            details: EventTypeDetails {
                title: Some(event_type.title.clone()),
                slug: event_type.slug.clone(),
                description: event_type.description.clone(),
                duration_min: event_type
                    .duration_minutes()
                    .map(|minutes| {
                        u32::try_from(minutes).map_err(|_| IntakeError::InvalidField {
                            path: "$.payload.duration".to_owned(),
                            reason: format!("{minutes} is not a number of minutes"),
                        })
                    })
                    .transpose()?,
                hidden: event_type.hidden,
                price: event_type.price,
                currency: event_type.currency.clone(),
                user_id: event_type.user_id,
                team_id: event_type.team_id,
                locations: event_type.locations.iter().filter_map(location).collect(),
            },
        },
    ))
}
