//! tokio-postgres or sqlx for the PostgreSQL event store? Both run the store's append shape —
//! a transaction that locks the position counter row, inserts one 1 KiB event and commits — from
//! 64 concurrent tasks over a pool of 8 connections, against the same database, in separate
//! schemas. Reported: transactions/s, and CPU time per transaction of this process (the
//! client's own cost, from getrusage). tokio-postgres also runs the same transactions pipelined
//! (each connection sends a transaction's statements without waiting for each answer), which
//! is what the store's group commit relies on and sqlx cannot express. Last, both read one
//! 1 KiB row by key from 64 tasks: the client's overhead without the position lock.
//!
//!   cargo run --release --manifest-path tools/pg-client-compare/Cargo.toml -- URL [SECONDS]
//!
//! Talks only to the given database; every run stops after SECONDS (default 10) and drops its
//! schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TASKS: usize = 64;
const CONNECTIONS: usize = 8;

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn setup_sql(schema: &str) -> String {
    format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.counter (id INT PRIMARY KEY, position BIGINT NOT NULL);
         INSERT INTO {schema}.counter VALUES (1, 0);
         CREATE TABLE {schema}.events (position BIGINT PRIMARY KEY, stream TEXT NOT NULL,
                                      data JSONB NOT NULL)"
    )
}

const LOCK: &str = "UPDATE counter SET position = position + 1 WHERE id = 1 RETURNING position";
const INSERT: &str = "INSERT INTO events (position, stream, data) VALUES ($1, $2, $3::text::jsonb)";

fn report(name: &str, done: u64, elapsed: Duration, cpu: f64) {
    println!(
        "{name:<34} {:>8.0} transactions/s   {:>6.1} µs client CPU per transaction",
        done as f64 / elapsed.as_secs_f64(),
        cpu * 1e6 / done.max(1) as f64
    );
}

/// CONNECTIONS tokio-postgres connections, each driven by a task of its own.
async fn tokio_postgres_clients(url: &str) -> Vec<Arc<tokio_postgres::Client>> {
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        clients.push(Arc::new(client));
    }
    clients
}

async fn with_tokio_postgres(url: &str, seconds: u64, pipelined: bool) {
    let schema = if pipelined { "cmp_tp_pipe" } else { "cmp_tp" };
    let clients = tokio_postgres_clients(url).await;
    clients[0].batch_execute(&setup_sql(schema)).await.unwrap();
    let data = format!("{{\"transcript\": \"{}\"}}", "x".repeat(1000));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = clients[task % CONNECTIONS].clone();
        let (done, data) = (done.clone(), data.clone());
        let schema = schema.to_owned();
        tasks.push(tokio::spawn(async move {
            // One connection runs one transaction at a time: a per-connection lock stands in
            // for the pool's checkout.
            client
                .batch_execute(&format!("SET search_path TO {schema}"))
                .await
                .unwrap();
            let lock = client.prepare(LOCK).await.unwrap();
            let insert = client.prepare(INSERT).await.unwrap();
            let stream = format!("call-{task}");
            while Instant::now() < deadline {
                let _guard = CONNECTION_LOCKS[task % CONNECTIONS].lock().await;
                if pipelined {
                    let begin = client.execute("BEGIN", &[]);
                    let row = client.query_one(&lock, &[]);
                    let (_, row) = tokio::join!(begin, row);
                    let position: i64 = row.unwrap().get(0);
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&position, &stream, &data];
                    let insert = client.execute(&insert, &params);
                    let commit = client.execute("COMMIT", &[]);
                    let (inserted, committed) = tokio::join!(insert, commit);
                    inserted.unwrap();
                    committed.unwrap();
                } else {
                    client.execute("BEGIN", &[]).await.unwrap();
                    let position: i64 = client.query_one(&lock, &[]).await.unwrap().get(0);
                    client
                        .execute(&insert, &[&position, &stream, &data])
                        .await
                        .unwrap();
                    client.execute("COMMIT", &[]).await.unwrap();
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let name = if pipelined {
        "tokio-postgres (pipelined)"
    } else {
        "tokio-postgres"
    };
    report(
        name,
        done.load(Ordering::Relaxed),
        started.elapsed(),
        cpu_seconds() - cpu,
    );
    clients[0]
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

static CONNECTION_LOCKS: [tokio::sync::Mutex<()>; CONNECTIONS] =
    [const { tokio::sync::Mutex::const_new(()) }; CONNECTIONS];

async fn with_sqlx(url: &str, seconds: u64) {
    use sqlx::Executor;
    let schema = "cmp_sqlx";
    let setup = sqlx::PgPool::connect(url).await.expect("connect");
    setup.execute(setup_sql(schema).as_str()).await.unwrap();
    setup.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONNECTIONS as u32)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET search_path TO cmp_sqlx").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .expect("connect");
    let data = format!("{{\"transcript\": \"{}\"}}", "x".repeat(1000));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (pool, done, data) = (pool.clone(), done.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let stream = format!("call-{task}");
            while Instant::now() < deadline {
                let mut tx = pool.begin().await.unwrap();
                let (position,): (i64,) = sqlx::query_as(LOCK).fetch_one(&mut *tx).await.unwrap();
                sqlx::query(INSERT)
                    .bind(position)
                    .bind(&stream)
                    .bind(&data)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report(
        "sqlx",
        done.load(Ordering::Relaxed),
        started.elapsed(),
        cpu_seconds() - cpu,
    );
    pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

const POINT_READ: &str = "SELECT position, stream, data::text FROM counter_reads WHERE id = $1";

fn reads_setup_sql() -> &'static str {
    "DROP TABLE IF EXISTS public.counter_reads;
     CREATE TABLE public.counter_reads (id INT PRIMARY KEY, position BIGINT, stream TEXT, data JSONB);
     INSERT INTO public.counter_reads
         SELECT i, i, 'call-' || i, jsonb_build_object('transcript', repeat('x', 1000))
         FROM generate_series(1, 1000) i"
}

/// Client overhead without the position lock: 64 tasks read one 1 KiB row by key.
async fn reads_with_tokio_postgres(url: &str, seconds: u64) {
    let clients = tokio_postgres_clients(url).await;
    clients[0].batch_execute(reads_setup_sql()).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = clients[task % CONNECTIONS].clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(&POINT_READ.replace("counter_reads", "public.counter_reads"))
                .await
                .unwrap();
            let mut id = task as i32;
            while Instant::now() < deadline {
                id = id % 1000 + 1;
                let row = client.query_one(&statement, &[&id]).await.unwrap();
                let _: (i64, String, String) = (row.get(0), row.get(1), row.get(2));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report(
        "tokio-postgres point reads",
        done.load(Ordering::Relaxed),
        started.elapsed(),
        cpu_seconds() - cpu,
    );
}

async fn reads_with_sqlx(url: &str, seconds: u64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONNECTIONS as u32)
        .connect(url)
        .await
        .expect("connect");
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    let sql = POINT_READ.replace("counter_reads", "public.counter_reads");
    for task in 0..TASKS {
        let (pool, done, sql) = (pool.clone(), done.clone(), sql.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = task as i32;
            while Instant::now() < deadline {
                id = id % 1000 + 1;
                let _: (i64, String, String) = sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report(
        "sqlx point reads",
        done.load(Ordering::Relaxed),
        started.elapsed(),
        cpu_seconds() - cpu,
    );
    use sqlx::Executor;
    pool.execute("DROP TABLE public.counter_reads")
        .await
        .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: pg-client-compare URL [SECONDS]");
    let seconds: u64 = args.next().map_or(10, |s| s.parse().expect("SECONDS"));
    println!("{TASKS} tasks, {CONNECTIONS} connections, {seconds} s each, 1 KiB events");
    with_tokio_postgres(&url, seconds, false).await;
    with_sqlx(&url, seconds).await;
    with_tokio_postgres(&url, seconds, true).await;
    reads_with_tokio_postgres(&url, seconds).await;
    reads_with_sqlx(&url, seconds).await;
}
