//! Retell function calls: the agent asks mid-call and waits for the answer. Both the seed's
//! `function_call` webhook event and the real `POST /api/retell/functions/{name}` land here.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use switchboard_webhooks::Delivery;
use switchboard_webhooks::payload::retell::RetellEvent;

use switchboard_domain::event::AvailabilityAnswer;

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

/// Computes the answer when `delivery` is a function call; None for every other delivery.
pub async fn answer_for(
    state: &AppState,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<Option<FunctionAnswer>, Error> {
    let (function, request_id, arguments, call_id, to_number) = match delivery {
        Delivery::Retell(RetellEvent::FunctionCall(call)) => (
            call.function_name.clone(),
            Some(call.request_id.clone()),
            call.arguments.clone(),
            call.call_id.clone(),
            None,
        ),
        Delivery::RetellFunction(request) => (
            request.name.clone(),
            None,
            request.args.clone(),
            request.call.call_id.clone(),
            request.call.to_number.clone(),
        ),
        _ => return Ok(None),
    };
    if function != CHECK_AVAILABILITY {
        return Err(Error::bad_request(
            "unknown_function",
            format!(
                "function {function:?} is not provided; the functions are: {CHECK_AVAILABILITY}"
            ),
        ));
    }
    let request = availability_request(&arguments)?;
    let window_start = crate::availability::day_start_utc(request.date);
    let window_end = window_start + Duration::days(8);
    let (busy, hours) = state
        .read_models
        .availability_inputs(&call_id, to_number.as_deref(), window_start, window_end)
        .await?;
    let answer = availability::check(&request, &busy, &hours, now);
    Ok(Some(FunctionAnswer { request_id, answer }))
}

/// `{"date": "2025-04-15" | "15.04.2025", "time": "14:30", "duration": 30, "staff": "Marie"}`.
fn availability_request(arguments: &Map<String, Value>) -> Result<Request, Error> {
    let text = |name: &str| arguments.get(name).and_then(Value::as_str).map(str::trim);
    let date_text = text("date").ok_or_else(|| {
        Error::bad_request(
            "malformed_payload",
            "$.arguments.date is missing (e.g. \"2025-04-15\")",
        )
    })?;
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(date_text, "%d.%m.%Y"))
        .map_err(|_| {
            Error::bad_request(
                "malformed_payload",
                format!(
                    "$.arguments.date {date_text:?} is not a date like 2025-04-15 or 15.04.2025"
                ),
            )
        })?;
    let time = match text("time") {
        None | Some("") => None,
        Some(raw) => Some(
            chrono::NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| {
                Error::bad_request(
                    "malformed_payload",
                    format!("$.arguments.time {raw:?} is not a time like 14:30"),
                )
            })?,
        ),
    };
    let minutes = arguments
        .get("duration")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|m| (1..=24 * 60).contains(m))
        .unwrap_or(30);
    Ok(Request {
        date,
        time,
        duration: Duration::minutes(minutes),
        staff: text("staff").filter(|s| !s.is_empty()).map(str::to_owned),
    })
}
