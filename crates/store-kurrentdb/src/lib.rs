//! The KurrentDB (formerly EventStoreDB) backend of the Switchboard event store, on the
//! official `kurrentdb` gRPC client.
//!
//! * Streams: a Switchboard stream `call-c1` is the KurrentDB stream `{namespace}call-c1`
//!   (no namespace by default); `$all` reads and the head subscription are filtered on the
//!   server to the store's stream prefixes (`mapping.rs`).
//! * Positions: the trait's global position is an event's `$all` prepare position plus one,
//!   lossless and in `$all` order (`mapping.rs` says why); `$all` reads start from exact
//!   positions the store has seen (`boundaries.rs`, `read.rs`).
//! * Appends: idempotent by event id and checked against the expected version by reading the
//!   stream, with KurrentDB's expected-revision check as the atomic guard, so nothing depends
//!   on KurrentDB's best-effort id cache (`append.rs`).
//! * `watch_head`: fed by a filtered catch-up subscription to `$all` (`subscription.rs`), so
//!   subscriptions wake on commits made by other processes too. Errors: `error.rs`.

mod append;
mod boundaries;
mod error;
mod mapping;
mod read;
mod subscription;

use std::sync::Arc;

use async_trait::async_trait;
use kurrentdb::{Client, ClientSettings};
use switchboard_store::{
    AppendOutcome, DEFAULT_MAX_EVENT_BYTES, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use mapping::SWITCHBOARD_CATEGORIES;

use self::boundaries::Boundaries;
use self::mapping::{Names, switchboard_position};

/// The largest event this store will append: the client reads one event per gRPC message and
/// refuses a message over 17 MiB (`kurrentdb`'s `MAX_RECEIVE_MESSAGE_SIZE`), so an event
/// larger than this, less the envelope's room, could be written and never read back.
pub const MAX_READABLE_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// How the KurrentDB store behaves; `Default` is what `serve` uses.
#[derive(Debug, Clone)]
pub struct KurrentOptions {
    /// Put before every stream name in KurrentDB, so several deployments or test runs share
    /// one server without seeing each other's events. Empty by default. A `namespace=`
    /// parameter in the URL overrides it.
    pub namespace: String,
    /// The stream-name prefixes the store writes and reads back in `$all` (after the
    /// namespace): Switchboard's own by default. An append to a stream of no category is
    /// refused, since `$all` would never show it.
    pub categories: Vec<String>,
    /// The largest event accepted: serialized data plus metadata, in bytes. KurrentDB refuses
    /// appends over its own `MaxAppendSize` (1 MiB by default) whatever this says; the
    /// compose file raises it.
    pub max_event_bytes: usize,
    /// `$all` positions remembered to start reads from (see `boundaries.rs`).
    pub known_positions: usize,
}

impl Default for KurrentOptions {
    fn default() -> Self {
        KurrentOptions {
            namespace: String::new(),
            categories: SWITCHBOARD_CATEGORIES.map(str::to_owned).to_vec(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            known_positions: 65_536,
        }
    }
}

/// The event store on KurrentDB. Dropping it stops its head subscription.
pub struct KurrentStore {
    inner: Arc<Inner>,
    head: watch::Receiver<u64>,
    feed: JoinHandle<()>,
}

/// What the store's parts share.
struct Inner {
    client: Client,
    names: Names,
    /// The server as messages name it, without credentials.
    target: String,
    max_event_bytes: usize,
    boundaries: Boundaries,
    head: watch::Sender<u64>,
}

impl Inner {
    /// Moves the head forward (never back: the feed and appends race to report one commit).
    fn advance_head(&self, position: u64) {
        self.head.send_if_modified(|head| {
            let newer = position > *head;
            if newer {
                *head = position;
            }
            newer
        });
    }
}

impl KurrentStore {
    /// Connects to KurrentDB at `url` and starts the head subscription.
    ///
    /// `url` is a KurrentDB connection string: `kurrentdb://[user:password@]host:2113[?tls=false]`,
    /// or `esdb://…`, `kdb://…` and their `+discover` forms for a cluster found by DNS. A
    /// `namespace=` parameter is the store's, taken out before the client sees the URL.
    ///
    /// Refused at once, with a message naming the problem (never the password): a URL that
    /// does not parse or a store layout that would read KurrentDB's system streams
    /// ([`StoreError::Backend`]); a server that cannot be reached
    /// ([`StoreError::Unavailable`]); refused credentials ([`StoreError::Backend`]).
    pub async fn connect(
        url: &str,
        mut options: KurrentOptions,
    ) -> Result<KurrentStore, StoreError> {
        let (url, namespace) = split_namespace(url);
        if let Some(namespace) = namespace {
            options.namespace = namespace;
        }
        let target = error::describe(&url);
        let settings = url.parse::<ClientSettings>().map_err(|_| {
            // The parser's messages quote parts of the URL: they are taken from the URL
            // without its credentials, so none can leak.
            let why = error::without_credentials(&url)
                .parse::<ClientSettings>()
                .err()
                .map_or_else(
                    || "the user or password part is malformed".to_owned(),
                    |e| e.message().to_owned(),
                );
            StoreError::Backend(format!("invalid KurrentDB URL {target}: {why}"))
        })?;
        if options.max_event_bytes > MAX_READABLE_EVENT_BYTES {
            return Err(StoreError::Backend(format!(
                "KurrentDB {target}: events of up to {} bytes (twice --max-body plus 1 MiB) \
                 could be stored but not read back: the client reads at most 17 MiB per event. \
                 With a KurrentDB store, --max-body may be at most 7 MiB",
                options.max_event_bytes
            )));
        }
        let names = Names::new(&options.namespace, &options.categories)?;
        let client = Client::new(settings)
            .map_err(|e| StoreError::Backend(format!("KurrentDB {target}: {e}")))?;
        let (head_tx, head) = watch::channel(0);
        let inner = Arc::new(Inner {
            client,
            names,
            target,
            max_event_bytes: options.max_event_bytes,
            boundaries: Boundaries::new(options.known_positions),
            head: head_tx,
        });
        // The first read is the reachability check: the client connects lazily.
        let last = read::last_event(&inner).await?;
        if let Some(position) = last.and_then(switchboard_position) {
            inner.advance_head(position);
        }
        let feed = subscription::spawn_feed(Arc::clone(&inner));
        Ok(KurrentStore { inner, head, feed })
    }

    /// The prefix before every stream name in KurrentDB.
    pub fn namespace(&self) -> &str {
        self.inner.names.namespace()
    }
}

/// `kurrentdb://…?namespace=name` chooses the store's namespace, like PostgreSQL's
/// `?schema=`; the parameter is ours, so it is taken out and the client's stay.
fn split_namespace(url: &str) -> (String, Option<String>) {
    switchboard_store::url::take_query_param(url, "namespace")
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        append::append(&self.inner, stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_stream(&self.inner, stream, from_version, limit).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_all(&self.inner, from_position, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        read::stream_version(&self.inner, stream).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        read::head_position(&self.inner).await
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        // The feed holds the client and would follow `$all` forever.
        self.feed.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_parameter_is_ours_and_the_clients_stay() {
        assert_eq!(
            split_namespace("kurrentdb://db:2113?tls=false&namespace=sbtest-1-"),
            (
                "kurrentdb://db:2113?tls=false".to_owned(),
                Some("sbtest-1-".to_owned())
            )
        );
        assert_eq!(
            split_namespace("esdb://db:2113?namespace=a-"),
            ("esdb://db:2113".to_owned(), Some("a-".to_owned()))
        );
        assert_eq!(
            split_namespace("kurrentdb://db:2113?tls=false"),
            ("kurrentdb://db:2113?tls=false".to_owned(), None)
        );
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_refused_without_its_password() {
        for url in [
            "postgres://u:secret@db",
            "kurrentdb://u:secret@db:port?tls=false",
            "kurrentdb://u:secret@db:2113?tls=maybe",
        ] {
            let err = KurrentStore::connect(url, KurrentOptions::default())
                .await
                .err()
                .unwrap_or_else(|| panic!("{url} must be refused"));
            assert!(
                matches!(&err, StoreError::Backend(m) if m.contains("invalid KurrentDB URL") && !m.contains("secret")),
                "{url}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn events_larger_than_the_client_can_read_back_are_refused_before_connecting() {
        let too_large = KurrentOptions {
            max_event_bytes: MAX_READABLE_EVENT_BYTES + 1,
            ..KurrentOptions::default()
        };
        let err = KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=false", too_large)
            .await
            .err()
            .expect("a limit past what the client reads must be refused");
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("--max-body may be at most")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_layout_reading_system_streams_is_refused_before_connecting() {
        let options = KurrentOptions {
            categories: vec![String::new()],
            ..KurrentOptions::default()
        };
        let err = KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=false", options)
            .await
            .err()
            .expect("an empty prefix would read $-streams");
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("system streams")),
            "{err:?}"
        );
    }
}
