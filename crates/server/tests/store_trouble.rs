//! When the store cannot take an append, the answer is 503 and nothing is acknowledged; when
//! it recovers, so does the service, without a restart, and liveness never fails meanwhile.
//! A store that stopped for good (as the embedded one after a failed sync) fails liveness, so
//! that whatever supervises the process restarts it. Driven through the router with
//! `oneshot`, around a store that can be switched off or stopped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
/// a database that went away; once `stop` has been called it refuses everything for good, as
/// the embedded store does after a failed sync.
struct SwitchableStore {
    inner: SqliteStore,
    down: AtomicBool,
    stopped: Mutex<Option<String>>,
}

impl SwitchableStore {
    fn stop(&self, reason: &str) {
        *self.stopped.lock().unwrap() = Some(reason.to_owned());
    }

    fn refusal(&self) -> Option<StoreError> {
        if let Some(reason) = self.stopped() {
            return Some(StoreError::Unavailable(reason));
        }
        self.down
            .load(Ordering::SeqCst)
            .then(|| StoreError::Unavailable("disk full".into()))
    }
}

#[async_trait]
impl EventStore for SwitchableStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
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
        if let Some(reason) = self.stopped() {
            return Err(StoreError::Unavailable(reason));
        }
        self.inner.head_position().await
    }
    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }
    fn stopped(&self) -> Option<String> {
        self.stopped.lock().unwrap().clone()
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

/// The service around a switchable store in `dir`, the store down from the start when `down`.
fn service(dir: &Path, down: bool) -> (Arc<SwitchableStore>, axum::Router) {
    let store = Arc::new(SwitchableStore {
        inner: SqliteStore::open(&dir.join("events.sqlite"), SqliteOptions::default()).unwrap(),
        down: AtomicBool::new(down),
        stopped: Mutex::default(),
    });
    let as_store: Arc<dyn EventStore> = store.clone();
    let lag = Projector::open(as_store.clone(), dir).unwrap().lag();
    let mut config = Config::default();
    config.secrets.retell = vec![Secret::new(SECRET)];
    let state = AppState::new(as_store, config, ReadModels::open(dir).unwrap(), lag);
    (store, switchboard_server::router(Arc::new(state)))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_store_that_cannot_append_gets_503_and_the_service_recovers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, app) = service(dir.path(), true);
    let as_store: &dyn EventStore = &*store;
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

/// Trouble the store recovers from (appends refused while a disk is full) leaves liveness
/// alone: a supervisor must not restart a service that will recover by itself.
#[tokio::test]
async fn trouble_the_store_recovers_from_leaves_liveness_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, app) = service(dir.path(), true);
    let body =
        r#"{"event":"call_started","call":{"call_id":"c-down","to_number":"+493083793369"}}"#;
    let (status, answer, _) = status_and_body(&app, delivery(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let (status, answer, _) = status_and_body(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "ok");
}

/// A store that stopped for good (the embedded store after a failed sync) refuses deliveries
/// until the process restarts, so liveness fails too and a supervisor restarts it; the probe
/// is not told the store's files.
#[tokio::test]
async fn a_store_that_stopped_for_good_fails_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let (store, app) = service(dir.path(), false);
    let (status, _, _) = status_and_body(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);

    store.stop("/data/events.sqlite: stopped after a failed sync of the write-ahead log (EIO)");
    let (status, answer, _) = status_and_body(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["status"], "stopped");
    assert!(
        !answer.to_string().contains("events.sqlite"),
        "internals stay in the log: {answer}"
    );
    let (status, answer, _) = status_and_body(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let body =
        r#"{"event":"call_started","call":{"call_id":"c-stopped","to_number":"+493083793369"}}"#;
    let (status, answer, _) = status_and_body(&app, delivery(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
}
