//! The commands: what a delivery (or the policy, or an admin request) asks an aggregate to
//! record. A command says what happened at the provider; the aggregate decides which events,
//! if any, that makes.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

use crate::event::{
    AppointmentForm, AvailabilityAnswer, BookingDetails, BranchProfile, CallAnalysis, CallOutcome,
    CallParties, EventTypeDetails, InvoiceFacts, PaymentFailure, SubscriptionFacts,
};
use crate::stream::{AggregateKind, StreamId};

/// Any command, by the kind of aggregate it is for.
#[allow(
    clippy::large_enum_variant,
    reason = "commands live for one decision and are moved once; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Command {
    Call(CallCommand),
    Booking(BookingCommand),
    Tenant(TenantCommand),
    Billing(BillingCommand),
    EventType(EventTypeCommand),
}

impl Command {
    /// The command's name, e.g. `CancelBooking`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Call(command) => match command {
                CallCommand::StartCall(_) => "StartCall",
                CallCommand::EndCall(_) => "EndCall",
                CallCommand::AnalyzeCall(_) => "AnalyzeCall",
                CallCommand::RecordAvailabilityCheck(_) => "RecordAvailabilityCheck",
                CallCommand::LinkBooking(_) => "LinkBooking",
            },
            Command::Booking(command) => match command {
                BookingCommand::CreateBooking(_) => "CreateBooking",
                BookingCommand::RescheduleBooking(_) => "RescheduleBooking",
                BookingCommand::CancelBooking(_) => "CancelBooking",
                BookingCommand::MarkRescheduledTo(_) => "MarkRescheduledTo",
            },
            Command::Tenant(TenantCommand::RegisterTenant(_)) => "RegisterTenant",
            Command::Billing(command) => match command {
                BillingCommand::StartSubscription(_) => "StartSubscription",
                BillingCommand::UpdateSubscription(_) => "UpdateSubscription",
                BillingCommand::CancelSubscription(_) => "CancelSubscription",
                BillingCommand::RecordPaymentSucceeded(_) => "RecordPaymentSucceeded",
                BillingCommand::RecordPaymentFailed(_) => "RecordPaymentFailed",
            },
            Command::EventType(EventTypeCommand::CreateEventType(_)) => "CreateEventType",
        }
    }

    /// The kind of aggregate (and so of stream) that rules on this command.
    ///
    /// Billing commands go to a `tenant-…` stream when Stripe names the tenant and to a
    /// `billing-…` stream otherwise; this returns [`AggregateKind::Billing`] for them and
    /// [`Command::applies_to`] accepts both.
    pub fn aggregate_kind(&self) -> AggregateKind {
        match self {
            Command::Call(_) => AggregateKind::Call,
            Command::Booking(_) => AggregateKind::Booking,
            Command::Tenant(_) => AggregateKind::Tenant,
            Command::Billing(_) => AggregateKind::Billing,
            Command::EventType(_) => AggregateKind::EventType,
        }
    }

    /// Whether a stream of this kind accepts the command.
    pub fn applies_to(&self, kind: AggregateKind) -> bool {
        match self {
            Command::Billing(_) => matches!(kind, AggregateKind::Billing | AggregateKind::Tenant),
            other => other.aggregate_kind() == kind,
        }
    }

    /// The provider's time of the fact the command reports.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Command::Call(command) => match command {
                CallCommand::StartCall(c) => c.occurred_at,
                CallCommand::EndCall(c) => c.occurred_at,
                CallCommand::AnalyzeCall(c) => c.occurred_at,
                CallCommand::RecordAvailabilityCheck(c) => c.occurred_at,
                CallCommand::LinkBooking(c) => c.occurred_at,
            },
            Command::Booking(command) => match command {
                BookingCommand::CreateBooking(c) => c.occurred_at,
                BookingCommand::RescheduleBooking(c) => c.occurred_at,
                BookingCommand::CancelBooking(c) => c.occurred_at,
                BookingCommand::MarkRescheduledTo(c) => c.occurred_at,
            },
            Command::Tenant(TenantCommand::RegisterTenant(c)) => c.occurred_at,
            Command::Billing(command) => match command {
                BillingCommand::StartSubscription(c)
                | BillingCommand::UpdateSubscription(c)
                | BillingCommand::CancelSubscription(c) => c.occurred_at,
                BillingCommand::RecordPaymentSucceeded(c) => c.occurred_at,
                BillingCommand::RecordPaymentFailed(c) => c.occurred_at,
            },
            Command::EventType(EventTypeCommand::CreateEventType(c)) => c.occurred_at,
        }
    }

    /// The stream the command names, if it names one by itself. Billing commands do not:
    /// the intake chooses `tenant-…` or `billing-…` for them.
    pub fn named_stream(&self) -> Option<StreamId> {
        Some(match self {
            Command::Call(command) => StreamId::call(match command {
                CallCommand::StartCall(c) => &c.call_id,
                CallCommand::EndCall(c) => &c.call_id,
                CallCommand::AnalyzeCall(c) => &c.call_id,
                CallCommand::RecordAvailabilityCheck(c) => &c.call_id,
                CallCommand::LinkBooking(c) => &c.call_id,
            }),
            Command::Booking(command) => StreamId::booking(match command {
                BookingCommand::CreateBooking(c) => &c.booking_uid,
                BookingCommand::RescheduleBooking(c) => &c.booking_uid,
                BookingCommand::CancelBooking(c) => &c.booking_uid,
                BookingCommand::MarkRescheduledTo(c) => &c.booking_uid,
            }),
            Command::Tenant(TenantCommand::RegisterTenant(c)) => StreamId::tenant(&c.tenant_id),
            Command::EventType(EventTypeCommand::CreateEventType(c)) => {
                StreamId::event_type(c.event_type_id)
            }
            Command::Billing(_) => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

#[allow(
    clippy::large_enum_variant,
    reason = "commands live for one decision and are moved once; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CallCommand {
    StartCall(StartCall),
    EndCall(EndCall),
    AnalyzeCall(AnalyzeCall),
    RecordAvailabilityCheck(RecordAvailabilityCheck),
    /// Sent by the policy when a booking names this call.
    LinkBooking(LinkBooking),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartCall {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    pub parties: CallParties,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndCall {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    pub parties: CallParties,
    pub outcome: CallOutcome,
    /// The appointment form the agent collected, if any.
    pub appointment_form: Option<AppointmentForm>,
    /// The branch's time zone, to read the form's local date and time (Europe/Berlin when
    /// the branch names none).
    #[serde(serialize_with = "serialize_time_zone")]
    pub time_zone: Tz,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyzeCall {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    pub analysis: CallAnalysis,
    /// Retell's real shape carries the appointment form here
    /// (`call_analysis.custom_analysis_data`), not in `call_ended`.
    pub appointment_form: Option<AppointmentForm>,
    #[serde(serialize_with = "serialize_time_zone")]
    pub time_zone: Tz,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordAvailabilityCheck {
    pub call_id: String,
    pub occurred_at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub function_name: String,
    pub arguments: serde_json::Value,
    /// What the server answered; the domain does not compute availability.
    pub answer: AvailabilityAnswer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkBooking {
    pub call_id: String,
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Bookings and event types
// ---------------------------------------------------------------------------------------------

#[allow(
    clippy::large_enum_variant,
    reason = "commands live for one decision and are moved once; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum BookingCommand {
    CreateBooking(CreateBooking),
    RescheduleBooking(RescheduleBooking),
    CancelBooking(CancelBooking),
    /// Sent by the policy to the old booking when Cal.com rescheduled it into a new uid.
    MarkRescheduledTo(MarkRescheduledTo),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateBooking {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub details: BookingDetails,
    pub call_id: Option<String>,
    pub rescheduled_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RescheduleBooking {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub previous_start: Option<DateTime<Utc>>,
    pub previous_end: Option<DateTime<Utc>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub rescheduled_by: Option<String>,
    /// `metadata.call_id`, when the delivery carries it: links even if `created` is late.
    pub call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelBooking {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub reason: Option<String>,
    pub cancelled_by: Option<String>,
    /// `metadata.call_id`, when the delivery carries it: links even if `created` is late.
    pub call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarkRescheduledTo {
    pub booking_uid: String,
    pub occurred_at: DateTime<Utc>,
    pub new_booking_uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum EventTypeCommand {
    CreateEventType(CreateEventType),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateEventType {
    pub event_type_id: i64,
    pub occurred_at: DateTime<Utc>,
    pub details: EventTypeDetails,
}

// ---------------------------------------------------------------------------------------------
// Tenants and billing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TenantCommand {
    RegisterTenant(RegisterTenant),
}

/// The full desired registry of a tenant (`PUT /api/tenants/{id}`); the aggregate records only
/// what differs from what it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterTenant {
    pub tenant_id: String,
    /// The time of the request, by the server's clock (the domain has none).
    pub occurred_at: DateTime<Utc>,
    pub name: String,
    pub branches: Vec<BranchRegistration>,
    pub calcom_organizer_ids: Vec<i64>,
    pub stripe_customer_ids: Vec<String>,
    /// SHA-256 hex digests of the tenant's API tokens.
    pub api_token_sha256: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchRegistration {
    pub branch_id: String,
    pub profile: BranchProfile,
    /// E.164 numbers that ring at this branch.
    pub phone_numbers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum BillingCommand {
    StartSubscription(SubscriptionChange),
    UpdateSubscription(SubscriptionChange),
    CancelSubscription(SubscriptionChange),
    RecordPaymentSucceeded(RecordPaymentSucceeded),
    RecordPaymentFailed(RecordPaymentFailed),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionChange {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub subscription: SubscriptionFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPaymentSucceeded {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub invoice: InvoiceFacts,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPaymentFailed {
    pub stripe_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub invoice: InvoiceFacts,
    pub failure: PaymentFailure,
}

fn serialize_time_zone<S: Serializer>(time_zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(time_zone.name())
}

macro_rules! into_command {
    ($($outer:ident :: $variant:ident ( $inner:ident :: $inner_variant:ident ( $ty:ty ) )),* $(,)?) => {
        $(impl From<$ty> for Command {
            fn from(command: $ty) -> Self {
                Command::$outer($inner::$inner_variant(command))
            }
        })*
    };
}

into_command! {
    Call::Call(CallCommand::StartCall(StartCall)),
    Call::Call(CallCommand::EndCall(EndCall)),
    Call::Call(CallCommand::AnalyzeCall(AnalyzeCall)),
    Call::Call(CallCommand::RecordAvailabilityCheck(RecordAvailabilityCheck)),
    Call::Call(CallCommand::LinkBooking(LinkBooking)),
    Booking::Booking(BookingCommand::CreateBooking(CreateBooking)),
    Booking::Booking(BookingCommand::RescheduleBooking(RescheduleBooking)),
    Booking::Booking(BookingCommand::CancelBooking(CancelBooking)),
    Booking::Booking(BookingCommand::MarkRescheduledTo(MarkRescheduledTo)),
    Tenant::Tenant(TenantCommand::RegisterTenant(RegisterTenant)),
    EventType::EventType(EventTypeCommand::CreateEventType(CreateEventType)),
    Billing::Billing(BillingCommand::RecordPaymentSucceeded(RecordPaymentSucceeded)),
    Billing::Billing(BillingCommand::RecordPaymentFailed(RecordPaymentFailed)),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cancel() -> Command {
        CancelBooking {
            booking_uid: "bkg_1".into(),
            occurred_at: Utc.timestamp_opt(100, 0).unwrap(),
            reason: None,
            cancelled_by: None,
            call_id: None,
        }
        .into()
    }

    #[test]
    fn a_command_knows_its_name_time_and_stream() {
        let command = cancel();
        assert_eq!(command.name(), "CancelBooking");
        assert_eq!(command.occurred_at(), Utc.timestamp_opt(100, 0).unwrap());
        assert_eq!(command.named_stream(), Some(StreamId::booking("bkg_1")));
        assert!(command.applies_to(AggregateKind::Booking));
        assert!(!command.applies_to(AggregateKind::Call));
    }

    #[test]
    fn billing_commands_apply_to_tenant_and_billing_streams() {
        let command = Command::Billing(BillingCommand::CancelSubscription(SubscriptionChange {
            stripe_event_id: "evt_1".into(),
            occurred_at: Utc.timestamp_opt(0, 0).unwrap(),
            subscription: SubscriptionFacts {
                tenant_id: None,
                stripe_customer_id: "cus_1".into(),
                subscription_id: "sub_1".into(),
                status: "canceled".into(),
                plan: None,
                amount: None,
                currency: None,
                interval: None,
                current_period_start: None,
                current_period_end: None,
                cancel_at_period_end: None,
            },
        }));
        assert!(command.applies_to(AggregateKind::Tenant));
        assert!(command.applies_to(AggregateKind::Billing));
        assert!(!command.applies_to(AggregateKind::Booking));
        assert_eq!(command.named_stream(), None);
    }

    #[test]
    fn the_time_zone_serializes_by_its_iana_name() {
        let command = EndCall {
            call_id: "c".into(),
            occurred_at: Utc.timestamp_opt(0, 0).unwrap(),
            parties: CallParties::default(),
            outcome: CallOutcome::default(),
            appointment_form: None,
            time_zone: chrono_tz::Europe::Berlin,
        };
        let json = serde_json::to_value(Command::from(command)).unwrap();
        assert_eq!(json["EndCall"]["time_zone"], "Europe/Berlin");
    }
}
