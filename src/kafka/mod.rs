//! The Kafka side: the producer configuration (built here and nowhere else), topic
//! creation, the readiness monitor and the forwarder.

mod forwarder;
mod problems;
mod readiness;
mod statistics;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

pub use forwarder::{Deliveries, Forwarder, KafkaProducer};
pub use readiness::Readiness;

use crate::settings::{KafkaConfig, KafkaSecurity, SettingsError};

/// Brokers and `[kafka.security]`: what every client of ours starts from.
pub fn client_config(
    security: &KafkaSecurity,
    brokers: &str,
) -> Result<ClientConfig, SettingsError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in security.client_properties()? {
        config.set(key, value);
    }
    Ok(config)
}

/// The producer's configuration: ours first, then the pass-through properties
/// (settings validation already refused those that would weaken delivery).
pub fn producer_config(kafka: &KafkaConfig) -> Result<ClientConfig, SettingsError> {
    let mut config = client_config(&kafka.security, &kafka.brokers)?;
    config
        .set("client.id", "tim-kafka-bridge")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // One request in flight per broker: Kafka takes the first batch of a producer
        // it holds no state for (a new partition, one idle past
        // producer.id.expiration.ms) at any sequence number, and librdkafka counts an
        // earlier batch as written once a later one is confirmed. With two in flight, a
        // first batch refused right after a topic was made was reported delivered and
        // was not in Kafka (the outage test, in CI). Measured at no cost here: 29,267
        // against 25,785 callbacks/s at 64 connections, 26,726 against 26,653 at 256.
        .set("max.in.flight.requests.per.connection", "1")
        .set("compression.type", "lz4")
        // Larger batches: a third of the broker's and librdkafka's CPU per event of
        // 5 ms under load (bench/README.md), for ~15 ms more until readable.
        .set("linger.ms", "20")
        // Never given up on by librdkafka: a record it timed out while newer ones of its
        // partition stayed queued would let those land first (src/kafka/stalls.rs).
        .set("message.timeout.ms", "0")
        // Metrics, and readiness reads the idempotent producer's state from them.
        .set(
            "statistics.interval.ms",
            kafka.statistics_interval.as_millis().to_string(),
        );
    if kafka.create_topics {
        // The bridge makes its topics with kafka.partitions: the broker must not make
        // one first, with its own default, because the producer asked for it before the
        // bridge could (Kafka down at start, then up).
        config.set("allow.auto.create.topics", "false");
    }
    for (key, value) in &kafka.producer {
        config.set(key, value);
    }
    Ok(config)
}

/// The headers of every record the bridge writes: the content type, the callback
/// command and the app.
pub fn record_headers(command: &str, sdk_app_id: u64) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let mut app_id = itoa::Buffer::new();
    OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: "content-type",
            value: Some(crate::event::CONTENT_TYPE),
        })
        .insert(Header {
            key: "tim-command",
            value: Some(command),
        })
        .insert(Header {
            key: "tim-sdkappid",
            value: Some(app_id.format(sdk_app_id)),
        })
}

/// Has librdkafka build a producer from exactly what `serve` would give it, without
/// connecting: an unknown property, a codec not built in or an unreadable key or CA
/// file is refused here, naming the property where librdkafka does.
pub fn check_producer(kafka: &KafkaConfig) -> Result<(), SettingsError> {
    let config = producer_config(kafka)?;
    config
        .create::<rdkafka::producer::BaseProducer>()
        .map(drop)
        .map_err(|error| match error {
            rdkafka::error::KafkaError::ClientConfig(_, description, key, _) => SettingsError::new(
                format!("kafka.producer.\"{key}\""),
                format!("librdkafka refuses it: {description}"),
            ),
            other => {
                SettingsError::new("kafka.producer", format!("librdkafka refuses it: {other}"))
            }
        })
}

/// Creates the configured topics that do not exist yet (the test broker, like many
/// production clusters, does not create topics on first use).
pub async fn create_topics(kafka: &KafkaConfig, topics: &[String]) -> Result<(), TopicsError> {
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                kafka.partitions,
                TopicReplication::Fixed(kafka.replication_factor),
            )
        })
        .collect();
    create(kafka, &new_topics).await
}

/// A compacted topic of one partition (`reconcile`'s state), unless it exists.
pub async fn create_compacted_topic(kafka: &KafkaConfig, topic: &str) -> Result<(), TopicsError> {
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(kafka.replication_factor))
        .set("cleanup.policy", "compact");
    create(kafka, &[new_topic]).await
}

async fn create(kafka: &KafkaConfig, new_topics: &[NewTopic<'_>]) -> Result<(), TopicsError> {
    let admin: AdminClient<DefaultClientContext> = client_config(&kafka.security, &kafka.brokers)
        .map_err(TopicsError::Settings)?
        .create()
        .map_err(TopicsError::Client)?;
    // Bounded on our side too: an unreachable or refusing cluster must not hold up
    // start-up for librdkafka's default minute.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = admin
        .create_topics(new_topics, &options)
        .await
        .map_err(TopicsError::Request)?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "Created topic."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicsError::Refused { topic, code }),
        }
    }
    Ok(())
}

/// After `create_topics` failed (the cluster down at start): tries again every `every`
/// until it works or `stop` is cancelled. Events for the topics wait meanwhile.
pub async fn keep_creating_topics(
    kafka: KafkaConfig,
    topics: Vec<String>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match create_topics(&kafka, &topics).await {
            Ok(()) => return tracing::info!("The topics exist now."),
            Err(error) => tracing::debug!(error = %error, "Still cannot create the topics."),
        }
    }
}

/// Why the configured topics could not be created.
#[derive(Debug)]
pub enum TopicsError {
    Settings(SettingsError),
    Client(rdkafka::error::KafkaError),
    /// The cluster did not answer the request.
    Request(rdkafka::error::KafkaError),
    /// The cluster refused one topic (no permission, a bad replication factor, ...).
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl std::fmt::Display for TopicsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicsError::Settings(e) => e.fmt(f),
            TopicsError::Client(e) => write!(f, "cannot create a Kafka admin client: {e}"),
            TopicsError::Request(e) => write!(f, "cannot create topics: {e}"),
            TopicsError::Refused { topic, code } => {
                write!(f, "cannot create topic {topic}: {code}")
            }
        }
    }
}

impl std::error::Error for TopicsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::settings::Settings;
    use std::sync::Arc;

    fn kafka(settings: Settings) -> KafkaConfig {
        let mut settings = settings;
        settings.kafka.brokers = Some("127.0.0.1:1".into());
        KafkaConfig::try_from(&settings).unwrap()
    }

    #[tokio::test]
    async fn an_unknown_producer_property_is_refused_by_name() {
        let mut settings = Settings::default();
        settings
            .kafka
            .producer
            .insert("linger.mss".into(), "5".into());
        let config = producer_config(&kafka(settings)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let dead = crate::spool::DeadLetters::open(dir.path(), Arc::clone(&metrics)).unwrap();
        let error = Forwarder::start(&config, &[], Duration::ZERO, metrics, dead)
            .err()
            .unwrap();
        assert!(error.to_string().contains("linger.mss"), "{error}");
    }

    #[tokio::test]
    async fn a_thousand_failing_records_wait_for_their_retry_in_one_task_not_a_thousand() {
        let mut config = rdkafka::ClientConfig::new();
        // Nothing listens on port 1: every record times out, and is retried, and again.
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "10");
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let dead = crate::spool::DeadLetters::open(dir.path(), Arc::clone(&metrics)).unwrap();
        let topics = ["t".to_owned()];
        let forwarder = Forwarder::start(
            &config,
            &topics,
            Duration::from_secs(5),
            Arc::clone(&metrics),
            dead,
        )
        .unwrap();
        let failures = metrics
            .delivery_failures
            .get_or_create(&Metrics::topic("t"))
            .clone();
        let runtime = tokio::runtime::Handle::current().metrics();
        let before = runtime.num_alive_tasks();
        for i in 0..1000 {
            let record = crate::delivery::Record {
                topic: "t".into(),
                key: Some(i.to_string()),
                payload: b"{}".to_vec(),
                command: "C2C.CallbackAfterSendMsg".into(),
                sdk_app_id: 1,
                accepted_at_ms: crate::delivery::now_ms(),
                trace: None,
            };
            forwarder.dispatch(record, Box::new(|_, _| {}));
        }
        let (mut most, mut seen_failing) = (0, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            most = most.max(runtime.num_alive_tasks() - before);
            seen_failing = failures.get();
        }
        assert!(
            seen_failing >= 1000,
            "every record failed at least once ({seen_failing})"
        );
        assert!(
            most < 10,
            "{most} tasks alive for 1000 records waiting to be retried"
        );
        forwarder.shutdown(Duration::from_millis(10)).await;
    }

    #[test]
    fn pass_through_properties_override_the_defaults() {
        let mut settings = Settings::default();
        settings
            .kafka
            .producer
            .insert("compression.type".into(), "zstd".into());
        let config = producer_config(&kafka(settings)).unwrap();
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(
            config.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
    }
}
