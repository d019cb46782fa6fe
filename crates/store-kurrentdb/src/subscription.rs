//! The head feed: a catch-up subscription to `$all`, filtered to the store's streams, that
//! moves `watch_head` for every commit, this process's or another's.
//!
//! The head is only a wake-up call for `switchboard_store::Subscription`, which then reads
//! `$all` itself; so the feed carries no events, only positions, and losing its connection
//! loses nothing: it subscribes again from the last position it saw and catches up.

use std::sync::Arc;
use std::time::Duration;

use kurrentdb::{Position, StreamPosition, SubscribeToAllOptions};
use tokio::task::JoinHandle;

use crate::Inner;
use crate::mapping::switchboard_position;
use crate::read::filter;

/// The pause before subscribing again after the subscription failed (server restarting,
/// network gone): long enough not to hammer a server that is down.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Starts the feed after `from` (the newest event when the store opened; None: the start).
pub fn spawn_feed(inner: Arc<Inner>, from: Option<Position>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut from = from.map_or(StreamPosition::Start, StreamPosition::Position);
        loop {
            let options = SubscribeToAllOptions::default()
                .position(from)
                .filter(filter(&inner));
            let mut subscription = inner.client.subscribe_to_all(&options).await;
            loop {
                match subscription.next().await {
                    Ok(resolved) => {
                        let Some(record) = resolved.event else {
                            continue;
                        };
                        let position = record.position;
                        inner.boundaries.remember(position);
                        from = StreamPosition::Position(position);
                        if let Some(head) = switchboard_position(position) {
                            inner.advance_head(head);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            server = %inner.target,
                            %error,
                            "KurrentDB head subscription failed; subscribing again"
                        );
                        break;
                    }
                }
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    })
}
