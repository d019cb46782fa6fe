//! The customers read model: one row per person per tenant, keyed by the phone number in
//! E.164. Calls (the caller's number, the name the agent collected) and bookings (attendee
//! name, email, phone) merge into the same row, so no repair `UPDATE … JOIN customers` is
//! ever needed: the link is made as the facts arrive.

use crate::sql::{SqlError, params};
use uuid::Uuid;

use crate::apply::Cx;
use crate::tenants;

/// Fixed namespace for customer ids: the same tenant and number give the same id in every
/// rebuild and on every machine.
const CUSTOMER_NAMESPACE: Uuid = Uuid::from_u128(0x5b1f_0c3e_9a4d_4c1b_8e57_2f6a_d0c4_e913);

pub fn customer_id(tenant_id: &str, phone_e164: &str) -> String {
    let key = format!("{tenant_id}\u{0}{phone_e164}");
    Uuid::new_v5(&CUSTOMER_NAMESPACE, key.as_bytes()).to_string()
}

/// Who a fact says the person is. `authoritative` details (what the person typed into a
/// booking) replace earlier ones; the rest (what the agent understood on the phone) only fill
/// gaps.
pub(crate) struct Person<'a> {
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub authoritative: bool,
}

/// The customer for `phone_e164` at `tenant_id`, created on first sight, with `calls` and
/// `appointments` added to its counts; returns its id.
pub(crate) fn link(
    cx: &Cx<'_>,
    tenant_id: &str,
    phone_e164: &str,
    person: Person<'_>,
    calls: i64,
    appointments: i64,
) -> Result<String, SqlError> {
    let id = customer_id(tenant_id, phone_e164);
    // Inserting first both asks "is it new?" and creates it: one statement for a new
    // customer, two (as a lookup and an update would be) for a known one.
    let created = cx
        .conn
        .prepare_cached(
            "INSERT INTO customers (customer_id, seq, tenant_id, phone, name, email,
                                    calls_count, appointments_count, first_seen_at,
                                    last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
             ON CONFLICT (customer_id) DO NOTHING",
        )?
        .execute(params![
            id,
            cx.seq(),
            tenant_id,
            phone_e164,
            person.name,
            person.email,
            calls,
            appointments,
            cx.at
        ])?
        == 1;
    if created {
        tenants::add_customer(cx, tenant_id)?;
    } else {
        let sql = if person.authoritative {
            "UPDATE customers SET name = COALESCE(?2, name), email = COALESCE(?3, email),
                 last_seen_at = CASE WHEN last_seen_at >= ?4 THEN last_seen_at ELSE ?4 END, calls_count = calls_count + ?5,
                 appointments_count = appointments_count + ?6
             WHERE customer_id = ?1"
        } else {
            "UPDATE customers SET name = COALESCE(name, ?2), email = COALESCE(email, ?3),
                 last_seen_at = CASE WHEN last_seen_at >= ?4 THEN last_seen_at ELSE ?4 END, calls_count = calls_count + ?5,
                 appointments_count = appointments_count + ?6
             WHERE customer_id = ?1"
        };
        cx.conn.prepare_cached(sql)?.execute(params![
            id,
            person.name,
            person.email,
            cx.at,
            calls,
            appointments
        ])?;
    }
    Ok(id)
}

/// Merges what a later fact says about a known customer.
pub(crate) fn update(cx: &Cx<'_>, id: &str, person: Person<'_>) -> Result<(), SqlError> {
    let sql = if person.authoritative {
        "UPDATE customers SET name = COALESCE(?2, name), email = COALESCE(?3, email),
             last_seen_at = CASE WHEN last_seen_at >= ?4 THEN last_seen_at ELSE ?4 END WHERE customer_id = ?1"
    } else {
        "UPDATE customers SET name = COALESCE(name, ?2), email = COALESCE(email, ?3),
             last_seen_at = CASE WHEN last_seen_at >= ?4 THEN last_seen_at ELSE ?4 END WHERE customer_id = ?1"
    };
    cx.conn
        .prepare_cached(sql)?
        .execute(params![id, person.name, person.email, cx.at])?;
    Ok(())
}

pub(crate) fn count_appointment(cx: &Cx<'_>, id: &str, delta: i64) -> Result<(), SqlError> {
    cx.conn
        .prepare_cached(
            "UPDATE customers SET appointments_count = appointments_count + ?2
             WHERE customer_id = ?1",
        )?
        .execute(params![id, delta])?;
    Ok(())
}
