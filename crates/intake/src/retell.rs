//! Retell: call lifecycle events and custom-function calls, all on `call-{call_id}`.

use serde_json::{Map, Value};
use switchboard_domain::StreamId;
use switchboard_domain::command::{AnalyzeCall, EndCall, RecordAvailabilityCheck, StartCall};
use switchboard_domain::event::{AppointmentForm, CallAnalysis, CallOutcome, CallParties};
use switchboard_webhooks::payload::retell::{
    AppointmentRequest, RetellCall, RetellCallEvent, RetellEvent, RetellFunctionRequest,
};

use crate::context::{BranchRef, Context};
use crate::error::IntakeError;
use crate::{Route, from_unix_ms, optional_id, required_id};

/// The one custom function the domain records.
const CHECK_AVAILABILITY: &str = "check_availability";

pub(crate) fn route_event(
    event: &RetellEvent,
    context: &Context<'_>,
) -> Result<Route, IntakeError> {
    let occurred_at = match event.occurred_at_unix_ms() {
        Some(ms) => from_unix_ms(ms, "$.timestamp")?,
        None => context.received_at,
    };
    match event {
        RetellEvent::CallStarted(RetellCallEvent { call, .. }) => {
            let call_id = required_id(&call.call_id, "$.call.call_id")?;
            let branch = branch(call, context);
            Ok(Route::decide(
                StreamId::call(&call_id),
                StartCall {
                    call_id,
                    occurred_at,
                    parties: parties(call, branch.as_ref())?,
                },
            ))
        }
        RetellEvent::CallEnded(RetellCallEvent { call, .. }) => {
            let call_id = required_id(&call.call_id, "$.call.call_id")?;
            let branch = branch(call, context);
            let form = call.appointment_request().map(appointment_form);
            Ok(Route::decide(
                StreamId::call(&call_id),
                EndCall {
                    call_id,
                    occurred_at,
                    parties: parties(call, branch.as_ref())?,
                    outcome: outcome(call, form.as_ref())?,
                    appointment_form: form,
                    time_zone: Context::time_zone(branch.as_ref()),
                },
            ))
        }
        RetellEvent::CallAnalyzed(RetellCallEvent { call, .. }) => {
            let call_id = required_id(&call.call_id, "$.call.call_id")?;
            let branch = branch(call, context);
            Ok(Route::decide(
                StreamId::call(&call_id),
                AnalyzeCall {
                    call_id,
                    occurred_at,
                    analysis: analysis(call),
                    // Retell's real shape: the form is in `call_analysis.custom_analysis_data`.
                    appointment_form: call.appointment_request().map(appointment_form),
                    time_zone: Context::time_zone(branch.as_ref()),
                },
            ))
        }
        RetellEvent::FunctionCall(function) => {
            if function.function_name != CHECK_AVAILABILITY {
                return Ok(unhandled_function(&function.function_name));
            }
            let call_id = required_id(&function.call_id, "$.call_id")?;
            Ok(Route::decide(
                StreamId::call(&call_id),
                RecordAvailabilityCheck {
                    call_id,
                    occurred_at,
                    request_id: optional_id(Some(&function.request_id)),
                    function_name: function.function_name.clone(),
                    arguments: Value::Object(function.arguments.clone()),
                    answer: context
                        .availability_answer
                        .clone()
                        .ok_or(IntakeError::MissingAvailabilityAnswer)?,
                },
            ))
        }
        RetellEvent::Other { event, .. } => Ok(Route::Unhandled {
            event_type: event.clone(),
            reason: "Retell event without a domain rule",
        }),
    }
}

/// `POST /api/retell/functions/{name}`: no request id and no timestamp of its own.
pub(crate) fn route_function_request(
    request: &RetellFunctionRequest,
    context: &Context<'_>,
) -> Result<Route, IntakeError> {
    if request.name != CHECK_AVAILABILITY {
        return Ok(unhandled_function(&request.name));
    }
    let call_id = required_id(&request.call.call_id, "$.call.call_id")?;
    Ok(Route::decide(
        StreamId::call(&call_id),
        RecordAvailabilityCheck {
            call_id,
            occurred_at: context.received_at,
            request_id: None,
            function_name: request.name.clone(),
            arguments: Value::Object(request.args.clone()),
            answer: context
                .availability_answer
                .clone()
                .ok_or(IntakeError::MissingAvailabilityAnswer)?,
        },
    ))
}

fn unhandled_function(name: &str) -> Route {
    Route::Unhandled {
        event_type: format!("function:{name}"),
        reason: "custom function without a domain rule",
    }
}

fn branch(call: &RetellCall, context: &Context<'_>) -> Option<BranchRef> {
    context.branches.branch_for_number(business_number(call)?)
}

/// The business's number of a Retell call, which names the tenant's branch: the domain's
/// rule ([`CallParties::business_side`]) applied to the provider's fields, so routing and the
/// stored event's read models agree.
pub fn business_number(call: &RetellCall) -> Option<&str> {
    CallParties::business_side(
        call.direction.as_deref(),
        call.from_number.as_deref(),
        call.to_number.as_deref(),
    )
}

fn parties(call: &RetellCall, branch: Option<&BranchRef>) -> Result<CallParties, IntakeError> {
    Ok(CallParties {
        from_number: optional_id(call.from_number.as_deref()),
        to_number: optional_id(call.to_number.as_deref()),
        direction: call.direction.clone(),
        agent_id: call.agent_id.clone(),
        started_at: call
            .start_timestamp
            .map(|ms| from_unix_ms(ms, "$.call.start_timestamp"))
            .transpose()?,
        tenant_id: branch.map(|b| b.tenant_id.clone()),
        branch_id: branch.map(|b| b.branch_id.clone()),
    })
}

fn outcome(call: &RetellCall, form: Option<&AppointmentForm>) -> Result<CallOutcome, IntakeError> {
    let metadata = |key: &str| {
        call.metadata
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let dynamic_customer_name = call
        .retell_llm_dynamic_variables
        .as_ref()
        .and_then(|variables| variables.get("customer_name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(CallOutcome {
        ended_at: call
            .end_timestamp
            .map(|ms| from_unix_ms(ms, "$.call.end_timestamp"))
            .transpose()?,
        // Rounded to whole seconds; a negative duration (clock skew) is no duration.
        duration_s: call
            .duration_ms()
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| (ms + 500) / 1000),
        call_status: call.status().map(str::to_owned),
        end_reason: call.end_reason().map(str::to_owned),
        recording_url: call.recording_url.clone(),
        transcript: call.transcript.clone(),
        summary: call.summary().map(str::to_owned),
        customer_name: form
            .and_then(|form| form.name.clone())
            .or(dynamic_customer_name),
        language: metadata("language"),
        sentiment: metadata("sentiment"),
    })
}

fn appointment_form(request: AppointmentRequest) -> AppointmentForm {
    AppointmentForm {
        date: request.datum,
        time: request.uhrzeit,
        service: request.dienstleistung,
        name: request.name,
        phone: request.telefonnummer,
        email: request.email,
        staff_wish: request.mitarbeiter_wunsch,
        preferences: request.kundenpraeferenzen,
    }
}

/// The seed's `analysis` and Retell's real `call_analysis`: the typed fields from whichever
/// is there, and both objects kept as they came.
fn analysis(call: &RetellCall) -> CallAnalysis {
    let seed = call.analysis.as_ref();
    let real = call.call_analysis.as_ref();
    let mut details = Map::new();
    if let Some(seed) = seed {
        details.insert(
            "analysis".into(),
            serde_json::to_value(seed).unwrap_or(Value::Null),
        );
    }
    if let Some(real) = real {
        details.insert(
            "call_analysis".into(),
            serde_json::to_value(real).unwrap_or(Value::Null),
        );
    }
    CallAnalysis {
        summary: call.summary().map(str::to_owned),
        sentiment: real.and_then(|r| r.user_sentiment.clone()),
        sentiment_score: seed.and_then(|s| s.sentiment_score),
        successful: real
            .and_then(|r| r.call_successful)
            .or(seed.and_then(|s| s.success)),
        appointment_booked: seed.and_then(|s| s.appointment_booked),
        details: Value::Object(details),
    }
}
