//! Opens the event store the configuration names.

use std::path::Path;
use std::sync::Arc;

use switchboard_store::EventStore;
use switchboard_store::sqlite::{SqliteOptions, SqliteStore};
use switchboard_store_postgres::{PostgresOptions, PostgresStore};

use crate::Error;
use crate::config::StoreLocation;

/// The embedded store's file inside the data dir.
pub const EVENTS_FILE: &str = "events.sqlite";

pub async fn open_store(
    location: &StoreLocation,
    data_dir: &Path,
) -> Result<Arc<dyn EventStore>, Error> {
    match location {
        StoreLocation::Embedded => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| Error::Config(format!("data dir {}: {e}", data_dir.display())))?;
            let store = SqliteStore::open(&data_dir.join(EVENTS_FILE), SqliteOptions::default())?;
            Ok(Arc::new(store))
        }
        StoreLocation::Postgres(url) => {
            let (url, schema) = split_schema(url);
            let mut options = PostgresOptions::default();
            if let Some(schema) = schema {
                options.schema = schema;
            }
            let store = PostgresStore::connect(&url, options).await?;
            Ok(Arc::new(store))
        }
        // Events go to KurrentDB; read models stay in the data dir's SQLite.
        #[cfg(feature = "kurrentdb")]
        StoreLocation::KurrentDb(url) => {
            use switchboard_store_kurrentdb::{KurrentOptions, KurrentStore};
            let store = KurrentStore::connect(url, KurrentOptions::default()).await?;
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

/// `postgres://…/db?schema=name` chooses the schema the store lives in (default
/// `switchboard`), so several deployments or test runs can share one database.
fn split_schema(url: &str) -> (String, Option<String>) {
    switchboard_store::url::take_query_param(url, "schema")
}

#[cfg(test)]
mod tests {
    use super::split_schema;

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
