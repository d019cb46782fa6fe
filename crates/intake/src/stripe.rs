//! Stripe: subscriptions and invoices, on `tenant-{metadata.company_id}`, or on
//! `billing-{customer}` when Stripe names no tenant.
//!
//! The choice depends on the delivery alone, never on what the registry knows at the time:
//! otherwise one subscription's events could split across two streams depending on when a
//! tenant linked its customer, and its lifecycle rules would see half of them. The tenants read
//! model attributes `billing-{customer}` to whichever tenant links the customer.

use serde_json::{Map, Value};
use switchboard_domain::command::{
    BillingCommand, RecordPaymentFailed, RecordPaymentSucceeded, SubscriptionChange,
};
use switchboard_domain::event::{InvoiceFacts, PaymentFailure, SubscriptionFacts};
use switchboard_domain::{Command, StreamId};
use switchboard_webhooks::payload::stripe::{
    StripeEnvelope, StripeEvent, StripeInvoice, StripeSubscription,
};

use crate::error::{IntakeError, missing};
use crate::{Route, from_unix_s, optional_id, required_id};

pub(crate) fn route(event: &StripeEvent) -> Result<Route, IntakeError> {
    let occurred_at = from_unix_s(event.created(), "$.created")?;
    let stripe_event_id = required_id(event.id(), "$.id")?;
    let (stream, command) = match event {
        StripeEvent::SubscriptionCreated(envelope)
        | StripeEvent::SubscriptionUpdated(envelope)
        | StripeEvent::SubscriptionDeleted(envelope) => {
            let (stream, subscription) = subscription(envelope)?;
            let change = SubscriptionChange {
                stripe_event_id,
                occurred_at,
                subscription,
            };
            let command = match event {
                StripeEvent::SubscriptionCreated(_) => BillingCommand::StartSubscription(change),
                StripeEvent::SubscriptionUpdated(_) => BillingCommand::UpdateSubscription(change),
                _ => BillingCommand::CancelSubscription(change),
            };
            (stream, command)
        }
        StripeEvent::InvoicePaymentSucceeded(envelope) => {
            let invoice = &envelope.data.object;
            let amount = invoice
                .amount_paid
                .ok_or_else(|| missing("$.data.object.amount_paid"))?;
            let (stream, facts) = invoice_facts(invoice, amount)?;
            let paid_at = invoice
                .paid_at
                .map(|s| from_unix_s(s, "$.data.object.paid_at"))
                .transpose()?;
            let command = BillingCommand::RecordPaymentSucceeded(RecordPaymentSucceeded {
                stripe_event_id,
                occurred_at,
                invoice: facts,
                paid_at,
            });
            (stream, command)
        }
        StripeEvent::InvoicePaymentFailed(envelope) => {
            let invoice = &envelope.data.object;
            let amount = invoice
                .amount_due
                .ok_or_else(|| missing("$.data.object.amount_due"))?;
            let (stream, facts) = invoice_facts(invoice, amount)?;
            let error = invoice.last_payment_error.as_ref();
            let failure = PaymentFailure {
                failure_code: error.and_then(|e| e.code.clone()),
                decline_code: error.and_then(|e| e.decline_code.clone()),
                failure_message: error.and_then(|e| e.message.clone()),
                attempt_count: invoice.attempt_count.and_then(|n| u32::try_from(n).ok()),
                next_attempt_at: invoice
                    .next_payment_attempt
                    .map(|s| from_unix_s(s, "$.data.object.next_payment_attempt"))
                    .transpose()?,
            };
            let command = BillingCommand::RecordPaymentFailed(RecordPaymentFailed {
                stripe_event_id,
                occurred_at,
                invoice: facts,
                failure,
            });
            (stream, command)
        }
        StripeEvent::Other(envelope) => {
            return Ok(Route::Unhandled {
                event_type: envelope.event_type.clone(),
                reason: "Stripe event type without a domain rule",
            });
        }
    };
    Ok(Route::Decide {
        stream,
        command: Command::Billing(command),
    })
}

/// `metadata.company_id` names the tenant; without it the fact is the customer's.
fn billing_stream(
    metadata: &Map<String, Value>,
    customer: &str,
) -> Result<(StreamId, Option<String>), IntakeError> {
    let tenant_id = optional_id(metadata.get("company_id").and_then(Value::as_str));
    Ok(match &tenant_id {
        Some(tenant_id) => (StreamId::tenant(tenant_id), Some(tenant_id.clone())),
        None => (
            StreamId::billing(required_id(customer, "$.data.object.customer")?),
            None,
        ),
    })
}

fn subscription(
    envelope: &StripeEnvelope<StripeSubscription>,
) -> Result<(StreamId, SubscriptionFacts), IntakeError> {
    let subscription = &envelope.data.object;
    let (stream, tenant_id) = billing_stream(&subscription.metadata, &subscription.customer)?;
    let item = subscription
        .items
        .as_ref()
        .and_then(|items| items.data.first());
    let price = item.and_then(|item| item.price.as_ref());
    let period =
        |seconds: Option<i64>, path: &str| seconds.map(|s| from_unix_s(s, path)).transpose();
    Ok((
        stream,
        SubscriptionFacts {
            tenant_id,
            stripe_customer_id: required_id(&subscription.customer, "$.data.object.customer")?,
            subscription_id: required_id(&subscription.id, "$.data.object.id")?,
            status: subscription.status.clone(),
            plan: subscription.plan().map(str::to_owned),
            amount: price
                .and_then(|p| p.unit_amount)
                .map(|unit| unit.saturating_mul(item.and_then(|i| i.quantity).unwrap_or(1))),
            currency: price.and_then(|p| p.currency.clone()),
            interval: price
                .and_then(|p| p.recurring.as_ref())
                .map(|r| r.interval.clone()),
            current_period_start: period(
                subscription.current_period_start,
                "$.data.object.current_period_start",
            )?,
            current_period_end: period(
                subscription.current_period_end,
                "$.data.object.current_period_end",
            )?,
            cancel_at_period_end: subscription.cancel_at_period_end,
        },
    ))
}

fn invoice_facts(
    invoice: &StripeInvoice,
    amount: i64,
) -> Result<(StreamId, InvoiceFacts), IntakeError> {
    let (stream, tenant_id) = billing_stream(&invoice.metadata, &invoice.customer)?;
    // `metadata.plan` when the integration sets it, else the first line's description.
    let plan = invoice
        .metadata
        .get("plan")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| invoice.lines.as_ref()?.data.first()?.description.clone());
    Ok((
        stream,
        InvoiceFacts {
            tenant_id,
            stripe_customer_id: required_id(&invoice.customer, "$.data.object.customer")?,
            invoice_id: required_id(&invoice.id, "$.data.object.id")?,
            subscription_id: optional_id(invoice.subscription.as_deref()),
            amount,
            currency: invoice
                .currency
                .clone()
                .ok_or_else(|| missing("$.data.object.currency"))?,
            plan,
        },
    ))
}
