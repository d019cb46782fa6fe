//! Opens the event store the configuration names.

use std::path::Path;
use std::sync::Arc;

use switchboard_store::EventStore;
use switchboard_store::sqlite::{SqliteOptions, SqliteStore};

use crate::Error;
use crate::config::StoreLocation;

/// The embedded store's file inside the data dir.
pub const EVENTS_FILE: &str = "events.sqlite";

pub fn open_store(location: &StoreLocation, data_dir: &Path) -> Result<Arc<dyn EventStore>, Error> {
    match location {
        StoreLocation::Embedded => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| Error::Config(format!("data dir {}: {e}", data_dir.display())))?;
            let store = SqliteStore::open(&data_dir.join(EVENTS_FILE), SqliteOptions::default())?;
            Ok(Arc::new(store))
        }
        other => Err(Error::Config(format!(
            "store {}: this build has no backend for it yet; use the embedded store",
            other.describe()
        ))),
    }
}
