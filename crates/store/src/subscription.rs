//! Catch-up-then-live subscription to `$all`, shared by every backend.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::{EventStore, RecordedEvent, StoreError};

const PAGE: usize = 512;

/// Reads `$all` from a position: first everything already stored, page by page, then each new
/// commit as it happens, woken by the store's head watch rather than by polling.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    next_position: u64,
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<u64>,
}

impl Subscription {
    /// Starts at `from_position` (inclusive); 0 or 1 means from the beginning.
    pub fn new(store: Arc<dyn EventStore>, from_position: u64) -> Self {
        let head = store.watch_head();
        Subscription {
            store,
            next_position: from_position,
            buffer: VecDeque::new(),
            head,
        }
    }

    /// The next event in global order; waits for one when caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next_position = event.position + 1;
                return Ok(event);
            }
            // Mark the head as seen before reading, so a commit that lands between the read
            // and the wait still wakes us.
            self.head.borrow_and_update();
            let page = self.store.read_all(self.next_position, PAGE).await?;
            if page.is_empty() {
                self.head.changed().await.map_err(|_| StoreError::Closed)?;
            } else {
                self.buffer.extend(page);
            }
        }
    }

    /// The position the next event will have at least.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }
}
