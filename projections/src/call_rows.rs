//! The `calls` rows a batch holds (see `held.rs`). The folds find calls by something other than
//! their id twice: copying a booking's status onto the calls that point at it changes both the
//! table and the held rows (`calls::sync_appointment_status`, through the batch's index by
//! booking); the calls waiting for a number's owner are the table's the batch does not hold
//! and the held ones that match (`Held::found`, `tenants.rs`).

use crate::held::Record;
use crate::sql::{Row, SqlResult, Statement, params};

/// One row of `calls`, every column (README.md documents them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    pub call_id: String,
    pub seq: i64,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    pub status: String,
    pub direction: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub tenant_number: Option<String>,
    pub customer_number: Option<String>,
    pub agent_id: Option<String>,
    pub duration_s: Option<i64>,
    pub call_status: Option<String>,
    pub end_reason: Option<String>,
    pub recording_url: Option<String>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub sentiment: Option<String>,
    pub successful: Option<bool>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub booking_uid: Option<String>,
    pub appointment_status: Option<String>,
    pub booking_linked_at: Option<String>,
    pub availability_checks: i64,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub analyzed_at: Option<String>,
    pub updated_at: String,
}

/// The columns in [`Call::from_row`]'s order.
macro_rules! columns {
    () => {
        "call_id, seq, tenant_id, branch_id, status, direction, from_number, to_number,
         tenant_number, customer_number, agent_id, duration_s, call_status, end_reason,
         recording_url, transcript, summary, sentiment, successful, customer_id, customer_name,
         booking_uid, appointment_status, booking_linked_at, availability_checks, started_at,
         ended_at, analyzed_at, updated_at"
    };
}

impl Call {
    /// The row a call's first event creates: `seq` and time are that event's, the status
    /// `started` until an end is recorded.
    pub(crate) fn new(call_id: &str, seq: i64, at: &str) -> Call {
        Call {
            call_id: call_id.to_owned(),
            seq,
            status: "started".to_owned(),
            updated_at: at.to_owned(),
            ..Call::default()
        }
    }
}

impl Record for Call {
    const SELECT: &'static str = concat!("SELECT ", columns!(), " FROM calls WHERE call_id = ?1");

    fn from_row(row: &Row<'_>) -> SqlResult<Call> {
        Ok(Call {
            call_id: row.get(0)?,
            seq: row.get(1)?,
            tenant_id: row.get(2)?,
            branch_id: row.get(3)?,
            status: row.get(4)?,
            direction: row.get(5)?,
            from_number: row.get(6)?,
            to_number: row.get(7)?,
            tenant_number: row.get(8)?,
            customer_number: row.get(9)?,
            agent_id: row.get(10)?,
            duration_s: row.get(11)?,
            call_status: row.get(12)?,
            end_reason: row.get(13)?,
            recording_url: row.get(14)?,
            transcript: row.get(15)?,
            summary: row.get(16)?,
            sentiment: row.get(17)?,
            successful: row.get(18)?,
            customer_id: row.get(19)?,
            customer_name: row.get(20)?,
            booking_uid: row.get(21)?,
            appointment_status: row.get(22)?,
            booking_linked_at: row.get(23)?,
            availability_checks: row.get(24)?,
            started_at: row.get(25)?,
            ended_at: row.get(26)?,
            analyzed_at: row.get(27)?,
            updated_at: row.get(28)?,
        })
    }

    const UPSERT: &'static str = concat!(
        "INSERT INTO calls (",
        columns!(),
        ")
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)
             ON CONFLICT (call_id) DO UPDATE SET
                 tenant_id = excluded.tenant_id, branch_id = excluded.branch_id,
                 status = excluded.status, direction = excluded.direction,
                 from_number = excluded.from_number, to_number = excluded.to_number,
                 tenant_number = excluded.tenant_number,
                 customer_number = excluded.customer_number, agent_id = excluded.agent_id,
                 duration_s = excluded.duration_s, call_status = excluded.call_status,
                 end_reason = excluded.end_reason, recording_url = excluded.recording_url,
                 transcript = excluded.transcript, summary = excluded.summary,
                 sentiment = excluded.sentiment, successful = excluded.successful,
                 customer_id = excluded.customer_id, customer_name = excluded.customer_name,
                 booking_uid = excluded.booking_uid,
                 appointment_status = excluded.appointment_status,
                 booking_linked_at = excluded.booking_linked_at,
                 availability_checks = excluded.availability_checks,
                 started_at = excluded.started_at, ended_at = excluded.ended_at,
                 analyzed_at = excluded.analyzed_at, updated_at = excluded.updated_at"
    );

    fn write(&self, upsert: &mut Statement<'_>) -> SqlResult<()> {
        upsert.execute(params![
            self.call_id,
            self.seq,
            self.tenant_id,
            self.branch_id,
            self.status,
            self.direction,
            self.from_number,
            self.to_number,
            self.tenant_number,
            self.customer_number,
            self.agent_id,
            self.duration_s,
            self.call_status,
            self.end_reason,
            self.recording_url,
            self.transcript,
            self.summary,
            self.sentiment,
            self.successful,
            self.customer_id,
            self.customer_name,
            self.booking_uid,
            self.appointment_status,
            self.booking_linked_at,
            self.availability_checks,
            self.started_at,
            self.ended_at,
            self.analyzed_at,
            self.updated_at,
        ])?;
        Ok(())
    }

    fn seq(&self) -> i64 {
        self.seq
    }

    fn key(&self) -> &str {
        &self.call_id
    }

    /// Calls are also found by the booking they point at.
    fn secondary(&self) -> Option<&str> {
        self.booking_uid.as_deref()
    }
}
