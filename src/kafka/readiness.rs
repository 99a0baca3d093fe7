//! Whether Kafka takes our events, checked in the background so that `/readyz` never
//! waits on Kafka, and whether it ever has since this process started.
//!
//! "Has worked" is latched by the first check that passes: the cluster answered with
//! these credentials, every configured topic has partitions, and the idempotent
//! producer got its producer id (Kafka let it write). It is not carried across a
//! restart: a restarted bridge has not worked until it passes again, so a replica
//! restarted with a wrong password is kept out of service like a new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use super::{Forwarder, KafkaProducer};
use crate::metrics::{KindLabels, Metrics};
use crate::quota::LineQuota;

/// The settings that name topics, for a reason that says where a missing one came from.
const TOPIC_SETTINGS: &str = "kafka.topic, kafka.group_topic, kafka.user_topic, kafka.group_events_topic, kafka.other_topic, kafka.command_topics";

/// Until Kafka has worked once, it is checked at least this often.
const FIRST_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why Kafka does not take the bridge's events now, as `/readyz` says it.
#[derive(Debug)]
enum Unready {
    /// Metadata did not come: `because` is librdkafka's error.
    NoAnswer {
        because: rdkafka::error::KafkaError,
    },
    /// What the producer reports (credentials, a refused topic, a stall).
    Refused(String),
    NotDescribable(String),
    Missing(Vec<String>),
    NoProducerId,
    /// The check itself did not finish.
    Check(tokio::task::JoinError),
}

impl Unready {
    /// What sort of reason it is: a log line is written when the sort changes (or once a
    /// minute while it lasts), not each time the text does (a count, a duration).
    fn kind(&self) -> &'static str {
        match self {
            Unready::NoAnswer { .. } => "no_answer",
            Unready::Refused(_) => "refused",
            Unready::NotDescribable(_) => "not_describable",
            Unready::Missing(_) => "missing",
            Unready::NoProducerId => "no_producer_id",
            Unready::Check(_) => "check",
        }
    }
}

/// How often a reason that lasts is logged again.
const STILL_UNREADY_LINE_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Display for Unready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unready::NoAnswer { because } => {
                write!(f, "the Kafka cluster does not answer ({because}); check kafka.brokers")
            }
            Unready::Refused(problem) => f.write_str(problem),
            Unready::NotDescribable(topic) => write!(
                f,
                "not authorized to describe {topic}; check the topic's ACLs (DESCRIBE and WRITE)"
            ),
            Unready::Missing(topics) => write!(
                f,
                "missing topics (or not visible to the bridge's user): {}; create them (or set kafka.create_topics = true), check DESCRIBE ACLs, or correct {TOPIC_SETTINGS}",
                topics.join(", ")
            ),
            Unready::NoProducerId => f.write_str("the idempotent producer has no producer id yet: Kafka has not let it write; check the ACLs (WRITE on the topics, or IDEMPOTENT_WRITE on the cluster)"),
            Unready::Check(error) => write!(f, "readiness check failed: {error}"),
        }
    }
}

pub struct Readiness {
    ready: AtomicBool,
    worked: AtomicBool,
    /// Set when `kafka.startup_deadline_ms` passed without Kafka ever working.
    gave_up: Mutex<Option<String>>,
    reason: Mutex<String>,
    /// The sort of the last reason (`Unready::kind`), `None` while ready.
    kind: Mutex<Option<&'static str>>,
    still: LineQuota,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: AtomicBool::new(false),
            worked: AtomicBool::new(false),
            gave_up: Mutex::new(None),
            reason: Mutex::new("Kafka has not been checked yet".into()),
            kind: Mutex::new(None),
            still: LineQuota::new(STILL_UNREADY_LINE_INTERVAL),
        }
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether Kafka has once taken the producer with these settings since start.
    pub fn has_worked(&self) -> bool {
        self.worked.load(Ordering::Relaxed)
    }

    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the bridge gave up waiting for Kafka to work (`kafka.startup_deadline_ms`).
    pub fn gave_up(&self) -> Option<String> {
        self.gave_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, result: Result<(), Unready>, metrics: &Metrics) {
        let ready = result.is_ok();
        let was = self.ready.swap(ready, Ordering::Relaxed);
        let kind = result.as_ref().err().map(Unready::kind);
        let reason = result.err().map(|e| e.to_string()).unwrap_or_default();
        let mut held = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = {
            let mut held_kind = self.kind.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *held_kind, kind) != kind
        };
        // A new sort of reason is logged at once; one that lasts, once a minute.
        let due = kind.and_then(|kind| self.still.take(kind)).is_some();
        if ready && !self.worked.swap(true, Ordering::Relaxed) {
            tracing::info!("Kafka works with these settings: the cluster answers, every topic exists and the producer may write.");
        } else if was != ready || changed || due {
            if ready {
                tracing::info!("Kafka is ready again.");
            } else if self.has_worked() {
                tracing::warn!(reason = %reason, "Kafka is not ready; callbacks wait (degraded).");
            } else {
                tracing::warn!(reason = %reason, "Kafka has not worked with these settings yet; /readyz answers 503.");
            }
        }
        *held = reason;
        metrics.kafka_ready.set(i64::from(ready));
        metrics.kafka_worked.set(i64::from(self.has_worked()));
    }

    /// Checks now, then every `interval` (every second until Kafka first works), until
    /// `stop` is cancelled. With `deadline`, gives up when Kafka has not worked by then.
    pub fn spawn_monitor(
        self: Arc<Self>,
        forwarder: Arc<Forwarder>,
        topics: Vec<String>,
        interval: Duration,
        deadline: Option<Duration>,
        metrics: Arc<Metrics>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                // The producer in use now: a replacement's after a fatal error.
                let producer = forwarder.producer();
                let topics = topics.clone();
                let result = tokio::task::spawn_blocking(move || check(&producer, &topics))
                    .await
                    .unwrap_or_else(|e| Err(Unready::Check(e)));
                self.set(result, &metrics);
                let (authentication, authorization) = forwarder.producer().context().refusing();
                for (kind, now) in [
                    ("authentication", authentication),
                    ("authorization", authorization),
                ] {
                    metrics
                        .kafka_refusing
                        .get_or_create(&KindLabels { kind })
                        .set(i64::from(now));
                }
                if let Some(deadline) = deadline.filter(|d| started.elapsed() >= *d) {
                    if !self.has_worked() {
                        let why = format!(
                            "Kafka did not work within kafka.startup_deadline_ms ({} ms): {}",
                            deadline.as_millis(),
                            self.reason()
                        );
                        *self.gave_up.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                        return;
                    }
                }
                let wait = if self.has_worked() {
                    interval
                } else {
                    interval.min(FIRST_CHECK_INTERVAL)
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }
}

fn check(producer: &KafkaProducer, topics: &[String]) -> Result<(), Unready> {
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|because| match producer.context().problem() {
            Some(problem) => Unready::Refused(problem),
            None => Unready::NoAnswer { because },
        })?;
    producer.context().answered();
    let mut missing = Vec::new();
    for topic in topics {
        match metadata.topics().iter().find(|m| m.name() == topic) {
            Some(m) if m.error().is_none() && !m.partitions().is_empty() => {}
            Some(m)
                if m.error().map(RDKafkaErrorCode::from)
                    == Some(RDKafkaErrorCode::TopicAuthorizationFailed) =>
            {
                return Err(Unready::NotDescribable(topic.clone()));
            }
            _ => missing.push(topic.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Unready::Missing(missing));
    }
    if let Some(problem) = producer.context().problem() {
        return Err(Unready::Refused(problem));
    }
    if !producer.context().has_producer_id() {
        return Err(Unready::NoProducerId);
    }
    Ok(())
}
