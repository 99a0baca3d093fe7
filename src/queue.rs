//! Where an accepted callback's event waits for Kafka: in memory (`ack = memory`) or
//! in the on-disk spool (`ack = durable`). Either way the callback is answered as soon
//! as `accept` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    ShuttingDown,
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
                // First: a late callback gets 503, never a 200 for an event that is
                // neither delivered nor listed as lost.
                q.closed.store(true, Ordering::SeqCst);
                q.forwarder.shutdown(bound).await;
                ShutdownReport {
                    delivered: q.forwarder.delivered(),
                    unconfirmed: std::mem::take(
                        &mut *q.lost.lock().unwrap_or_else(PoisonError::into_inner),
                    ),
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
    closed: AtomicBool,
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
            closed: AtomicBool::new(false),
        }
    }

    async fn accept(&self, records: Vec<Record>) -> Result<(), Rejected> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Rejected::ShuttingDown);
        }
        // Room for every event of the callback at once, under one timeout: a recall of
        // N messages waits at most `enqueue_timeout`, not N times it.
        let n = u32::try_from(records.len()).map_err(|_| Rejected::QueueFull)?;
        let mut all = match self.room.clone().try_acquire_many_owned(n) {
            Ok(permits) => permits,
            Err(_) => tokio::time::timeout(
                self.enqueue_timeout,
                self.room.clone().acquire_many_owned(n),
            )
            .await
            .map_err(|_| Rejected::QueueFull)?
            .map_err(|_| Rejected::QueueFull)?,
        };
        let permits: Vec<_> = (0..records.len())
            .map(|_| all.split(1).expect("one permit of those acquired"))
            .collect();
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
                        lost.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(key.to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::now_ms;

    fn record(key: &str) -> Record {
        Record {
            topic: "t".into(),
            key: Some(key.into()),
            payload: b"{}".to_vec(),
            command: "C2C.CallbackAfterSendMsg".into(),
            sdk_app_id: 1,
            accepted_at_ms: now_ms(),
        }
    }

    /// A memory queue whose Kafka never answers (nothing listens on port 1).
    fn memory_queue(capacity: usize, dir: &std::path::Path) -> Queue {
        let metrics = Arc::new(Metrics::default());
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let dead = crate::spool::DeadLetters::open(dir, Arc::clone(&metrics)).unwrap();
        let forwarder = Forwarder::start(
            &config,
            &[],
            Duration::from_millis(100),
            Arc::clone(&metrics),
            dead,
        )
        .unwrap();
        Queue::Memory(MemoryQueue::new(
            forwarder,
            capacity,
            Duration::from_millis(50),
            metrics,
        ))
    }

    #[tokio::test]
    async fn after_shutdown_began_a_memory_queue_refuses_rather_than_answering_ok() {
        let dir = tempfile::tempdir().unwrap();
        let queue = memory_queue(10, dir.path());
        assert_eq!(queue.accept(vec![record("before")]).await, Ok(()));
        let report = queue.shutdown(Duration::from_millis(10)).await;
        assert_eq!(report.unconfirmed, ["before"]);
        assert_eq!(
            queue.accept(vec![record("late")]).await,
            Err(Rejected::ShuttingDown),
            "a late callback is refused, not accepted and forgotten"
        );
    }

    #[tokio::test]
    async fn a_callback_with_more_events_than_room_takes_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let queue = memory_queue(3, dir.path());
        assert_eq!(queue.accept(vec![record("a"), record("b")]).await, Ok(()));
        let all = vec![record("c"), record("d")];
        assert_eq!(queue.accept(all).await, Err(Rejected::QueueFull));
        assert_eq!(queue.depth(), 2, "the refused callback holds no room");
        assert_eq!(queue.accept(vec![record("e")]).await, Ok(()));
    }
}
