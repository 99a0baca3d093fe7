//! `ack = memory`: at most `capacity` events between the answer and Kafka's
//! confirmation, held by the sink; a crash loses them, a shutdown lists them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{BoxFuture, Buffer, Outcome, Record, Rejected, ShutdownReport, Sink};
use crate::metrics::Metrics;

pub struct MemoryBuffer {
    sink: Arc<dyn Sink>,
    room: Arc<Semaphore>,
    capacity: usize,
    enqueue_timeout: Duration,
    lost: Arc<Mutex<Vec<String>>>,
    metrics: Arc<Metrics>,
    closed: AtomicBool,
}

impl MemoryBuffer {
    pub fn new(
        sink: Arc<dyn Sink>,
        capacity: usize,
        enqueue_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sink,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
            enqueue_timeout,
            lost: Arc::default(),
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    async fn take(&self, records: Vec<Record>) -> Result<(), Rejected> {
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
        // Closed while this callback waited for room: refused, as if it came later.
        if self.closed.load(Ordering::SeqCst) {
            return Err(Rejected::ShuttingDown);
        }
        self.metrics.queue_depth.set(self.depth() as i64);
        for record in records {
            let permit = all.split(1).expect("one permit of those acquired");
            let lost = Arc::clone(&self.lost);
            let (capacity, metrics) = (self.capacity, Arc::clone(&self.metrics));
            self.sink.dispatch(
                record,
                Box::new(move |outcome, record| {
                    if outcome == Outcome::Abandoned {
                        let key = record.key.as_deref().unwrap_or("(no key)");
                        // Keys name accounts (`user:<account>`): at debug only.
                        tracing::error!(topic = %record.topic, "Event lost: Kafka had not confirmed it at shutdown.");
                        tracing::debug!(topic = %record.topic, msg_key = %key, "The lost event's key.");
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
}

impl Buffer for MemoryBuffer {
    fn accept(&self, records: Vec<Record>) -> BoxFuture<'_, Result<(), Rejected>> {
        Box::pin(self.take(records))
    }

    fn depth(&self) -> u64 {
        (self.capacity - self.room.available_permits()) as u64
    }

    fn is_full(&self) -> bool {
        self.room.available_permits() == 0
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn broken(&self) -> Option<String> {
        None
    }

    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async move {
            // First: a late callback gets 503, never a 200 for an event that is
            // neither delivered nor listed as lost.
            self.close();
            self.sink.shutdown(bound).await;
            ShutdownReport {
                delivered: self.sink.delivered(),
                unconfirmed: std::mem::take(
                    &mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner),
                ),
                left_in_spool: 0,
                broken: None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{now_ms, Done};

    fn record(key: &str) -> Record {
        Record {
            topic: "t".into(),
            key: Some(key.into()),
            payload: b"{}".to_vec(),
            command: "C2C.CallbackAfterSendMsg".into(),
            sdk_app_id: 1,
            accepted_at_ms: now_ms(),
            trace: None,
        }
    }

    /// A sink that never confirms anything, as a Kafka that does not answer; at
    /// shutdown it abandons what it holds, as the forwarder does.
    #[derive(Default)]
    struct Silent(Mutex<Vec<(Record, Done)>>);

    impl Sink for Silent {
        fn dispatch(&self, record: Record, done: Done) {
            self.0.lock().unwrap().push((record, done));
        }
        fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
            let held = std::mem::take(&mut *self.0.lock().unwrap());
            Box::pin(async move {
                for (record, done) in held {
                    done(Outcome::Abandoned, &record);
                }
            })
        }
        fn delivered(&self) -> u64 {
            0
        }
    }

    fn memory_buffer(capacity: usize) -> MemoryBuffer {
        MemoryBuffer::new(
            Arc::new(Silent::default()),
            capacity,
            Duration::from_millis(50),
            Arc::new(Metrics::default()),
        )
    }

    #[tokio::test]
    async fn after_shutdown_began_a_memory_buffer_refuses_rather_than_answering_ok() {
        let buffer = memory_buffer(10);
        assert_eq!(buffer.accept(vec![record("before")]).await, Ok(()));
        let report = buffer.shutdown(Duration::from_millis(10)).await;
        assert_eq!(report.unconfirmed, ["before"]);
        assert_eq!(
            buffer.accept(vec![record("late")]).await,
            Err(Rejected::ShuttingDown),
            "a late callback is refused, not accepted and forgotten"
        );
    }

    #[tokio::test]
    async fn a_callback_with_more_events_than_room_takes_none_of_it() {
        let buffer = memory_buffer(3);
        assert_eq!(buffer.accept(vec![record("a"), record("b")]).await, Ok(()));
        let all = vec![record("c"), record("d")];
        assert_eq!(buffer.accept(all).await, Err(Rejected::QueueFull));
        assert_eq!(buffer.depth(), 2, "the refused callback holds no room");
        assert_eq!(buffer.accept(vec![record("e")]).await, Ok(()));
    }
}
