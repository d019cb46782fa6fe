//! When the store cannot take an append, the answer is 503 and nothing is acknowledged; when
//! it recovers, so does the service, without a restart. Driven through the router with
//! `oneshot`, around a store that can be switched off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use switchboard_projections::{Projector, ReadModels};
use switchboard_server::AppState;
use switchboard_server::config::Config;
use switchboard_store::sqlite::{SqliteOptions, SqliteStore};
use switchboard_store::{
    AppendOutcome, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError,
};
use switchboard_webhooks::{Scheme, Secret, sign};
use tokio::sync::watch;
use tower::ServiceExt;

const SECRET: &str = "retell-test-secret";

/// A real store whose appends fail with `Unavailable` while `down` is set, like a full disk or
/// a database that went away.
struct SwitchableStore {
    inner: SqliteStore,
    down: AtomicBool,
}

#[async_trait]
impl EventStore for SwitchableStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("disk full".into()));
        }
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }
    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }
}

fn delivery(body: &str) -> Request<Body> {
    let mut request =
        Request::post("/api/retell/webhook").header("content-type", "application/json");
    let now = chrono::Utc::now().timestamp_millis();
    for (name, value) in sign(
        Scheme::RetellDocumented,
        &Secret::new(SECRET),
        body.as_bytes(),
        now,
    ) {
        request = request.header(name, value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn status_and_body(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_default(),
        retry_after,
    )
}

#[tokio::test]
async fn a_store_that_cannot_append_gets_503_and_the_service_recovers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SwitchableStore {
        inner: SqliteStore::open(&dir.path().join("events.sqlite"), SqliteOptions::default())
            .unwrap(),
        down: AtomicBool::new(true),
    });
    let as_store: Arc<dyn EventStore> = store.clone();
    let lag = Projector::open(as_store.clone(), dir.path()).unwrap().lag();
    let mut config = Config::default();
    config.secrets.retell = vec![Secret::new(SECRET)];
    let state = AppState::new(
        as_store.clone(),
        config,
        ReadModels::open(dir.path()).unwrap(),
        lag,
    );
    let app = switchboard_server::router(Arc::new(state));
    let body = r#"{"event":"call_started","call":{"call_id":"c-503","to_number":"+493083793369"}}"#;

    let (status, answer, retry_after) = status_and_body(&app, delivery(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable");
    assert!(
        !answer.to_string().contains("disk full"),
        "internals stay in the log: {answer}"
    );
    assert!(retry_after.is_some(), "the provider is told when to retry");
    assert_eq!(
        as_store.stream_version("call-c-503").await.unwrap(),
        None,
        "nothing was written"
    );

    store.down.store(false, Ordering::SeqCst);
    let (status, answer, _) = status_and_body(&app, delivery(body)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recovered without a restart: {answer}"
    );
    let (status, _, _) = status_and_body(&app, delivery(body)).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the retry that succeeded is now the record"
    );
}
