//! Delivery tracking: how many dispatched records wait for their fate, when Kafka last
//! confirmed one, and the end of each record (its `done`, its counters, its metrics).
//! Shutdown waits on a notification sent when the last record settles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::delivery::{now_ms, Done, Outcome, Record};
use crate::metrics::Metrics;

/// A record librdkafka holds, with what to do once its fate is known.
pub struct InFlight {
    /// The generation of the producer it was handed to.
    pub(super) generation: u64,
    pub(super) record: Arc<Record>,
    pub(super) done: Done,
    pub(super) attempt: u32,
    /// Dispatch order, kept when records are sent again (a stall, a producer's replacement).
    pub(super) order: u64,
    /// What happened to a sampled record on its way, for its producer span.
    pub(super) notes: Vec<opentelemetry::trace::Event>,
}

pub(super) struct Tracking {
    /// Dispatched records whose fate is not known yet.
    in_flight: AtomicU64,
    /// Woken when `in_flight` reaches 0.
    settled: Notify,
    /// When Kafka last confirmed a record, or records began to wait after none did.
    progress_at_ms: AtomicU64,
    delivered: AtomicU64,
    next_order: AtomicU64,
    metrics: Arc<Metrics>,
    /// Each topic's counters, looked up once at start rather than per event.
    counters: HashMap<String, TopicCounters>,
}

pub(super) struct TopicCounters {
    pub(super) produced: Counter,
    pub(super) failures: Counter,
}

impl Tracking {
    pub(super) fn new(metrics: Arc<Metrics>, topics: &[String]) -> Self {
        let counters = topics
            .iter()
            .map(|t| (t.clone(), TopicCounters::of(&metrics, t)))
            .collect();
        Self {
            in_flight: AtomicU64::new(0),
            settled: Notify::new(),
            progress_at_ms: AtomicU64::new(now_ms()),
            delivered: AtomicU64::new(0),
            next_order: AtomicU64::new(0),
            metrics,
            counters,
        }
    }

    /// A new record to track, numbered in dispatch order.
    pub(super) fn dispatched(&self, record: Record, done: Done) -> Box<InFlight> {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.progress_at_ms.store(now_ms(), Ordering::Relaxed);
        }
        Box::new(InFlight {
            record: Arc::new(record),
            done,
            attempt: 0,
            order: self.next_order.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            notes: Vec::new(),
        })
    }

    /// Records dispatched and not finished.
    pub(super) fn waiting(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// How long Kafka has confirmed nothing while records waited.
    pub(super) fn stalled_ms(&self) -> u64 {
        now_ms().saturating_sub(self.progress_at_ms.load(Ordering::Relaxed))
    }

    pub(super) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Kafka confirmed `in_flight`.
    pub(super) fn confirmed(&self, in_flight: InFlight) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let record = &in_flight.record;
        self.count(&record.topic, |c| &c.produced);
        let now = now_ms();
        self.progress_at_ms.store(now, Ordering::Relaxed);
        let latency_ms = now.saturating_sub(record.accepted_at_ms);
        self.metrics
            .delivery_latency
            .observe(latency_ms as f64 / 1000.0);
        self.finish_as(in_flight, Outcome::Delivered);
    }

    /// Counts one event of `topic` in the counter `which` picks.
    pub(super) fn count(&self, topic: &str, which: fn(&TopicCounters) -> &Counter) {
        match self.counters.get(topic) {
            Some(counters) => which(counters).inc(),
            None => which(&TopicCounters::of(&self.metrics, topic)).inc(),
        };
    }

    /// The record's fate is known: tells its `done`, and stops tracking it.
    pub(super) fn finish_as(&self, in_flight: InFlight, outcome: Outcome) {
        let InFlight { record, done, .. } = in_flight;
        done(outcome, &record);
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Waits up to `timeout` for every dispatched record's fate; whether they all came.
    pub(super) async fn settled_within(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            // Registered before the count is read: a record finishing in between wakes it.
            settled.as_mut().enable();
            if self.waiting() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return self.waiting() == 0;
            }
        }
    }
}

impl TopicCounters {
    fn of(metrics: &Metrics, topic: &str) -> Self {
        let labels = Metrics::topic(topic);
        Self {
            produced: metrics.events_produced.get_or_create(&labels).clone(),
            failures: metrics.delivery_failures.get_or_create(&labels).clone(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Mutex;

    use super::*;

    pub(crate) fn record(topic: &str) -> Record {
        Record {
            topic: topic.to_owned(),
            key: Some("k".to_owned()),
            payload: b"{}".to_vec(),
            command: "C2C.CallbackAfterSendMsg".to_owned(),
            sdk_app_id: 1,
            accepted_at_ms: now_ms(),
            trace: None,
        }
    }

    /// A `done` that writes each outcome into `seen`.
    pub(crate) fn noting(seen: &Arc<Mutex<Vec<Outcome>>>) -> Done {
        let seen = Arc::clone(seen);
        Box::new(move |outcome, _| seen.lock().unwrap().push(outcome))
    }

    fn tracking() -> Tracking {
        Tracking::new(Arc::new(Metrics::default()), &["t".to_owned()])
    }

    #[test]
    fn records_are_numbered_in_dispatch_order_and_counted_until_finished() {
        let tracking = tracking();
        let seen = Arc::default();
        let first = tracking.dispatched(record("t"), noting(&seen));
        let second = tracking.dispatched(record("t"), noting(&seen));
        assert!(first.order < second.order);
        assert_eq!(tracking.waiting(), 2);
        tracking.confirmed(*first);
        tracking.finish_as(*second, Outcome::DeadLettered);
        assert_eq!(tracking.waiting(), 0);
        assert_eq!(tracking.delivered(), 1);
        assert_eq!(
            *seen.lock().unwrap(),
            [Outcome::Delivered, Outcome::DeadLettered]
        );
    }

    #[tokio::test]
    async fn shutdown_is_woken_by_the_last_record_settling_not_by_a_poll() {
        let tracking = Arc::new(tracking());
        let in_flight = tracking.dispatched(record("t"), noting(&Arc::default()));
        let finisher = Arc::clone(&tracking);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            finisher.confirmed(*in_flight);
        });
        let started = std::time::Instant::now();
        assert!(tracking.settled_within(Duration::from_secs(30)).await);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn shutdown_gives_up_after_its_timeout_while_a_record_waits() {
        let tracking = tracking();
        let _waiting = tracking.dispatched(record("t"), noting(&Arc::default()));
        assert!(!tracking.settled_within(Duration::from_millis(30)).await);
        assert_eq!(tracking.waiting(), 1);
    }
}
