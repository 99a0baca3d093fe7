//! Where an accepted callback's event waits for Kafka: in memory (`ack = memory`) or
//! in the on-disk spool (`ack = durable`). Either way the callback is answered as soon
//! as `accept` returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::kafka::{Forwarder, Outcome, Record};
use crate::metrics::Metrics;
use crate::spool::Spool;

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    QueueFull,
    SpoolFull,
    SpoolFailed,
}

#[derive(Debug, Default)]
pub struct ShutdownReport {
    pub delivered: u64,
    /// `ack = memory`: keys of the events lost because Kafka had not confirmed them.
    pub unconfirmed: Vec<String>,
    /// `ack = durable`: events left in the spool for the next start.
    pub left_in_spool: u64,
}

pub enum Queue {
    Memory(MemoryQueue),
    Durable(Arc<Spool>, Arc<Forwarder>),
}

impl Queue {
    /// Takes every event of one callback, or none of them.
    pub async fn accept(&self, records: Vec<Record>) -> Result<(), Rejected> {
        match self {
            Queue::Memory(q) => q.accept(records).await,
            Queue::Durable(spool, _) => spool.append(records).await,
        }
    }

    pub fn is_durable(&self) -> bool {
        matches!(self, Queue::Durable(..))
    }

    /// Events accepted and not yet confirmed by Kafka.
    pub fn depth(&self) -> u64 {
        match self {
            Queue::Memory(q) => q.depth() as u64,
            Queue::Durable(spool, _) => spool.waiting(),
        }
    }

    pub fn is_full(&self) -> bool {
        match self {
            Queue::Memory(q) => q.room.available_permits() == 0,
            Queue::Durable(spool, _) => spool.is_full(),
        }
    }

    /// Call once no more callbacks can arrive.
    pub async fn shutdown(&self, bound: Duration) -> ShutdownReport {
        match self {
            Queue::Memory(q) => {
                q.forwarder.shutdown(bound).await;
                ShutdownReport {
                    delivered: q.forwarder.delivered(),
                    unconfirmed: std::mem::take(&mut *q.lost.lock().expect("lost lock")),
                    left_in_spool: 0,
                }
            }
            Queue::Durable(spool, forwarder) => {
                spool.close_appends();
                let deadline = tokio::time::Instant::now() + bound;
                while spool.waiting() > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                spool.stop_reading();
                forwarder
                    .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
                    .await;
                let left = spool.finish().await;
                if left > 0 {
                    tracing::warn!(
                        records = left,
                        "Events left in the spool; they are sent at the next start."
                    );
                }
                ShutdownReport {
                    delivered: forwarder.delivered(),
                    unconfirmed: Vec::new(),
                    left_in_spool: left,
                }
            }
        }
    }
}

/// At most `capacity` events in memory between the answer and Kafka's confirmation.
pub struct MemoryQueue {
    forwarder: Arc<Forwarder>,
    room: Arc<Semaphore>,
    capacity: usize,
    enqueue_timeout: Duration,
    lost: Arc<Mutex<Vec<String>>>,
    metrics: Arc<Metrics>,
}

impl MemoryQueue {
    pub fn new(
        forwarder: Arc<Forwarder>,
        capacity: usize,
        enqueue_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            forwarder,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
            enqueue_timeout,
            lost: Arc::default(),
            metrics,
        }
    }

    async fn accept(&self, records: Vec<Record>) -> Result<(), Rejected> {
        let mut permits = Vec::with_capacity(records.len());
        for _ in &records {
            permits.push(match self.room.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    tokio::time::timeout(self.enqueue_timeout, self.room.clone().acquire_owned())
                        .await
                        .map_err(|_| Rejected::QueueFull)?
                        .map_err(|_| Rejected::QueueFull)?
                }
            });
        }
        self.metrics.queue_depth.set(self.depth() as i64);
        for (record, permit) in records.into_iter().zip(permits) {
            let lost = Arc::clone(&self.lost);
            let (capacity, metrics) = (self.capacity, Arc::clone(&self.metrics));
            self.forwarder.dispatch(
                record,
                Box::new(move |outcome, record| {
                    if outcome == Outcome::Abandoned {
                        let key = record.key.as_deref().unwrap_or("(no key)");
                        tracing::error!(topic = %record.topic, msg_key = %key, "Event lost: Kafka had not confirmed it at shutdown.");
                        lost.lock().expect("lost lock").push(key.to_owned());
                    }
                    let room = Arc::clone(permit.semaphore());
                    drop(permit);
                    metrics.queue_depth.set((capacity - room.available_permits()) as i64);
                }),
            );
        }
        Ok(())
    }

    fn depth(&self) -> usize {
        self.capacity - self.room.available_permits()
    }
}
