//! The shared conformance suite against PostgreSQL, one fresh schema per check.

mod support;

use std::sync::Arc;

use switchboard_store::EventStore;
use switchboard_store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(url) = support::database_url("postgres_store_passes_the_conformance_suite") else {
        return;
    };
    let schemas = support::Schemas::new(&url);
    conformance::run(|| {
        let store = schemas.store();
        async move { Arc::new(store.await) as Arc<dyn EventStore> }
    })
    .await;
}
