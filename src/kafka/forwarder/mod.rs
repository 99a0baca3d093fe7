//! Sends events to Kafka. `dispatch` hands a record to librdkafka at once, on the
//! caller's thread, so records dispatched in order reach their partition in order
//! (the producer is idempotent). Kafka's confirmations arrive in librdkafka's delivery
//! reports, handled on the producer's polling thread in batches: no task, channel or
//! wake-up per record. A failed attempt stalls its topic (`stalls.rs`, `retries.rs`): one task
//! sends the topic's waiting records again, in dispatch order, after a capped, jittered
//! backoff. Nothing here grows without
//! a bound of its own: every record in the retry queue or held is one dispatched and
//! not yet finished, and those are at most the buffer's capacity (its permits).
//!
//! A full librdkafka queue is backpressure, not a failure: the record, and every one
//! dispatched after it, waits in dispatch order until there is room again, so that a
//! newer record of the same key never overtakes it.
//!
//! A producer in librdkafka's fatal state (a fenced or out-of-sequence idempotent
//! producer) takes nothing ever again: it is replaced by a new one with the same
//! settings, and every record it had not confirmed is sent again on the new one in
//! its original order, ahead of anything dispatched meanwhile.

mod context;
mod held;
mod lifecycle;
mod retries;
mod stalls;
mod tracking;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use rdkafka::util::Timeout;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use context::Deliveries;
use held::{queue_full, Held};
use lifecycle::{Current, Generations};
use stalls::Stalls;
use tracking::{InFlight, Tracking};

use super::problems::Problems;
use crate::delivery::{BoxFuture, Done, Outcome, Record, Sink};
use crate::metrics::Metrics;
use crate::spool::DeadLetters;

/// The producer as the bridge builds it: its delivery reports go to [`Deliveries`].
pub type KafkaProducer = ThreadedProducer<Deliveries>;

pub struct Forwarder {
    producer: RwLock<Current>,
    /// What the producer was made from, to make its replacement.
    config: ClientConfig,
    shared: Arc<Shared>,
}

struct Shared {
    max_retry_delay: Duration,
    abandon: CancellationToken,
    tracking: Tracking,
    stalls: Stalls,
    held: Held,
    generations: Generations,
    dead_letters: Arc<DeadLetters>,
    problems: Mutex<Problems>,
    any_failing: AtomicBool,
    /// librdkafka reported the producer fatal.
    fatal: Notify,
    /// The producer in use holds an idempotent producer id: Kafka let it write
    /// (librdkafka's statistics say so, `eos.idemp_state`).
    producer_id: AtomicBool,
    /// librdkafka's counters as last seen, for ours that outlive a producer.
    totals: super::statistics::Totals,
    /// Ends each traced record's producer span when Kafka confirms it.
    telemetry: std::sync::OnceLock<Arc<crate::telemetry::Telemetry>>,
}

impl Forwarder {
    /// Creates the producer from `config`. Must be called inside the Tokio runtime
    /// that will run the retries. `topics` get their metric handles up front.
    pub fn start(
        config: &ClientConfig,
        topics: &[String],
        max_retry_delay: Duration,
        metrics: Arc<Metrics>,
        dead_letters: Arc<DeadLetters>,
    ) -> Result<Arc<Self>, KafkaError> {
        let shared = Arc::new(Shared {
            max_retry_delay,
            abandon: CancellationToken::new(),
            tracking: Tracking::new(metrics, topics),
            stalls: Stalls::new(topics),
            held: Held::default(),
            generations: Generations::default(),
            dead_letters,
            problems: Mutex::default(),
            any_failing: AtomicBool::new(false),
            fatal: Notify::new(),
            producer_id: AtomicBool::new(false),
            totals: Default::default(),
            telemetry: std::sync::OnceLock::new(),
        });
        let producer = config.create_with_context(Deliveries {
            shared: Arc::clone(&shared),
        })?;
        let forwarder = Arc::new(Self {
            producer: RwLock::new(Current {
                producer,
                generation: 0,
            }),
            config: config.clone(),
            shared,
        });
        let (shared, weak) = (&forwarder.shared, Arc::downgrade(&forwarder));
        tokio::spawn(retries::retry_stalled(Arc::clone(shared), weak.clone()));
        tokio::spawn(held::send_held_when_room(Arc::clone(shared), weak.clone()));
        tokio::spawn(lifecycle::replace_when_fatal(Arc::clone(shared), weak));
        Ok(forwarder)
    }

    /// The producer in use now (a replacement after a fatal error).
    pub fn producer(&self) -> KafkaProducer {
        self.current().producer.clone()
    }

    /// Where the events Kafka refuses for good are kept.
    pub fn dead_letters(&self) -> &Arc<DeadLetters> {
        &self.shared.dead_letters
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.producer.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enqueues `record` in librdkafka now, and calls `done` once its fate is known.
    /// Callable from any thread.
    /// Traced records get their producer span ended by `telemetry` from now on.
    pub fn trace_with(&self, telemetry: Arc<crate::telemetry::Telemetry>) {
        let _ = self.shared.telemetry.set(telemetry);
    }

    pub fn dispatch(&self, record: Record, done: Done) {
        self.send(self.shared.tracking.dispatched(record, done));
    }

    pub fn delivered(&self) -> u64 {
        self.shared.tracking.delivered()
    }

    fn send(&self, in_flight: Box<InFlight>) {
        let in_flight = match self.shared.held.hold_while_paused(in_flight) {
            Some(in_flight) => in_flight,
            None => return,
        };
        let refused = {
            let _gate = self.shared.stalls.gate();
            match self.shared.stalls.join_if_stalled(in_flight) {
                None => return,
                Some(in_flight) => self.shared.produce(&self.current(), in_flight).err(),
            }
        };
        if let Some((error, in_flight)) = refused {
            if queue_full(&error) {
                self.shared.hold_for_room(in_flight);
            } else {
                self.shared.failed(in_flight, error);
            }
        }
    }

    /// After a replacement (or a report of one that was not needed): sends what was
    /// held, in dispatch order, ahead of anything dispatched meanwhile.
    fn resume_after_replacement(&self) {
        let again = {
            let mut held = self.shared.held.lock();
            let again = self.send_held(&mut held);
            self.shared.held.replacing.store(false, Ordering::SeqCst);
            again
        };
        self.shared.held.wake();
        self.shared.stalls.wake.notify_one();
        for (in_flight, error) in again {
            self.shared.failed(in_flight, error);
        }
    }

    /// Waits up to `timeout` for every dispatched record's fate, then abandons the rest.
    pub async fn shutdown(&self, timeout: Duration) {
        let tracking = &self.shared.tracking;
        if !tracking.settled_within(timeout).await {
            self.shared.abandon.cancel();
            self.shared.abandon_held();
            self.shared.abandon_stalled();
            // Purged records come back as delivery reports, and are abandoned.
            self.producer()
                .purge(PurgeConfig::default().queue().inflight());
            tracking.settled_within(Duration::from_secs(2)).await;
        }
        let producer = self.producer();
        let _ = tokio::task::spawn_blocking(move || {
            producer.flush(Timeout::After(Duration::from_millis(500)))
        })
        .await;
    }
}

impl Sink for Forwarder {
    fn dispatch(&self, record: Record, done: Done) {
        Forwarder::dispatch(self, record, done);
    }

    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ()> {
        Box::pin(Forwarder::shutdown(self, bound))
    }

    fn delivered(&self) -> u64 {
        Forwarder::delivered(self)
    }
}

impl Shared {
    fn problems(&self) -> std::sync::MutexGuard<'_, Problems> {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `in_flight` to librdkafka; gives it back with the error when it is refused at once.
    fn produce(
        &self,
        current: &Current,
        mut in_flight: Box<InFlight>,
    ) -> Result<(), (KafkaError, Box<InFlight>)> {
        in_flight.generation = current.generation;
        self.generations.handed(current.generation);
        let of_topic = self.stalls.outstanding(&in_flight.record.topic);
        of_topic.fetch_add(1, Ordering::SeqCst);
        let record = Arc::clone(&in_flight.record);
        let mut headers = super::record_headers(&record.command, record.sdk_app_id);
        let traceparent = record.trace.as_ref().map(|t| t.context.traceparent_bytes());
        if let Some(traceparent) = &traceparent {
            headers = headers.insert(rdkafka::message::Header {
                key: "traceparent",
                value: Some(&traceparent[..]),
            });
        }
        if let Some(state) = record.trace.as_ref().and_then(|t| t.state.as_deref()) {
            headers = headers.insert(rdkafka::message::Header {
                key: "tracestate",
                value: Some(state),
            });
        }
        let mut kafka_record = BaseRecord::with_opaque_to(&record.topic, in_flight)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key);
        }
        current
            .producer
            .send(kafka_record)
            .map_err(|(error, kafka_record)| {
                self.generations.reported(current.generation);
                of_topic.fetch_sub(1, Ordering::SeqCst);
                (error, kafka_record.delivery_opaque)
            })
    }

    /// Kafka confirmed `in_flight`: a topic that was failing is not any more.
    fn confirmed(&self, in_flight: InFlight) {
        // One atomic load per delivery; the lock only while a topic is failing.
        if self.any_failing.load(Ordering::Relaxed) {
            let topic = &in_flight.record.topic;
            let mut problems = self.problems();
            problems.failing.remove(topic);
            problems.unauthorized.remove(topic);
            self.any_failing
                .store(!problems.failing.is_empty(), Ordering::Relaxed);
        }
        self.tracking.confirmed(in_flight);
    }

    /// librdkafka has no room for `in_flight`: it waits, and so does every record
    /// dispatched after it, until `send_held_when_room` finds room.
    fn hold_for_room(&self, in_flight: Box<InFlight>) {
        if self.held.hold_for_room(in_flight) {
            self.tracking.metrics().producer_queue_full.inc();
            tracing::debug!("librdkafka's queue is full; events wait, in order, for room.");
        }
    }

    /// At shutdown: what still waits for room will not get it.
    fn abandon_held(&self) {
        for in_flight in self.held.take_all() {
            self.tracking.finish_as(*in_flight, Outcome::Abandoned);
        }
    }
}
