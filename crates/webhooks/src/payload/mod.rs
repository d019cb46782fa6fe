//! Typed payloads and the parser that turns a verified body into a [`Delivery`].
//!
//! Parsing reads the event's name first (a cheap pass that skips everything else), then
//! deserializes the type that name calls for. Unknown fields are ignored here because the
//! server keeps the raw body; an unknown event name is a [`Delivery`] of its own, not an
//! error; a missing or mistyped field is a [`ParseError`] with its JSON path.

pub mod calcom;
pub mod retell;
pub mod stripe;

use std::borrow::Cow;

use serde::Deserialize;

use crate::error::ParseError;
use crate::provider::Provider;

use calcom::{CalcomBooking, CalcomEnvelope, CalcomEvent, CalcomEventType, CalcomTrigger};
use retell::{RetellEvent, RetellFunctionRequest};
use stripe::StripeEvent;

/// One verified, parsed delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A Retell webhook (`/api/retell/webhook`).
    Retell(RetellEvent),
    /// A Retell custom-function request (`/api/retell/functions/{name}`).
    RetellFunction(RetellFunctionRequest),
    Calcom(CalcomEvent),
    Stripe(StripeEvent),
}

impl Delivery {
    pub fn provider(&self) -> Provider {
        match self {
            Delivery::Retell(_) | Delivery::RetellFunction(_) => Provider::Retell,
            Delivery::Calcom(_) => Provider::Calcom,
            Delivery::Stripe(_) => Provider::Stripe,
        }
    }

    /// The event's name, normalized: Cal.com triggers in their dotted form
    /// (`booking.created`), a custom-function request as `function:{name}`.
    pub fn event_type(&self) -> Cow<'_, str> {
        match self {
            Delivery::Retell(event) => Cow::Borrowed(event.event_name()),
            Delivery::RetellFunction(request) => Cow::Owned(format!("function:{}", request.name)),
            Delivery::Calcom(event) => match event {
                CalcomEvent::BookingCreated(_) => {
                    Cow::Borrowed(CalcomTrigger::BookingCreated.as_str())
                }
                CalcomEvent::BookingCancelled(_) => {
                    Cow::Borrowed(CalcomTrigger::BookingCancelled.as_str())
                }
                CalcomEvent::BookingRescheduled(_) => {
                    Cow::Borrowed(CalcomTrigger::BookingRescheduled.as_str())
                }
                CalcomEvent::EventTypeCreated(_) => {
                    Cow::Borrowed(CalcomTrigger::EventTypeCreated.as_str())
                }
                CalcomEvent::Other { trigger_event, .. } => {
                    Cow::Owned(calcom::normalize_trigger(trigger_event))
                }
            },
            Delivery::Stripe(event) => Cow::Borrowed(event.event_type()),
        }
    }

    /// True for an event type this crate has no typed payload for.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            Delivery::Retell(RetellEvent::Other { .. })
                | Delivery::Calcom(CalcomEvent::Other { .. })
                | Delivery::Stripe(StripeEvent::Other(_))
        )
    }

    /// The Retell call this delivery belongs to (the correlation id), if any: the call itself,
    /// or for a Cal.com booking the `metadata.call_id` the agent put there.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Delivery::Retell(event) => event.call_id(),
            Delivery::RetellFunction(request) => Some(&request.call.call_id),
            Delivery::Calcom(
                CalcomEvent::BookingCreated(e)
                | CalcomEvent::BookingCancelled(e)
                | CalcomEvent::BookingRescheduled(e),
            ) => e.payload.call_id(),
            Delivery::Calcom(_) | Delivery::Stripe(_) => None,
        }
    }
}

/// Parses a verified webhook body of `provider`. Call it only after [`crate::verify`]: the
/// body's bytes are what was signed, and only a verified body deserves a parse.
pub fn parse(provider: Provider, body: &[u8]) -> Result<Delivery, ParseError> {
    let text = utf8(body)?;
    match provider {
        Provider::Retell => parse_retell(text).map(Delivery::Retell),
        Provider::Calcom => parse_calcom(text).map(Delivery::Calcom),
        Provider::Stripe => parse_stripe(text).map(Delivery::Stripe),
    }
}

/// Parses the body of a Retell custom-function request (`POST /api/retell/functions/{name}`),
/// which is signed like a webhook but has no `event` field.
pub fn parse_retell_function(body: &[u8]) -> Result<Delivery, ParseError> {
    retell_function_request(body).map(Delivery::RetellFunction)
}

fn retell_function_request(body: &[u8]) -> Result<RetellFunctionRequest, ParseError> {
    from_json(utf8(body)?, "$")
}

/// [`parse_retell_function`] for a request posted to `/api/retell/functions/{called}`: its
/// signed body must name that function (see [`RetellFunctionRequest::check_called_as`]).
pub fn parse_retell_function_called(body: &[u8], called: &str) -> Result<Delivery, ParseError> {
    let request = retell_function_request(body)?;
    request.check_called_as(called)?;
    Ok(Delivery::RetellFunction(request))
}

fn parse_retell(text: &str) -> Result<RetellEvent, ParseError> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        event: Option<Cow<'a, str>>,
    }
    let event = match leading_tag(text, "event") {
        Some(event) => Cow::Borrowed(event),
        None => {
            let head: Head = from_json(text, "$")?;
            head.event.ok_or_else(|| missing("$.event"))?
        }
    };
    Ok(match event.as_ref() {
        RetellEvent::CALL_STARTED => RetellEvent::CallStarted(from_json(text, "$")?),
        RetellEvent::CALL_ENDED => RetellEvent::CallEnded(from_json(text, "$")?),
        RetellEvent::CALL_ANALYZED => RetellEvent::CallAnalyzed(from_json(text, "$")?),
        RetellEvent::FUNCTION_CALL => RetellEvent::FunctionCall(from_json(text, "$")?),
        other => {
            // Best effort: an unknown event still names its call when it can, but nothing
            // about its shape is required.
            #[derive(Deserialize)]
            struct CallRef {
                call_id: Option<String>,
            }
            #[derive(Deserialize)]
            struct Loose {
                call: Option<CallRef>,
                call_id: Option<String>,
                timestamp: Option<i64>,
            }
            // The fast tag read checked nothing past the name: the body must still be JSON.
            from_json::<serde::de::IgnoredAny>(text, "$")?;
            let loose: Option<Loose> = serde_json::from_str(text).ok();
            let (call_id, timestamp) = match loose {
                Some(l) => (l.call.and_then(|c| c.call_id).or(l.call_id), l.timestamp),
                None => (None, None),
            };
            RetellEvent::Other {
                event: other.to_owned(),
                call_id,
                timestamp,
            }
        }
    })
}

fn parse_calcom(text: &str) -> Result<CalcomEvent, ParseError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head<'a> {
        #[serde(borrow)]
        trigger_event: Option<Cow<'a, str>>,
    }
    let head: Head = from_json(text, "$")?;
    let trigger = head
        .trigger_event
        .ok_or_else(|| missing("$.triggerEvent"))?;
    let booking = |needs_times: bool| -> Result<CalcomEnvelope<CalcomBooking>, ParseError> {
        let envelope: CalcomEnvelope<CalcomBooking> = from_json(text, "$")?;
        if needs_times {
            if envelope.payload.start_time.is_none() {
                return Err(missing("$.payload.startTime"));
            }
            if envelope.payload.end_time.is_none() {
                return Err(missing("$.payload.endTime"));
            }
        }
        Ok(envelope)
    };
    Ok(match CalcomTrigger::parse(&trigger) {
        Some(CalcomTrigger::BookingCreated) => CalcomEvent::BookingCreated(booking(true)?),
        Some(CalcomTrigger::BookingCancelled) => CalcomEvent::BookingCancelled(booking(false)?),
        Some(CalcomTrigger::BookingRescheduled) => CalcomEvent::BookingRescheduled(booking(true)?),
        Some(CalcomTrigger::EventTypeCreated) => {
            CalcomEvent::EventTypeCreated(from_json::<CalcomEnvelope<CalcomEventType>>(text, "$")?)
        }
        None => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Loose {
                created_at: Option<chrono::DateTime<chrono::Utc>>,
            }
            from_json::<serde::de::IgnoredAny>(text, "$")?;
            let created_at = serde_json::from_str::<Loose>(text)
                .ok()
                .and_then(|l| l.created_at);
            CalcomEvent::Other {
                trigger_event: trigger.into_owned(),
                created_at,
            }
        }
    })
}

fn parse_stripe(text: &str) -> Result<StripeEvent, ParseError> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow, rename = "type")]
        event_type: Option<Cow<'a, str>>,
    }
    let event_type = match leading_tag(text, "type") {
        Some(event_type) => Cow::Borrowed(event_type),
        None => {
            let head: Head = from_json(text, "$")?;
            head.event_type.ok_or_else(|| missing("$.type"))?
        }
    };
    Ok(match event_type.as_ref() {
        StripeEvent::INVOICE_PAYMENT_SUCCEEDED => {
            StripeEvent::InvoicePaymentSucceeded(from_json(text, "$")?)
        }
        StripeEvent::INVOICE_PAYMENT_FAILED => {
            StripeEvent::InvoicePaymentFailed(from_json(text, "$")?)
        }
        StripeEvent::SUBSCRIPTION_CREATED => {
            StripeEvent::SubscriptionCreated(from_json(text, "$")?)
        }
        StripeEvent::SUBSCRIPTION_UPDATED => {
            StripeEvent::SubscriptionUpdated(from_json(text, "$")?)
        }
        StripeEvent::SUBSCRIPTION_DELETED => {
            StripeEvent::SubscriptionDeleted(from_json(text, "$")?)
        }
        _ => StripeEvent::Other(from_json(text, "$")?),
    })
}

/// The event name when it is the object's first member and a plain string, as Retell and
/// Cal.com send it: this saves the pass that otherwise reads the whole body just to find the
/// name (a third of the parse time of a 4 KiB call). Anything else falls back to that pass.
/// A body that is not JSON after all is still refused by the typed pass that follows.
fn leading_tag<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest
        .strip_prefix('"')?
        .strip_prefix(key)?
        .strip_prefix('"')?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

fn utf8(body: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(body).map_err(|err| ParseError::NotUtf8 {
        valid_up_to: err.valid_up_to(),
    })
}

fn missing(path: &str) -> ParseError {
    ParseError::MissingField {
        path: path.to_owned(),
    }
}

/// Deserializes `T`, and on failure deserializes again with path tracking to say where. The
/// fast path pays nothing for paths; only a refused payload pays for the second pass.
fn from_json<'a, T: Deserialize<'a>>(text: &'a str, root: &str) -> Result<T, ParseError> {
    match serde_json::from_str::<T>(text) {
        Ok(value) => Ok(value),
        Err(fast_err) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
                Ok(_) => Err(describe(root, &fast_err)),
                Err(err) => {
                    let mut path = root.to_owned();
                    for segment in err.path().iter() {
                        use serde_path_to_error::Segment;
                        match segment {
                            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                            Segment::Map { key } => {
                                path.push('.');
                                path.push_str(key);
                            }
                            Segment::Enum { variant } => {
                                path.push('.');
                                path.push_str(variant);
                            }
                            Segment::Unknown => path.push_str(".?"),
                        }
                    }
                    Err(describe(&path, err.inner()))
                }
            }
        }
    }
}

fn describe(path: &str, err: &serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    if matches!(
        err.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return ParseError::NotJson {
            reason: err.to_string(),
        };
    }
    let message = err.to_string();
    // serde reports a missing field at its parent; the path should name the field itself.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ParseError::MissingField {
            path: format!("{path}.{field}"),
        };
    }
    let reason = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(reason, _)| reason)
        .to_owned();
    ParseError::InvalidField {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_tag_reads_only_a_plain_first_member() {
        assert_eq!(
            leading_tag(r#" { "event" : "call_ended", "call": {}}"#, "event"),
            Some("call_ended")
        );
        assert_eq!(
            leading_tag(r#"{"call": {}, "event": "call_ended"}"#, "event"),
            None
        );
        assert_eq!(
            leading_tag(r#"{"event": "call\u005fended"}"#, "event"),
            None
        );
        assert_eq!(leading_tag(r#"{"eventx": "a"}"#, "event"), None);
        assert_eq!(leading_tag(r#"{"event": 1}"#, "event"), None);
        // An escaped name still parses, through the slower pass.
        let body = br#"{"event":"call\u005fended","call":{"call_id":"c"}}"#;
        assert!(matches!(
            parse(Provider::Retell, body),
            Ok(Delivery::Retell(RetellEvent::CallEnded(_)))
        ));
    }
}
