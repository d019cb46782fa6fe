//! Retell function calls: the agent asks mid-call and waits for the answer. Both the seed's
//! `function_call` webhook event and the real `POST /api/retell/functions/{name}` land here.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use switchboard_webhooks::Delivery;
use switchboard_webhooks::payload::retell::RetellEvent;

use switchboard_domain::event::AvailabilityAnswer;

use switchboard_intake::IntakeError;

use crate::availability::{self, Request};
use crate::{AppState, Error};

pub const CHECK_AVAILABILITY: &str = "check_availability";

/// A computed answer, for the response and for the call's stream.
#[derive(Debug, Clone)]
pub struct FunctionAnswer {
    /// The seed's webhook event carries one; the real function request does not.
    pub request_id: Option<String>,
    pub answer: AvailabilityAnswer,
}

impl FunctionAnswer {
    /// The webhook event gets `{"request_id", "result"}`; a custom function gets the result
    /// object itself.
    pub fn response_body(&self) -> Value {
        let result = serde_json::to_value(&self.answer).unwrap_or(Value::Null);
        match &self.request_id {
            Some(request_id) => json!({ "request_id": request_id, "result": result }),
            None => result,
        }
    }
}

/// Computes the answer when `delivery` is a `check_availability` call; None for every other
/// delivery, including other functions (routing keeps those as unhandled, never drops them).
pub async fn answer_for(
    state: &AppState,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<Option<FunctionAnswer>, Error> {
    // The two shapes name their arguments differently; errors point at the one received.
    let (function, request_id, arguments, arguments_path, call_id, business_number) = match delivery
    {
        Delivery::Retell(RetellEvent::FunctionCall(call)) => (
            &call.function_name,
            Some(call.request_id.clone()),
            &call.arguments,
            "$.arguments",
            &call.call_id,
            None,
        ),
        Delivery::RetellFunction(request) => (
            &request.name,
            None,
            &request.args,
            "$.args",
            &request.call.call_id,
            switchboard_intake::business_number(&request.call),
        ),
        _ => return Ok(None),
    };
    if function != CHECK_AVAILABILITY {
        return Ok(None);
    }
    let Asked {
        mut request,
        length_of,
    } = availability_request(arguments, arguments_path, now)?;
    let window_start = crate::availability::day_start_utc(request.date);
    let window_end = window_start + Duration::days(8);
    let inputs = state
        .read_models
        .availability_inputs(
            call_id,
            business_number,
            length_of.as_deref(),
            window_start,
            window_end,
        )
        .await?;
    if let Some(length) = inputs.service_length {
        request.duration = length;
    }
    let answer = availability::check(&request, &inputs.busy, &inputs.hours, now);
    Ok(Some(FunctionAnswer { request_id, answer }))
}

/// How far ahead an appointment can be asked for; also keeps date arithmetic far from
/// chrono's limits whatever year a caller says.
const BOOKING_HORIZON_DAYS: i64 = 2 * 366;

/// `{"date": "2025-04-15" | "15.04.2025", "time": "14:30", "duration": 30, "staff": "Marie",
/// "service": "Herrenhaarschnitt"}`.
fn availability_request(
    arguments: &Map<String, Value>,
    path: &str,
    now: DateTime<Utc>,
) -> Result<Asked, Error> {
    let invalid = |name: &str, reason: String| {
        Error::Intake(IntakeError::InvalidField {
            path: format!("{path}.{name}"),
            reason,
        })
    };
    let text = |name: &str| arguments.get(name).and_then(Value::as_str).map(str::trim);
    let date_text = text("date").ok_or_else(|| {
        Error::Intake(IntakeError::MissingField {
            path: format!("{path}.date"),
        })
    })?;
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(date_text, "%d.%m.%Y"))
        .map_err(|_| {
            invalid(
                "date",
                format!("{date_text:?} is not a date like 2025-04-15 or 15.04.2025"),
            )
        })?;
    let today = now.date_naive();
    let earliest = today - Duration::days(1);
    let latest = today + Duration::days(BOOKING_HORIZON_DAYS);
    if date < earliest || date > latest {
        return Err(invalid(
            "date",
            format!("{date} is outside the bookable range {earliest} to {latest}"),
        ));
    }
    let time = match text("time") {
        None | Some("") => None,
        Some(raw) => Some(
            chrono::NaiveTime::parse_from_str(raw, "%H:%M")
                .map_err(|_| invalid("time", format!("{raw:?} is not a time like 14:30")))?,
        ),
    };
    let minutes = arguments
        .get("duration")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|m| (1..=24 * 60).contains(m));
    Ok(Asked {
        request: Request {
            date,
            time,
            duration: Duration::minutes(minutes.unwrap_or(DEFAULT_MINUTES)),
            staff: text("staff").filter(|s| !s.is_empty()).map(str::to_owned),
        },
        length_of: text("service")
            .filter(|s| !s.is_empty() && minutes.is_none())
            .map(str::to_owned),
    })
}

/// An appointment's length when the call says neither a duration nor a service the tenant
/// has appointments of.
const DEFAULT_MINUTES: i64 = 30;

/// What a `check_availability` call asks.
#[derive(Debug)]
struct Asked {
    /// With the duration given, or [`DEFAULT_MINUTES`].
    request: Request,
    /// The service whose usual length is the duration, when the call names a service and no
    /// duration.
    length_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn dates_outside_the_bookable_range_are_refused_with_their_path() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        for date in ["+262143-12-31", "-262144-01-01", "2031-01-01", "2026-11-01"] {
            let error =
                availability_request(&args(json!({"date": date})), "$.args", now).unwrap_err();
            match error {
                Error::Intake(IntakeError::InvalidField { path, .. }) => {
                    assert_eq!(path, "$.args.date")
                }
                other => panic!("{date}: {other:?}"),
            }
        }
        let ok = availability_request(
            &args(json!({"date": "24.11.2026", "time": "10:00"})),
            "$.args",
            now,
        )
        .unwrap();
        assert_eq!(
            ok.request.date,
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
    }

    #[test]
    fn a_service_without_a_duration_asks_for_the_services_length() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let asked = |value| availability_request(&args(value), "$.args", now).unwrap();
        let named = asked(json!({"date": "2026-11-24", "service": "Färben"}));
        assert_eq!(named.length_of.as_deref(), Some("Färben"));
        assert_eq!(named.request.duration, Duration::minutes(DEFAULT_MINUTES));
        let given = asked(json!({"date": "2026-11-24", "service": "Färben", "duration": 45}));
        assert_eq!(given.length_of, None, "a duration given wins");
        assert_eq!(given.request.duration, Duration::minutes(45));
    }

    #[test]
    fn a_missing_date_names_the_field_of_the_shape_received() {
        let now = Utc::now();
        let error = availability_request(&Map::new(), "$.arguments", now).unwrap_err();
        assert!(
            matches!(&error, Error::Intake(IntakeError::MissingField { path }) if path == "$.arguments.date"),
            "{error:?}"
        );
    }
}
