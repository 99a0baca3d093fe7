//! Sends events to Kafka. `dispatch` hands a record to librdkafka at once, on the
//! caller's thread, so records dispatched in order reach their partition in order
//! (the producer is idempotent). Kafka's confirmations arrive in librdkafka's delivery
//! reports, handled on the producer's polling thread in batches: no task, channel or
//! wake-up per record. A failed attempt stalls its topic (`stalls.rs`): one task sends
//! the topic's waiting records again, in dispatch order, after a capped, jittered
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use prometheus_client::metrics::counter::Counter;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

use super::problems::{
    refusal, retriable, unauthorized, Problems, CREDENTIALS_PROBLEM_TTL, STALLED_AFTER_MS,
};
use super::stalls::{Due, Stalls};
use crate::delivery::{now_ms, BoxFuture, Done, Outcome, Record, Sink};
use crate::event;
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

/// The producer in use, and which one it is (0, then 1 after a replacement, ...).
struct Current {
    producer: KafkaProducer,
    generation: u64,
}

/// A record librdkafka holds, with what to do once its fate is known.
pub struct InFlight {
    /// The generation of the producer it was handed to.
    generation: u64,
    pub(super) record: Arc<Record>,
    done: Done,
    attempt: u32,
    /// Dispatch order, kept when records are sent again (a stall, a producer's replacement).
    pub(super) order: u64,
}

struct Shared {
    max_retry_delay: Duration,
    abandon: CancellationToken,
    /// Dispatched records whose fate is not known yet.
    in_flight: AtomicU64,
    /// When Kafka last confirmed a record, or records began to wait after none did.
    progress_at_ms: AtomicU64,
    delivered: AtomicU64,
    metrics: Arc<Metrics>,
    /// Each topic's counters, looked up once at start rather than per event.
    counters: HashMap<String, TopicCounters>,
    stalls: Stalls,
    dead_letters: Arc<DeadLetters>,
    problems: Mutex<Problems>,
    any_failing: AtomicBool,
    next_order: AtomicU64,
    /// The producer is fatal and being replaced: records wait in `held` meanwhile.
    replacing: AtomicBool,
    /// librdkafka's queue was full: records wait in `held` until it has room.
    queue_full: AtomicBool,
    room: tokio::sync::Notify,
    // Boxed as librdkafka hands them back (the delivery opaque): no re-boxing per record.
    #[allow(clippy::vec_box)]
    held: Mutex<Vec<Box<InFlight>>>,
    fatal: tokio::sync::Notify,
    /// Records handed to each of the last two producer generations whose report has
    /// not been handled yet (a replacement waits for the old one's to reach 0).
    outstanding: [AtomicU64; 2],
    /// The producer in use holds an idempotent producer id: Kafka let it write
    /// (librdkafka's statistics say so, `eos.idemp_state`).
    producer_id: AtomicBool,
    /// librdkafka's counters as last seen, for ours that outlive a producer.
    totals: super::statistics::Totals,
}

struct TopicCounters {
    produced: Counter,
    failures: Counter,
}

/// The producer's context: it receives librdkafka's delivery reports.
pub struct Deliveries {
    shared: Arc<Shared>,
}

impl ClientContext for Deliveries {
    /// librdkafka's statistics: metrics, and whether the producer holds its id.
    fn stats_raw(&self, statistics: &[u8]) {
        let shared = &self.shared;
        if let Some(assigned) =
            super::statistics::record(statistics, &shared.metrics, &shared.totals)
        {
            shared.producer_id.store(assigned, Ordering::Relaxed);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(error = %error, reason, "The Kafka producer is in a fatal state; replacing it.");
            self.shared.replacing.store(true, Ordering::SeqCst);
            self.shared.fatal.notify_one();
            return;
        }
        let setting = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                "kafka.security.sasl_username and kafka.security.sasl_password"
            }
            Some(RDKafkaErrorCode::SSL) => {
                "kafka.security.ca_file, kafka.security.cert_file and kafka.security.key_file"
            }
            _ => {
                // librdkafka repeats these every reconnect (every ~50 ms with no broker):
                // one line per kind of error per interval, with the count.
                let kind = format!("client: {error}");
                if let Some(errors) = self.shared.problems().quieted(&kind) {
                    tracing::warn!(error = %error, reason, errors_since_last_line = errors, "The Kafka client reports an error.");
                }
                return;
            }
        };
        let problem = format!("Kafka authentication failed ({reason}); check {setting}");
        let mut problems = self.shared.problems();
        problems.credentials = Some((Instant::now(), problem));
        if let Some(errors) = problems.quieted("client: credentials") {
            drop(problems);
            tracing::error!(error = %error, reason, errors_since_last_line = errors, "Kafka refuses the bridge's connection; check {setting}.");
        }
    }
}

impl Deliveries {
    /// Why Kafka does not take our events, if it does not: bad credentials or
    /// certificates, topics the bridge may not write, or topics whose last delivery
    /// failed (no leader, too few in-sync replicas, ...). `None` when there is none.
    pub fn problem(&self) -> Option<String> {
        let problems = self.shared.problems();
        if let Some((at, problem)) = &problems.credentials {
            if at.elapsed() < CREDENTIALS_PROBLEM_TTL {
                return Some(problem.clone());
            }
        }
        let waiting = self.shared.in_flight.load(Ordering::SeqCst);
        let stalled_ms =
            now_ms().saturating_sub(self.shared.progress_at_ms.load(Ordering::Relaxed));
        if waiting > 0 && stalled_ms >= STALLED_AFTER_MS {
            return Some(format!(
                "Kafka has confirmed none of the {waiting} events sent to it for {} s",
                stalled_ms / 1000
            ));
        }
        if problems.failing.is_empty() {
            return None;
        }
        let mut failing: Vec<&str> = problems.failing.values().map(String::as_str).collect();
        failing.sort();
        Some(failing.join("; "))
    }

    /// Whether Kafka refuses, now, the bridge's credentials and any topic's writes.
    pub fn refusing(&self) -> (bool, bool) {
        let problems = self.shared.problems();
        let credentials = problems
            .credentials
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < CREDENTIALS_PROBLEM_TTL);
        (credentials, !problems.unauthorized.is_empty())
    }

    /// Whether the producer in use got its idempotent producer id: Kafka took the
    /// credentials and lets it write. Needs `statistics.interval.ms`.
    pub fn has_producer_id(&self) -> bool {
        self.shared.producer_id.load(Ordering::Relaxed)
    }

    /// The cluster answered us: an earlier authentication failure is over.
    pub fn answered(&self) {
        self.shared.problems().credentials = None;
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, in_flight: Box<InFlight>) {
        let outstanding = &self.shared.outstanding[(in_flight.generation % 2) as usize];
        let of_topic = self.shared.stalls.outstanding(&in_flight.record.topic);
        match result {
            Ok(_) => self.shared.finish(*in_flight, Ok(())),
            Err((error, _)) => self.shared.failed(in_flight, error.clone()),
        }
        // After the record is finished, held or stalled, so that a replacement or a
        // stall's retry sees it there.
        outstanding.fetch_sub(1, Ordering::SeqCst);
        self.shared.stalls.reported(of_topic);
    }
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
        let counters = topics
            .iter()
            .map(|t| (t.clone(), TopicCounters::of(&metrics, t)))
            .collect();
        let shared = Arc::new(Shared {
            max_retry_delay,
            abandon: CancellationToken::new(),
            in_flight: AtomicU64::new(0),
            progress_at_ms: AtomicU64::new(now_ms()),
            delivered: AtomicU64::new(0),
            metrics,
            counters,
            stalls: Stalls::new(topics),
            dead_letters,
            problems: Mutex::default(),
            any_failing: AtomicBool::new(false),
            next_order: AtomicU64::new(0),
            replacing: AtomicBool::new(false),
            queue_full: AtomicBool::new(false),
            room: tokio::sync::Notify::new(),
            held: Mutex::default(),
            fatal: tokio::sync::Notify::new(),
            outstanding: [AtomicU64::new(0), AtomicU64::new(0)],
            producer_id: AtomicBool::new(false),
            totals: Default::default(),
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
        tokio::spawn(retry_stalled(
            Arc::clone(&forwarder.shared),
            Arc::downgrade(&forwarder),
        ));
        tokio::spawn(send_held_when_room(
            Arc::clone(&forwarder.shared),
            Arc::downgrade(&forwarder),
        ));
        tokio::spawn(replace_when_fatal(
            Arc::clone(&forwarder.shared),
            Arc::downgrade(&forwarder),
        ));
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
    pub fn dispatch(&self, record: Record, done: Done) {
        if self.shared.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.shared
                .progress_at_ms
                .store(now_ms(), Ordering::Relaxed);
        }
        self.send(Box::new(InFlight {
            record: Arc::new(record),
            done,
            attempt: 0,
            order: self.shared.next_order.fetch_add(1, Ordering::Relaxed),
            generation: 0,
        }));
    }

    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    fn send(&self, in_flight: Box<InFlight>) {
        let in_flight = match self.shared.hold_while_paused(in_flight) {
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

    /// Sends again, in dispatch order, the records of every stalled topic that is due.
    fn resend_stalled(&self) {
        if self.shared.replacing.load(Ordering::SeqCst) {
            return;
        }
        let mut refused = Vec::new();
        self.shared.stalls.resend_due(|records: Due| {
            let current = self.current();
            let mut waiting = records.into_iter();
            while let Some(in_flight) = waiting.next() {
                if let Err((error, in_flight)) = self.shared.produce(&current, in_flight) {
                    let mut left: Due = waiting.collect();
                    if queue_full(&error) {
                        left.insert(0, in_flight);
                        return Some((left, Duration::from_millis(5)));
                    }
                    // Refused at once (librdkafka knows the topic is missing): the topic waits
                    // its next backoff; the record is handled once every stall is unlocked
                    // (it joins that wait, or is refused for good).
                    let wait = self.shared.backoff(in_flight.attempt + 1);
                    refused.push((in_flight, error));
                    return Some((left, wait));
                }
            }
            None
        });
        for (in_flight, error) in refused {
            self.shared.failed(in_flight, error);
        }
    }

    /// Sends what is held, in dispatch order, until librdkafka's queue is full again;
    /// whatever is left stays held (and `queue_full` set) for the next try. Called
    /// with `held` locked, so that nothing dispatched meanwhile can go first.
    #[allow(clippy::vec_box)]
    fn send_held(&self, held: &mut Vec<Box<InFlight>>) -> Vec<(Box<InFlight>, KafkaError)> {
        held.sort_by_key(|in_flight| in_flight.order);
        let mut waiting: VecDeque<_> = held.drain(..).collect();
        let mut failed = Vec::new();
        let _gate = self.shared.stalls.gate();
        let current = self.current();
        while let Some(in_flight) = waiting.pop_front() {
            let Some(in_flight) = self.shared.stalls.join_if_stalled(in_flight) else {
                continue;
            };
            match self.shared.produce(&current, in_flight) {
                Ok(()) => {}
                Err((error, in_flight)) if queue_full(&error) => {
                    waiting.push_front(in_flight);
                    break;
                }
                Err((error, in_flight)) => failed.push((in_flight, error)),
            }
        }
        self.shared
            .queue_full
            .store(!waiting.is_empty(), Ordering::SeqCst);
        held.extend(waiting);
        failed
    }

    /// Makes a new producer if the current one is fatal, lets go of the fatal one (whose
    /// records come back through `failed` into `held`), then sends what was held in
    /// dispatch order, ahead of anything dispatched meanwhile.
    fn replace(&self) {
        let fatal = self.current().producer.client().fatal_error();
        if let Some((code, reason)) = &fatal {
            self.shared.producer_id.store(false, Ordering::Relaxed);
            let fresh = match self.config.create_with_context(Deliveries {
                shared: Arc::clone(&self.shared),
            }) {
                Ok(fresh) => fresh,
                Err(error) => {
                    tracing::error!(error = %error, "Cannot make a new Kafka producer; trying again in a second.");
                    std::thread::sleep(Duration::from_secs(1));
                    self.shared.fatal.notify_one();
                    return;
                }
            };
            let old = {
                let mut current = self
                    .producer
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let generation = current.generation + 1;
                std::mem::replace(
                    &mut *current,
                    Current {
                        producer: fresh,
                        generation,
                    },
                )
            };
            // Its records come back as purged, into `held`; wait until every one has.
            old.producer
                .purge(PurgeConfig::default().queue().inflight());
            let outstanding = &self.shared.outstanding[(old.generation % 2) as usize];
            let deadline = Instant::now() + Duration::from_secs(30);
            while outstanding.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
            self.shared.metrics.producer_restarts.inc();
            tracing::warn!(fatal_error = %code, reason, "Replaced the fatal Kafka producer; what it had not confirmed is sent again, in order.");
        }
        let again = {
            let mut held = self.shared.held();
            let again = self.send_held(&mut held);
            self.shared.replacing.store(false, Ordering::SeqCst);
            again
        };
        self.shared.room.notify_one();
        self.shared.stalls.wake.notify_one();
        for (in_flight, error) in again {
            self.shared.failed(in_flight, error);
        }
    }
}

impl Shared {
    /// Hands `in_flight` to librdkafka; gives it back with the error when it is refused at once.
    fn produce(
        &self,
        current: &Current,
        mut in_flight: Box<InFlight>,
    ) -> Result<(), (KafkaError, Box<InFlight>)> {
        in_flight.generation = current.generation;
        let outstanding = &self.outstanding[(current.generation % 2) as usize];
        outstanding.fetch_add(1, Ordering::SeqCst);
        let of_topic = self.stalls.outstanding(&in_flight.record.topic);
        of_topic.fetch_add(1, Ordering::SeqCst);
        let record = Arc::clone(&in_flight.record);
        let mut app_id = itoa::Buffer::new();
        let sdk_app_id = app_id.format(record.sdk_app_id);
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: "content-type",
                value: Some(event::CONTENT_TYPE),
            })
            .insert(Header {
                key: "tim-command",
                value: Some(&record.command),
            })
            .insert(Header {
                key: "tim-sdkappid",
                value: Some(sdk_app_id),
            });
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
                outstanding.fetch_sub(1, Ordering::SeqCst);
                of_topic.fetch_sub(1, Ordering::SeqCst);
                (error, kafka_record.delivery_opaque)
            })
    }
}

impl Forwarder {
    /// Waits up to `timeout` for every dispatched record's fate, then abandons the rest.
    pub async fn shutdown(&self, timeout: Duration) {
        if !self.settled_within(timeout).await {
            self.shared.abandon.cancel();
            self.shared.abandon_held();
            self.shared.abandon_stalled();
            // Purged records come back as delivery reports, and are abandoned.
            self.producer()
                .purge(PurgeConfig::default().queue().inflight());
            self.settled_within(Duration::from_secs(2)).await;
        }
        let producer = self.producer();
        let _ = tokio::task::spawn_blocking(move || {
            producer.flush(Timeout::After(Duration::from_millis(500)))
        })
        .await;
    }

    async fn settled_within(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
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

/// Sends the records of stalled topics again, each topic's in dispatch order once its
/// backoff has passed, until the forwarder goes; then abandons what still waits.
async fn retry_stalled(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        let next = shared.stalls.next_due();
        let due = async move {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.abandon.cancelled() => break,
            _ = shared.stalls.wake.notified() => {}
            _ = due => {}
        }
        let Some(this) = forwarder.upgrade() else {
            break;
        };
        this.resend_stalled();
    }
    shared.abandon_stalled();
}

/// Replaces the producer each time librdkafka reports it fatal, until the forwarder goes.
async fn replace_when_fatal(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        shared.fatal.notified().await;
        let Some(this) = forwarder.upgrade() else {
            return;
        };
        if tokio::task::spawn_blocking(move || this.replace())
            .await
            .is_err()
        {
            tracing::error!("Replacing the Kafka producer panicked.");
        }
    }
}

/// While librdkafka's queue is full, tries every millisecond to send what is held.
async fn send_held_when_room(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        shared.room.notified().await;
        while shared.queue_full.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let Some(this) = forwarder.upgrade() else {
                return;
            };
            if this.shared.abandon.is_cancelled() {
                this.shared.abandon_held();
                break;
            }
            // A replacement sends what is held itself.
            if this.shared.replacing.load(Ordering::SeqCst) {
                continue;
            }
            let failed = {
                let mut held = this.shared.held();
                this.send_held(&mut held)
            };
            for (in_flight, error) in failed {
                this.shared.failed(in_flight, error);
            }
        }
    }
}

fn queue_full(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

impl Shared {
    fn problems(&self) -> std::sync::MutexGuard<'_, Problems> {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one event of `topic` in the counter `which` picks.
    fn count(&self, topic: &str, which: fn(&TopicCounters) -> &Counter) {
        match self.counters.get(topic) {
            Some(counters) => which(counters).inc(),
            None => which(&TopicCounters::of(&self.metrics, topic)).inc(),
        };
    }

    #[allow(clippy::vec_box)]
    fn held(&self) -> std::sync::MutexGuard<'_, Vec<Box<InFlight>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn paused(&self) -> bool {
        self.replacing.load(Ordering::SeqCst) || self.queue_full.load(Ordering::SeqCst)
    }

    /// Keeps `in_flight` behind the records held before it while a replacement
    /// producer is being made or librdkafka's queue is full; gives it back otherwise.
    fn hold_while_paused(&self, in_flight: Box<InFlight>) -> Option<Box<InFlight>> {
        if !self.paused() {
            return Some(in_flight);
        }
        let mut held = self.held();
        if self.paused() {
            held.push(in_flight);
            return None;
        }
        Some(in_flight)
    }

    /// librdkafka has no room for `in_flight`: it waits, and so does every record
    /// dispatched after it, until `send_held_when_room` finds room.
    fn hold_for_room(&self, in_flight: Box<InFlight>) {
        let mut held = self.held();
        if !self.queue_full.swap(true, Ordering::SeqCst) {
            self.metrics.producer_queue_full.inc();
            tracing::debug!("librdkafka's queue is full; events wait, in order, for room.");
        }
        held.push(in_flight);
        drop(held);
        self.room.notify_one();
    }

    fn failed(&self, mut in_flight: Box<InFlight>, error: KafkaError) {
        if self.abandon.is_cancelled() {
            return self.finish_as(*in_flight, Outcome::Abandoned);
        }
        // Only a fatal producer fails records with these when we are not shutting down:
        // librdkafka purges its queue before it reports the fatal error itself.
        if matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::PurgeQueue
                    | RDKafkaErrorCode::PurgeInflight
            )
        ) {
            self.replacing.store(true, Ordering::SeqCst);
            self.fatal.notify_one();
        }
        in_flight = match self.hold_while_paused(in_flight) {
            Some(in_flight) => in_flight,
            None => return,
        };
        if !retriable(&error) {
            return self.finish(*in_flight, Err(error));
        }
        if self.abandon.is_cancelled() {
            return self.finish_as(*in_flight, Outcome::Abandoned);
        }
        in_flight.attempt += 1;
        let record = &in_flight.record;
        self.count(&record.topic, |c| &c.failures);
        let refused = unauthorized(&error);
        let problem = if refused {
            format!(
                "not authorized to write {} ({error}); check the topic's ACLs (WRITE and DESCRIBE)",
                record.topic
            )
        } else {
            format!("Kafka does not take events for {} ({error})", record.topic)
        };
        let since_last_line = {
            let mut problems = self.problems();
            problems.failing.insert(record.topic.clone(), problem);
            if refused {
                problems.unauthorized.insert(record.topic.clone());
            } else {
                problems.unauthorized.remove(&record.topic);
            }
            problems.quieted(&record.topic)
        };
        self.any_failing.store(true, Ordering::Relaxed);
        // One line per topic per interval, whatever the outage's size; the metric counts each.
        if let Some(failures) = since_last_line {
            // Keys name accounts (`user:<account>`): at debug only.
            tracing::debug!(
                topic = %record.topic,
                msg_key = record.key.as_deref().unwrap_or(""),
                "The key of the event Kafka did not take."
            );
            tracing::warn!(
                topic = %record.topic,
                error = %error,
                attempt = in_flight.attempt,
                failures_since_last_line = failures,
                "Kafka did not take an event; retrying."
            );
        }
        let backoff = self.backoff(in_flight.attempt);
        self.stalls.stall(in_flight, backoff);
    }

    fn finish(&self, in_flight: InFlight, result: Result<(), KafkaError>) {
        let record = &in_flight.record;
        match result {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                // One atomic load per delivery; the lock only while a topic is failing.
                if self.any_failing.load(Ordering::Relaxed) {
                    let mut problems = self.problems();
                    problems.failing.remove(&record.topic);
                    problems.unauthorized.remove(&record.topic);
                    self.any_failing
                        .store(!problems.failing.is_empty(), Ordering::Relaxed);
                }
                self.count(&record.topic, |c| &c.produced);
                let now = now_ms();
                self.progress_at_ms.store(now, Ordering::Relaxed);
                let latency_ms = now.saturating_sub(record.accepted_at_ms);
                self.metrics
                    .delivery_latency
                    .observe(latency_ms as f64 / 1000.0);
                self.finish_as(in_flight, Outcome::Delivered);
            }
            Err(error) => {
                let reason = refusal(&error);
                let key = record.key.as_deref().unwrap_or("");
                match self.dead_letters.keep(record, reason, &error) {
                    Ok(_) => self.finish_as(in_flight, Outcome::DeadLettered),
                    Err(dead_error) => {
                        tracing::debug!(topic = %record.topic, msg_key = key, "The refused event's key.");
                        tracing::error!(topic = %record.topic, error = %error, dead_letter_error = %dead_error,
                            "Kafka refused an event for good and the dead-letter log cannot take it; with ack = durable it stays in the spool, with ack = memory it is lost.");
                        self.finish_as(in_flight, Outcome::Abandoned);
                    }
                }
            }
        }
    }

    /// At shutdown: what still waits for room will not get it.
    fn abandon_held(&self) {
        let held = std::mem::take(&mut *self.held());
        self.queue_full.store(false, Ordering::SeqCst);
        for in_flight in held {
            self.finish_as(*in_flight, Outcome::Abandoned);
        }
    }

    /// At shutdown: what waits in a stall will not be sent.
    fn abandon_stalled(&self) {
        for in_flight in self.stalls.take_all() {
            self.finish_as(*in_flight, Outcome::Abandoned);
        }
    }

    fn finish_as(&self, in_flight: InFlight, outcome: Outcome) {
        let InFlight { record, done, .. } = in_flight;
        done(outcome, &record);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The wait before attempt number `attempt` (1 for the first retry).
    fn backoff(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.max_retry_delay)
            .with_jitter()
            .without_max_times()
            .build()
            // Past 32 doublings of 100 ms every delay is the maximum anyway.
            .nth(attempt.saturating_sub(1).min(32) as usize)
            .unwrap_or(self.max_retry_delay)
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
