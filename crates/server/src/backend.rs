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
            let store = PostgresStore::connect(url, PostgresOptions::default()).await?;
            Ok(Arc::new(store))
        }
        StoreLocation::KurrentDb(_) => Err(Error::Config(format!(
            "store {}: this build has no KurrentDB backend; use the embedded store or PostgreSQL",
            location.describe()
        ))),
    }
}
