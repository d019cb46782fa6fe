//! Stripe payloads: the event envelope is the same for every type; `data.object` is typed for
//! the events Switchboard acts on and kept as JSON for the rest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Stripe webhook delivery, by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeEvent {
    InvoicePaymentSucceeded(StripeEnvelope<StripeInvoice>),
    InvoicePaymentFailed(StripeEnvelope<StripeInvoice>),
    SubscriptionCreated(StripeEnvelope<StripeSubscription>),
    SubscriptionUpdated(StripeEnvelope<StripeSubscription>),
    SubscriptionDeleted(StripeEnvelope<StripeSubscription>),
    /// Any other type: recorded, not refused. Its envelope still has an id (the dedupe key).
    Other(StripeEnvelope<Value>),
}

impl StripeEvent {
    pub const INVOICE_PAYMENT_SUCCEEDED: &'static str = "invoice.payment_succeeded";
    pub const INVOICE_PAYMENT_FAILED: &'static str = "invoice.payment_failed";
    pub const SUBSCRIPTION_CREATED: &'static str = "customer.subscription.created";
    pub const SUBSCRIPTION_UPDATED: &'static str = "customer.subscription.updated";
    pub const SUBSCRIPTION_DELETED: &'static str = "customer.subscription.deleted";

    /// The event id (`evt_…`).
    pub fn id(&self) -> &str {
        self.head().0
    }

    pub fn event_type(&self) -> &str {
        self.head().1
    }

    /// Unix seconds.
    pub fn created(&self) -> i64 {
        self.head().2
    }

    /// The Stripe customer the event concerns (`cus_…`), when typed.
    pub fn customer(&self) -> Option<&str> {
        match self {
            StripeEvent::InvoicePaymentSucceeded(e) | StripeEvent::InvoicePaymentFailed(e) => {
                Some(&e.data.object.customer)
            }
            StripeEvent::SubscriptionCreated(e)
            | StripeEvent::SubscriptionUpdated(e)
            | StripeEvent::SubscriptionDeleted(e) => Some(&e.data.object.customer),
            StripeEvent::Other(e) => e.data.object.get("customer")?.as_str(),
        }
    }

    fn head(&self) -> (&str, &str, i64) {
        fn head<T>(e: &StripeEnvelope<T>) -> (&str, &str, i64) {
            (&e.id, &e.event_type, e.created)
        }
        match self {
            StripeEvent::InvoicePaymentSucceeded(e) | StripeEvent::InvoicePaymentFailed(e) => {
                head(e)
            }
            StripeEvent::SubscriptionCreated(e)
            | StripeEvent::SubscriptionUpdated(e)
            | StripeEvent::SubscriptionDeleted(e) => head(e),
            StripeEvent::Other(e) => head(e),
        }
    }
}

/// Stripe's event envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "StripeEnvelope_{T}")]
pub struct StripeEnvelope<T> {
    /// `evt_…`, unique per event: the dedupe key.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    pub data: StripeEventData<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub livemode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_webhooks: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "StripeEventData_{T}")]
pub struct StripeEventData<T> {
    pub object: T,
    /// On `*.updated` events: the fields that changed, with their old values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_attributes: Option<Map<String, Value>>,
}

/// An invoice (`in_…`). `customer` is required: it is how a payment finds its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripeInvoice {
    pub id: String,
    pub customer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// Minor units (cents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_paid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible`, `void`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_payment_attempt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_payment_error: Option<StripePaymentError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<StripeList<StripeInvoiceLine>>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "StripeList_{T}")]
pub struct StripeList<T> {
    #[serde(default)]
    pub data: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripeInvoiceLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<StripePeriod>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripePeriod {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripePaymentError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A subscription (`sub_…`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripeSubscription {
    pub id: String,
    pub customer: String,
    /// `active`, `trialing`, `past_due`, `canceled`, `unpaid`, `incomplete`, ….
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_end: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_at_period_end: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_end: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<StripeList<StripeSubscriptionItem>>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl StripeSubscription {
    /// The plan's name: `metadata.plan` if set, else the first item's price lookup key,
    /// nickname or product.
    pub fn plan(&self) -> Option<&str> {
        if let Some(plan) = self.metadata.get("plan").and_then(Value::as_str) {
            return Some(plan);
        }
        let price = self.items.as_ref()?.data.first()?.price.as_ref()?;
        price
            .lookup_key
            .as_deref()
            .or(price.nickname.as_deref())
            .or(price.product.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripeSubscriptionItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<StripePrice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripePrice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<StripeRecurring>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StripeRecurring {
    /// `day`, `week`, `month`, `year`.
    pub interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_count: Option<i64>,
}
