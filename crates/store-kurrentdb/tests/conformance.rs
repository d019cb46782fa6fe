//! The shared conformance suite against KurrentDB, one fresh namespace per check.

mod support;

use std::sync::Arc;

use switchboard_store::EventStore;
use switchboard_store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kurrentdb_store_passes_the_conformance_suite() {
    let Some(url) = support::server_url("kurrentdb_store_passes_the_conformance_suite") else {
        return;
    };
    conformance::run(|| {
        let url = url.clone();
        async move { Arc::new(support::fresh_store(&url).await) as Arc<dyn EventStore> }
    })
    .await;
}
