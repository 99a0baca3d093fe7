//! The bounded forwarding queue: a callback's event is accepted when there is room,
//! then delivered in the background, retried with capped backoff until Kafka confirms
//! it or the bridge shuts down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event;
use crate::metrics::Metrics;

/// One event, ready for Kafka.
pub struct Record {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub command: String,
    pub sdk_app_id: u64,
    pub accepted_at: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

#[derive(Debug, Default)]
pub struct ShutdownReport {
    pub delivered: u64,
    /// Keys of the events Kafka had not confirmed when time ran out.
    pub unconfirmed: Vec<String>,
}

pub struct Forwarder {
    producer: FutureProducer,
    room: Arc<Semaphore>,
    capacity: usize,
    enqueue_timeout: Duration,
    max_retry_delay: Duration,
    tasks: TaskTracker,
    abandon: CancellationToken,
    delivered: AtomicU64,
    unconfirmed: Mutex<Vec<String>>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    pub fn new(
        producer: FutureProducer,
        capacity: usize,
        enqueue_timeout: Duration,
        max_retry_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            producer,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
            enqueue_timeout,
            max_retry_delay,
            tasks: TaskTracker::new(),
            abandon: CancellationToken::new(),
            delivered: AtomicU64::new(0),
            unconfirmed: Mutex::new(Vec::new()),
            metrics,
        })
    }

    /// Takes the event if there is room, waiting at most `enqueue_timeout` for some.
    pub async fn accept(self: &Arc<Self>, record: Record) -> Result<(), QueueFull> {
        let permit = match self.room.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.enqueue_timeout, self.room.clone().acquire_owned())
                .await
                .map_err(|_| QueueFull)?
                .map_err(|_| QueueFull)?,
        };
        self.update_depth();
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            this.deliver(record).await;
            drop(permit);
            this.update_depth();
        });
        Ok(())
    }

    pub fn depth(&self) -> usize {
        self.capacity - self.room.available_permits()
    }

    fn update_depth(&self) {
        self.metrics.queue_depth.set(self.depth() as i64);
    }

    async fn deliver(&self, record: Record) {
        let topic = Metrics::topic(&record.topic);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.max_retry_delay)
            .with_jitter()
            .without_max_times();
        let attempts = (|| self.send_once(&record))
            .retry(backoff)
            .when(retriable)
            .notify(|error, delay| {
                self.metrics.delivery_failures.get_or_create(&topic).inc();
                tracing::warn!(
                    topic = %record.topic,
                    msg_key = record.key.as_deref().unwrap_or(""),
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "Kafka did not take an event; retrying."
                );
            });
        let outcome = tokio::select! {
            outcome = attempts => outcome,
            _ = self.abandon.cancelled() => {
                let key = record.key.clone().unwrap_or_else(|| "(no key)".into());
                tracing::error!(topic = %record.topic, msg_key = %key, "Event not confirmed by Kafka at shutdown.");
                self.unconfirmed.lock().expect("unconfirmed lock").push(key);
                return;
            }
        };
        match outcome {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.metrics.events_produced.get_or_create(&topic).inc();
                self.metrics
                    .delivery_latency
                    .observe(record.accepted_at.elapsed().as_secs_f64());
            }
            Err(error) => {
                self.metrics.delivery_failures.get_or_create(&topic).inc();
                self.metrics.events_dropped.get_or_create(&topic).inc();
                tracing::error!(
                    topic = %record.topic,
                    msg_key = record.key.as_deref().unwrap_or(""),
                    error = %error,
                    "Kafka refused an event for good; it is dropped."
                );
            }
        }
    }

    async fn send_once(&self, record: &Record) -> Result<(), KafkaError> {
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
                value: Some(&record.sdk_app_id.to_string()),
            });
        let mut kafka_record = FutureRecord::to(&record.topic)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key);
        }
        self.producer
            .send(kafka_record, Timeout::Never)
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }

    /// Stops taking events, waits up to `timeout` for Kafka to confirm those in flight,
    /// then gives up on the rest and reports them.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            self.abandon.cancel();
            self.tasks.wait().await;
        }
        let _ = self.producer.flush(Duration::from_secs(1));
        ShutdownReport {
            delivered: self.delivered.load(Ordering::Relaxed),
            unconfirmed: std::mem::take(&mut *self.unconfirmed.lock().expect("unconfirmed lock")),
        }
    }
}

/// Errors that no retry can fix.
fn retriable(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}
