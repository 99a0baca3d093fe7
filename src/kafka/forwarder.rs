//! Sends events to Kafka. `dispatch` hands a record to librdkafka at once, on the
//! caller's thread, so records dispatched in order reach their partition in order
//! (the producer is idempotent); waiting for Kafka's confirmation, and retrying with
//! capped backoff, happens in the background.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event;
use crate::metrics::Metrics;

/// One event, ready for Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub command: String,
    pub sdk_app_id: u64,
    /// When the callback was accepted, unix milliseconds.
    pub accepted_at_ms: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Kafka refused it for good (too large, not authorized); logged and counted.
    Dropped,
    /// The bridge shut down before Kafka confirmed it.
    Abandoned,
}

pub struct Forwarder {
    producer: FutureProducer,
    runtime: Handle,
    max_retry_delay: Duration,
    tasks: TaskTracker,
    abandon: CancellationToken,
    delivered: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    /// Must be called inside the Tokio runtime that will run the deliveries.
    pub fn new(
        producer: FutureProducer,
        max_retry_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            producer,
            runtime: Handle::current(),
            max_retry_delay,
            tasks: TaskTracker::new(),
            abandon: CancellationToken::new(),
            delivered: AtomicU64::new(0),
            metrics,
        })
    }

    /// Enqueues `record` in librdkafka now, and calls `done` once its fate is known.
    /// Callable from any thread.
    pub fn dispatch(self: &Arc<Self>, record: Record, done: impl FnOnce(Outcome) + Send + 'static) {
        let first = self.enqueue(&record);
        let this = Arc::clone(self);
        self.tasks.spawn_on(
            async move {
                let outcome = this.deliver(&record, first).await;
                done(outcome);
            },
            &self.runtime,
        );
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    fn enqueue(&self, record: &Record) -> Result<DeliveryFuture, KafkaError> {
        let sdk_app_id = record.sdk_app_id.to_string();
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
                value: Some(&sdk_app_id),
            });
        let mut kafka_record = FutureRecord::to(&record.topic)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key);
        }
        self.producer
            .send_result(kafka_record)
            .map_err(|(error, _)| error)
    }

    async fn deliver(&self, record: &Record, first: Result<DeliveryFuture, KafkaError>) -> Outcome {
        let first = match first {
            Ok(delivery) => tokio::select! {
                result = delivery => match result {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(error),
                    Err(_) => Err(KafkaError::Canceled),
                },
                _ = self.abandon.cancelled() => return Outcome::Abandoned,
            },
            Err(error) => Err(error),
        };
        let result = match first {
            Ok(()) => Ok(()),
            Err(error) if !retriable(&error) => Err(error),
            Err(error) => {
                self.failed_attempt(record, &error, Duration::ZERO);
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(self.max_retry_delay)
                    .with_jitter()
                    .without_max_times();
                let retries = (|| self.send_again(record))
                    .retry(backoff)
                    .when(retriable)
                    .notify(|error, delay| self.failed_attempt(record, error, delay));
                tokio::select! {
                    result = retries => result,
                    _ = self.abandon.cancelled() => return Outcome::Abandoned,
                }
            }
        };
        let topic = Metrics::topic(&record.topic);
        match result {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.metrics.events_produced.get_or_create(&topic).inc();
                let latency_ms = now_ms().saturating_sub(record.accepted_at_ms);
                self.metrics
                    .delivery_latency
                    .observe(latency_ms as f64 / 1000.0);
                Outcome::Delivered
            }
            Err(error) => {
                self.metrics.events_dropped.get_or_create(&topic).inc();
                tracing::error!(
                    topic = %record.topic,
                    msg_key = record.key.as_deref().unwrap_or(""),
                    error = %error,
                    "Kafka refused an event for good; it is dropped."
                );
                Outcome::Dropped
            }
        }
    }

    async fn send_again(&self, record: &Record) -> Result<(), KafkaError> {
        match self.enqueue(record) {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(error) => Err(error),
        }
    }

    fn failed_attempt(&self, record: &Record, error: &KafkaError, retry_in: Duration) {
        self.metrics
            .delivery_failures
            .get_or_create(&Metrics::topic(&record.topic))
            .inc();
        tracing::warn!(
            topic = %record.topic,
            msg_key = record.key.as_deref().unwrap_or(""),
            error = %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "Kafka did not take an event; retrying."
        );
    }

    /// Waits up to `timeout` for every dispatched record's fate, then abandons the rest.
    pub async fn shutdown(&self, timeout: Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            self.abandon.cancel();
            self.tasks.wait().await;
        }
        let _ = self
            .producer
            .flush(Timeout::After(Duration::from_millis(500)));
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
