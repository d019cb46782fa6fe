//! Tenant attribution that rebuilds: which tenant (and branch) a call, appointment or Stripe
//! record belongs to, decided from the registry as the fold goes, and decided again for the
//! records still waiting whenever a mapping is registered. A record that arrived before its
//! phone number, organizer or Stripe customer was registered is attributed by the event that
//! registers it — never by repair SQL — and its `unattributed_*` anomaly is resolved.

use crate::sql::{OptionalExtension, SqlError};

use crate::apply::{Applied, Cx};
use crate::calls::CallRow;
use crate::customers::{self, Person};
use crate::{anomalies, appointments, tenants};

/// Attributes the call if it is not yet, links its customer, and passes what changed on to
/// the appointments that came from it. `call` is the row as the caller's change left it;
/// `hint` is an owner already known (the tenant the intake routed the delivery to, or the
/// branch the call's number was just assigned to), used instead of looking the number up;
/// `report` records an `unattributed_call` anomaly when nothing owns the number.
pub(crate) fn settle_call(
    cx: &Cx<'_, '_>,
    call_id: &str,
    call: CallRow,
    hint: Option<(&str, Option<&str>)>,
    report: bool,
) -> Applied {
    let mut attributed = false;
    let mut owner = call.tenant_id.clone().map(|t| (t, call.branch_id.clone()));
    if owner.is_none() {
        owner = match hint {
            Some((tenant, branch)) => Some((tenant.to_owned(), branch.map(str::to_owned))),
            None => number_owner(cx, call.tenant_number.as_deref())?,
        };
        match &owner {
            Some((tenant, branch)) => {
                tenants::add_call(cx, tenant, branch.as_deref())?;
                // Even a call created by this very event may have anomalies already: one
                // recorded on its stream before any event made its row (a delivery no rule
                // applies to, an event that could not be read).
                anomalies::resolve(cx, "call", call_id, tenant)?;
                attributed = true;
            }
            None if report => {
                let message = match &call.tenant_number {
                    Some(number) => format!("call {call_id}: no tenant owns {number} yet"),
                    None => format!("call {call_id}: the call names no number a tenant could own"),
                };
                anomalies::unattributed(cx, "call", call_id, "unattributed_call", message)?;
            }
            None => {}
        }
    }
    let mut customer = None;
    if let Some((tenant, _)) = &owner {
        let person = Person {
            name: call.customer_name.as_deref(),
            email: None,
            authoritative: false,
        };
        match (&call.customer_id, &call.customer_number) {
            (None, Some(number)) => {
                customer = Some(customers::link(cx, tenant, number, person, 1, 0)?);
            }
            (Some(id), _) if call.customer_name.is_some() => customers::update(cx, id, person)?,
            _ => {}
        }
    }
    if !attributed && customer.is_none() {
        return Ok(());
    }
    let (tenant, branch) = owner.unzip();
    cx.batch.calls.change(cx.conn, call_id, |slot| {
        if let Some(call) = slot {
            call.tenant_id = tenant;
            call.branch_id = branch.flatten();
            if customer.is_some() {
                call.customer_id = customer;
            }
        }
    })?;
    // Its bookings and its request, in the order they were recorded.
    let mut waiting: Vec<(String, i64)> = appointments::bookings_of_call(cx, call_id)?
        .into_iter()
        .filter(|booking| booking.unsettled)
        .map(|booking| (booking.appointment_id, booking.seq))
        .collect();
    let request_id = appointments::request_id(call_id);
    let request = cx.batch.appointments.read(cx.conn, &request_id, |row| {
        // (A booking whose uid happens to read `request-…` came through the query already.)
        row.filter(|r| r.booking_uid.is_none())
            .filter(|r| r.tenant_id.is_none() || r.branch_id.is_none() || r.customer_id.is_none())
            .map(|r| r.seq)
    })?;
    if let Some(seq) = request {
        waiting.push((request_id, seq));
    }
    waiting.sort_unstable_by_key(|(_, seq)| *seq);
    for (appointment_id, _) in waiting {
        settle_appointment(cx, &appointment_id, false)?;
    }
    Ok(())
}

struct AppointmentRow {
    tenant_id: Option<String>,
    branch_id: Option<String>,
    call_id: Option<String>,
    organizer_id: Option<i64>,
    attendee_phone: Option<String>,
    attendee_name: Option<String>,
    attendee_email: Option<String>,
    customer_id: Option<String>,
    booking_uid: Option<String>,
}

/// Attributes an appointment to the tenant of its organizer, or else of its call; fills its
/// branch from the call; links its customer (the attendee's phone, or else the call's
/// customer). `report` records an `unattributed_booking` anomaly when no tenant is found.
pub(crate) fn settle_appointment(cx: &Cx<'_, '_>, appointment_id: &str, report: bool) -> Applied {
    let Some(row) = cx.batch.appointments.read(cx.conn, appointment_id, |row| {
        row.map(|r| AppointmentRow {
            tenant_id: r.tenant_id.clone(),
            branch_id: r.branch_id.clone(),
            call_id: r.call_id.clone(),
            organizer_id: r.organizer_id,
            attendee_phone: r.attendee_phone.clone(),
            attendee_name: r.attendee_name.clone(),
            attendee_email: r.attendee_email.clone(),
            customer_id: r.customer_id.clone(),
            booking_uid: r.booking_uid.clone(),
        })
    })?
    else {
        return Ok(());
    };
    let call = match &row.call_id {
        Some(call_id) => cx.batch.calls.read(cx.conn, call_id, |call| {
            let call = call?;
            let tenant = call.tenant_id.clone()?;
            Some((tenant, call.branch_id.clone(), call.customer_id.clone()))
        })?,
        None => None,
    };

    let mut tenant = row.tenant_id.clone();
    let mut branch = row.branch_id.clone();
    if tenant.is_none() {
        tenant = match row.organizer_id {
            Some(organizer) => cx
                .conn
                .prepare_cached("SELECT tenant_id FROM calcom_organizers WHERE organizer_id = ?1")?
                .query_row([organizer], |r| r.get(0))
                .optional()?,
            None => None,
        };
        if tenant.is_none() {
            tenant = call.as_ref().map(|(t, _, _)| t.clone());
        }
    }
    if branch.is_none() {
        // The call's branch counts only for the tenant that owns the call.
        branch = call
            .as_ref()
            .filter(|(t, _, _)| Some(t) == tenant.as_ref())
            .and_then(|(_, b, _)| b.clone());
    }
    let Some(tenant) = tenant else {
        if let (true, Some(uid)) = (report, &row.booking_uid) {
            let message = match row.organizer_id {
                Some(organizer) => format!(
                    "booking {uid}: no tenant has linked Cal.com organizer {organizer} and no attributed call names it"
                ),
                None => format!("booking {uid}: no organizer and no attributed call"),
            };
            anomalies::unattributed(cx, "booking", uid, "unattributed_booking", message)?;
        }
        return Ok(());
    };
    if row.tenant_id.is_none() || row.branch_id != branch {
        cx.batch
            .appointments
            .update(cx.conn, appointment_id, |row| {
                row.tenant_id = Some(tenant.clone());
                row.branch_id.clone_from(&branch);
            })?;
        let new_branch = if row.branch_id.is_none() {
            branch.as_deref()
        } else {
            None
        };
        tenants::add_appointment(cx, &tenant, row.tenant_id.is_none(), new_branch, 1)?;
        if let Some(uid) = &row.booking_uid {
            anomalies::resolve(cx, "booking", uid, &tenant)?;
        }
    }

    if row.customer_id.is_none() {
        let person = Person {
            name: row.attendee_name.as_deref(),
            email: row.attendee_email.as_deref(),
            authoritative: true,
        };
        let customer = match cx.phones.normalize(row.attendee_phone.as_deref()) {
            // Created or merged with the appointment counted in the same statement.
            Some(phone) => Some(customers::link(cx, &tenant, &phone, person, 0, 1)?),
            // No usable phone: the person is the caller of the call the booking came from.
            None => match call
                .as_ref()
                .filter(|(t, _, _)| *t == tenant)
                .and_then(|(_, _, c)| c.clone())
            {
                Some(id) => {
                    customers::count_appointment(cx, &id, 1)?;
                    customers::update(cx, &id, person)?;
                    Some(id)
                }
                None => None,
            },
        };
        if let Some(id) = customer {
            cx.batch
                .appointments
                .update(cx.conn, appointment_id, |row| {
                    row.customer_id = Some(id);
                })?;
        }
    }
    Ok(())
}

/// The tenant and branch a number rings at, if any.
pub(crate) fn number_owner(
    cx: &Cx<'_, '_>,
    number: Option<&str>,
) -> Result<Option<(String, Option<String>)>, SqlError> {
    let Some(number) = number else {
        return Ok(None);
    };
    if let Some(owner) = cx.batch.number_owners.borrow().get(number) {
        return Ok(owner.clone());
    }
    let owner = cx
        .conn
        .prepare_cached("SELECT tenant_id, branch_id FROM phone_numbers WHERE phone_number = ?1")?
        .query_row([number], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    cx.batch
        .number_owners
        .borrow_mut()
        .insert(number.to_owned(), owner.clone());
    Ok(owner)
}

/// The tenant a Stripe record belongs to: the one it names (`metadata.company_id`), or else
/// the one that linked its Stripe customer.
pub(crate) fn stripe_owner(
    cx: &Cx<'_, '_>,
    named: Option<&str>,
    stripe_customer_id: &str,
) -> Result<Option<String>, SqlError> {
    if let Some(tenant) = named {
        return Ok(Some(tenant.to_owned()));
    }
    cx.conn
        .prepare_cached("SELECT tenant_id FROM stripe_customers WHERE stripe_customer_id = ?1")?
        .query_row([stripe_customer_id], |r| r.get(0))
        .optional()
}
