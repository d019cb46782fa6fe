//! Opens the event store the configuration names.

use std::path::Path;
use std::sync::Arc;

use switchboard_store::EventStore;
use switchboard_store::sqlite::{SqliteOptions, SqliteStore};
use switchboard_store_postgres::{PostgresOptions, PostgresStore};

use switchboard_projections::ReadModelsAt;

use crate::Error;
use crate::config::{ReadModelsLocation, StoreLocation};

/// The embedded store's file inside the data dir.
pub const EVENTS_FILE: &str = "events.sqlite";

/// Opens the store for appending events of up to `max_event_bytes` (see
/// [`crate::config::max_event_bytes`]).
pub async fn open_store(
    location: &StoreLocation,
    data_dir: &Path,
    max_event_bytes: usize,
) -> Result<Arc<dyn EventStore>, Error> {
    match location {
        StoreLocation::Embedded => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| Error::Config(format!("data dir {}: {e}", data_dir.display())))?;
            let options = SqliteOptions {
                max_event_bytes,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(&data_dir.join(EVENTS_FILE), options)?;
            Ok(Arc::new(store))
        }
        StoreLocation::Postgres(url) => {
            let (url, schema) = split_schema(url);
            let mut options = PostgresOptions {
                max_event_bytes,
                ..PostgresOptions::default()
            };
            if let Some(schema) = schema {
                options.schema = schema;
            }
            let store = PostgresStore::connect(&url, options).await?;
            Ok(Arc::new(store))
        }
        // Events go to KurrentDB; read models go where `--read-models` says (SQLite in the
        // data dir unless told otherwise).
        #[cfg(feature = "kurrentdb")]
        StoreLocation::KurrentDb(url) => {
            use switchboard_store_kurrentdb::{KurrentOptions, KurrentStore};
            // KurrentDB's own `MaxAppendSize` (1 MiB unless its configuration raises it) applies
            // to a whole append: the raw delivery of up to `max_event_bytes` with its events.
            let options = KurrentOptions {
                max_event_bytes,
                ..KurrentOptions::default()
            };
            let store = KurrentStore::connect(url, options).await?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "kurrentdb"))]
        StoreLocation::KurrentDb(_) => Err(Error::Config(format!(
            "store {}: this binary was built without KurrentDB support; rebuild it with \
             `cargo build --release -p switchboard-cli --features kurrentdb`, or use the \
             embedded store or PostgreSQL",
            location.describe()
        ))),
    }
}

/// Opens the store the configuration names for a command that only reads it (rebuild,
/// `events read`/`tail`): the embedded store without the writer's threads, so such a command
/// run beside `switchboard serve` leaves the server's file to the server (see
/// [`SqliteStore::open_reading`]). Other backends open as for serving.
pub async fn open_store_reading(
    location: &StoreLocation,
    data_dir: &Path,
) -> Result<Arc<dyn EventStore>, Error> {
    match location {
        StoreLocation::Embedded => Ok(Arc::new(SqliteStore::open_reading(
            &data_dir.join(EVENTS_FILE),
            SqliteOptions::default(),
        )?)),
        // Nothing is appended through it.
        _ => {
            open_store(
                location,
                data_dir,
                switchboard_store::DEFAULT_MAX_EVENT_BYTES,
            )
            .await
        }
    }
}

/// Where the read models of a deployment live: where `--read-models` says, or beside the
/// events (see [`ReadModelsLocation::FollowStore`]).
pub fn read_models_at(
    store: &StoreLocation,
    read_models: &ReadModelsLocation,
    data_dir: &Path,
) -> ReadModelsAt {
    match (read_models, store) {
        (ReadModelsLocation::Embedded, _)
        | (
            ReadModelsLocation::FollowStore,
            StoreLocation::Embedded | StoreLocation::KurrentDb(_),
        ) => ReadModelsAt::data_dir(data_dir),
        (ReadModelsLocation::FollowStore, StoreLocation::Postgres(url)) => {
            let (url, schema) = split_schema(url);
            let schema = schema.unwrap_or_else(|| PostgresOptions::default().schema);
            ReadModelsAt::beside_postgres_store(&url, &schema)
        }
        (ReadModelsLocation::Postgres(url), _) => {
            let (url, schema) = split_schema(url);
            ReadModelsAt::Postgres {
                url,
                schema: schema.unwrap_or_else(|| "switchboard_read_models".to_owned()),
            }
        }
    }
}

/// `postgres://…/db?schema=name` chooses the schema the store lives in (default
/// `switchboard`), so several deployments or test runs can share one database.
fn split_schema(url: &str) -> (String, Option<String>) {
    switchboard_store::url::take_query_param(url, "schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_models_follow_the_store_unless_told_otherwise() {
        let dir = Path::new("/data");
        let pg = StoreLocation::Postgres("postgres://u@h/db?schema=sb_1".into());
        assert_eq!(
            read_models_at(&pg, &ReadModelsLocation::FollowStore, dir),
            ReadModelsAt::Postgres {
                url: "postgres://u@h/db".into(),
                schema: "sb_1_read_models".into()
            }
        );
        assert_eq!(
            read_models_at(&pg, &ReadModelsLocation::Embedded, dir),
            ReadModelsAt::data_dir(dir)
        );
        let kurrent = StoreLocation::KurrentDb("esdb://h:2113".into());
        assert_eq!(
            read_models_at(&kurrent, &ReadModelsLocation::FollowStore, dir),
            ReadModelsAt::data_dir(dir)
        );
        assert_eq!(
            read_models_at(
                &kurrent,
                &ReadModelsLocation::Postgres("postgres://u@h/db".into()),
                dir
            ),
            ReadModelsAt::Postgres {
                url: "postgres://u@h/db".into(),
                schema: "switchboard_read_models".into()
            }
        );
    }

    #[test]
    fn the_schema_parameter_is_ours_and_other_parameters_stay() {
        assert_eq!(
            split_schema("postgres://u@h/db?schema=sb_1&connect_timeout=3"),
            (
                "postgres://u@h/db?connect_timeout=3".to_owned(),
                Some("sb_1".to_owned())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db?schema=sb_1"),
            ("postgres://u@h/db".to_owned(), Some("sb_1".to_owned()))
        );
        assert_eq!(
            split_schema("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), None)
        );
    }
}
