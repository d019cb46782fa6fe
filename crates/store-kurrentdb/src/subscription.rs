//! The head feed: a subscription to `$all`, filtered to the store's streams, that moves
//! `watch_head` for every commit, this process's or another's.
//!
//! The head is only a wake-up call for `switchboard_store::Subscription`, which then reads
//! `$all` itself, so the feed carries positions, not events, and starts live (from the end)
//! rather than scanning the log. Whenever the server confirms a subscription (the first time,
//! and after the client resubscribed by itself) the newest position is read once, so commits
//! made while the feed was connecting or down still move the head.

use std::sync::Arc;
use std::time::Duration;

use kurrentdb::{StreamPosition, SubscribeToAllOptions, SubscriptionEvent};
use tokio::task::JoinHandle;

use crate::Inner;
use crate::mapping::switchboard_position;
use crate::read::{filter, last_event};

/// The pause before subscribing again after the subscription failed for good (the client
/// retries by itself first): long enough not to hammer a server that is down.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

pub fn spawn_feed(inner: Arc<Inner>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let options = SubscribeToAllOptions::default()
                .position(StreamPosition::End)
                .filter(filter(&inner));
            let mut subscription = inner.client.subscribe_to_all(&options).await;
            if let Err(error) = follow(&inner, &mut subscription).await {
                tracing::warn!(
                    server = %inner.target,
                    %error,
                    "KurrentDB head subscription failed; subscribing again"
                );
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    })
}

/// Moves the head until the subscription fails.
async fn follow(
    inner: &Inner,
    subscription: &mut kurrentdb::Subscription,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    loop {
        match subscription.next_subscription_event().await? {
            SubscriptionEvent::Confirmed(_) => {
                if let Some(head) = last_event(inner).await?.and_then(switchboard_position) {
                    inner.advance_head(head);
                }
            }
            SubscriptionEvent::EventAppeared(resolved) => {
                if let Some(record) = resolved.event {
                    inner.boundaries.remember(record.position);
                    if let Some(head) = switchboard_position(record.position) {
                        inner.advance_head(head);
                    }
                }
            }
            // Checkpoints are positions the server's filter scanned past, not commits of ours.
            _ => {}
        }
    }
}
