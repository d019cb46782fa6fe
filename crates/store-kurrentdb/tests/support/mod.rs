//! What the KurrentDB tests share: the server to use (or why they are skipped) and a fresh
//! namespace per store, so runs and checks never see each other's streams.
//!
//! Unlike PostgreSQL, CI has no KurrentDB server: a missing variable skips these tests under
//! `CI=true` too, and says so. The README and the compose file say where to get a server.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::Write;

use switchboard_store_kurrentdb::{KurrentOptions, KurrentStore};
use uuid::Uuid;

pub const URL_VARIABLE: &str = "SWITCHBOARD_TEST_KURRENTDB_URL";

/// The test server's URL; None (after saying so) when the variable is unset.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to stderr rather than eprintln!, which the test harness captures and
            // hides for a passing test: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: SKIPPED, {URL_VARIABLE} is not set \
                 (e.g. kurrentdb://127.0.0.1:2113?tls=false; `docker compose up kurrentdb`)"
            );
            None
        }
    }
}

/// Options for a store of its own: a namespace no other run or check uses, holding streams
/// of any name (the conformance suite names its streams freely).
pub fn fresh_options() -> KurrentOptions {
    KurrentOptions {
        namespace: format!("sbtest{}-", Uuid::new_v4().simple()),
        categories: vec![String::new()],
        ..KurrentOptions::default()
    }
}

pub async fn fresh_store(url: &str) -> KurrentStore {
    KurrentStore::connect(url, fresh_options())
        .await
        .unwrap_or_else(|e| panic!("connect to {URL_VARIABLE}: {e}"))
}
