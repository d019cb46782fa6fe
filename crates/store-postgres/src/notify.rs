//! Feeding `watch_head` from the database: a dedicated connection LISTENs on the channel every
//! append notifies on commit, so subscriptions wake for commits made by any process sharing
//! the database, not only this one, and nobody polls.
//!
//! If the connection drops (the database restarts, the backend is terminated), the listener
//! connects again with a growing pause and then reads the head once, since notifications sent
//! while it was away are lost.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use crate::append::advance_head;
use crate::pool::Pool;
use crate::read::head_position;

/// The channel `sql/notify.sql` notifies on. Channels are database-wide, so the payload names
/// the schema: `<schema> <position>`.
const CHANNEL: &str = "switchboard_head";

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

pub(crate) fn spawn_listener(pool: Arc<Pool>, head: Arc<watch::Sender<u64>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = FIRST_PAUSE;
        loop {
            match listen(&pool, &head).await {
                // The connection was up and then ended: try again at once.
                Ok(()) => pause = FIRST_PAUSE,
                Err(error) => {
                    tracing::warn!(%error, "event store listener cannot connect; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    })
}

/// Listens until the connection ends.
async fn listen(
    pool: &Pool,
    head: &watch::Sender<u64>,
) -> Result<(), switchboard_store::StoreError> {
    let (client, mut connection) = pool.connect_raw().await?;
    let (notifications, mut received) = mpsc::unbounded_channel();
    // The connection yields notifications only to whoever drives it, so this task drives it
    // and hands them over; it ends when the connection does, which closes the channel.
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if notifications.send(notification).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "event store listener connection ended");
                    return;
                }
            }
        }
    });
    let result = async {
        pool.prepare_session(&client).await?;
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| crate::error::from_pg(pool.target(), &e))?;
        // Listening now; anything committed before this point is covered by reading the head.
        advance_head(head, head_position(pool).await?);
        let prefix = format!("{} ", pool.schema());
        while let Some(notification) = received.recv().await {
            let position = notification
                .payload()
                .strip_prefix(&prefix)
                .and_then(|position| position.parse::<u64>().ok());
            if let Some(position) = position {
                advance_head(head, position);
            }
        }
        Ok(())
    }
    .await;
    driver.abort();
    drop(client);
    result
}
