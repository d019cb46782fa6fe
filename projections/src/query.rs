//! The queries the server answers from the read models. Each returns a serde-serializable
//! view shaped as INTERFACE.md gives it; `None` means "no such record" (the server's 404).
//! Tenant scoping (another tenant's record answers 404) is the caller's: every view carries its
//! `tenant_id`.

use std::cell::Cell;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;
use switchboard_domain::event::{OpeningHours, Weekday};

use crate::ProjectionError;
use crate::apply::ts;
use crate::db::{BUSY_TIMEOUT, ReadModelsAt, checkpoint, open_live, open_reader_generation};
use crate::generation::Generation;
use crate::phone::{self, PhoneBook};
use crate::sql::{Conn, OptionalExtension, Params, Row, SqlResult, params};

/// The most items one page may hold.
pub const MAX_LIMIT: usize = 500;
/// The page size when the caller gives none.
pub const DEFAULT_LIMIT: usize = 50;
/// The time zone of a branch that names none.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Berlin";

/// Connections kept open between queries.
const MAX_IDLE: usize = 8;

/// One page of a list: `{"items": [...], "next": cursor-or-null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppointmentLink {
    pub booking_uid: String,
    pub status: Option<String>,
}

/// `GET /api/calls/{call_id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallView {
    pub call_id: String,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    /// `started` | `ended` | `analyzed`.
    pub status: String,
    pub direction: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub duration_s: Option<i64>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub sentiment: Option<String>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub appointment: Option<AppointmentLink>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub analyzed_at: Option<String>,
    pub updated_at: String,
}

const CALL_COLUMNS: &str = "call_id, tenant_id, branch_id, status, direction, from_number, \
    to_number, duration_s, transcript, summary, sentiment, customer_id, customer_name, \
    booking_uid, appointment_status, started_at, ended_at, analyzed_at, updated_at, seq";

fn call_view(row: &Row<'_>) -> SqlResult<CallView> {
    let booking_uid: Option<String> = row.get(13)?;
    Ok(CallView {
        call_id: row.get(0)?,
        tenant_id: row.get(1)?,
        branch_id: row.get(2)?,
        status: row.get(3)?,
        direction: row.get(4)?,
        from_number: row.get(5)?,
        to_number: row.get(6)?,
        duration_s: row.get(7)?,
        transcript: row.get(8)?,
        summary: row.get(9)?,
        sentiment: row.get(10)?,
        customer_id: row.get(11)?,
        customer_name: row.get(12)?,
        appointment: match booking_uid {
            Some(booking_uid) => Some(AppointmentLink {
                booking_uid,
                status: row.get(14)?,
            }),
            None => None,
        },
        started_at: row.get(15)?,
        ended_at: row.get(16)?,
        analyzed_at: row.get(17)?,
        updated_at: row.get(18)?,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attendee {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// `GET /api/appointments/{booking_uid}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppointmentView {
    /// The booking uid, or `request-{call_id}` for a request no booking has fulfilled yet.
    pub appointment_id: String,
    pub booking_uid: Option<String>,
    pub tenant_id: Option<String>,
    pub branch_id: Option<String>,
    pub call_id: Option<String>,
    pub customer_id: Option<String>,
    /// `requested` | `booked` | `rescheduled` | `cancelled`.
    pub status: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub service: Option<String>,
    pub staff: Option<String>,
    pub attendee: Attendee,
    pub cancel_reason: Option<String>,
    pub rescheduled_from: Option<String>,
    pub rescheduled_to: Option<String>,
    /// The changes in the order they were recorded.
    pub history: serde_json::Value,
    pub created_at: Option<String>,
    pub updated_at: String,
}

const APPOINTMENT_COLUMNS: &str = "appointment_id, booking_uid, tenant_id, branch_id, call_id, \
    customer_id, status, start_at, end_at, service, staff, attendee_name, attendee_email, \
    attendee_phone, cancel_reason, rescheduled_from, rescheduled_to, history, created_at, \
    updated_at, seq";

fn appointment_view(row: &Row<'_>) -> SqlResult<AppointmentView> {
    let history: String = row.get(17)?;
    Ok(AppointmentView {
        appointment_id: row.get(0)?,
        booking_uid: row.get(1)?,
        tenant_id: row.get(2)?,
        branch_id: row.get(3)?,
        call_id: row.get(4)?,
        customer_id: row.get(5)?,
        status: row.get(6)?,
        start: row.get(7)?,
        end: row.get(8)?,
        service: row.get(9)?,
        staff: row.get(10)?,
        attendee: Attendee {
            name: row.get(11)?,
            email: row.get(12)?,
            phone: row.get(13)?,
        },
        cancel_reason: row.get(14)?,
        rescheduled_from: row.get(15)?,
        rescheduled_to: row.get(16)?,
        history: serde_json::from_str(&history).unwrap_or(serde_json::Value::String(history)),
        created_at: row.get(18)?,
        updated_at: row.get(19)?,
    })
}

/// `GET /api/customers/…`: a person at one tenant, with their calls and appointments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerView {
    pub customer_id: String,
    pub tenant_id: String,
    /// E.164.
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub calls: Vec<CallView>,
    pub appointments: Vec<AppointmentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionView {
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub plan: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentView {
    pub stripe_event_id: String,
    pub invoice_id: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub plan: Option<String>,
    pub failure_code: Option<String>,
    pub occurred_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentsView {
    pub succeeded: i64,
    pub failed: i64,
    /// Sum of succeeded payments in the currencies' minor unit.
    pub revenue_cents: i64,
    /// The most recent payments, newest first.
    pub recent: Vec<PaymentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    pub calls: i64,
    pub appointments: i64,
    pub customers: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchView {
    pub branch_id: String,
    pub name: Option<String>,
    pub time_zone: String,
    pub opening_hours: Vec<OpeningHours>,
    pub phone_numbers: Vec<String>,
    pub removed_at: Option<String>,
    pub calls: i64,
    pub appointments: i64,
}

/// `GET /api/tenants/{tenant_id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantView {
    pub tenant_id: String,
    pub name: Option<String>,
    pub branches: Vec<BranchView>,
    pub calcom_organizer_ids: Vec<i64>,
    pub stripe_customer_ids: Vec<String>,
    pub subscription: SubscriptionView,
    pub payments: PaymentsView,
    pub counts: Counts,
    pub registered_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyView {
    pub anomaly_id: i64,
    pub position: i64,
    pub stream: String,
    pub event_type: String,
    pub reason: String,
    pub message: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub tenant_id: Option<String>,
    pub occurred_at: String,
    pub resolved_at: Option<String>,
    pub resolved_by_position: Option<i64>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnomalyFilter {
    pub tenant_id: Option<String>,
    /// Only those not resolved by later attribution.
    pub open_only: bool,
}

/// Who answers a phone number: for attributing a call as it arrives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberOwner {
    pub tenant_id: String,
    pub branch_id: Option<String>,
    /// The branch's IANA zone, when it registered one.
    pub time_zone: Option<String>,
}

/// An appointment that occupies time, for `check_availability`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusySlot {
    pub appointment_id: String,
    pub start: String,
    pub end: String,
    pub staff: Option<String>,
    pub service: Option<String>,
    pub status: String,
}

/// What `check_availability` needs: when the branch is open and what is already booked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Availability {
    pub time_zone: String,
    pub opening_hours: Vec<OpeningHours>,
    /// True when the branch has no opening hours of its own and the default applies.
    pub default_hours: bool,
    pub busy: Vec<BusySlot>,
}

/// How many of a service's latest appointments say how long it usually takes.
const SERVICE_SAMPLE: i64 = 50;

/// The most common whole-minute length (1 minute to a day) of the `(start, end)` pairs, the
/// first of them on a tie.
fn most_common_minutes(times: &[(String, String)]) -> Option<i64> {
    let lengths: Vec<i64> = times
        .iter()
        .filter_map(|(start, end)| {
            let start = DateTime::parse_from_rfc3339(start).ok()?;
            let end = DateTime::parse_from_rfc3339(end).ok()?;
            Some((end - start).num_minutes()).filter(|m| (1..=24 * 60).contains(m))
        })
        .collect();
    let count = |m: i64| lengths.iter().filter(|l| **l == m).count();
    // Ties go to the first (the most recent): max_by_key keeps the last maximum, so reverse.
    lengths.iter().rev().copied().max_by_key(|m| count(*m))
}

/// Opening hours for a branch that has none registered: Mon–Fri 09:00–18:00, Sat 09:00–14:00.
pub fn default_opening_hours() -> Vec<OpeningHours> {
    let at = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    let mut hours: Vec<OpeningHours> = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
    .into_iter()
    .map(|day| OpeningHours {
        day,
        opens: at(9),
        closes: at(18),
    })
    .collect();
    hours.push(OpeningHours {
        day: Weekday::Sat,
        opens: at(9),
        closes: at(14),
    });
    hours
}

/// The read side of the read models: a small pool of read-only connections. Every method
/// blocks: call them from `spawn_blocking`, or on an async thread only inside
/// [`ReadModels::without_waiting`] and only for reads an index bounds (the server's
/// `ReadModelHandle::lookup`).
pub struct ReadModels {
    at: ReadModelsAt,
    /// Idle connections, each with the file it opened (SQLite).
    idle: Mutex<Vec<(Conn, Option<Generation>)>>,
    /// The dialled number of every call is looked up (`number_owner`): a business has a
    /// few numbers, and parsing one costs more than the lookup itself.
    phones: Mutex<PhoneBook>,
}

impl ReadModels {
    /// Opens the read models of `data_dir`, creating an empty file when there is none yet (so
    /// a server can answer before its projector's first batch).
    pub fn open(data_dir: &Path) -> Result<ReadModels, ProjectionError> {
        Self::open_at(&ReadModelsAt::data_dir(data_dir))
    }

    /// Opens a read-models file by path (for example a time-travel file from
    /// [`rebuild`](crate::rebuild) with `until`).
    pub fn open_file(path: &Path) -> Result<ReadModels, ProjectionError> {
        Self::open_at(&ReadModelsAt::Sqlite(path.to_path_buf()))
    }

    /// Opens read models wherever they live, creating empty ones when there are none yet.
    pub fn open_at(at: &ReadModelsAt) -> Result<ReadModels, ProjectionError> {
        let exists = match at {
            ReadModelsAt::Sqlite(path) => path.exists(),
            ReadModelsAt::Postgres { .. } => false,
        };
        if !exists {
            drop(open_live(at)?);
        }
        let first = open_reader_generation(at)?;
        Ok(ReadModels {
            at: at.clone(),
            idle: Mutex::new(vec![first]),
            phones: Mutex::default(),
        })
    }

    pub fn at(&self) -> &ReadModelsAt {
        &self.at
    }

    /// Runs `query` on this thread, provided none of its statements has to wait for a
    /// connection or in SQLite's busy handler: each finds an open, idle connection to the
    /// installed file, and SQLite answers without a busy wait. (What is left is short: the
    /// pool's lock, a `readlink` to see the installed file, SQLite's own brief WAL retries.)
    /// The connection's busy timeout is 0 meanwhile, so `SQLITE_BUSY` (another process
    /// recovering the WAL after a crash, say) comes back at once rather than after 30 s,
    /// which on an async thread would stall every task it runs. `None` when a statement would
    /// have waited, or met any other database trouble: the caller runs `query` again where
    /// waiting is allowed (a blocking thread); it only read, so there is nothing to undo.
    /// Always `None` for read models in PostgreSQL, a network round trip away.
    pub fn without_waiting<T>(
        &self,
        query: impl FnOnce(&ReadModels) -> Result<T, ProjectionError>,
    ) -> Option<Result<T, ProjectionError>> {
        if !matches!(self.at, ReadModelsAt::Sqlite(_)) {
            return None;
        }
        let section = NoWaitSection::enter();
        let result = query(self);
        section.finished_without_a_wait().then_some(result)
    }

    /// [`ReadModels::with`] inside [`ReadModels::without_waiting`]: an idle connection or
    /// none, no lock wait, no retry.
    fn with_idle<T>(
        &self,
        query: impl Fn(&Conn) -> Result<T, ProjectionError>,
    ) -> Result<T, ProjectionError> {
        let Some((conn, generation)) = self.take_idle() else {
            return NoWaitSection::would_wait();
        };
        if !generation.as_ref().is_none_or(still_current) {
            // Letting it go and opening the installed file is `with`'s work.
            self.give_back((conn, generation));
            return NoWaitSection::would_wait();
        }
        let result = conn
            .set_busy_timeout(Duration::ZERO)
            .map_err(ProjectionError::from)
            .and_then(|()| query(&conn));
        let restored = conn.set_busy_timeout(BUSY_TIMEOUT);
        let trouble = is_trouble(&result);
        // A connection that found the database locked is as good as before; one in other
        // trouble is let go, as `with` does.
        if restored.is_ok() && (!trouble || result.as_ref().is_err_and(is_busy)) {
            self.give_back((conn, generation));
        }
        if trouble || restored.is_err() {
            return NoWaitSection::would_wait();
        }
        result
    }

    fn with<T>(
        &self,
        query: impl Fn(&Conn) -> Result<T, ProjectionError>,
    ) -> Result<T, ProjectionError> {
        if NoWaitSection::is_open() {
            return self.with_idle(query);
        }
        let pooled = self.take_idle();
        // A connection to a file a full rebuild has since replaced is let go, and so is every
        // idle one not on the installed file, so an idle pool does not hold replaced files
        // open: this query and the next ones read the installed file.
        let pooled = match pooled {
            Some((conn, Some(generation))) if !still_current(&generation) => {
                drop(conn);
                let superseded: Vec<_> = {
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    let (current, old) = std::mem::take(&mut *idle)
                        .into_iter()
                        .partition(|(_, g)| g.as_ref().is_none_or(still_current));
                    *idle = current;
                    old
                };
                drop(superseded);
                None
            }
            other => other,
        };
        let ((conn, generation), result) = match pooled {
            Some(pooled) => {
                let result = query(&pooled.0);
                if is_trouble(&result) {
                    // A pooled connection may have died with its server (a restart): one more
                    // try on a fresh one before the caller hears of it.
                    drop(pooled);
                    let fresh = open_reader_generation(&self.at)?;
                    let result = query(&fresh.0);
                    (fresh, result)
                } else {
                    (pooled, result)
                }
            }
            None => {
                let fresh = open_reader_generation(&self.at)?;
                let result = query(&fresh.0);
                (fresh, result)
            }
        };
        if !is_trouble(&result) {
            self.give_back((conn, generation));
        }
        result
    }

    /// An idle connection, if the pool has one.
    fn take_idle(&self) -> Option<(Conn, Option<Generation>)> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keeps a connection for the next query, unless the pool is full.
    fn give_back(&self, pooled: (Conn, Option<Generation>)) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(pooled);
        }
    }

    /// The position of the last event folded into these read models.
    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.with(checkpoint)
    }

    pub fn call(&self, call_id: &str) -> Result<Option<CallView>, ProjectionError> {
        self.with(|conn| {
            let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([call_id], call_view)
                .optional()?)
        })
    }

    /// Calls in the order they were first recorded; all tenants' when `tenant_id` is None.
    pub fn calls(
        &self,
        tenant_id: Option<&str>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<CallView>, ProjectionError> {
        self.page("calls", CALL_COLUMNS, tenant_id, limit, after, call_view)
    }

    /// An appointment by booking uid (or by `request-{call_id}` for an open request): a
    /// booking's row is keyed by its uid.
    pub fn appointment(&self, id: &str) -> Result<Option<AppointmentView>, ProjectionError> {
        self.with(|conn| {
            let sql =
                format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE appointment_id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id], appointment_view)
                .optional()?)
        })
    }

    pub fn appointments(
        &self,
        tenant_id: Option<&str>,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<AppointmentView>, ProjectionError> {
        self.page(
            "appointments",
            APPOINTMENT_COLUMNS,
            tenant_id,
            limit,
            after,
            appointment_view,
        )
    }

    fn page<T>(
        &self,
        table: &str,
        columns: &str,
        tenant_id: Option<&str>,
        limit: usize,
        after: Option<&str>,
        view: fn(&Row<'_>) -> SqlResult<T>,
    ) -> Result<Page<T>, ProjectionError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ProjectionError::BadLimit(limit));
        }
        let after = after.map(decode_cursor).transpose()?.unwrap_or(0);
        // The seq column is last in every column list: it is the cursor.
        let seq_index = columns.split(',').count() - 1;
        self.with(|conn| {
            let sql = page_sql(columns, table, tenant_id.is_some());
            let mut items = Vec::with_capacity(limit);
            let mut last_seq = 0i64;
            let mut more = false;
            conn.prepare_cached(&sql)?.for_each_row(
                params![tenant_id, after, (limit + 1) as i64],
                |row| {
                    if items.len() == limit {
                        more = true;
                        return Ok(false);
                    }
                    last_seq = row.get(seq_index)?;
                    items.push(view(row)?);
                    Ok(true)
                },
            )?;
            Ok(Page {
                items,
                next: more.then(|| encode_cursor(last_seq)),
            })
        })
    }

    pub fn customer(&self, customer_id: &str) -> Result<Option<CustomerView>, ProjectionError> {
        self.with(|conn| customer_where(conn, "customer_id = ?1", params![customer_id]))
    }

    /// The customer of `tenant_id` with this phone number, in any common notation.
    pub fn customer_by_phone(
        &self,
        tenant_id: &str,
        phone: &str,
    ) -> Result<Option<CustomerView>, ProjectionError> {
        let Some(e164) = phone::normalize(phone) else {
            return Ok(None);
        };
        // Found by its id, which the tenant and number make (the table's only key).
        let id = crate::customers::customer_id(tenant_id, &e164);
        self.with(|conn| {
            customer_where(
                conn,
                "customer_id = ?1 AND tenant_id = ?2 AND phone = ?3",
                params![id, tenant_id, e164],
            )
        })
    }

    pub fn tenant(&self, tenant_id: &str) -> Result<Option<TenantView>, ProjectionError> {
        self.with(|conn| tenant_view(conn, tenant_id))
    }

    /// The tenant an API token belongs to, by the token's SHA-256 (lowercase hex). The caller
    /// hashes the presented token; hashes are looked up by index, so no token comparison
    /// runs on secret material here.
    pub fn tenant_by_token_hash(
        &self,
        token_sha256: &str,
    ) -> Result<Option<String>, ProjectionError> {
        self.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT tenant_id FROM api_tokens WHERE token_sha256 = ?1")?
                .query_row([token_sha256.to_ascii_lowercase()], |r| r.get(0))
                .optional()?)
        })
    }

    pub fn anomalies(
        &self,
        filter: &AnomalyFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<AnomalyView>, ProjectionError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ProjectionError::BadLimit(limit));
        }
        let after = after.map(decode_cursor).transpose()?.unwrap_or(0);
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&anomalies_sql(filter.tenant_id.is_some()))?;
            let rows = statement.query_map(
                params![
                    filter.tenant_id,
                    filter.open_only,
                    after,
                    (limit + 1) as i64
                ],
                |r| {
                    Ok(AnomalyView {
                        anomaly_id: r.get(0)?,
                        position: r.get(1)?,
                        stream: r.get(2)?,
                        event_type: r.get(3)?,
                        reason: r.get(4)?,
                        message: r.get(5)?,
                        subject_kind: r.get(6)?,
                        subject_id: r.get(7)?,
                        tenant_id: r.get(8)?,
                        occurred_at: r.get(9)?,
                        resolved_at: r.get(10)?,
                        resolved_by_position: r.get(11)?,
                    })
                },
            )?;
            let mut items: Vec<AnomalyView> = rows.collect::<Result<_, _>>()?;
            let more = items.len() > limit;
            items.truncate(limit);
            let next = match (more, items.last()) {
                (true, Some(last)) => Some(encode_cursor(last.anomaly_id)),
                _ => None,
            };
            Ok(Page { items, next })
        })
    }

    /// The tenant and branch a dialled number rings at (any common notation of the number).
    pub fn number_owner(&self, phone: &str) -> Result<Option<NumberOwner>, ProjectionError> {
        let e164 = self
            .phones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .normalize_business(Some(phone));
        let Some(e164) = e164 else {
            return Ok(None);
        };
        self.with(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT p.tenant_id, p.branch_id, b.time_zone FROM phone_numbers p
                     LEFT JOIN branches b ON b.tenant_id = p.tenant_id AND b.branch_id = p.branch_id
                     WHERE p.phone_number = ?1",
                )?
                .query_row([&e164], |r| {
                    Ok(NumberOwner {
                        tenant_id: r.get(0)?,
                        branch_id: r.get(1)?,
                        time_zone: r.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    /// The usual length of `service` at this tenant, in minutes, for a `check_availability`
    /// that names a service but no duration: the most common length among the tenant's latest
    /// appointments of that service (up to 50; on a tie, the most recent), None
    /// when none has a start and an end.
    pub fn service_minutes(
        &self,
        tenant_id: &str,
        service: &str,
    ) -> Result<Option<i64>, ProjectionError> {
        self.with(|conn| {
            let times: Vec<(String, String)> = conn
                .prepare_cached(SERVICE_TIMES)?
                .query_map(params![tenant_id, service, SERVICE_SAMPLE], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(most_common_minutes(&times))
        })
    }

    /// For `check_availability`: the branch's opening hours (the default when it has none) and
    /// the booked appointments of the tenant that overlap `[from, to)`, narrowed to a branch
    /// and a staff member when given. Cancelled appointments and bookings moved to a new uid
    /// do not occupy time.
    pub fn availability(
        &self,
        tenant_id: &str,
        branch_id: Option<&str>,
        staff: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Availability, ProjectionError> {
        self.with(|conn| {
            let branch: Option<(Option<String>, String)> = match branch_id {
                Some(branch_id) => conn
                    .prepare_cached(
                        "SELECT time_zone, opening_hours FROM branches
                         WHERE tenant_id = ?1 AND branch_id = ?2",
                    )?
                    .query_row(params![tenant_id, branch_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?,
                None => None,
            };
            let (time_zone, hours) = match branch {
                Some((zone, hours)) => (zone, serde_json::from_str::<Vec<OpeningHours>>(&hours)?),
                None => (None, Vec::new()),
            };
            let default_hours = hours.is_empty();
            let mut statement = conn.prepare_cached(CALENDAR)?;
            let busy = statement
                .query_map(
                    params![tenant_id, ts(to), ts(from), branch_id, staff],
                    |r| {
                        Ok(BusySlot {
                            appointment_id: r.get(0)?,
                            start: r.get(1)?,
                            end: r.get(2)?,
                            staff: r.get(3)?,
                            service: r.get(4)?,
                            status: r.get(5)?,
                        })
                    },
                )?
                .collect::<Result<_, _>>()?;
            Ok(Availability {
                time_zone: time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned()),
                opening_hours: if default_hours {
                    default_opening_hours()
                } else {
                    hours
                },
                default_hours,
                busy,
            })
        })
    }
}

/// Whether a pooled connection's file is still the live one. When the link cannot be read,
/// the connection is kept: it still answers from the file it has open, and opening another
/// would need the same link.
fn still_current(generation: &Generation) -> bool {
    generation.is_current().unwrap_or_else(|error| {
        tracing::warn!(%error, "the read models' link could not be read; the open connection answers");
        true
    })
}

fn is_busy(error: &ProjectionError) -> bool {
    matches!(error, ProjectionError::Sql(error) if error.is_busy())
}

thread_local! {
    /// Whether this thread is inside [`ReadModels::without_waiting`], and whether one of its
    /// statements would have waited.
    static NO_WAIT: Cell<NoWait> = const { Cell::new(NoWait::Closed) };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NoWait {
    Closed,
    Open,
    WouldHaveWaited,
}

/// The thread's [`NO_WAIT`] section while a query runs in it; closed again when dropped, also
/// when the query panics, so the thread's later queries wait as usual.
struct NoWaitSection {
    outer: NoWait,
}

impl NoWaitSection {
    fn enter() -> NoWaitSection {
        NoWaitSection {
            outer: NO_WAIT.replace(NoWait::Open),
        }
    }

    fn is_open() -> bool {
        NO_WAIT.get() != NoWait::Closed
    }

    /// Marks the section: its result is not to be used. The error ends the query early
    /// (through `?`); a query that swallowed it is still refused.
    fn would_wait<T>() -> Result<T, ProjectionError> {
        NO_WAIT.set(NoWait::WouldHaveWaited);
        Err(ProjectionError::WouldWait)
    }

    fn finished_without_a_wait(self) -> bool {
        NO_WAIT.get() == NoWait::Open
    }
}

impl Drop for NoWaitSection {
    fn drop(&mut self) {
        NO_WAIT.set(self.outer);
    }
}

fn is_trouble<T>(result: &Result<T, ProjectionError>) -> bool {
    result
        .as_ref()
        .is_err_and(ProjectionError::is_database_trouble)
}

/// Cursors are opaque to callers: a version tag and the last row's sequence number in hex.
fn encode_cursor(seq: i64) -> String {
    format!("c1.{seq:x}")
}

fn decode_cursor(cursor: &str) -> Result<i64, ProjectionError> {
    cursor
        .strip_prefix("c1.")
        .filter(|hex| !hex.is_empty() && hex.len() <= 16)
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|seq| *seq > 0)
        .ok_or_else(|| ProjectionError::BadCursor(cursor.to_owned()))
}

/// How many calls and appointments a customer view lists (newest first).
const CUSTOMER_HISTORY: i64 = 100;

fn customer_where(
    conn: &Conn,
    condition: &str,
    args: impl Params,
) -> Result<Option<CustomerView>, ProjectionError> {
    let sql = format!(
        "SELECT customer_id, tenant_id, phone, name, email, first_seen_at, last_seen_at
         FROM customers WHERE {condition}"
    );
    let Some(mut customer) = conn
        .prepare_cached(&sql)?
        .query_row(args, |r| {
            Ok(CustomerView {
                customer_id: r.get(0)?,
                tenant_id: r.get(1)?,
                phone: r.get(2)?,
                name: r.get(3)?,
                email: r.get(4)?,
                first_seen_at: r.get(5)?,
                last_seen_at: r.get(6)?,
                calls: Vec::new(),
                appointments: Vec::new(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let sql = customer_history_sql(CALL_COLUMNS, "calls");
    customer.calls = conn
        .prepare_cached(&sql)?
        .query_map(params![customer.customer_id, CUSTOMER_HISTORY], call_view)?
        .collect::<Result<_, _>>()?;
    let sql = customer_history_sql(APPOINTMENT_COLUMNS, "appointments");
    customer.appointments = conn
        .prepare_cached(&sql)?
        .query_map(
            params![customer.customer_id, CUSTOMER_HISTORY],
            appointment_view,
        )?
        .collect::<Result<_, _>>()?;
    Ok(Some(customer))
}

/// How many payments a tenant view lists.
const RECENT_PAYMENTS: i64 = 20;

/// A branch's numbers (`phone_numbers_by_tenant`).
const BRANCH_NUMBERS: &str = "SELECT phone_number FROM phone_numbers
    WHERE tenant_id = ?1 AND branch_id = ?2 ORDER BY phone_number";

/// A tenant's Cal.com organizers (`calcom_organizers_by_tenant`).
const TENANT_ORGANIZERS: &str =
    "SELECT organizer_id FROM calcom_organizers WHERE tenant_id = ?1 ORDER BY organizer_id";

/// A tenant's Stripe customers (`stripe_customers_by_tenant`).
const TENANT_STRIPE_CUSTOMERS: &str = "SELECT stripe_customer_id FROM stripe_customers
    WHERE tenant_id = ?1 ORDER BY stripe_customer_id";

/// A tenant's latest payments (`payments_by_tenant`, read backwards).
const RECENT_PAYMENTS_SQL: &str = "SELECT stripe_event_id, invoice_id, status, amount_cents,
    currency, plan, failure_code, occurred_at
    FROM payments WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2";

fn tenant_view(conn: &Conn, tenant_id: &str) -> Result<Option<TenantView>, ProjectionError> {
    let Some(mut tenant) = conn
        .prepare_cached(
            "SELECT tenant_id, name, subscription_id, subscription_status, subscription_plan,
                    subscription_updated_at, payments_succeeded, payments_failed, revenue_cents,
                    calls_count, appointments_count, customers_count, registered_at, updated_at
             FROM tenants WHERE tenant_id = ?1",
        )?
        .query_row([tenant_id], |r| {
            Ok(TenantView {
                tenant_id: r.get(0)?,
                name: r.get(1)?,
                branches: Vec::new(),
                calcom_organizer_ids: Vec::new(),
                stripe_customer_ids: Vec::new(),
                subscription: SubscriptionView {
                    subscription_id: r.get(2)?,
                    status: r.get(3)?,
                    plan: r.get(4)?,
                    updated_at: r.get(5)?,
                },
                payments: PaymentsView {
                    succeeded: r.get(6)?,
                    failed: r.get(7)?,
                    revenue_cents: r.get(8)?,
                    recent: Vec::new(),
                },
                counts: Counts {
                    calls: r.get(9)?,
                    appointments: r.get(10)?,
                    customers: r.get(11)?,
                },
                registered_at: r.get(12)?,
                updated_at: r.get(13)?,
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    // Opening hours are parsed after the query, where a damaged value can be reported.
    let branches: Vec<(BranchView, String)> = conn
        .prepare_cached(
            "SELECT branch_id, name, time_zone, opening_hours, removed_at, calls_count,
                    appointments_count
             FROM branches WHERE tenant_id = ?1 ORDER BY branch_id",
        )?
        .query_map([tenant_id], |r| {
            let time_zone: Option<String> = r.get(2)?;
            let view = BranchView {
                branch_id: r.get(0)?,
                name: r.get(1)?,
                time_zone: time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned()),
                opening_hours: Vec::new(),
                phone_numbers: Vec::new(),
                removed_at: r.get(4)?,
                calls: r.get(5)?,
                appointments: r.get(6)?,
            };
            Ok((view, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (mut branch, hours) in branches {
        branch.opening_hours = serde_json::from_str(&hours)?;
        branch.phone_numbers = conn
            .prepare_cached(BRANCH_NUMBERS)?
            .query_map(params![tenant_id, branch.branch_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tenant.branches.push(branch);
    }
    tenant.calcom_organizer_ids = conn
        .prepare_cached(TENANT_ORGANIZERS)?
        .query_map([tenant_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tenant.stripe_customer_ids = conn
        .prepare_cached(TENANT_STRIPE_CUSTOMERS)?
        .query_map([tenant_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tenant.payments.recent = conn
        .prepare_cached(RECENT_PAYMENTS_SQL)?
        .query_map(params![tenant_id, RECENT_PAYMENTS], |r| {
            Ok(PaymentView {
                stripe_event_id: r.get(0)?,
                invoice_id: r.get(1)?,
                status: r.get(2)?,
                amount_cents: r.get(3)?,
                currency: r.get(4)?,
                plan: r.get(5)?,
                failure_code: r.get(6)?,
                occurred_at: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(tenant))
}

/// The slots held in a window (?2 its end, ?3 its start) at a tenant, of one branch (?4) and
/// staff member (?5) when given. Its status terms are those of the `appointments_holding_slots`
/// index, so SQLite reads that index from the window's start on.
const CALENDAR: &str =
    "SELECT appointment_id, start_at, end_at, staff, service, status FROM appointments
     WHERE tenant_id = ?1 AND end_at > ?3 AND start_at < ?2
       AND status IN ('booked', 'rescheduled') AND rescheduled_to IS NULL
       AND (CAST(?4 AS TEXT) IS NULL OR branch_id = ?4 OR branch_id IS NULL)
       AND (CAST(?5 AS TEXT) IS NULL OR staff = ?5)
     ORDER BY start_at, appointment_id";

/// The rows of tenant ?1 when `scoped`, else of every tenant (?1 null). Two statements
/// rather than `?1 IS NULL OR …`, so each reads its own index (the tenant's, or the table's
/// order).
fn tenant_filter(scoped: bool) -> &'static str {
    if scoped {
        "tenant_id = ?1"
    } else {
        "CAST(?1 AS TEXT) IS NULL"
    }
}

/// A page of `table` after seq ?2, ?3 rows, of one tenant or of all ([`tenant_filter`]:
/// `…_by_tenant`, else `…_in_order`).
fn page_sql(columns: &str, table: &str, scoped: bool) -> String {
    let filter = tenant_filter(scoped);
    format!("SELECT {columns} FROM {table} WHERE {filter} AND seq > ?2 ORDER BY seq LIMIT ?3")
}

/// The anomalies after ?3, ?4 of them, open ones only when ?2, of one tenant or of all
/// ([`tenant_filter`]: `anomalies_by_tenant`, else the table's own order).
fn anomalies_sql(scoped: bool) -> String {
    let filter = tenant_filter(scoped);
    format!(
        "SELECT anomaly_id, position, stream, event_type, reason, message, subject_kind,
                subject_id, tenant_id, occurred_at, resolved_at, resolved_by_position
         FROM anomalies
         WHERE {filter} AND (?2 = 0 OR resolved_at IS NULL) AND anomaly_id > ?3
         ORDER BY anomaly_id LIMIT ?4"
    )
}

/// Customer ?1's latest ?2 rows of `table` (its `…_by_customer` index).
fn customer_history_sql(columns: &str, table: &str) -> String {
    format!("SELECT {columns} FROM {table} WHERE customer_id = ?1 ORDER BY seq DESC LIMIT ?2")
}

/// A service's latest appointments with a start and an end (?3 of them) at a tenant. Its
/// `IS NOT NULL` terms are those of the partial `appointments_by_service` index.
const SERVICE_TIMES: &str = "SELECT start_at, end_at FROM appointments
     WHERE tenant_id = ?1 AND service = ?2
       AND start_at IS NOT NULL AND end_at IS NOT NULL
     ORDER BY seq DESC LIMIT ?3";

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh read models in memory, with the query indexes.
    fn read_models() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::db::SCHEMA).unwrap();
        conn.execute_batch(crate::db::QUERY_INDEXES).unwrap();
        conn
    }

    /// Adds `count` appointments of tenant t1 (ids after `seq`), each `status` and starting
    /// at `start` (none when None) for 30 minutes.
    fn add_appointments(
        conn: &rusqlite::Connection,
        seq: i64,
        count: i64,
        status: &str,
        start: Option<&str>,
    ) {
        for n in seq..seq + count {
            conn.execute(
                "INSERT INTO appointments
                 (appointment_id, seq, tenant_id, status, service, staff, start_at, end_at,
                  updated_at)
                 VALUES (?1, ?2, 't1', ?3, 'Cut', 'Marie', ?4,
                         strftime('%Y-%m-%dT%H:%M:%fZ', ?4, '+30 minutes'), 'now')",
                rusqlite::params![format!("a{n}"), n, status, start],
            )
            .unwrap();
        }
    }

    /// The rows `sql` returns, and the steps SQLite's machine took to find them.
    fn run(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> (usize, i32) {
        let mut statement = conn.prepare(sql).unwrap();
        let rows = statement.query_map(params, |_| Ok(())).unwrap().count();
        (
            rows,
            statement.get_status(rusqlite::StatementStatus::VmStep),
        )
    }

    // `check_availability` runs these on the handler's thread while the agent waits on the
    // phone: neither may read more as a tenant's history grows.

    #[test]
    fn the_calendar_reads_no_more_as_the_past_grows() {
        let conn = read_models();
        add_appointments(&conn, 0, 3, "booked", Some("2026-01-05T10:00:00.000Z"));
        let none = None::<String>;
        let window = rusqlite::params![
            "t1",
            "2026-01-09T00:00:00.000Z",
            "2026-01-01T00:00:00.000Z",
            none,
            none
        ];
        let (rows, fresh) = run(&conn, CALENDAR, window);
        assert_eq!(rows, 3);
        add_appointments(
            &conn,
            100,
            2_000,
            "booked",
            Some("2020-06-01T10:00:00.000Z"),
        );
        add_appointments(
            &conn,
            5_000,
            2_000,
            "cancelled",
            Some("2026-01-05T12:00:00.000Z"),
        );
        add_appointments(&conn, 10_000, 2_000, "requested", None);
        let (rows, with_history) = run(&conn, CALENDAR, window);
        assert_eq!(
            rows, 3,
            "past, cancelled and open ones hold no slot in the window"
        );
        assert_eq!(with_history, fresh, "steps with 6,000 more appointments");
    }

    #[test]
    fn a_services_usual_length_reads_no_more_as_open_requests_grow() {
        let conn = read_models();
        add_appointments(&conn, 0, 5, "booked", Some("2026-01-05T10:00:00.000Z"));
        let (rows, fresh) = run(&conn, SERVICE_TIMES, rusqlite::params!["t1", "Cut", 50]);
        assert_eq!(rows, 5);
        // Newer than every appointment with times: the index, newest first, would meet them
        // first if it held them.
        add_appointments(&conn, 100, 2_000, "requested", None);
        let (rows, with_requests) = run(&conn, SERVICE_TIMES, rusqlite::params!["t1", "Cut", 50]);
        assert_eq!(rows, 5);
        assert_eq!(with_requests, fresh, "steps with 2,000 open requests");
    }

    /// Adds calls `seqs` of `tenant`, each of `customer`.
    fn add_calls(
        conn: &rusqlite::Connection,
        seqs: std::ops::Range<i64>,
        tenant: &str,
        customer: &str,
    ) {
        for seq in seqs {
            conn.execute(
                "INSERT INTO calls (call_id, seq, tenant_id, customer_id, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'ended', 'now')",
                rusqlite::params![format!("c{seq}"), seq, tenant, customer],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_page_reads_no_more_as_other_tenants_and_later_rows_grow() {
        let conn = read_models();
        add_calls(&conn, 1..11, "t1", "k1");
        let scoped = page_sql("call_id, seq", "calls", true);
        let everyone = page_sql("call_id, seq", "calls", false);
        let (rows, scoped_fresh) = run(&conn, &scoped, rusqlite::params!["t1", 0, 6]);
        assert_eq!(rows, 6);
        let (rows, everyone_fresh) = run(&conn, &everyone, rusqlite::params![None::<String>, 0, 6]);
        assert_eq!(rows, 6);
        add_calls(&conn, 100..2_100, "t2", "k2");
        let (rows, scoped_grown) = run(&conn, &scoped, rusqlite::params!["t1", 0, 6]);
        assert_eq!(rows, 6);
        assert_eq!(
            scoped_grown, scoped_fresh,
            "a tenant's page, 2,000 calls of another later"
        );
        let (rows, everyone_grown) = run(&conn, &everyone, rusqlite::params![None::<String>, 0, 6]);
        assert_eq!(rows, 6);
        assert_eq!(
            everyone_grown, everyone_fresh,
            "every tenant's page, 2,000 calls later"
        );
    }

    #[test]
    fn a_tenants_anomalies_read_no_more_as_other_tenants_anomalies_grow() {
        let conn = read_models();
        let add_anomalies = |ids: std::ops::Range<i64>, tenant: &str| {
            for id in ids {
                conn.execute(
                    "INSERT INTO anomalies (anomaly_id, position, stream, event_type, reason,
                                            message, tenant_id, occurred_at)
                     VALUES (?1, ?1, 'call-x', 'CallEnded', 'r', 'm', ?2, 'now')",
                    rusqlite::params![id, tenant],
                )
                .unwrap();
            }
        };
        add_anomalies(1..6, "t1");
        // Another tenant's after them, so both measures end the same way: on a row of t2.
        add_anomalies(6..7, "t2");
        let sql = anomalies_sql(true);
        let page = rusqlite::params!["t1", false, 0, 11];
        let (rows, fresh) = run(&conn, &sql, page);
        assert_eq!(rows, 5);
        add_anomalies(100..2_100, "t2");
        let (rows, grown) = run(&conn, &sql, page);
        assert_eq!(rows, 5, "the last page: nothing of t1's after these");
        assert_eq!(grown, fresh, "2,000 anomalies of another tenant later");
    }

    #[test]
    fn a_customers_history_reads_no_more_as_it_grows() {
        let conn = read_models();
        add_calls(&conn, 1_000..1_150, "t1", "k1");
        let sql = customer_history_sql("call_id, seq", "calls");
        let (rows, fresh) = run(&conn, &sql, rusqlite::params!["k1", CUSTOMER_HISTORY]);
        assert_eq!(rows, 100);
        add_calls(&conn, 0..1_000, "t1", "k1");
        let (rows, grown) = run(&conn, &sql, rusqlite::params!["k1", CUSTOMER_HISTORY]);
        assert_eq!(rows, 100);
        assert_eq!(grown, fresh, "1,000 older calls of the same customer");
    }

    /// Adds a payment of Stripe customer `customer` (its tenant's, or waiting for one).
    fn add_payment(conn: &rusqlite::Connection, seq: i64, tenant: Option<&str>, customer: &str) {
        conn.execute(
            "INSERT INTO payments (stripe_event_id, seq, tenant_id, stripe_customer_id,
                                   invoice_id, status, amount_cents, currency, occurred_at)
             VALUES (?1, ?2, ?3, ?4, 'in_1', 'succeeded', 4900, 'eur', 'now')",
            rusqlite::params![format!("evt_{seq}"), seq, tenant, customer],
        )
        .unwrap();
    }

    /// Adds a subscription of Stripe customer `customer` (its tenant's, or waiting for one).
    fn add_subscription(conn: &rusqlite::Connection, n: i64, tenant: Option<&str>, customer: &str) {
        conn.execute(
            "INSERT INTO subscriptions (subscription_id, tenant_id, stripe_customer_id, status,
                                        updated_at)
             VALUES (?1, ?2, ?3, 'active', 'now')",
            rusqlite::params![format!("sub_{n}"), tenant, customer],
        )
        .unwrap();
    }

    /// Registers, for `tenant`, number `n` on branch b1, organizer `n`, Stripe customer
    /// `cus_{n}` and token `n`.
    fn register(conn: &rusqlite::Connection, tenant: &str, n: i64) {
        conn.execute_batch(&format!(
            "INSERT INTO phone_numbers VALUES ('+4930{n}', '{tenant}', 'b1', 'now');
             INSERT INTO calcom_organizers VALUES ({n}, '{tenant}', 'now');
             INSERT INTO stripe_customers VALUES ('cus_{n}', '{tenant}', 'now');
             INSERT INTO api_tokens VALUES ('{n:064}', '{tenant}');"
        ))
        .unwrap();
    }

    #[test]
    fn a_stripe_customers_link_reads_no_more_as_other_customers_records_wait() {
        let conn = read_models();
        for seq in 0..5 {
            add_payment(&conn, seq, None, "cus_1");
        }
        // Neighbours on either side, so the index range ends on a row in both runs.
        add_payment(&conn, 5, None, "cus_0");
        add_payment(&conn, 6, None, "cus_9");
        for n in 0..3 {
            add_subscription(&conn, n, None, "cus_1");
        }
        add_subscription(&conn, 3, None, "cus_0");
        add_subscription(&conn, 4, None, "cus_9");
        let sql = crate::tenants::WAITING_PAYMENTS;
        let (rows, fresh) = run(&conn, sql, ["cus_1"]);
        assert_eq!(rows, 5);
        let subscriptions = crate::tenants::WAITING_SUBSCRIPTIONS;
        let (rows, fresh_subscriptions) = run(&conn, subscriptions, ["cus_1"]);
        assert_eq!(rows, 3);
        for seq in 7..3_007 {
            add_payment(&conn, seq, None, &format!("cus_{}", seq % 100 + 2));
            add_payment(&conn, seq + 10_000, Some("t1"), "cus_1");
            add_subscription(&conn, seq, None, &format!("cus_{}", seq % 100 + 2));
            add_subscription(&conn, seq + 10_000, Some("t1"), "cus_1");
        }
        let (rows, grown) = run(&conn, sql, ["cus_1"]);
        assert_eq!(rows, 5);
        assert_eq!(
            grown, fresh,
            "3,000 waiting for other customers, 3,000 of its own attributed"
        );
        let (rows, grown) = run(&conn, subscriptions, ["cus_1"]);
        assert_eq!(rows, 3);
        assert_eq!(grown, fresh_subscriptions, "the same for subscriptions");
    }

    #[test]
    fn a_tenants_registrations_read_no_more_as_other_tenants_register() {
        let conn = read_models();
        add_payment(&conn, 0, Some("t1"), "cus_1");
        for n in 0..3 {
            register(&conn, "t1", n);
        }
        // Neighbours on either side, so each index range ends on a row in both runs.
        for (n, tenant) in [(3, "t0"), (4, "t9")] {
            register(&conn, tenant, n);
            add_payment(&conn, n, Some(tenant), "cus_2");
        }
        let t1 = || rusqlite::types::Value::from("t1".to_owned());
        let statements = [
            (BRANCH_NUMBERS, vec![t1(), "b1".to_owned().into()]),
            (TENANT_ORGANIZERS, vec![t1()]),
            (TENANT_STRIPE_CUSTOMERS, vec![t1()]),
            (RECENT_PAYMENTS_SQL, vec![t1(), RECENT_PAYMENTS.into()]),
            (crate::tenants::DROP_TOKENS, vec![t1()]),
        ];
        let steps = |conn: &rusqlite::Connection| -> Vec<(usize, i32)> {
            // Each DELETE runs in a transaction rolled back, so the rows stay for the next.
            conn.execute_batch("BEGIN").unwrap();
            let steps = statements
                .iter()
                .map(|(sql, params)| run(conn, sql, rusqlite::params_from_iter(params)))
                .collect();
            conn.execute_batch("ROLLBACK").unwrap();
            steps
        };
        let fresh = steps(&conn);
        assert_eq!(
            fresh.iter().map(|(rows, _)| *rows).collect::<Vec<_>>(),
            [3, 3, 3, 1, 0],
            "a DELETE returns no rows"
        );
        for n in 5..3_005 {
            register(&conn, &format!("t{}", n % 50 + 2), n);
            add_payment(&conn, n, Some(&format!("t{}", n % 50 + 2)), "cus_2");
        }
        assert_eq!(
            steps(&conn),
            fresh,
            "3,000 registrations of 50 other tenants"
        );
    }

    fn busy_timeout(conn: &Conn) -> Result<i64, ProjectionError> {
        Ok(conn.query_row("PRAGMA busy_timeout", (), |r: &Row<'_>| r.get::<i64>(0))?)
    }

    #[test]
    fn a_query_without_waiting_has_no_busy_timeout_and_the_next_one_has_30_s() {
        let dir = tempfile::tempdir().unwrap();
        let read = ReadModels::open(dir.path()).unwrap();
        let inside = read.without_waiting(|rm| rm.with(busy_timeout));
        assert_eq!(
            inside.unwrap().unwrap(),
            0,
            "SQLITE_BUSY comes back at once"
        );
        let after = read.with(busy_timeout).unwrap();
        assert_eq!(
            after as u128,
            BUSY_TIMEOUT.as_millis(),
            "the same connection waits again"
        );
    }

    #[test]
    fn a_query_that_would_open_a_connection_is_refused_and_opens_none() {
        let dir = tempfile::tempdir().unwrap();
        let read = ReadModels::open(dir.path()).unwrap();
        read.with(|_| {
            // The one open connection is in use: the next query would open one.
            assert!(read.without_waiting(|rm| rm.checkpoint()).is_none());
            Ok(())
        })
        .unwrap();
        assert_eq!(read.idle.lock().unwrap().len(), 1, "no second connection");
        assert_eq!(
            read.without_waiting(|rm| rm.checkpoint()).unwrap().unwrap(),
            0
        );
    }

    #[test]
    fn a_locked_database_refuses_the_query_even_when_it_swallows_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let read = ReadModels::open(dir.path()).unwrap();
        let locked = || -> Result<(), ProjectionError> {
            Err(ProjectionError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            )))
        };
        let swallowed = read.without_waiting(|rm| Ok(rm.with(|_| locked()).is_err()));
        assert!(swallowed.is_none());
        // The connection was kept, and the thread's next queries wait as usual.
        assert_eq!(
            read.without_waiting(|rm| rm.checkpoint()).unwrap().unwrap(),
            0
        );
        assert_eq!(
            read.with(busy_timeout).unwrap() as u128,
            BUSY_TIMEOUT.as_millis()
        );
    }

    fn pair(start: &str, end: &str) -> (String, String) {
        (start.to_owned(), end.to_owned())
    }

    #[test]
    fn a_services_usual_length_is_its_most_common_the_most_recent_on_a_tie() {
        let times = [
            pair("2026-01-02T10:00:00.000Z", "2026-01-02T10:45:00.000Z"),
            pair("2026-01-01T10:00:00.000Z", "2026-01-01T10:30:00.000Z"),
            pair("2025-12-31T10:00:00.000Z", "2025-12-31T10:30:00.000Z"),
            pair("2025-12-30T10:00:00.000Z", "2025-12-30T10:45:00.000Z"),
            pair("not a time", "2025-12-30T10:45:00.000Z"),
            pair("2025-12-29T10:00:00.000Z", "2025-12-29T09:00:00.000Z"),
        ];
        assert_eq!(
            most_common_minutes(&times),
            Some(45),
            "two each: the latest wins"
        );
        assert_eq!(most_common_minutes(&times[1..]), Some(30));
        assert_eq!(
            most_common_minutes(&times[4..]),
            None,
            "unreadable or negative"
        );
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(12_345)).unwrap(), 12_345);
        for bad in ["", "c1.", "c1.zz", "12", "c2.10", "c1.-5", "c1.0"] {
            assert!(
                matches!(decode_cursor(bad), Err(ProjectionError::BadCursor(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_week_is_open_six_days() {
        let hours = default_opening_hours();
        assert_eq!(hours.len(), 6);
        assert!(hours.iter().all(|h| h.day != Weekday::Sun));
        let saturday = hours.iter().find(|h| h.day == Weekday::Sat).unwrap();
        assert_eq!(saturday.closes, NaiveTime::from_hms_opt(14, 0, 0).unwrap());
    }
}
