//! What the PostgreSQL tests share: the database to use (or why they are skipped) and
//! schemas of their own that are dropped afterwards, whether the test passed or not.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::Mutex;

use switchboard_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

pub use switchboard_store::conformance::postgres_test_url as database_url;

/// A raw connection for the tests' own SQL, its driver on a task.
pub async fn raw_client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"));
    tokio::spawn(connection);
    client
}

/// Fresh schema names, dropped (with everything in them) when this goes out of scope.
pub struct Schemas {
    url: String,
    names: Mutex<Vec<String>>,
}

impl Schemas {
    pub fn new(url: &str) -> Self {
        Schemas {
            url: url.to_owned(),
            names: Mutex::new(Vec::new()),
        }
    }

    /// A new, unused schema name, remembered for dropping.
    pub fn fresh(&self) -> String {
        let name = format!("sb_test_{}", Uuid::new_v4().simple());
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// Options for a store in a fresh schema, tagged so tests can find its sessions.
    pub fn options(&self) -> PostgresOptions {
        let schema = self.fresh();
        PostgresOptions {
            application_name: schema.clone(),
            schema,
            ..PostgresOptions::default()
        }
    }

    pub async fn store(&self) -> PostgresStore {
        let options = self.options();
        PostgresStore::connect(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("connect a test store: {e}"))
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let url = self.url.clone();
        // Drop may run inside the test's runtime (or while it unwinds), where blocking on
        // another future is not allowed; a thread with its own runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = raw_client(&url).await;
                for name in names {
                    if let Err(e) = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await
                    {
                        eprintln!("could not drop test schema {name}: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}
