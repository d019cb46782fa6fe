//! Where a verified delivery goes: the intake crate's pure routing, fed with what only the
//! server knows (the branch a number rings at, the availability answer it computed).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use switchboard_domain::StreamId;
use switchboard_intake::{BranchRef, Context, Route};
use switchboard_webhooks::Delivery;
use switchboard_webhooks::payload::retell::RetellEvent;
use uuid::Uuid;

use crate::functions::FunctionAnswer;
use crate::ledger::Target;
use crate::{AppState, Error};

/// Where a delivery goes, and why the domain has no rule for it when it has none.
pub struct Routed {
    pub target: Target,
    /// `{"event_type", "reason"}` for a delivery the domain has no rule for: kept with the
    /// raw delivery so the anomalies read model lists it.
    pub unhandled: Option<serde_json::Value>,
}

/// The stream and what to record there for one delivery.
pub async fn target_for(
    state: &AppState,
    delivery: &Delivery,
    function_answer: Option<&FunctionAnswer>,
    received_at: DateTime<Utc>,
    delivery_id: Uuid,
) -> Result<Routed, Error> {
    let mut branches = BTreeMap::<String, BranchRef>::new();
    if let Some(number) = business_number(delivery)
        && let Some(branch) = state.read_models.branch_for_number(number).await?
    {
        branches.insert(number.to_owned(), branch);
    }
    let mut context = Context::new(received_at, &branches);
    if let Some(answer) = function_answer {
        context = context.with_availability_answer(answer.answer.clone());
    }
    Ok(match switchboard_intake::route(delivery, &context)? {
        Route::Decide { stream, command } => Routed {
            target: Target::Decide { stream, command },
            unhandled: None,
        },
        // No rule for it, but a verified delivery is never dropped: it stays with its call
        // when it names one, else in a stream of its own (which also makes a re-delivery a
        // duplicate).
        Route::Unhandled { event_type, reason } => Routed {
            target: Target::Keep {
                stream: match delivery.call_id() {
                    Some(call_id) => StreamId::call(call_id).to_string(),
                    None => format!("delivery-{delivery_id}"),
                },
            },
            unhandled: Some(serde_json::json!({ "event_type": event_type, "reason": reason })),
        },
    })
}

/// The business's number of the call, which names the branch.
fn business_number(delivery: &Delivery) -> Option<&str> {
    match delivery {
        Delivery::Retell(
            RetellEvent::CallStarted(event)
            | RetellEvent::CallEnded(event)
            | RetellEvent::CallAnalyzed(event),
        ) => switchboard_intake::business_number(&event.call),
        Delivery::RetellFunction(request) => switchboard_intake::business_number(&request.call),
        _ => None,
    }
}
