//! The customers read model: one row per person per tenant, keyed by the phone number in
//! E.164. Calls (the caller's number, the name the agent collected) and bookings (attendee
//! name, email, phone) merge into the same row, so no repair `UPDATE … JOIN customers` is
//! ever needed: the link is made as the facts arrive.
//!
//! A customer is touched by nearly every event of its calls and bookings, always by its id:
//! the batch holds the rows (see `held.rs`) and writes each changed one once.

use uuid::Uuid;

use crate::apply::Cx;
use crate::held::Record;
use crate::sql::{Row, SqlError, SqlResult, Statement, params};
use crate::tenants;

/// Fixed namespace for customer ids: the same tenant and number give the same id in every
/// rebuild and on every machine.
const CUSTOMER_NAMESPACE: Uuid = Uuid::from_u128(0x5b1f_0c3e_9a4d_4c1b_8e57_2f6a_d0c4_e913);

pub fn customer_id(tenant_id: &str, phone_e164: &str) -> String {
    // The key and the text without `fmt`: nearly every call and booking derives an id.
    let key = [tenant_id.as_bytes(), &[0], phone_e164.as_bytes()].concat();
    let mut text = Uuid::encode_buffer();
    Uuid::new_v5(&CUSTOMER_NAMESPACE, &key)
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

/// Who a fact says the person is. `authoritative` details (what the person typed into a
/// booking) replace earlier ones; the rest (what the agent understood on the phone) only fill
/// gaps.
pub(crate) struct Person<'a> {
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub authoritative: bool,
}

/// One row of `customers`, every column (README.md documents them).
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    customer_id: String,
    seq: i64,
    tenant_id: String,
    phone: String,
    name: Option<String>,
    email: Option<String>,
    calls_count: i64,
    appointments_count: i64,
    first_seen_at: String,
    last_seen_at: String,
}

impl Customer {
    /// Merges what a fact seen at `at` says about the person.
    fn merge(&mut self, person: &Person<'_>, at: &str) {
        let merge = |old: &mut Option<String>, new: Option<&str>| {
            if let Some(new) = new
                && (person.authoritative || old.is_none())
            {
                *old = Some(new.to_owned());
            }
        };
        merge(&mut self.name, person.name);
        merge(&mut self.email, person.email);
        if self.last_seen_at.as_str() < at {
            self.last_seen_at = at.to_owned();
        }
    }
}

impl Record for Customer {
    const SELECT: &'static str = "SELECT customer_id, seq, tenant_id, phone, name, email,
            calls_count, appointments_count, first_seen_at, last_seen_at
         FROM customers WHERE customer_id = ?1";

    fn from_row(row: &Row<'_>) -> SqlResult<Customer> {
        Ok(Customer {
            customer_id: row.get(0)?,
            seq: row.get(1)?,
            tenant_id: row.get(2)?,
            phone: row.get(3)?,
            name: row.get(4)?,
            email: row.get(5)?,
            calls_count: row.get(6)?,
            appointments_count: row.get(7)?,
            first_seen_at: row.get(8)?,
            last_seen_at: row.get(9)?,
        })
    }

    const UPSERT: &'static str =
        "INSERT INTO customers (customer_id, seq, tenant_id, phone, name, email, calls_count,
                                    appointments_count, first_seen_at, last_seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (customer_id) DO UPDATE SET
                 name = excluded.name, email = excluded.email,
                 calls_count = excluded.calls_count,
                 appointments_count = excluded.appointments_count,
                 first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at";

    fn seq(&self) -> i64 {
        self.seq
    }

    fn key(&self) -> &str {
        &self.customer_id
    }

    fn write(&self, upsert: &mut Statement<'_>) -> SqlResult<()> {
        upsert.execute(params![
            self.customer_id,
            self.seq,
            self.tenant_id,
            self.phone,
            self.name,
            self.email,
            self.calls_count,
            self.appointments_count,
            self.first_seen_at,
            self.last_seen_at,
        ])?;
        Ok(())
    }
}

/// The customer for `phone_e164` at `tenant_id`, created on first sight, with `calls` and
/// `appointments` added to its counts; returns its id.
pub(crate) fn link(
    cx: &Cx<'_, '_>,
    tenant_id: &str,
    phone_e164: &str,
    person: Person<'_>,
    calls: i64,
    appointments: i64,
) -> Result<String, SqlError> {
    let id = customer_id(tenant_id, phone_e164);
    let created = cx.batch.customers.change(cx.conn, &id, |slot| {
        let created = slot.is_none();
        let customer = slot.get_or_insert_with(|| Customer {
            customer_id: id.clone(),
            seq: cx.seq(),
            tenant_id: tenant_id.to_owned(),
            phone: phone_e164.to_owned(),
            name: None,
            email: None,
            calls_count: 0,
            appointments_count: 0,
            first_seen_at: cx.at.clone(),
            last_seen_at: cx.at.clone(),
        });
        customer.merge(&person, &cx.at);
        customer.calls_count += calls;
        customer.appointments_count += appointments;
        created
    })?;
    if created {
        tenants::add_customer(cx, tenant_id)?;
    }
    Ok(id)
}

/// Merges what a later fact says about a known customer.
pub(crate) fn update(cx: &Cx<'_, '_>, id: &str, person: Person<'_>) -> Result<(), SqlError> {
    cx.batch
        .customers
        .update(cx.conn, id, |customer| customer.merge(&person, &cx.at))
}

pub(crate) fn count_appointment(cx: &Cx<'_, '_>, id: &str, delta: i64) -> Result<(), SqlError> {
    cx.batch.customers.update(cx.conn, id, |customer| {
        customer.appointments_count += delta;
    })
}

#[cfg(test)]
mod tests {
    use super::{CUSTOMER_NAMESPACE, customer_id};
    use uuid::Uuid;

    #[test]
    fn a_customers_id_is_the_uuid_v5_of_tenant_nul_number_in_lower_case_with_hyphens() {
        let id = customer_id("salon-1", "+4915123456789");
        let expected = Uuid::new_v5(&CUSTOMER_NAMESPACE, b"salon-1\0+4915123456789");
        assert_eq!(id, expected.to_string());
        // As Python's uuid.uuid5 derives it: the ids stored so far stay the same.
        assert_eq!(id, "2feaf164-ca02-53f6-b616-3c19366124e2");
        assert_eq!(id.len(), 36);
        assert_ne!(id, customer_id("salon-2", "+4915123456789"));
    }
}
