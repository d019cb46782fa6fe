//! Ingest: verify → parse → route → decide → append → answer.
//!
//! A delivery ends in exactly one of three ways: recorded (its raw bytes and its events in
//! one atomic append), a duplicate (nothing appended), or refused with a reason (nothing
//! appended, counted, quarantined). A 2xx is sent only after the append returned, which for
//! every backend means durable.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use switchboard_domain::Event;
use switchboard_domain::event::AvailabilityAnswer;
use switchboard_webhooks::{Delivery, Provider, Verified, detect_provider, verify};
use uuid::Uuid;

use crate::functions::FunctionAnswer;
use crate::ledger::{EventRef, Execution, Provenance};
use crate::{AppState, Error};

/// Which endpoint a delivery came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Retell,
    /// `POST /api/retell/functions/{name}`: a custom function the agent calls mid-call.
    RetellFunction {
        name: String,
    },
    Calcom,
    Stripe,
    /// `POST /api/webhook`: the provider is detected from the signature header.
    Unified,
}

impl Endpoint {
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Retell => "retell",
            Endpoint::RetellFunction { .. } => "retell_functions",
            Endpoint::Calcom => "calcom",
            Endpoint::Stripe => "stripe",
            Endpoint::Unified => "unified",
        }
    }

    fn provider(&self) -> Option<Provider> {
        match self {
            Endpoint::Retell | Endpoint::RetellFunction { .. } => Some(Provider::Retell),
            Endpoint::Calcom => Some(Provider::Calcom),
            Endpoint::Stripe => Some(Provider::Stripe),
            Endpoint::Unified => None,
        }
    }
}

pub struct Incoming {
    pub endpoint: Endpoint,
    pub request_id: String,
    pub headers: HeaderMap,
}

#[derive(Debug)]
pub enum Acknowledgement {
    Accepted {
        delivery_id: Uuid,
        events: Vec<EventRef>,
    },
    /// Recorded, but the aggregate refused the transition: kept as an anomaly. Answered 2xx
    /// because the provider must not retry a fact.
    Anomaly {
        delivery_id: Uuid,
        events: Vec<EventRef>,
        reason: &'static str,
        message: String,
    },
    Duplicate {
        delivery_id: Uuid,
        stream: String,
    },
    /// A function call's answer, in the shape the agent expects.
    FunctionResult {
        body: Value,
    },
}

/// The headers kept with the raw delivery: enough to re-verify the context, never the
/// signature itself (the event store is not a place for credentials-derived material).
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "user-agent",
    "x-cal-timestamp",
    "x-request-id",
];

pub async fn ingest(
    state: &AppState,
    incoming: Incoming,
    body: Body,
) -> Result<Acknowledgement, Error> {
    let received_at = Utc::now();
    let provider_hint = incoming
        .endpoint
        .provider()
        .or_else(|| detect_provider(&header_pairs(&incoming.headers)));
    let provider_name = provider_hint.map_or("unknown", Provider::as_str);
    if let Some(limits) = &state.limits
        && let Err(retry_after) = limits.check(incoming.endpoint.name())
    {
        crate::metrics::delivery(provider_name, "rate_limited");
        return Err(Error::RateLimited { retry_after });
    }

    let body = match read_body(&incoming.headers, body, state.config.max_body).await {
        Ok(body) => body,
        Err(error) => {
            refuse(state, &incoming, provider_name, &error, received_at, &[]);
            return Err(error);
        }
    };
    match accept(state, &incoming, provider_hint, &body, received_at).await {
        Ok(ack) => {
            let outcome = match &ack {
                Acknowledgement::Accepted { .. } | Acknowledgement::FunctionResult { .. } => {
                    "accepted"
                }
                Acknowledgement::Anomaly { .. } => "anomaly",
                Acknowledgement::Duplicate { .. } => "duplicate",
            };
            crate::metrics::delivery(provider_name, outcome);
            // Debug, not info: at thousands of deliveries a second a line each would make the
            // log the bottleneck; the metrics count every outcome.
            tracing::debug!(provider = provider_name, outcome, "delivery");
            Ok(ack)
        }
        Err(error) => {
            refuse(state, &incoming, provider_name, &error, received_at, &body);
            Err(error)
        }
    }
}

/// Counts and quarantines a refused delivery; server-side failures are not the sender's
/// fault and are only counted.
fn refuse(
    state: &AppState,
    incoming: &Incoming,
    provider: &str,
    error: &Error,
    received_at: DateTime<Utc>,
    body: &[u8],
) {
    let code = error.code();
    crate::metrics::delivery(provider, code);
    if let Error::Verify(_) | Error::Unsigned = error {
        crate::metrics::verification_failure(provider, code);
    }
    // A client that hung up mid-body sent nothing to keep; everything else the sender got
    // wrong is kept for "why was this refused?".
    if error.status().is_client_error() && !matches!(error, Error::BodyUnreadable(_)) {
        tracing::warn!(provider, code, error = %error, "delivery refused");
        state.quarantine.admit(
            &incoming.request_id,
            provider,
            code,
            &error.to_string(),
            received_at,
            body,
        );
    }
}

async fn accept(
    state: &AppState,
    incoming: &Incoming,
    provider: Option<Provider>,
    body: &Bytes,
    received_at: DateTime<Utc>,
) -> Result<Acknowledgement, Error> {
    let headers = header_pairs(&incoming.headers);
    let Some(provider) = provider else {
        return Err(Error::Unsigned);
    };
    let verified = verify(
        provider,
        &headers,
        body,
        state.keyring.secrets(provider),
        received_at.timestamp_millis(),
    )?;
    let delivery = match &incoming.endpoint {
        Endpoint::RetellFunction { name } => {
            switchboard_webhooks::parse_retell_function_called(body, name)?
        }
        _ => switchboard_webhooks::parse(provider, body)?,
    };
    let dedupe_key = delivery.dedupe_key(body);
    let delivery_id = crate::ledger::delivery_id(&dedupe_key);
    let function_answer = crate::functions::answer_for(state, &delivery, received_at).await?;
    let routed = crate::routing::target_for(
        state,
        &delivery,
        function_answer.as_ref(),
        received_at,
        delivery_id,
    )
    .await?;
    let mut raw = raw_delivery(incoming, &verified, &delivery, body, received_at);
    if let Some(unhandled) = routed.unhandled {
        raw["unhandled"] = unhandled;
    }
    let provenance = Provenance {
        dedupe_key,
        provider: provider.as_str().to_owned(),
        request_id: incoming.request_id.clone(),
        causation: delivery_id.to_string(),
        correlation: delivery.call_id().map(str::to_owned),
        raw_delivery: Some(raw),
        occurred_at: delivery_time(&delivery).unwrap_or(received_at),
        keep_rejections: true,
    };
    let execution = state.ledger().execute(&routed.target, &provenance).await?;
    if let Some(answer) = function_answer {
        // The agent waits for the answer; a retried function call gets the answer it was
        // given the first time (recorded on the call's stream), not a 409 it cannot use.
        let answer = match &execution {
            Execution::Duplicate { stream } => {
                match recorded_answer(state, stream, delivery_id).await? {
                    Some(recorded) => FunctionAnswer {
                        answer: recorded,
                        ..answer
                    },
                    None => answer,
                }
            }
            _ => answer,
        };
        return Ok(Acknowledgement::FunctionResult {
            body: answer.response_body(),
        });
    }
    Ok(match execution {
        Execution::Duplicate { stream } => Acknowledgement::Duplicate {
            delivery_id,
            stream,
        },
        Execution::Recorded {
            events,
            rejection: Some(rejection),
        } => Acknowledgement::Anomaly {
            delivery_id,
            events,
            reason: rejection.code(),
            message: rejection.to_string(),
        },
        Execution::Recorded { events, .. } => Acknowledgement::Accepted {
            delivery_id,
            events,
        },
        Execution::Refused { rejection } => {
            return Err(Error::Internal(format!(
                "a provider delivery's refusal was not kept: {rejection}"
            )));
        }
    })
}

/// The metadata field that ties a stored event to the delivery that caused it.
#[derive(serde::Deserialize)]
struct DeliveryId<'a> {
    #[serde(borrow)]
    delivery_id: Option<std::borrow::Cow<'a, str>>,
}

/// The availability answer recorded for an earlier copy of this function call.
async fn recorded_answer(
    state: &AppState,
    stream: &str,
    delivery_id: Uuid,
) -> Result<Option<AvailabilityAnswer>, Error> {
    let history = crate::ledger::read_whole_stream(state.store.as_ref(), stream).await?;
    let delivery_id = delivery_id.to_string();
    Ok(history
        .into_iter()
        .filter(|e| {
            e.metadata
                .parse::<DeliveryId>()
                .is_ok_and(|m| m.delivery_id.as_deref() == Some(delivery_id.as_str()))
        })
        .find_map(
            |e| match Event::from_parts(&e.event_type, e.schema_version, e.data.as_str()) {
                Ok(Event::AvailabilityChecked(checked)) => Some(checked.answer),
                _ => None,
            },
        ))
}

/// How long a sender may take to send its body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads at most `limit` bytes: a declared length over it is refused before reading, and a
/// chunked body stops being read as soon as it passes the limit.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    use http_body_util::BodyExt;
    // A sender that trickles its body would otherwise hold a task (and delay shutdown) for
    // as long as it likes.
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| Error::BodyTimeout {
        after: BODY_READ_TIMEOUT,
    })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Error::BodyTooLarge { limit })
        }
        Err(error) => Err(Error::BodyUnreadable(error.to_string())),
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// The provider's time of the delivery, when its payload says.
fn delivery_time(delivery: &Delivery) -> Option<DateTime<Utc>> {
    let millis = delivery.occurred_at_unix_ms()?;
    Utc.timestamp_millis_opt(millis).single()
}

fn raw_delivery(
    incoming: &Incoming,
    verified: &Verified,
    delivery: &Delivery,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Value {
    let kept: serde_json::Map<String, Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = incoming.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), Value::from(value)))
        })
        .collect();
    json!({
        "provider": verified.provider.as_str(),
        "endpoint": incoming.endpoint.name(),
        "event_type": delivery.event_type(),
        "scheme": verified.scheme.short_name(),
        "secret_index": verified.secret_index,
        "signed_at_unix_ms": verified.signed_at_unix_ms,
        "received_at": received_at,
        "headers": kept,
        // Parsing succeeded, so the body is UTF-8 JSON; kept as the exact text that was signed.
        "body": String::from_utf8_lossy(body),
    })
}
