//! Retell payloads: the seed's shape and Retell's real one, in one set of types. Fields the two
//! shapes name differently (`status`/`call_status`, `end_reason`/`disconnection_reason`,
//! `duration` s/`duration_ms`, `summary`/`call_analysis.call_summary`) are both kept, and the
//! accessor methods pick whichever the delivery carries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ParseError;

/// A Retell webhook delivery (`POST /api/retell/webhook`), by its `event`.
#[derive(Debug, Clone, PartialEq)]
pub enum RetellEvent {
    CallStarted(RetellCallEvent),
    CallEnded(RetellCallEvent),
    CallAnalyzed(RetellCallEvent),
    FunctionCall(RetellFunctionCall),
    /// Any other event (`transcript_updated`, events added after this code): recorded, not
    /// refused.
    Other {
        event: String,
        call_id: Option<String>,
        timestamp: Option<i64>,
    },
}

impl RetellEvent {
    pub const CALL_STARTED: &'static str = "call_started";
    pub const CALL_ENDED: &'static str = "call_ended";
    pub const CALL_ANALYZED: &'static str = "call_analyzed";
    pub const FUNCTION_CALL: &'static str = "function_call";

    pub fn event_name(&self) -> &str {
        match self {
            RetellEvent::CallStarted(_) => Self::CALL_STARTED,
            RetellEvent::CallEnded(_) => Self::CALL_ENDED,
            RetellEvent::CallAnalyzed(_) => Self::CALL_ANALYZED,
            RetellEvent::FunctionCall(_) => Self::FUNCTION_CALL,
            RetellEvent::Other { event, .. } => event,
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        match self {
            RetellEvent::CallStarted(e)
            | RetellEvent::CallEnded(e)
            | RetellEvent::CallAnalyzed(e) => Some(&e.call.call_id),
            RetellEvent::FunctionCall(f) => Some(&f.call_id),
            RetellEvent::Other { call_id, .. } => call_id.as_deref(),
        }
    }

    /// When the provider says this happened: the top-level `timestamp` (seed shape), else the
    /// call's own start or end time (Retell's real deliveries have no top-level timestamp).
    pub fn occurred_at_unix_ms(&self) -> Option<i64> {
        match self {
            RetellEvent::CallStarted(e) => e.timestamp.or(e.call.start_timestamp),
            RetellEvent::CallEnded(e) | RetellEvent::CallAnalyzed(e) => e
                .timestamp
                .or(e.call.end_timestamp)
                .or(e.call.start_timestamp),
            RetellEvent::FunctionCall(f) => f.timestamp,
            RetellEvent::Other { timestamp, .. } => *timestamp,
        }
    }
}

/// `call_started`, `call_ended` and `call_analyzed`: the call as it stands, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetellCallEvent {
    pub call: RetellCall,
    /// Unix ms; in the seed's shape only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A Retell call object. Only `call_id` is required: every event of a call names it, and it
/// is the stream the event lands on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RetellCall {
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `phone_call` or `web_call` (real shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_type: Option<String>,
    /// E.164, e.g. `+4915123456789`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_number: Option<String>,
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Real shape: `registered`, `ongoing`, `ended`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_status: Option<String>,
    /// Seed shape: `completed`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<i64>,
    /// Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<i64>,
    /// Real shape, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Seed shape, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Real shape: `user_hangup`, `agent_hangup`, `voicemail_reached`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnection_reason: Option<String>,
    /// Seed shape: `agent_ended`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Seed shape; the real shape has `call_analysis.call_summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<RetellCustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Seed shape of `call_analyzed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<SeedCallAnalysis>,
    /// Real shape of `call_analyzed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_analysis: Option<RetellCallAnalysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retell_llm_dynamic_variables: Option<Map<String, Value>>,
}

impl RetellCall {
    /// `call_status` (real) or `status` (seed).
    pub fn status(&self) -> Option<&str> {
        self.call_status.as_deref().or(self.status.as_deref())
    }

    /// `disconnection_reason` (real) or `end_reason` (seed).
    pub fn end_reason(&self) -> Option<&str> {
        self.disconnection_reason
            .as_deref()
            .or(self.end_reason.as_deref())
    }

    /// The duration in ms, from whichever field the delivery carries.
    pub fn duration_ms(&self) -> Option<i64> {
        self.duration_ms
            .or_else(|| self.duration.map(|s| s.saturating_mul(1000)))
            .or_else(|| Some(self.end_timestamp? - self.start_timestamp?))
    }

    /// `call_analysis.call_summary` (real) or `summary` (seed).
    pub fn summary(&self) -> Option<&str> {
        self.call_analysis
            .as_ref()
            .and_then(|a| a.call_summary.as_deref())
            .or(self.summary.as_deref())
    }

    /// The appointment the caller asked for: the seed's
    /// `custom_data.collect_appointment_data`, else the same German fields in the real
    /// `call_analysis.custom_analysis_data` (where values may be numbers or booleans).
    pub fn appointment_request(&self) -> Option<AppointmentRequest> {
        if let Some(request) = self
            .custom_data
            .as_ref()
            .and_then(|c| c.collect_appointment_data.clone())
        {
            return Some(request);
        }
        let data = self.call_analysis.as_ref()?.custom_analysis_data.as_ref()?;
        let field = |name: &str| match data.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let request = AppointmentRequest {
            datum: field("datum"),
            uhrzeit: field("uhrzeit"),
            dienstleistung: field("dienstleistung"),
            name: field("name"),
            telefonnummer: field("telefonnummer"),
            email: field("email"),
            mitarbeiter_wunsch: field("mitarbeiter_wunsch"),
            kundenpraeferenzen: field("kundenpraeferenzen"),
        };
        (request != AppointmentRequest::default()).then_some(request)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RetellCustomData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_appointment_data: Option<AppointmentRequest>,
}

/// What the phone agent collected for a booking, under the German names the agent uses.
/// Every field is optional: a caller may hang up half-way.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AppointmentRequest {
    /// Date as spoken to the agent, e.g. `15.04.2025`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datum: Option<String>,
    /// Time, e.g. `14:30`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uhrzeit: Option<String>,
    /// Service, e.g. `Herrenhaarschnitt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dienstleistung: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telefonnummer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Preferred staff member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitarbeiter_wunsch: Option<String>,
    /// Customer preferences, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kundenpraeferenzen: Option<String>,
}

/// The seed's `call_analyzed` analysis.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SeedCallAnalysis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_booked: Option<bool>,
}

/// Retell's real post-call analysis.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RetellCallAnalysis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_summary: Option<String>,
    /// `Positive`, `Negative`, `Neutral`, `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_sentiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_successful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_voicemail: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_analysis_data: Option<Map<String, Value>>,
}

/// The seed's `function_call` event: the agent asks us something mid-call and waits for the
/// answer keyed by `request_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetellFunctionCall {
    pub call_id: String,
    pub function_name: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// The body of a real Retell custom-function request, `POST /api/retell/functions/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetellFunctionRequest {
    /// The function's name, e.g. `check_availability`.
    pub name: String,
    #[serde(default)]
    pub args: Map<String, Value>,
    pub call: RetellCall,
}

impl RetellFunctionRequest {
    /// The function a request posted to `/api/retell/functions/{called}` runs: the one its
    /// signed body names, which must be the one its (unsigned) path names, so a signed body
    /// replayed to another function's path is refused rather than run as that function.
    pub(crate) fn check_called_as(&self, called: &str) -> Result<(), ParseError> {
        if self.name == called {
            return Ok(());
        }
        Err(ParseError::InvalidField {
            path: "$.name".to_owned(),
            reason: format!(
                "the body names function `{}` but was posted to /api/retell/functions/{called}; \
                 give the function the URL of its own name",
                self.name
            ),
        })
    }
}
