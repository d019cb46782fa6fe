//! One async lock per stream, so concurrent deliveries to one stream queue up in this process
//! instead of racing to a version conflict. Across processes (several instances on one
//! database) the store's expected-version check still decides, and `execute` retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct StreamLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl StreamLocks {
    pub async fn lock(&self, stream: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("stream lock map poisoned");
            match locks.get(stream).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    // Drop entries nobody holds any more, so the map stays as small as the
                    // number of streams in flight rather than growing with every call ever seen.
                    if locks.len() > 1024 {
                        locks.retain(|_, weak| weak.strong_count() > 0);
                    }
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(stream.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_same_stream_is_serialized_and_other_streams_are_not() {
        let locks = Arc::new(StreamLocks::default());
        let held = locks.lock("call-1").await;
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("call-2")).await;
        assert!(other.is_ok(), "another stream must not wait");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("call-1")).await;
        assert!(same.is_err(), "the same stream must wait while held");
        drop(held);
        let same = tokio::time::timeout(Duration::from_secs(5), locks.lock("call-1")).await;
        assert!(same.is_ok());
    }
}
