//! The tenants read model: the registry (tenants, branches, phone numbers, Cal.com organizers,
//! Stripe customers, API token hashes), billing (subscriptions, payments, revenue) and the
//! counts of calls, appointments and customers per tenant and per branch.
//!
//! Registering a mapping attributes what was waiting for it (see [`crate::attribution`]).

use crate::sql::{SqlError, params};
use switchboard_domain::event::{
    ApiTokensSet, BranchProfile, BranchRemoved, CalcomOrganizerLinked, CalcomOrganizerUnlinked,
    InvoiceFacts, PaymentFailure, PhoneNumberAssigned, PhoneNumberUnassigned, StripeCustomerLinked,
    StripeCustomerUnlinked, SubscriptionFacts,
};

use crate::apply::{Applied, Cx, ts};
use crate::{anomalies, attribution, calls};

/// Makes sure the tenant has a row: counts and payments may name a tenant (by routing or
/// `metadata.company_id`) before its registration is folded.
fn ensure(cx: &Cx<'_, '_>, tenant_id: &str) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached(
            "INSERT INTO tenants (tenant_id, seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )?
        .execute(params![tenant_id, cx.seq(), cx.at])?;
    Ok(())
}

fn ensure_branch(cx: &Cx<'_, '_>, tenant_id: &str, branch_id: &str) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached(
            "INSERT INTO branches (tenant_id, branch_id, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_id, branch_id) DO NOTHING",
        )?
        .execute(params![tenant_id, branch_id, cx.at])?;
    Ok(())
}

pub(crate) fn registered(cx: &Cx<'_, '_>, tenant_id: &str, name: &str) -> Applied {
    ensure(cx, tenant_id)?;
    cx.conn
        .prepare_cached(
            "UPDATE tenants SET name = ?2, registered_at = COALESCE(registered_at, ?3),
                 updated_at = ?3
             WHERE tenant_id = ?1",
        )?
        .execute(params![tenant_id, name, cx.at])?;
    Ok(())
}

pub(crate) fn branch(
    cx: &Cx<'_, '_>,
    tenant_id: &str,
    branch_id: &str,
    profile: &BranchProfile,
) -> Applied {
    ensure(cx, tenant_id)?;
    ensure_branch(cx, tenant_id, branch_id)?;
    cx.conn
        .prepare_cached(
            "UPDATE branches SET name = ?3, time_zone = ?4, opening_hours = ?5, removed_at = NULL,
                 updated_at = ?6
             WHERE tenant_id = ?1 AND branch_id = ?2",
        )?
        .execute(params![
            tenant_id,
            branch_id,
            profile.name,
            profile.time_zone,
            serde_json::to_string(&profile.opening_hours)?,
            cx.at,
        ])?;
    Ok(())
}

pub(crate) fn branch_removed(cx: &Cx<'_, '_>, event: &BranchRemoved) -> Applied {
    // The row stays: calls and appointments keep pointing at the branch they happened at.
    cx.conn
        .prepare_cached(
            "UPDATE branches SET removed_at = ?3, updated_at = ?3
             WHERE tenant_id = ?1 AND branch_id = ?2",
        )?
        .execute(params![event.tenant_id, event.branch_id, cx.at])?;
    Ok(())
}

pub(crate) fn phone_number_assigned(cx: &Cx<'_, '_>, event: &PhoneNumberAssigned) -> Applied {
    let number = cx
        .phones
        .normalize_business(Some(&event.phone_number))
        .unwrap_or_else(|| event.phone_number.clone());
    ensure(cx, &event.tenant_id)?;
    ensure_branch(cx, &event.tenant_id, &event.branch_id)?;
    cx.conn
        .prepare_cached(
            "INSERT INTO phone_numbers (phone_number, tenant_id, branch_id, assigned_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (phone_number) DO UPDATE SET tenant_id = excluded.tenant_id,
                 branch_id = excluded.branch_id, assigned_at = excluded.assigned_at",
        )?
        .execute(params![number, event.tenant_id, event.branch_id, cx.at])?;
    cx.batch.number_owners.borrow_mut().clear();
    // By number, not id: the table's calls and the batch's, whose held version is current.
    let waiting = cx.batch.calls.found(
        cx.conn
            .prepare_cached(
                "SELECT call_id, seq FROM calls WHERE tenant_number = ?1 AND tenant_id IS NULL",
            )?
            .query_map([&number], |r| Ok((r.get(0)?, r.get(1)?)))?,
        |call| call.tenant_id.is_none() && call.tenant_number.as_deref() == Some(number.as_str()),
    )?;
    // Each waiting call rang this number, which now belongs to this branch: the owner is
    // known, not looked up again per call (the generated 100,000-event history's 120 late
    // assignments settle 2,796 calls).
    let owner = Some((event.tenant_id.as_str(), Some(event.branch_id.as_str())));
    for call_id in waiting {
        if let Some(call) = calls::row(cx, &call_id)? {
            attribution::settle_call(cx, &call_id, call, owner, false)?;
        }
    }
    Ok(())
}

pub(crate) fn phone_number_unassigned(cx: &Cx<'_, '_>, event: &PhoneNumberUnassigned) -> Applied {
    let number = cx
        .phones
        .normalize_business(Some(&event.phone_number))
        .unwrap_or_else(|| event.phone_number.clone());
    // Calls already attributed stay with the tenant they rang at.
    cx.conn
        .prepare_cached(
            "DELETE FROM phone_numbers WHERE phone_number = ?1 AND tenant_id = ?2 AND branch_id = ?3",
        )?
        .execute(params![number, event.tenant_id, event.branch_id])?;
    cx.batch.number_owners.borrow_mut().clear();
    Ok(())
}

pub(crate) fn organizer_linked(cx: &Cx<'_, '_>, event: &CalcomOrganizerLinked) -> Applied {
    ensure(cx, &event.tenant_id)?;
    cx.conn
        .prepare_cached(
            "INSERT INTO calcom_organizers (organizer_id, tenant_id, linked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (organizer_id) DO UPDATE SET tenant_id = excluded.tenant_id,
                 linked_at = excluded.linked_at",
        )?
        .execute(params![event.organizer_id, event.tenant_id, cx.at])?;
    // By organizer, not id: the table's appointments and the batch's (see above).
    let waiting = cx.batch.appointments.found(
        cx.conn
            .prepare_cached(
                "SELECT appointment_id, seq FROM appointments
                 WHERE organizer_id = ?1 AND tenant_id IS NULL",
            )?
            .query_map([event.organizer_id], |r| Ok((r.get(0)?, r.get(1)?)))?,
        |appointment| {
            appointment.tenant_id.is_none() && appointment.organizer_id == Some(event.organizer_id)
        },
    )?;
    for appointment_id in waiting {
        attribution::settle_appointment(cx, &appointment_id, false)?;
    }
    Ok(())
}

pub(crate) fn organizer_unlinked(cx: &Cx<'_, '_>, event: &CalcomOrganizerUnlinked) -> Applied {
    cx.conn
        .prepare_cached("DELETE FROM calcom_organizers WHERE organizer_id = ?1 AND tenant_id = ?2")?
        .execute(params![event.organizer_id, event.tenant_id])?;
    Ok(())
}

/// A Stripe customer's payments that wait for its tenant, in order (`payments_by_customer`).
pub(crate) const WAITING_PAYMENTS: &str = "SELECT stripe_event_id, status, amount_cents
    FROM payments WHERE stripe_customer_id = ?1 AND tenant_id IS NULL ORDER BY seq";

/// A Stripe customer's subscriptions that wait for its tenant (`subscriptions_by_customer`).
pub(crate) const WAITING_SUBSCRIPTIONS: &str = "SELECT subscription_id FROM subscriptions
    WHERE stripe_customer_id = ?1 AND tenant_id IS NULL ORDER BY updated_at, subscription_id";

/// A tenant's tokens, replaced whole when it sets new ones (`api_tokens_by_tenant`).
pub(crate) const DROP_TOKENS: &str = "DELETE FROM api_tokens WHERE tenant_id = ?1";

pub(crate) fn stripe_customer_linked(cx: &Cx<'_, '_>, event: &StripeCustomerLinked) -> Applied {
    let tenant = &event.tenant_id;
    ensure(cx, tenant)?;
    cx.conn
        .prepare_cached(
            "INSERT INTO stripe_customers (stripe_customer_id, tenant_id, linked_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (stripe_customer_id) DO UPDATE SET tenant_id = excluded.tenant_id,
                 linked_at = excluded.linked_at",
        )?
        .execute(params![event.stripe_customer_id, tenant, cx.at])?;

    let payments: Vec<(String, String, i64)> = cx
        .conn
        .prepare_cached(WAITING_PAYMENTS)?
        .query_map([&event.stripe_customer_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (stripe_event_id, status, amount) in payments {
        cx.conn
            .prepare_cached("UPDATE payments SET tenant_id = ?2 WHERE stripe_event_id = ?1")?
            .execute(params![stripe_event_id, tenant])?;
        count_payment(cx, tenant, status == "succeeded", amount)?;
        anomalies::resolve(cx, "payment", &stripe_event_id, tenant)?;
    }

    let subscriptions: Vec<String> = cx
        .conn
        .prepare_cached(WAITING_SUBSCRIPTIONS)?
        .query_map([&event.stripe_customer_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for subscription_id in subscriptions {
        cx.conn
            .prepare_cached("UPDATE subscriptions SET tenant_id = ?2 WHERE subscription_id = ?1")?
            .execute(params![subscription_id, tenant])?;
        refresh_subscription(cx, tenant, &subscription_id)?;
        anomalies::resolve(cx, "subscription", &subscription_id, tenant)?;
    }
    // What was refused on the customer's own stream while no tenant had linked it.
    anomalies::resolve(cx, "billing", &event.stripe_customer_id, tenant)
}

pub(crate) fn stripe_customer_unlinked(cx: &Cx<'_, '_>, event: &StripeCustomerUnlinked) -> Applied {
    cx.conn
        .prepare_cached(
            "DELETE FROM stripe_customers WHERE stripe_customer_id = ?1 AND tenant_id = ?2",
        )?
        .execute(params![event.stripe_customer_id, event.tenant_id])?;
    Ok(())
}

pub(crate) fn api_tokens_set(cx: &Cx<'_, '_>, event: &ApiTokensSet) -> Applied {
    ensure(cx, &event.tenant_id)?;
    cx.conn
        .prepare_cached(DROP_TOKENS)?
        .execute([&event.tenant_id])?;
    for hash in &event.token_sha256 {
        // A hash is one token; if another tenant listed it before, the newest registration
        // owns it.
        cx.conn
            .prepare_cached(
                "INSERT INTO api_tokens (token_sha256, tenant_id) VALUES (?1, ?2)
                 ON CONFLICT (token_sha256) DO UPDATE SET tenant_id = excluded.tenant_id",
            )?
            .execute(params![hash.to_ascii_lowercase(), event.tenant_id])?;
    }
    Ok(())
}

/// Started, updated or cancelled: the subscription's row takes the facts of the newest event
/// by provider time, so a late `updated` cannot overwrite a `cancelled`.
pub(crate) fn subscription(
    cx: &Cx<'_, '_>,
    _stripe_event_id: &str,
    facts: &SubscriptionFacts,
) -> Applied {
    let tenant =
        attribution::stripe_owner(cx, facts.tenant_id.as_deref(), &facts.stripe_customer_id)?;
    cx.conn
        .prepare_cached(
            "INSERT INTO subscriptions (subscription_id, tenant_id, stripe_customer_id, status, plan,
                 amount_cents, currency, billing_interval, current_period_start,
                 current_period_end, cancel_at_period_end, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (subscription_id) DO UPDATE SET
                 tenant_id = COALESCE(subscriptions.tenant_id, excluded.tenant_id),
                 status = excluded.status, plan = COALESCE(excluded.plan, subscriptions.plan),
                 amount_cents = COALESCE(excluded.amount_cents, subscriptions.amount_cents),
                 currency = COALESCE(excluded.currency, subscriptions.currency),
                 billing_interval = COALESCE(excluded.billing_interval, subscriptions.billing_interval),
                 current_period_start = COALESCE(excluded.current_period_start, subscriptions.current_period_start),
                 current_period_end = COALESCE(excluded.current_period_end, subscriptions.current_period_end),
                 cancel_at_period_end = COALESCE(excluded.cancel_at_period_end, subscriptions.cancel_at_period_end),
                 updated_at = excluded.updated_at
             WHERE excluded.updated_at >= subscriptions.updated_at",
        )?
        .execute(params![
            facts.subscription_id,
            tenant,
            facts.stripe_customer_id,
            facts.status,
            facts.plan,
            facts.amount,
            facts.currency,
            facts.interval,
            facts.current_period_start.map(ts),
            facts.current_period_end.map(ts),
            facts.cancel_at_period_end,
            cx.at,
        ])?;
    match tenant {
        Some(tenant) => {
            ensure(cx, &tenant)?;
            refresh_subscription(cx, &tenant, &facts.subscription_id)
        }
        None => anomalies::unattributed(
            cx,
            "subscription",
            &facts.subscription_id,
            "unattributed_subscription",
            format!(
                "subscription {}: no metadata.company_id and Stripe customer {} is linked to no tenant",
                facts.subscription_id, facts.stripe_customer_id
            ),
        ),
    }
}

/// The tenant shows its most recently changed subscription.
fn refresh_subscription(cx: &Cx<'_, '_>, tenant: &str, subscription_id: &str) -> Applied {
    cx.conn
        .prepare_cached(
            "UPDATE tenants SET subscription_id = s.subscription_id, subscription_status = s.status,
                 subscription_plan = s.plan, subscription_updated_at = s.updated_at
             FROM (SELECT subscription_id, status, plan, updated_at FROM subscriptions
                   WHERE subscription_id = ?2) AS s
             WHERE tenants.tenant_id = ?1
               AND (tenants.subscription_updated_at IS NULL
                    OR tenants.subscription_id = s.subscription_id
                    OR s.updated_at >= tenants.subscription_updated_at)",
        )?
        .execute(params![tenant, subscription_id])?;
    Ok(())
}

pub(crate) fn payment(
    cx: &Cx<'_, '_>,
    stripe_event_id: &str,
    invoice: &InvoiceFacts,
    failure: Option<&PaymentFailure>,
) -> Applied {
    let tenant = attribution::stripe_owner(
        cx,
        invoice.tenant_id.as_deref(),
        &invoice.stripe_customer_id,
    )?;
    let succeeded = failure.is_none();
    let inserted = cx
        .conn
        .prepare_cached(
            "INSERT INTO payments (stripe_event_id, seq, tenant_id, stripe_customer_id, invoice_id,
                 subscription_id, status, amount_cents, currency, plan, failure_code,
                 failure_message, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (stripe_event_id) DO NOTHING",
        )?
        .execute(params![
            stripe_event_id,
            cx.seq(),
            tenant,
            invoice.stripe_customer_id,
            invoice.invoice_id,
            invoice.subscription_id,
            if succeeded { "succeeded" } else { "failed" },
            invoice.amount,
            invoice.currency,
            invoice.plan,
            failure.and_then(|f| f.failure_code.clone()),
            failure.and_then(|f| f.failure_message.clone()),
            cx.at,
        ])?;
    if inserted == 0 {
        // The same Stripe event recorded twice (say, on two streams): counted once.
        return Ok(());
    }
    match tenant {
        Some(tenant) => {
            ensure(cx, &tenant)?;
            count_payment(cx, &tenant, succeeded, invoice.amount)
        }
        None => anomalies::unattributed(
            cx,
            "payment",
            stripe_event_id,
            "unattributed_payment",
            format!(
                "payment {stripe_event_id} (invoice {}): no metadata.company_id and Stripe customer {} is linked to no tenant",
                invoice.invoice_id, invoice.stripe_customer_id
            ),
        ),
    }
}

fn count_payment(cx: &Cx<'_, '_>, tenant: &str, succeeded: bool, amount: i64) -> Applied {
    if succeeded {
        cx.conn
            .prepare_cached(
                "UPDATE tenants SET payments_succeeded = payments_succeeded + 1,
                     revenue_cents = revenue_cents + ?2 WHERE tenant_id = ?1",
            )?
            .execute(params![tenant, amount])?;
    } else {
        cx.conn
            .prepare_cached(
                "UPDATE tenants SET payments_failed = payments_failed + 1 WHERE tenant_id = ?1",
            )?
            .execute([tenant])?;
    }
    Ok(())
}

pub(crate) fn add_call(
    cx: &Cx<'_, '_>,
    tenant: &str,
    branch: Option<&str>,
) -> Result<(), SqlError> {
    cx.batch.counts.add_call(cx, tenant, branch)
}

/// Counts an appointment (`delta` 1) or uncounts a request merged into its booking (-1), at
/// the tenant when `at_tenant` and at the branch when one is given.
pub(crate) fn add_appointment(
    cx: &Cx<'_, '_>,
    tenant: &str,
    at_tenant: bool,
    branch: Option<&str>,
    delta: i64,
) -> Result<(), SqlError> {
    let tenant_delta = if at_tenant { delta } else { 0 };
    cx.batch
        .counts
        .add_appointment(cx, tenant, tenant_delta, branch, delta)
}

pub(crate) fn add_customer(cx: &Cx<'_, '_>, tenant: &str) -> Result<(), SqlError> {
    cx.batch.counts.add_customer(cx, tenant)
}
