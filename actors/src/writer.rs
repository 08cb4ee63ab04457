//! The batching writer: readings of many requests (of every municipality) are made durable in
//! one journal commit (group commit: one fsync for many readings), then every request whose
//! readings are all durable is acknowledged.
//!
//! A request may carry readings of several sensors; each sensor's part travels through its own
//! `SensorActor` and reaches the writer on its own, so a request's [`Completion`] counts the
//! parts still missing and answers when the last one is committed. A part that never arrives
//! (its actor failed while holding it) drops its reference: the request is then answered
//! "unavailable" by the closed channel, never "stored".
//!
//! Once a commit succeeded, each sensor's part is published on its municipality's readings
//! broadcast (live subscribers such as the WebSocket stream), but only while someone listens:
//! the ingest path pays nothing for it otherwise, and a broadcast send never blocks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use twin::store::journal::{JournalEntry, ReadingJournal};
use twin::store::Point;
use twin::Durability;

use crate::ingest::{IngestError, RejectReason};
use crate::metrics::Metrics;

/// The answer channel of one ingest request, shared by its per-sensor parts.
#[derive(Debug)]
pub(crate) struct Completion {
    remaining: AtomicUsize,
    failed: AtomicBool,
    readings: usize,
    received: Instant,
    reply: Mutex<Option<oneshot::Sender<Result<usize, IngestError>>>>,
    metrics: Arc<Metrics>,
    /// Held until the request is answered: the runtime's bound on requests in flight.
    _permit: OwnedSemaphorePermit,
}

impl Completion {
    /// A request of `readings` readings split into `parts` parts.
    pub(crate) fn new(
        parts: usize,
        readings: usize,
        received: Instant,
        reply: oneshot::Sender<Result<usize, IngestError>>,
        metrics: Arc<Metrics>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            remaining: AtomicUsize::new(parts),
            failed: AtomicBool::new(false),
            readings,
            received,
            reply: Mutex::new(Some(reply)),
            metrics,
            _permit: permit,
        }
    }

    /// One part is durable (`stored`) or definitely lost; answers once every part is settled.
    pub(crate) fn part_settled(&self, stored: bool) {
        if !stored {
            self.failed.store(true, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(reply) = self.reply.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let answer = if self.failed.load(Ordering::Relaxed) {
            Err(IngestError::new(
                RejectReason::Unavailable,
                "the readings could not be stored; retry",
            ))
        } else {
            self.metrics
                .ingest_latency
                .observe(self.received.elapsed().as_secs_f64());
            Ok(self.readings)
        };
        // The gateway may have given up waiting; nothing to do then.
        let _ = reply.send(answer);
    }
}

/// One sensor's part of one request, checked and ready to store.
#[derive(Debug)]
pub(crate) struct WriteItem {
    /// The municipality.
    pub tenant: Arc<str>,
    /// The sensor.
    pub sensor: Arc<str>,
    /// The stored form of the readings.
    pub points: Vec<Point>,
    /// The request it belongs to.
    pub completion: Arc<Completion>,
}

/// Readings of one sensor that one commit made durable, in their stored form (the sensor's
/// unit, with their quality flags), as subscribers of a municipality's readings receive them.
#[derive(Debug)]
pub struct StoredReadings {
    /// The sensor.
    pub sensor: Arc<str>,
    /// The readings, in the order they were received.
    pub points: Vec<Point>,
}

/// The readings broadcast of every municipality, by municipality id.
pub(crate) type ReadingsPublishers = HashMap<Arc<str>, broadcast::Sender<Arc<StoredReadings>>>;

/// What actors hold to hand parts to the writer.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    items: mpsc::UnboundedSender<WriteItem>,
}

impl WriterHandle {
    /// Queues `item`; when the writer is gone, the part is settled as lost.
    pub(crate) fn submit(&self, item: WriteItem) {
        if let Err(mpsc::error::SendError(item)) = self.items.send(item) {
            item.completion.part_settled(false);
        }
    }
}

/// The running writer task.
#[derive(Debug)]
pub(crate) struct Writer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer over `journal`; commits after `linger` or `max_readings` readings
    /// and publishes what each commit stored on `publishers`.
    pub(crate) fn start(
        journal: Arc<ReadingJournal>,
        metrics: Arc<Metrics>,
        publishers: ReadingsPublishers,
        linger: Duration,
        max_readings: usize,
    ) -> (Writer, WriterHandle) {
        let (items, receiver) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            receiver,
            stopped,
            Committer {
                journal,
                metrics,
                publishers: Arc::new(publishers),
            },
            linger,
            max_readings.max(1),
        ));
        (Writer { stop, task }, WriterHandle { items })
    }

    /// Commits everything queued, then ends the task.
    pub(crate) async fn flush_and_stop(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            tracing::error!("the ingest writer ended abnormally: {err}");
        }
    }
}

/// What a commit needs: the journal, the metrics and where stored readings are published.
#[derive(Clone)]
struct Committer {
    journal: Arc<ReadingJournal>,
    metrics: Arc<Metrics>,
    publishers: Arc<ReadingsPublishers>,
}

async fn run(
    mut receiver: mpsc::UnboundedReceiver<WriteItem>,
    mut stopped: oneshot::Receiver<()>,
    committer: Committer,
    linger: Duration,
    max_readings: usize,
) {
    let mut in_flight: Option<JoinHandle<()>> = None;
    let mut stopping = false;
    loop {
        // After the stop the channel is closed: what is queued is still committed.
        let first = if stopping {
            receiver.try_recv().ok()
        } else {
            tokio::select! {
                item = receiver.recv() => item,
                _ = &mut stopped => {
                    stopping = true;
                    receiver.close();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut readings = first.points.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while readings < max_readings {
            let item = match receiver.try_recv() {
                Ok(item) => item,
                Err(mpsc::error::TryRecvError::Empty) if !stopping => {
                    tokio::select! {
                        item = tokio::time::timeout_at(deadline, receiver.recv()) => match item {
                            Ok(Some(item)) => item,
                            _ => break,
                        },
                        _ = &mut stopped => {
                            stopping = true;
                            receiver.close();
                            continue;
                        }
                    }
                }
                Err(_) => break,
            };
            readings += item.points.len();
            batch.push(item);
        }
        // One commit at a time (the store has one writer); the next batch gathers meanwhile.
        if let Some(previous) = in_flight.take() {
            let _ = previous.await;
        }
        let committer = committer.clone();
        in_flight = Some(tokio::task::spawn_blocking(move || committer.commit(batch)));
    }
    if let Some(previous) = in_flight.take() {
        let _ = previous.await;
    }
}

impl Committer {
    /// Makes `batch` durable in one journal commit, settles every part and publishes what was
    /// stored.
    fn commit(&self, batch: Vec<WriteItem>) {
        let entries: Vec<JournalEntry<'_>> = batch
            .iter()
            .flat_map(|item| {
                item.points.iter().map(|point| JournalEntry {
                    tenant: &item.tenant,
                    sensor: &item.sensor,
                    point: *point,
                })
            })
            .collect();
        let started = Instant::now();
        let result = self.journal.append(&entries, Durability::Durable);
        self.metrics
            .store_write
            .observe(started.elapsed().as_secs_f64());
        drop(entries);
        let stored = match result {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(parts = batch.len(), "group commit failed: {err}");
                false
            }
        };
        for item in &batch {
            item.completion.part_settled(stored);
        }
        if stored {
            self.publish(batch);
        }
    }

    /// Hands each part to its municipality's subscribers, if it has any.
    fn publish(&self, batch: Vec<WriteItem>) {
        for item in batch {
            let Some(publisher) = self.publishers.get(&item.tenant) else {
                continue;
            };
            if publisher.receiver_count() == 0 {
                continue;
            }
            // No receiver left in between is not an error: nobody listens.
            let _ = publisher.send(Arc::new(StoredReadings {
                sensor: item.sensor,
                points: item.points,
            }));
        }
    }
}
