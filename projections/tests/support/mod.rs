//! Shared by the integration tests: a temp store, event builders, and table comparison.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

pub mod history;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use switchboard_domain::event::*;
use switchboard_projections::sql::Cell;
use switchboard_projections::{ProjectionName, Projector, ReadModels, ReadModelsAt, open_reader};
use switchboard_store::{EventStore, ExpectedVersion, NewEvent, SqliteOptions, SqliteStore};
use tempfile::TempDir;
use uuid::Uuid;

pub struct Harness {
    pub dir: TempDir,
    pub store: Arc<SqliteStore>,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default()).unwrap();
        Harness {
            dir,
            store: Arc::new(store),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store's last committed position.
    pub fn head(&self) -> u64 {
        *self.store.watch_head().borrow()
    }

    pub fn dyn_store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    /// Appends domain events to `stream` as the server would (type, version, JSON data).
    pub async fn append(&self, stream: &str, events: Vec<Event>) {
        let new = events.into_iter().map(|e| new_event(&e)).collect();
        self.store
            .append(stream, ExpectedVersion::Any, new)
            .await
            .unwrap();
    }

    pub async fn append_raw(&self, stream: &str, event_type: &str, data: serde_json::Value) {
        let event = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at: at(0),
            data,
            metadata: serde_json::json!({"provider": "test"}),
        };
        self.store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }

    /// Folds everything appended so far into the live read models and opens them.
    pub async fn project(&self) -> ReadModels {
        let mut projector = Projector::open(self.dyn_store(), self.data_dir()).unwrap();
        projector.catch_up().await.unwrap();
        ReadModels::open(self.data_dir()).unwrap()
    }
}

/// A projector following the store on a task of its own, as a server runs it.
pub struct Running {
    pub lag: switchboard_projections::ProjectionLag,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), switchboard_projections::ProjectionError>>,
}

pub fn run_in_background(projector: Projector) -> Running {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    Running {
        lag: projector.lag(),
        stop,
        task: tokio::spawn(projector.run(shutdown)),
    }
}

impl Running {
    /// Asks the runner to stop and waits for it; fails the test if it ended in error.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

pub fn new_event(event: &Event) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        occurred_at: event.occurred_at(),
        data: event.to_json(),
        metadata: serde_json::json!({"provider": "test"}),
    }
}

/// Minute `m` of a fixed test day.
pub fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap() + chrono::Duration::minutes(minute)
}

pub fn parties(from: &str, to: &str) -> CallParties {
    CallParties {
        from_number: Some(from.into()),
        to_number: Some(to.into()),
        direction: Some("inbound".into()),
        ..CallParties::default()
    }
}

pub fn call_ended(call_id: &str, from: &str, to: &str, minute: i64) -> Event {
    CallEnded {
        call_id: call_id.into(),
        occurred_at: at(minute),
        parties: parties(from, to),
        outcome: CallOutcome {
            duration_s: Some(120),
            transcript: Some("Agent: Guten Tag".into()),
            summary: Some("wants an appointment".into()),
            customer_name: Some("Erika Mustermann".into()),
            ..CallOutcome::default()
        },
    }
    .into()
}

pub fn booking_details(
    minute: i64,
    organizer: i64,
    attendee_phone: Option<&str>,
) -> BookingDetails {
    BookingDetails {
        calcom_booking_id: None,
        title: Some("Herrenhaarschnitt".into()),
        description: None,
        start: at(minute + 1440),
        end: at(minute + 1470),
        service: Some("Herrenhaarschnitt".into()),
        event_type_id: None,
        organizer: Some(Organizer {
            id: Some(organizer),
            name: Some("Anna".into()),
            email: None,
            time_zone: None,
        }),
        attendees: vec![Attendee {
            name: Some("Erika M.".into()),
            email: Some("erika@example.com".into()),
            phone: attendee_phone.map(Into::into),
            time_zone: None,
        }],
        location: None,
        provider_status: Some("ACCEPTED".into()),
    }
}

pub fn booking_created(uid: &str, call_id: Option<&str>, minute: i64, organizer: i64) -> Event {
    BookingCreated {
        booking_uid: uid.into(),
        occurred_at: at(minute),
        details: booking_details(minute, organizer, None),
        call_id: call_id.map(Into::into),
        rescheduled_from: None,
    }
    .into()
}

pub fn registered(tenant: &str, minute: i64) -> Event {
    TenantRegistered {
        tenant_id: tenant.into(),
        occurred_at: at(minute),
        name: format!("Salon {tenant}"),
    }
    .into()
}

pub fn phone_assigned(tenant: &str, branch: &str, number: &str, minute: i64) -> Event {
    PhoneNumberAssigned {
        tenant_id: tenant.into(),
        branch_id: branch.into(),
        phone_number: number.into(),
        occurred_at: at(minute),
    }
    .into()
}

pub fn phone_unassigned(tenant: &str, branch: &str, number: &str, minute: i64) -> Event {
    PhoneNumberUnassigned {
        tenant_id: tenant.into(),
        branch_id: branch.into(),
        phone_number: number.into(),
        occurred_at: at(minute),
    }
    .into()
}

pub fn organizer_linked(tenant: &str, organizer: i64, minute: i64) -> Event {
    CalcomOrganizerLinked {
        tenant_id: tenant.into(),
        organizer_id: organizer,
        occurred_at: at(minute),
    }
    .into()
}

/// Every row of every read-model table as text, rows sorted: what "row for row" compares,
/// across databases too (each orders by its own rules, so the order is not compared).
/// Blocking: on PostgreSQL, call it off the async threads.
pub fn dump_at(at: &ReadModelsAt) -> Vec<(String, Vec<String>)> {
    let conn = open_reader(at).unwrap();
    let mut tables = Vec::new();
    for projection in ProjectionName::ALL {
        for table in projection.tables() {
            let mut rows: Vec<String> = conn
                .prepare_cached(&format!("SELECT * FROM {table}"))
                .unwrap()
                .query_map((), |row| {
                    let mut fields = Vec::new();
                    for i in 0..row.column_count() {
                        fields.push(match row.cell(i)? {
                            Cell::Null => "NULL".to_owned(),
                            Cell::Int(v) => v.to_string(),
                            Cell::Real(v) => format!("{v:?}"),
                            Cell::Text(t) => format!("{t:?}"),
                            Cell::Blob(b) => format!("blob{b:?}"),
                        });
                    }
                    Ok(fields.join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            tables.push((table.to_string(), rows));
        }
    }
    tables
}

/// [`dump_at`] of a SQLite read-models file.
/// Turns the read models at `path` into what a build of layout 1 left: `customers` with a
/// rowid and a `UNIQUE (tenant_id, phone)`, holding a row this build would not have written.
pub fn turn_into_layout_1(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TABLE customers;
         CREATE TABLE customers (
             customer_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, tenant_id TEXT NOT NULL,
             phone TEXT NOT NULL, name TEXT, email TEXT,
             calls_count INTEGER NOT NULL DEFAULT 0,
             appointments_count INTEGER NOT NULL DEFAULT 0,
             first_seen_at TEXT NOT NULL, last_seen_at TEXT NOT NULL,
             UNIQUE (tenant_id, phone));
         INSERT INTO customers VALUES ('stale', 1, 't', '+49', NULL, NULL, 0, 0, 'a', 'a');
         PRAGMA user_version = 1;",
    )
    .unwrap();
}

/// The layout stamped in the read models at `path`, and how `customers` is declared.
pub fn layout_and_customers(path: &Path) -> (i64, String) {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), sql
             FROM sqlite_master WHERE name = 'customers'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Points the read-models link in `data_dir` at `file` (a name in that dir), atomically, as a
/// full rebuild's install does.
#[cfg(unix)]
pub fn move_link_to(data_dir: &Path, file: &str) {
    let pending = data_dir.join("pending-link");
    std::os::unix::fs::symlink(file, &pending).unwrap();
    std::fs::rename(
        &pending,
        switchboard_projections::read_models_path(data_dir),
    )
    .unwrap();
}

pub fn dump(path: &Path) -> Vec<(String, Vec<String>)> {
    dump_at(&ReadModelsAt::Sqlite(path.to_path_buf()))
}
