//! A bounded queue that never blocks its senders: when full, the oldest entry is dropped and
//! counted. One consumer waits for entries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The queue, shared by its senders and its consumer.
#[derive(Debug)]
pub(crate) struct DropOldestQueue<T> {
    entries: Mutex<VecDeque<T>>,
    capacity: usize,
    ready: Notify,
    dropped: Arc<AtomicU64>,
}

impl<T> DropOldestQueue<T> {
    /// A queue of at most `capacity` entries (at least 1) counting drops into `dropped`.
    pub fn new(capacity: usize, dropped: Arc<AtomicU64>) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            dropped,
        }
    }

    /// Appends `entry`, dropping the oldest one when full.
    pub fn push(&self, entry: T) {
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= self.capacity {
                entries.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            entries.push_back(entry);
        }
        // A permit is stored when the consumer is not waiting, so no wake-up is lost.
        self.ready.notify_one();
    }

    /// The oldest entry, waiting for one.
    pub async fn pop(&self) -> T {
        loop {
            let next = self
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            if let Some(entry) = next {
                return entry;
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_entries() {
        let dropped = Arc::new(AtomicU64::new(0));
        let queue = DropOldestQueue::new(3, dropped.clone());
        for i in 0..10 {
            queue.push(i);
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 7);
        assert_eq!(
            [queue.pop().await, queue.pop().await, queue.pop().await],
            [7, 8, 9]
        );
    }

    #[tokio::test]
    async fn the_consumer_wakes_up_on_a_push() {
        let queue = Arc::new(DropOldestQueue::new(4, Arc::new(AtomicU64::new(0))));
        let consumer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.push("hello");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), consumer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, "hello");
    }
}
