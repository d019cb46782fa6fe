//! Creating and migrating the store's schema, versioned in `switchboard_schema_version`.
//!
//! The service sets up its own schema: on first connect it creates the schema and the tables;
//! on a later version it applies what is missing, in one transaction. A schema it cannot
//! vouch for is refused and left exactly as it was: one whose version is newer than this build
//! understands (a newer Switchboard migrated it; altering it could destroy what that version
//! relies on), or one that holds tables with the store's names but no version record
//! (someone else's tables).

use std::path::PathBuf;

use switchboard_store::StoreError;
use tokio_postgres::Client;

use crate::error::{Target, from_pg};
use crate::pool::quote_identifier;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 2;

/// Each version's script, index = version - 1. A later version appends its migration here;
/// existing entries never change, since databases in the field were built from them.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/schema_v1.sql"),
    include_str!("sql/schema_v2.sql"),
];

const VERSION_TABLE: &str = "CREATE TABLE switchboard_schema_version (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The tables a version-1 store owns; finding one of them without a version record means the
/// schema holds something that is not ours.
const STORE_TABLES: &[&str] = &["events", "streams", "global_position"];

/// Brings the schema `schema` to [`SCHEMA_VERSION`], creating it when absent. `client` must
/// have the schema as its search_path.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    target: &Target,
) -> Result<(), StoreError> {
    let pg = |e| from_pg(target, &e);
    let tx = client.transaction().await.map_err(pg)?;
    // Two instances starting together would otherwise both find version 0 and both create
    // the tables; the second waits here, then finds the first one's work done.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('switchboard schema ' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(pg)?;

    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(pg)?
        .is_some();
    if !exists {
        // Only when absent: CREATE SCHEMA IF NOT EXISTS would still demand the CREATE
        // privilege on the database from a user that has been handed an existing schema.
        tx.batch_execute(&format!("CREATE SCHEMA {}", quote_identifier(schema)))
            .await
            .map_err(pg)?;
    }

    let current = match current_version(&tx, schema, target).await {
        Ok(current) => current,
        Err(refused) => {
            // As below: the connection clean before the caller hears of it.
            let _ = tx.rollback().await;
            return Err(refused);
        }
    };
    if current >= SCHEMA_VERSION {
        let checked = if current > SCHEMA_VERSION {
            Err(refuse(
                target,
                format!(
                    "the event store schema is at version {current}, newer than this build \
                     understands ({SCHEMA_VERSION}); upgrade Switchboard. The schema was not \
                     altered."
                ),
            ))
        } else {
            check_columns(&tx, schema, target).await
        };
        // Nothing to write. Ended here rather than by dropping it, so the connection is
        // clean (and the advisory lock released) before the caller hears the answer.
        tx.rollback().await.map_err(pg)?;
        return checked;
    }
    if current == 0 {
        tx.batch_execute(VERSION_TABLE).await.map_err(pg)?;
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(script).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO switchboard_schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tracing::info!(%target, version, "event store schema migrated");
    }
    tx.commit().await.map_err(pg)
}

/// The columns of `events` this build reads and writes. A schema that records the current
/// version but lacks one (altered by hand, or migrated by a development build whose version 2
/// made the columns `json`) is refused here, with the columns named, rather than failing
/// every append and read with "column does not exist".
const EVENT_COLUMNS: &[&str] = &[
    "position",
    "stream",
    "version",
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "occurred_nanos",
    "recorded_at",
    "data",
    "metadata",
    "data_exact",
    "metadata_exact",
];

async fn check_columns(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    target: &Target,
) -> Result<(), StoreError> {
    let found: Vec<(String, String)> = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'events'",
            &[&schema],
        )
        .await
        .map_err(|e| from_pg(target, &e))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let has = |name: &str, of_type: Option<&str>| {
        found
            .iter()
            .any(|(column, data_type)| column == name && of_type.is_none_or(|t| t == data_type))
    };
    let mut wrong: Vec<String> = EVENT_COLUMNS
        .iter()
        .filter(|name| !has(name, None))
        .map(|name| format!("{name} (missing)"))
        .collect();
    for jsonb in ["data", "metadata"] {
        if has(jsonb, None) && !has(jsonb, Some("jsonb")) {
            wrong.push(format!("{jsonb} (not jsonb)"));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(refuse(
        target,
        format!(
            "the event store schema records version {SCHEMA_VERSION} but its events table does \
             not match it: {}. It was altered outside Switchboard or by a development build; \
             the schema was not altered.",
            wrong.join(", ")
        ),
    ))
}

/// The highest version recorded in the schema; 0 for a schema with none of the store's tables.
async fn current_version(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    target: &Target,
) -> Result<i32, StoreError> {
    let pg = |e| from_pg(target, &e);
    let has_version_table = tx
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'switchboard_schema_version'",
            &[&schema],
        )
        .await
        .map_err(pg)?
        .is_some();
    if has_version_table {
        let row = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM switchboard_schema_version",
                &[],
            )
            .await
            .map_err(pg)?;
        return Ok(row.get(0));
    }
    let names: Vec<&str> = STORE_TABLES.to_vec();
    let foreign: Vec<String> = tx
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename = ANY ($2) \
             ORDER BY tablename",
            &[&schema, &names],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !foreign.is_empty() {
        return Err(refuse(
            target,
            format!(
                "the schema holds table(s) {} but no switchboard_schema_version: they are not \
                 a Switchboard event store; refusing to use or alter them",
                foreign.join(", ")
            ),
        ));
    }
    Ok(0)
}

/// A schema a human must look at: `Corrupt`, whose "location" is the database and schema.
fn refuse(target: &Target, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: PathBuf::from(target.to_string()),
        reason,
    }
}
