//! The `appointments` rows a batch holds (see `held.rs`). A booking's events each moved its row
//! with three to ten statements (create, update, history, link, the request it fulfils, its
//! attribution); now they change it in memory and it is written once per flush. The folds
//! find appointments by something other than their id twice: by the call they came from
//! (`appointments::bookings_of_call`, the table's rows the batch does not hold and the held ones
//! through the batch's index by call), and by an organizer waiting for its tenant (the table's
//! rows the batch does not hold and the held ones that match, `Held::found`).

use crate::held::Record;
use crate::sql::{Row, SqlResult, Statement, params};

/// Deletes one appointment by id (`Held::delete`).
pub(crate) const DELETE_APPOINTMENT: &str = "DELETE FROM appointments WHERE appointment_id = ?1";

/// One row of `appointments`, every column (README.md documents them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Appointment {
    pub appointment_id: String,
    pub seq: i64,
    pub booking_uid: Option<String>,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    pub call_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: String,
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub service: Option<String>,
    pub staff: Option<String>,
    pub title: Option<String>,
    pub location: Option<String>,
    pub organizer_id: Option<i64>,
    pub attendee_name: Option<String>,
    pub attendee_email: Option<String>,
    pub attendee_phone: Option<String>,
    pub cancel_reason: Option<String>,
    pub rescheduled_from: Option<String>,
    pub rescheduled_to: Option<String>,
    /// A JSON list, appended to by [`Appointment::push_history`].
    pub history: String,
    pub created_at: Option<String>,
    pub updated_at: String,
}

/// The columns in [`Appointment::from_row`]'s order.
macro_rules! columns {
    () => {
        "appointment_id, seq, booking_uid, tenant_id, branch_id, call_id, customer_id, status,
         start_at, end_at, service, staff, title, location, organizer_id, attendee_name,
         attendee_email, attendee_phone, cancel_reason, rescheduled_from, rescheduled_to,
         history, created_at, updated_at"
    };
}

impl Appointment {
    /// A row as an event creates it: `seq` and time are that event's, the history empty.
    pub(crate) fn new(appointment_id: &str, seq: i64, status: &str, at: &str) -> Appointment {
        Appointment {
            appointment_id: appointment_id.to_owned(),
            seq,
            status: status.to_owned(),
            history: "[]".to_owned(),
            updated_at: at.to_owned(),
            ..Appointment::default()
        }
    }

    /// Appends one entry (compact JSON) to the history.
    pub(crate) fn push_history(&mut self, entry: &str) {
        push_entry(&mut self.history, entry);
    }
}

/// Appends one entry (JSON text) to a JSON list written compactly (`[]`, `[a]`, `[a,b]`).
pub(crate) fn push_entry(list: &mut String, entry: &str) {
    // The list's closing bracket makes way for the entry.
    list.pop();
    if list.len() > 1 {
        list.push(',');
    }
    list.push_str(entry);
    list.push(']');
}

impl Record for Appointment {
    const SELECT: &'static str = concat!(
        "SELECT ",
        columns!(),
        " FROM appointments WHERE appointment_id = ?1"
    );

    fn from_row(row: &Row<'_>) -> SqlResult<Appointment> {
        Ok(Appointment {
            appointment_id: row.get(0)?,
            seq: row.get(1)?,
            booking_uid: row.get(2)?,
            tenant_id: row.get(3)?,
            branch_id: row.get(4)?,
            call_id: row.get(5)?,
            customer_id: row.get(6)?,
            status: row.get(7)?,
            start_at: row.get(8)?,
            end_at: row.get(9)?,
            service: row.get(10)?,
            staff: row.get(11)?,
            title: row.get(12)?,
            location: row.get(13)?,
            organizer_id: row.get(14)?,
            attendee_name: row.get(15)?,
            attendee_email: row.get(16)?,
            attendee_phone: row.get(17)?,
            cancel_reason: row.get(18)?,
            rescheduled_from: row.get(19)?,
            rescheduled_to: row.get(20)?,
            history: row.get(21)?,
            created_at: row.get(22)?,
            updated_at: row.get(23)?,
        })
    }

    const UPSERT: &'static str = concat!(
        "INSERT INTO appointments (",
        columns!(),
        ")
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24)
             ON CONFLICT (appointment_id) DO UPDATE SET
                 booking_uid = excluded.booking_uid, tenant_id = excluded.tenant_id,
                 branch_id = excluded.branch_id, call_id = excluded.call_id,
                 customer_id = excluded.customer_id, status = excluded.status,
                 start_at = excluded.start_at, end_at = excluded.end_at,
                 service = excluded.service, staff = excluded.staff, title = excluded.title,
                 location = excluded.location, organizer_id = excluded.organizer_id,
                 attendee_name = excluded.attendee_name,
                 attendee_email = excluded.attendee_email,
                 attendee_phone = excluded.attendee_phone,
                 cancel_reason = excluded.cancel_reason,
                 rescheduled_from = excluded.rescheduled_from,
                 rescheduled_to = excluded.rescheduled_to, history = excluded.history,
                 created_at = excluded.created_at, updated_at = excluded.updated_at"
    );

    fn write(&self, upsert: &mut Statement<'_>) -> SqlResult<()> {
        upsert.execute(params![
            self.appointment_id,
            self.seq,
            self.booking_uid,
            self.tenant_id,
            self.branch_id,
            self.call_id,
            self.customer_id,
            self.status,
            self.start_at,
            self.end_at,
            self.service,
            self.staff,
            self.title,
            self.location,
            self.organizer_id,
            self.attendee_name,
            self.attendee_email,
            self.attendee_phone,
            self.cancel_reason,
            self.rescheduled_from,
            self.rescheduled_to,
            self.history,
            self.created_at,
            self.updated_at,
        ])?;
        Ok(())
    }

    fn seq(&self) -> i64 {
        self.seq
    }

    fn key(&self) -> &str {
        &self.appointment_id
    }

    /// Appointments are also found by the call they came from.
    fn secondary(&self) -> Option<&str> {
        self.call_id.as_deref()
    }
}
