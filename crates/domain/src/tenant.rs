//! The Tenant aggregate (`tenant-{tenant_id}`): the registry (name, branches, phone numbers,
//! Cal.com organizers, Stripe customers, API token hashes) and the tenant's billing; and the
//! Billing aggregate alone (`billing-{stripe customer}`) for Stripe facts that name no tenant.
//!
//! Registry: `RegisterTenant` carries the full desired registry (`PUT /api/tenants/{id}`);
//! decide records only the differences, so an identical PUT records nothing. A number or
//! organizer left out of the PUT is unassigned/unlinked, a branch left out is removed.
//!
//! Billing: subscriptions run started → updated* → cancelled (terminal, by Stripe's `created`
//! time); a Stripe event id seen before is a duplicate, and so is a second success for the same
//! invoice. A payment whose Stripe event names no tenant (`metadata.company_id`) is recorded on
//! `billing-{customer}` — kept, never dropped — and the tenants read model attributes that
//! stream to the tenant that links the customer (`StripeCustomerLinked`), whenever that happens.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::aggregate::Aggregate;
use crate::command::{
    BillingCommand, RecordPaymentFailed, RecordPaymentSucceeded, RegisterTenant,
    SubscriptionChange, TenantCommand,
};
use crate::event::{
    ApiTokensSet, BranchProfile, BranchRegistered, BranchRemoved, BranchUpdated,
    CalcomOrganizerLinked, CalcomOrganizerUnlinked, Event, PaymentFailed, PaymentSucceeded,
    PhoneNumberAssigned, PhoneNumberUnassigned, StripeCustomerLinked, StripeCustomerUnlinked,
    SubscriptionCancelled, SubscriptionStarted, SubscriptionUpdated, TenantRegistered,
    TenantUpdated,
};
use crate::rejection::Rejection;

// ---------------------------------------------------------------------------------------------
// Tenant
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tenant {
    name: Option<String>,
    branches: BTreeMap<String, BranchProfile>,
    /// Phone number → branch id.
    phone_numbers: BTreeMap<String, String>,
    calcom_organizer_ids: BTreeSet<i64>,
    stripe_customer_ids: BTreeSet<String>,
    api_token_sha256: BTreeSet<String>,
    billing: Billing,
}

impl Tenant {
    pub fn is_registered(&self) -> bool {
        self.name.is_some()
    }
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub fn branches(&self) -> &BTreeMap<String, BranchProfile> {
        &self.branches
    }
    /// Phone number → branch id.
    pub fn phone_numbers(&self) -> &BTreeMap<String, String> {
        &self.phone_numbers
    }
    /// The branch a number rings at, with its profile.
    pub fn branch_for_number(&self, phone_number: &str) -> Option<(&str, &BranchProfile)> {
        let branch_id = self.phone_numbers.get(phone_number)?;
        self.branches
            .get_key_value(branch_id)
            .map(|(id, profile)| (id.as_str(), profile))
    }
    pub fn calcom_organizer_ids(&self) -> &BTreeSet<i64> {
        &self.calcom_organizer_ids
    }
    pub fn stripe_customer_ids(&self) -> &BTreeSet<String> {
        &self.stripe_customer_ids
    }
    pub fn api_token_sha256(&self) -> &BTreeSet<String> {
        &self.api_token_sha256
    }
    pub fn billing(&self) -> &Billing {
        &self.billing
    }

    fn decide_registration(&self, command: RegisterTenant) -> Result<Vec<Event>, Rejection> {
        let desired = DesiredRegistry::validate(&command)?;
        let tenant_id = command.tenant_id;
        let at = command.occurred_at;
        let mut events: Vec<Event> = vec![];

        match &self.name {
            None => events.push(
                TenantRegistered {
                    tenant_id: tenant_id.clone(),
                    occurred_at: at,
                    name: desired.name.clone(),
                }
                .into(),
            ),
            Some(name) if *name != desired.name => events.push(
                TenantUpdated {
                    tenant_id: tenant_id.clone(),
                    occurred_at: at,
                    name: desired.name.clone(),
                }
                .into(),
            ),
            Some(_) => {}
        }

        // Branches first, so every assignment below names a branch that exists.
        for (branch_id, profile) in &desired.branches {
            let branch_id = branch_id.clone();
            let profile = profile.clone();
            match self.branches.get(&branch_id) {
                None => events.push(
                    BranchRegistered {
                        tenant_id: tenant_id.clone(),
                        branch_id,
                        occurred_at: at,
                        profile,
                    }
                    .into(),
                ),
                Some(current) if *current != profile => events.push(
                    BranchUpdated {
                        tenant_id: tenant_id.clone(),
                        branch_id,
                        occurred_at: at,
                        profile,
                    }
                    .into(),
                ),
                Some(_) => {}
            }
        }
        for (phone_number, branch_id) in &self.phone_numbers {
            if !desired.phone_numbers.contains_key(phone_number) {
                events.push(
                    PhoneNumberUnassigned {
                        tenant_id: tenant_id.clone(),
                        branch_id: branch_id.clone(),
                        phone_number: phone_number.clone(),
                        occurred_at: at,
                    }
                    .into(),
                );
            }
        }
        for (phone_number, branch_id) in &desired.phone_numbers {
            if self.phone_numbers.get(phone_number) != Some(branch_id) {
                events.push(
                    PhoneNumberAssigned {
                        tenant_id: tenant_id.clone(),
                        branch_id: branch_id.clone(),
                        phone_number: phone_number.clone(),
                        occurred_at: at,
                    }
                    .into(),
                );
            }
        }
        // Removed last, once none of their numbers ring there any more.
        for branch_id in self.branches.keys() {
            if !desired.branches.contains_key(branch_id) {
                events.push(
                    BranchRemoved {
                        tenant_id: tenant_id.clone(),
                        branch_id: branch_id.clone(),
                        occurred_at: at,
                    }
                    .into(),
                );
            }
        }

        for organizer_id in desired
            .calcom_organizer_ids
            .difference(&self.calcom_organizer_ids)
        {
            events.push(
                CalcomOrganizerLinked {
                    tenant_id: tenant_id.clone(),
                    organizer_id: *organizer_id,
                    occurred_at: at,
                }
                .into(),
            );
        }
        for organizer_id in self
            .calcom_organizer_ids
            .difference(&desired.calcom_organizer_ids)
        {
            events.push(
                CalcomOrganizerUnlinked {
                    tenant_id: tenant_id.clone(),
                    organizer_id: *organizer_id,
                    occurred_at: at,
                }
                .into(),
            );
        }
        for customer in desired
            .stripe_customer_ids
            .difference(&self.stripe_customer_ids)
        {
            events.push(
                StripeCustomerLinked {
                    tenant_id: tenant_id.clone(),
                    stripe_customer_id: customer.clone(),
                    occurred_at: at,
                }
                .into(),
            );
        }
        for customer in self
            .stripe_customer_ids
            .difference(&desired.stripe_customer_ids)
        {
            events.push(
                StripeCustomerUnlinked {
                    tenant_id: tenant_id.clone(),
                    stripe_customer_id: customer.clone(),
                    occurred_at: at,
                }
                .into(),
            );
        }
        if desired.api_token_sha256 != self.api_token_sha256 {
            events.push(
                ApiTokensSet {
                    tenant_id,
                    token_sha256: desired.api_token_sha256.into_iter().collect(),
                    occurred_at: at,
                }
                .into(),
            );
        }
        Ok(events)
    }
}

/// A `RegisterTenant` that passed validation, in the shape of the state.
struct DesiredRegistry {
    name: String,
    branches: BTreeMap<String, BranchProfile>,
    phone_numbers: BTreeMap<String, String>,
    calcom_organizer_ids: BTreeSet<i64>,
    stripe_customer_ids: BTreeSet<String>,
    api_token_sha256: BTreeSet<String>,
}

impl DesiredRegistry {
    fn validate(command: &RegisterTenant) -> Result<Self, Rejection> {
        let name = command.name.trim();
        if name.is_empty() {
            return Err(Rejection::EmptyTenantName);
        }
        let mut branches = BTreeMap::new();
        let mut phone_numbers: BTreeMap<String, String> = BTreeMap::new();
        for branch in &command.branches {
            let branch_id = branch.branch_id.trim();
            if branch_id.is_empty() {
                return Err(Rejection::EmptyBranchId);
            }
            if let Some(time_zone) = branch
                .profile
                .time_zone
                .as_ref()
                .filter(|time_zone| time_zone.parse::<Tz>().is_err())
            {
                return Err(Rejection::UnknownTimeZone {
                    branch_id: branch_id.to_owned(),
                    time_zone: time_zone.clone(),
                });
            }
            if let Some(hours) = branch
                .profile
                .opening_hours
                .iter()
                .find(|h| h.closes <= h.opens)
            {
                return Err(Rejection::InvalidOpeningHours {
                    branch_id: branch_id.to_owned(),
                    day: serde_json::to_value(hours.day)
                        .ok()
                        .and_then(|day| day.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                });
            }
            if branches
                .insert(branch_id.to_owned(), branch.profile.clone())
                .is_some()
            {
                return Err(Rejection::DuplicateBranch {
                    branch_id: branch_id.to_owned(),
                });
            }
            for phone_number in &branch.phone_numbers {
                if !is_e164(phone_number) {
                    return Err(Rejection::InvalidPhoneNumber {
                        phone_number: phone_number.clone(),
                    });
                }
                match phone_numbers.get(phone_number) {
                    Some(first) if first != branch_id => {
                        return Err(Rejection::PhoneNumberInTwoBranches {
                            phone_number: phone_number.clone(),
                            first_branch_id: first.clone(),
                            second_branch_id: branch_id.to_owned(),
                        });
                    }
                    _ => {
                        phone_numbers.insert(phone_number.clone(), branch_id.to_owned());
                    }
                }
            }
        }
        if !command
            .api_token_sha256
            .iter()
            .all(|hash| is_sha256_hex(hash))
        {
            return Err(Rejection::InvalidTokenHash);
        }
        Ok(DesiredRegistry {
            name: name.to_owned(),
            branches,
            phone_numbers,
            calcom_organizer_ids: command.calcom_organizer_ids.iter().copied().collect(),
            stripe_customer_ids: command.stripe_customer_ids.iter().cloned().collect(),
            api_token_sha256: command.api_token_sha256.iter().cloned().collect(),
        })
    }
}

/// `+` and 8 to 15 digits, no spaces: the form providers send, so numbers compare as strings.
pub fn is_e164(phone_number: &str) -> bool {
    phone_number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Aggregate for Tenant {
    type Command = TenantCommand;

    fn decide(&self, command: TenantCommand) -> Result<Vec<Event>, Rejection> {
        match command {
            TenantCommand::RegisterTenant(command) => self.decide_registration(command),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::TenantRegistered(TenantRegistered { name, .. })
            | Event::TenantUpdated(TenantUpdated { name, .. }) => self.name = Some(name.clone()),
            Event::BranchRegistered(BranchRegistered {
                branch_id, profile, ..
            })
            | Event::BranchUpdated(BranchUpdated {
                branch_id, profile, ..
            }) => {
                self.branches.insert(branch_id.clone(), profile.clone());
            }
            Event::BranchRemoved(removed) => {
                self.branches.remove(&removed.branch_id);
                self.phone_numbers
                    .retain(|_, branch_id| *branch_id != removed.branch_id);
            }
            Event::PhoneNumberAssigned(assigned) => {
                self.phone_numbers
                    .insert(assigned.phone_number.clone(), assigned.branch_id.clone());
            }
            Event::PhoneNumberUnassigned(unassigned) => {
                self.phone_numbers.remove(&unassigned.phone_number);
            }
            Event::CalcomOrganizerLinked(linked) => {
                self.calcom_organizer_ids.insert(linked.organizer_id);
            }
            Event::CalcomOrganizerUnlinked(unlinked) => {
                self.calcom_organizer_ids.remove(&unlinked.organizer_id);
            }
            Event::StripeCustomerLinked(linked) => {
                self.stripe_customer_ids
                    .insert(linked.stripe_customer_id.clone());
            }
            Event::StripeCustomerUnlinked(unlinked) => {
                self.stripe_customer_ids
                    .remove(&unlinked.stripe_customer_id);
            }
            Event::ApiTokensSet(set) => {
                self.api_token_sha256 = set.token_sha256.iter().cloned().collect();
            }
            other => self.billing = std::mem::take(&mut self.billing).evolve(other),
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Billing
// ---------------------------------------------------------------------------------------------

/// Everything recorded about one Stripe subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionHistory {
    pub started: Option<SubscriptionStarted>,
    /// Sorted by provider time, then Stripe event id.
    pub updates: Vec<SubscriptionUpdated>,
    pub cancelled: Option<SubscriptionCancelled>,
}

impl SubscriptionHistory {
    /// Stripe's status as of the latest fact by provider time; `canceled` once cancelled.
    pub fn status(&self) -> Option<&str> {
        if let Some(cancelled) = &self.cancelled {
            return Some(&cancelled.subscription.status);
        }
        let started = self
            .started
            .as_ref()
            .map(|s| (s.occurred_at, &s.subscription));
        let updates = self
            .updates
            .iter()
            .map(|u| (u.occurred_at, &u.subscription));
        started
            .into_iter()
            .chain(updates)
            .max_by_key(|(at, _)| *at)
            .map(|(_, facts)| facts.status.as_str())
    }

    /// The plan as of the latest fact that names one.
    pub fn plan(&self) -> Option<&str> {
        let started = self
            .started
            .as_ref()
            .map(|s| (s.occurred_at, &s.subscription));
        let updates = self
            .updates
            .iter()
            .map(|u| (u.occurred_at, &u.subscription));
        let cancelled = self
            .cancelled
            .as_ref()
            .map(|c| (c.occurred_at, &c.subscription));
        started
            .into_iter()
            .chain(updates)
            .chain(cancelled)
            .filter(|(_, facts)| facts.plan.is_some())
            .max_by_key(|(at, _)| *at)
            .and_then(|(_, facts)| facts.plan.as_deref())
    }

    fn last_seen(&self) -> Option<DateTime<Utc>> {
        let times = self.started.iter().map(|s| s.occurred_at);
        let times = times.chain(self.updates.iter().map(|u| u.occurred_at));
        times
            .chain(self.cancelled.iter().map(|c| c.occurred_at))
            .max()
    }
}

/// Everything recorded about one Stripe invoice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvoiceHistory {
    pub succeeded: Option<PaymentSucceeded>,
    /// Sorted by provider time, then Stripe event id.
    pub failures: Vec<PaymentFailed>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Billing {
    seen_stripe_events: BTreeSet<String>,
    subscriptions: BTreeMap<String, SubscriptionHistory>,
    invoices: BTreeMap<String, InvoiceHistory>,
}

impl Billing {
    pub fn subscriptions(&self) -> &BTreeMap<String, SubscriptionHistory> {
        &self.subscriptions
    }
    pub fn invoices(&self) -> &BTreeMap<String, InvoiceHistory> {
        &self.invoices
    }

    /// The subscription the tenant is on: the most recently active one that is not
    /// cancelled, else the most recent one.
    pub fn current_subscription(&self) -> Option<(&str, &SubscriptionHistory)> {
        let latest = |live: bool| {
            self.subscriptions
                .iter()
                .filter(move |(_, history)| history.cancelled.is_none() || !live)
                .max_by_key(|(id, history)| (history.last_seen(), *id))
                .map(|(id, history)| (id.as_str(), history))
        };
        latest(true).or_else(|| latest(false))
    }

    fn subscription_change(&self, kind: BillingCommand) -> Result<Vec<Event>, Rejection> {
        let (change, kind) = match kind {
            BillingCommand::StartSubscription(change) => (change, SubscriptionChangeKind::Start),
            BillingCommand::UpdateSubscription(change) => (change, SubscriptionChangeKind::Update),
            BillingCommand::CancelSubscription(change) => (change, SubscriptionChangeKind::Cancel),
            _ => unreachable!("only subscription changes reach subscription_change"),
        };
        let SubscriptionChange {
            stripe_event_id,
            occurred_at,
            subscription,
        } = change;
        let history = self.subscriptions.get(&subscription.subscription_id);
        let cancelled = history.and_then(|h| h.cancelled.as_ref());
        Ok(match kind {
            SubscriptionChangeKind::Start if history.is_some_and(|h| h.started.is_some()) => vec![],
            SubscriptionChangeKind::Start => vec![
                SubscriptionStarted {
                    stripe_event_id,
                    occurred_at,
                    subscription,
                }
                .into(),
            ],
            SubscriptionChangeKind::Update => {
                if let Some(cancelled) = cancelled.filter(|c| occurred_at > c.occurred_at) {
                    return Err(Rejection::SubscriptionUpdateAfterCancellation {
                        subscription_id: subscription.subscription_id,
                        cancelled_at: cancelled.occurred_at,
                    });
                }
                vec![
                    SubscriptionUpdated {
                        stripe_event_id,
                        occurred_at,
                        subscription,
                    }
                    .into(),
                ]
            }
            SubscriptionChangeKind::Cancel if cancelled.is_some() => vec![],
            SubscriptionChangeKind::Cancel => vec![
                SubscriptionCancelled {
                    stripe_event_id,
                    occurred_at,
                    subscription,
                }
                .into(),
            ],
        })
    }
}

fn subscription_history<'a>(
    subscriptions: &'a mut BTreeMap<String, SubscriptionHistory>,
    subscription_id: &str,
) -> &'a mut SubscriptionHistory {
    subscriptions.entry(subscription_id.to_owned()).or_default()
}

enum SubscriptionChangeKind {
    Start,
    Update,
    Cancel,
}

fn stripe_event_id(command: &BillingCommand) -> &str {
    match command {
        BillingCommand::StartSubscription(change)
        | BillingCommand::UpdateSubscription(change)
        | BillingCommand::CancelSubscription(change) => &change.stripe_event_id,
        BillingCommand::RecordPaymentSucceeded(payment) => &payment.stripe_event_id,
        BillingCommand::RecordPaymentFailed(payment) => &payment.stripe_event_id,
    }
}

/// Inserts keeping `list` sorted by `key`, unless an equal key is already there.
fn insert_sorted<T: Clone, K: Ord>(list: &mut Vec<T>, item: &T, key: impl Fn(&T) -> K) {
    let at = list.partition_point(|existing| key(existing) < key(item));
    if list
        .get(at)
        .is_none_or(|existing| key(existing) != key(item))
    {
        list.insert(at, item.clone());
    }
}

impl Aggregate for Billing {
    type Command = BillingCommand;

    fn decide(&self, command: BillingCommand) -> Result<Vec<Event>, Rejection> {
        // Stripe retries with the same event id; the server dedupes by it too, this keeps the
        // aggregate idempotent on its own.
        if self.seen_stripe_events.contains(stripe_event_id(&command)) {
            return Ok(vec![]);
        }
        match command {
            BillingCommand::RecordPaymentSucceeded(RecordPaymentSucceeded {
                stripe_event_id,
                occurred_at,
                invoice,
                paid_at,
            }) => {
                let paid = self
                    .invoices
                    .get(&invoice.invoice_id)
                    .is_some_and(|history| history.succeeded.is_some());
                if paid {
                    return Ok(vec![]);
                }
                Ok(vec![
                    PaymentSucceeded {
                        stripe_event_id,
                        occurred_at,
                        invoice,
                        paid_at,
                    }
                    .into(),
                ])
            }
            BillingCommand::RecordPaymentFailed(RecordPaymentFailed {
                stripe_event_id,
                occurred_at,
                invoice,
                failure,
            }) => Ok(vec![
                PaymentFailed {
                    stripe_event_id,
                    occurred_at,
                    invoice,
                    failure,
                }
                .into(),
            ]),
            change => self.subscription_change(change),
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::SubscriptionStarted(started) => {
                let history = subscription_history(
                    &mut self.subscriptions,
                    &started.subscription.subscription_id,
                );
                history.started.get_or_insert_with(|| started.clone());
                self.seen_stripe_events
                    .insert(started.stripe_event_id.clone());
            }
            Event::SubscriptionUpdated(updated) => {
                let history = subscription_history(
                    &mut self.subscriptions,
                    &updated.subscription.subscription_id,
                );
                insert_sorted(&mut history.updates, updated, |u| {
                    (u.occurred_at, u.stripe_event_id.clone())
                });
                self.seen_stripe_events
                    .insert(updated.stripe_event_id.clone());
            }
            Event::SubscriptionCancelled(cancelled) => {
                let history = subscription_history(
                    &mut self.subscriptions,
                    &cancelled.subscription.subscription_id,
                );
                history.cancelled.get_or_insert_with(|| cancelled.clone());
                self.seen_stripe_events
                    .insert(cancelled.stripe_event_id.clone());
            }
            Event::PaymentSucceeded(paid) => {
                let history = self
                    .invoices
                    .entry(paid.invoice.invoice_id.clone())
                    .or_default();
                history.succeeded.get_or_insert_with(|| paid.clone());
                self.seen_stripe_events.insert(paid.stripe_event_id.clone());
            }
            Event::PaymentFailed(failed) => {
                let history = self
                    .invoices
                    .entry(failed.invoice.invoice_id.clone())
                    .or_default();
                insert_sorted(&mut history.failures, failed, |f| {
                    (f.occurred_at, f.stripe_event_id.clone())
                });
                self.seen_stripe_events
                    .insert(failed.stripe_event_id.clone());
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;
    use crate::command::BranchRegistration;
    use crate::event::{InvoiceFacts, OpeningHours, PaymentFailure, SubscriptionFacts, Weekday};
    use chrono::{NaiveTime, TimeZone};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_703_244_123 + seconds, 0).unwrap()
    }

    fn branch(id: &str, numbers: &[&str]) -> BranchRegistration {
        BranchRegistration {
            branch_id: id.into(),
            profile: BranchProfile {
                name: format!("Filiale {id}"),
                time_zone: None,
                opening_hours: vec![],
            },
            phone_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn register(name: &str, branches: Vec<BranchRegistration>) -> RegisterTenant {
        RegisterTenant {
            tenant_id: "t1".into(),
            occurred_at: at(0),
            name: name.into(),
            branches,
            calcom_organizer_ids: vec![12345],
            stripe_customer_ids: vec!["cus_1".into()],
            api_token_sha256: vec!["a".repeat(64)],
        }
    }

    fn decide_and_apply(tenant: Tenant, command: RegisterTenant) -> (Tenant, Vec<&'static str>) {
        let events = tenant
            .decide(TenantCommand::RegisterTenant(command))
            .unwrap();
        let types = events.iter().map(Event::event_type).collect();
        (events.iter().fold(tenant, Tenant::evolve), types)
    }

    #[test]
    fn the_first_registration_records_everything() {
        let (tenant, types) = decide_and_apply(
            Tenant::default(),
            register("Salon Berlin", vec![branch("mitte", &["+493083793369"])]),
        );
        assert_eq!(
            types,
            [
                "TenantRegistered",
                "BranchRegistered",
                "PhoneNumberAssigned",
                "CalcomOrganizerLinked",
                "StripeCustomerLinked",
                "ApiTokensSet"
            ]
        );
        assert_eq!(
            tenant.branch_for_number("+493083793369").map(|(id, _)| id),
            Some("mitte")
        );
    }

    #[test]
    fn an_identical_registration_records_nothing() {
        let command = register("Salon Berlin", vec![branch("mitte", &["+493083793369"])]);
        let (tenant, _) = decide_and_apply(Tenant::default(), command.clone());
        assert_eq!(
            tenant.decide(TenantCommand::RegisterTenant(command)),
            Ok(vec![])
        );
    }

    #[test]
    fn only_the_differences_are_recorded() {
        let (tenant, _) = decide_and_apply(
            Tenant::default(),
            register(
                "Salon Berlin",
                vec![branch("mitte", &["+493083793369", "+493000000001"])],
            ),
        );
        let (tenant, types) = decide_and_apply(
            tenant,
            register(
                "Salon Berlin GmbH",
                vec![
                    branch("mitte", &["+493083793369"]),
                    branch("kreuzberg", &["+493000000001"]),
                ],
            ),
        );
        assert_eq!(
            types,
            ["TenantUpdated", "BranchRegistered", "PhoneNumberAssigned"]
        );
        assert_eq!(
            tenant.branch_for_number("+493000000001").map(|(id, _)| id),
            Some("kreuzberg"),
            "the number moved"
        );
        let (tenant, types) = decide_and_apply(
            tenant,
            register("Salon Berlin GmbH", vec![branch("kreuzberg", &[])]),
        );
        assert_eq!(
            types,
            [
                "PhoneNumberUnassigned",
                "PhoneNumberUnassigned",
                "BranchRemoved"
            ]
        );
        assert!(tenant.phone_numbers().is_empty());
    }

    #[test]
    fn an_invalid_registry_is_refused_with_the_reason() {
        let refuse = |command: RegisterTenant| {
            Tenant::default().decide(TenantCommand::RegisterTenant(command))
        };
        assert_eq!(
            refuse(register("  ", vec![])),
            Err(Rejection::EmptyTenantName)
        );
        assert_eq!(
            refuse(register("S", vec![branch("a", &["030 123"])])),
            Err(Rejection::InvalidPhoneNumber {
                phone_number: "030 123".into()
            })
        );
        assert_eq!(
            refuse(register(
                "S",
                vec![branch("a", &["+4930123456"]), branch("b", &["+4930123456"])]
            )),
            Err(Rejection::PhoneNumberInTwoBranches {
                phone_number: "+4930123456".into(),
                first_branch_id: "a".into(),
                second_branch_id: "b".into()
            })
        );
        assert_eq!(
            refuse(register("S", vec![branch("a", &[]), branch("a", &[])])),
            Err(Rejection::DuplicateBranch {
                branch_id: "a".into()
            })
        );
        let mut zoned = branch("a", &[]);
        zoned.profile.time_zone = Some("Europe/Berlinn".into());
        assert_eq!(
            refuse(register("S", vec![zoned])),
            Err(Rejection::UnknownTimeZone {
                branch_id: "a".into(),
                time_zone: "Europe/Berlinn".into()
            })
        );
        let mut hours = branch("a", &[]);
        hours.profile.opening_hours = vec![OpeningHours {
            day: Weekday::Mon,
            opens: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            closes: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        }];
        assert_eq!(
            refuse(register("S", vec![hours])),
            Err(Rejection::InvalidOpeningHours {
                branch_id: "a".into(),
                day: "mon".into()
            })
        );
        let mut raw_token = register("S", vec![]);
        raw_token.api_token_sha256 = vec!["secret-token".into()];
        assert_eq!(refuse(raw_token), Err(Rejection::InvalidTokenHash));
    }

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+493083793369"));
        assert!(!is_e164("493083793369"));
        assert!(!is_e164("+49 30 83793369"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1234567"));
    }

    fn subscription(status: &str) -> SubscriptionFacts {
        SubscriptionFacts {
            tenant_id: Some("t1".into()),
            stripe_customer_id: "cus_1".into(),
            subscription_id: "sub_1".into(),
            status: status.into(),
            plan: Some("pro".into()),
            amount: Some(9900),
            currency: Some("eur".into()),
            interval: Some("month".into()),
            current_period_start: None,
            current_period_end: None,
            cancel_at_period_end: None,
        }
    }

    fn change(event_id: &str, seconds: i64, status: &str) -> SubscriptionChange {
        SubscriptionChange {
            stripe_event_id: event_id.into(),
            occurred_at: at(seconds),
            subscription: subscription(status),
        }
    }

    fn run(
        commands: impl IntoIterator<Item = BillingCommand>,
    ) -> (Billing, Vec<Result<Vec<Event>, Rejection>>) {
        let mut billing = Billing::default();
        let mut outcomes = vec![];
        for command in commands {
            let outcome = billing.decide(command);
            if let Ok(events) = &outcome {
                billing = events.iter().fold(billing, Billing::evolve);
            }
            outcomes.push(outcome);
        }
        (billing, outcomes)
    }

    #[test]
    fn a_subscription_runs_started_updated_cancelled() {
        let (billing, outcomes) = run([
            BillingCommand::StartSubscription(change("evt_1", 0, "active")),
            BillingCommand::UpdateSubscription(change("evt_2", 10, "past_due")),
            BillingCommand::CancelSubscription(change("evt_3", 20, "canceled")),
        ]);
        assert!(
            outcomes
                .iter()
                .all(|o| o.as_ref().is_ok_and(|e| e.len() == 1))
        );
        let (id, history) = billing.current_subscription().unwrap();
        assert_eq!(
            (id, history.status(), history.plan()),
            ("sub_1", Some("canceled"), Some("pro"))
        );
    }

    #[test]
    fn an_update_after_the_cancellation_is_refused_and_an_earlier_late_one_is_history() {
        let (billing, outcomes) = run([
            BillingCommand::StartSubscription(change("evt_1", 0, "active")),
            BillingCommand::CancelSubscription(change("evt_3", 20, "canceled")),
            BillingCommand::UpdateSubscription(change("evt_4", 30, "active")),
            BillingCommand::UpdateSubscription(change("evt_2", 10, "past_due")),
        ]);
        assert_eq!(
            outcomes[2],
            Err(Rejection::SubscriptionUpdateAfterCancellation {
                subscription_id: "sub_1".into(),
                cancelled_at: at(20)
            })
        );
        assert!(outcomes[3].is_ok());
        assert_eq!(billing.subscriptions()["sub_1"].status(), Some("canceled"));
    }

    #[test]
    fn an_update_before_the_start_arrives_is_kept_and_the_latest_status_wins() {
        let (billing, _) = run([
            BillingCommand::UpdateSubscription(change("evt_2", 10, "past_due")),
            BillingCommand::StartSubscription(change("evt_1", 0, "active")),
        ]);
        assert_eq!(billing.subscriptions()["sub_1"].status(), Some("past_due"));
    }

    fn invoice() -> InvoiceFacts {
        InvoiceFacts {
            tenant_id: None,
            stripe_customer_id: "cus_1".into(),
            invoice_id: "in_1".into(),
            subscription_id: Some("sub_1".into()),
            amount: 9900,
            currency: "eur".into(),
            plan: Some("pro".into()),
        }
    }

    #[test]
    fn payments_are_recorded_once() {
        let paid = |event_id: &str| {
            BillingCommand::RecordPaymentSucceeded(RecordPaymentSucceeded {
                stripe_event_id: event_id.into(),
                occurred_at: at(5),
                invoice: invoice(),
                paid_at: Some(at(5)),
            })
        };
        let failed = |event_id: &str| {
            BillingCommand::RecordPaymentFailed(RecordPaymentFailed {
                stripe_event_id: event_id.into(),
                occurred_at: at(1),
                invoice: invoice(),
                failure: PaymentFailure {
                    failure_code: Some("card_declined".into()),
                    decline_code: None,
                    failure_message: None,
                    attempt_count: Some(1),
                    next_attempt_at: None,
                },
            })
        };
        let (billing, outcomes) = run([
            failed("evt_f"),
            failed("evt_f"),
            paid("evt_p"),
            paid("evt_p"),
            paid("evt_p2"),
        ]);
        let counts: Vec<usize> = outcomes.into_iter().map(|o| o.unwrap().len()).collect();
        assert_eq!(counts, [1, 0, 1, 0, 0]);
        let history = &billing.invoices()["in_1"];
        assert_eq!(history.failures.len(), 1);
        assert!(history.succeeded.is_some());
    }

    #[test]
    fn a_tenant_stream_folds_registry_and_billing_together() {
        let registry = Tenant::default()
            .decide(TenantCommand::RegisterTenant(register("S", vec![])))
            .unwrap();
        let billing = Billing::default()
            .decide(BillingCommand::StartSubscription(change(
                "evt_1", 0, "active",
            )))
            .unwrap();
        let events: Vec<Event> = registry.into_iter().chain(billing).collect();
        let tenant = replay::<Tenant>(&events);
        assert_eq!(tenant.name(), Some("S"));
        assert_eq!(
            tenant.billing().subscriptions()["sub_1"].status(),
            Some("active")
        );
    }
}
