//! A small pool of connections, each with the session settings the store needs and its own
//! prepared statements.
//!
//! Small on purpose: the store needs a bounded number of connections, a fresh connection when
//! a pooled one has died (which is how the store reconnects after the database comes back),
//! and statements prepared once per connection. A connection that has failed is dropped
//! rather than returned, so the next request connects anew.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use switchboard_store::StoreError;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket, Statement};

use crate::error::{Target, from_pg};

pub(crate) struct Pool {
    config: Config,
    schema: String,
    target: Target,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// The statement for `sql`, prepared on this connection the first time it is asked for.
    pub(crate) async fn statement(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A connection lent by the pool; it goes back when dropped, unless it has closed.
pub(crate) struct PooledConn<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(crate) fn new(config: Config, schema: String, target: Target, size: usize) -> Self {
        Pool {
            config,
            schema,
            target,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// A connection: an idle one that is still open, or a new one.
    pub(crate) async fn get(&self) -> Result<PooledConn<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = {
            let mut idle = self.idle.lock().expect("pool lock poisoned");
            // Connections that died while idle (server restart, terminated backend) are
            // dropped here; the request gets a fresh one instead of an error.
            idle.retain(|conn| !conn.client.is_closed());
            idle.pop()
        };
        let conn = match idle {
            Some(conn) => conn,
            None => Conn {
                client: self.connect().await?,
                statements: HashMap::new(),
            },
        };
        Ok(PooledConn {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// A new connection outside the pool, its driver running on its own task.
    pub(crate) async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "event store connection ended");
            }
        });
        self.prepare_session(&client).await?;
        Ok(client)
    }

    /// A new connection whose driver the caller runs (the listener does, to see
    /// notifications). Call [`Pool::prepare_session`] once the driver runs.
    pub(crate) async fn connect_raw(
        &self,
    ) -> Result<(Client, Connection<Socket, NoTlsStream>), StoreError> {
        self.config
            .connect(NoTls)
            .await
            .map_err(|e| from_pg(&self.target, &e))
    }

    /// Points the session at the store's schema. Only that schema is on the search_path, so
    /// nothing the store creates or reads can land in, or come from, another schema.
    ///
    /// Plans are made for each execution's actual arguments: the append statements take
    /// arrays, and a generic plan cached while the tables were small (seq scans) kept being
    /// used as they grew, until autovacuum analyzed them; the benchmark fell from 18,000 to
    /// 1,300 appends/s within 40,000 appends. Planning these statements costs far less.
    pub(crate) async fn prepare_session(&self, client: &Client) -> Result<(), StoreError> {
        client
            .execute(
                "SELECT set_config('search_path', $1, false), \
                        set_config('plan_cache_mode', 'force_custom_plan', false)",
                &[&quote_identifier(&self.schema)],
            )
            .await
            .map_err(|e| from_pg(&self.target, &e))?;
        Ok(())
    }
}

impl Deref for PooledConn<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl DerefMut for PooledConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|conn| !conn.client.is_closed()) {
            self.pool
                .idle
                .lock()
                .expect("pool lock poisoned")
                .push(conn);
        }
    }
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
