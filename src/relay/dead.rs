//! Dead letters: an event its receiver would not take within `retry_for` goes to the
//! subscription's dead-letter topic, with headers saying why; `--redeliver-dead`
//! sends them to the subscription again.

use super::RelayError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::deliver::{Deliverer, Event, Fate};
use super::metrics::RelayMetrics;
use super::settings::{RelayConfig, Subscription};

pub const SUBSCRIPTION: &str = "tim-relay-subscription";
pub const LAST: &str = "tim-relay-last";
pub const ATTEMPTS: &str = "tim-relay-attempts";
pub const SOURCE: &str = "tim-relay-source";

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    pub fn new(producer: FutureProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Returns once Kafka has the dead letter: the partition must not move past an
    /// event that is neither delivered nor kept.
    pub async fn send(&self, subscription: &str, event: &Event, last: &str, attempts: u32) {
        let source = format!("{}/{}/{}", event.topic, event.partition, event.offset);
        let attempts = attempts.to_string();
        loop {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &event.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                });
            }
            let headers = headers
                .insert(Header {
                    key: SUBSCRIPTION,
                    value: Some(subscription),
                })
                .insert(Header {
                    key: LAST,
                    value: Some(last),
                })
                .insert(Header {
                    key: ATTEMPTS,
                    value: Some(attempts.as_str()),
                })
                .insert(Header {
                    key: SOURCE,
                    value: Some(source.as_str()),
                });
            let mut record = FutureRecord::to(&self.topic)
                .payload(event.payload.as_ref())
                .headers(headers);
            if let Some(key) = &event.key {
                record = record.key(key.as_slice());
            }
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => return,
                Err((e, _)) => {
                    tracing::warn!(subscription, topic = %self.topic, error = %e, "Cannot write a dead letter yet; retrying.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

pub fn producer(config: &RelayConfig) -> Result<FutureProducer, RelayError> {
    crate::kafka::client_config(&config.security, &config.brokers)?
        .set("client.id", "tim-relay")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .map_err(RelayError::kafka("cannot create the dead-letter producer"))
}

/// Sends the subscription's dead letters to its receiver again, oldest first, from
/// where the last redelivery stopped to the end as it is now. Each is retried for the
/// subscription's `retry_for`; one still refused then stops the redelivery (it stays
/// in the dead-letter topic, and the next run starts at it).
pub async fn redeliver(
    config: &RelayConfig,
    subscription: Subscription,
) -> Result<u64, RelayError> {
    let topic = subscription
        .dead_letter_topic
        .clone()
        .ok_or_else(|| RelayError::NoDeadLetterTopic(subscription.name.clone()))?;
    let group = format!("{}.redeliver", subscription.group_id);
    let consumer: Arc<BaseConsumer> = Arc::new(
        crate::kafka::client_config(&config.security, &config.brokers)?
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(RelayError::kafka("cannot create a consumer"))?,
    );
    let (assignment, ends) = {
        let (consumer, topic) = (Arc::clone(&consumer), topic.clone());
        tokio::task::spawn_blocking(move || plan(&consumer, &topic)).await??
    };
    consumer
        .assign(&assignment)
        .map_err(RelayError::kafka(format!("assigning {topic}")))?;
    let name = subscription.name.clone();
    let metrics = RelayMetrics::default().subscription(&name);
    let deliverer = Deliverer::new(Arc::new(subscription), metrics)?;
    // Per partition: where reading is, and where it stops.
    let mut todo: std::collections::HashMap<i32, (i64, i64)> = ends
        .into_iter()
        .filter(|(_, start, end)| start < end)
        .map(|(p, start, end)| (p, (start, end)))
        .collect();
    let mut redelivered = 0;
    while todo.values().any(|(at, end)| at < end) {
        let Some(message) = poll(&consumer).await else {
            continue;
        };
        let m = message.map_err(RelayError::kafka(format!("reading {topic}")))?;
        let (partition, offset) = (m.partition(), m.offset());
        if let Some((at, _)) = todo.get_mut(&partition) {
            *at = offset + 1;
        }
        let headers = super::deliver::headers_of(&m);
        let mine = headers
            .iter()
            .any(|(k, v)| k == SUBSCRIPTION && v.as_slice() == name.as_bytes());
        if mine {
            let payload = Bytes::copy_from_slice(m.payload().unwrap_or_default());
            let id = serde_json::from_slice::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{topic}-{partition}-{offset}"));
            let event = Event {
                topic: topic.clone(),
                partition,
                offset,
                key: m.key().map(<[u8]>::to_vec),
                id,
                payload,
                headers: headers
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("tim-relay-"))
                    .collect(),
                read_at: Instant::now(),
            };
            if let Fate::Failed { last, attempts } = deliverer.deliver(&event, false, None).await {
                return Err(RelayError::StillRefused {
                    id: event.id,
                    partition,
                    offset,
                    last,
                    attempts,
                });
            }
            redelivered += 1;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset + 1))
            .map_err(RelayError::kafka("commit"))?;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(RelayError::kafka("commit"))?;
    }
    Ok(redelivered)
}

async fn poll(
    consumer: &Arc<BaseConsumer>,
) -> Option<rdkafka::error::KafkaResult<rdkafka::message::OwnedMessage>> {
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || {
        consumer
            .poll(Duration::from_millis(500))
            .map(|r| r.map(|m| m.detach()))
    })
    .await
    .ok()
    .flatten()
}

/// Every partition of `topic` from the group's committed offset (else the beginning),
/// and its end now.
type Plan = (TopicPartitionList, Vec<(i32, i64, i64)>);

fn plan(consumer: &BaseConsumer, topic: &str) -> Result<Plan, RelayError> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(RelayError::kafka(format!("metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(RelayError::DeadLetterTopicMissing(topic.to_owned()));
    }
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(RelayError::kafka("committed offsets"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(RelayError::kafka(format!("watermarks of {topic}/{p}")))?;
        let start = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= low => o,
            _ => low,
        };
        assignment
            .add_partition_offset(topic, p, Offset::Offset(start))
            .map_err(RelayError::kafka("assigning"))?;
        ends.push((p, start, high));
    }
    Ok((assignment, ends))
}
