//! What the topics already hold, and publishing what they lack.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

use crate::event::Normalized;
use crate::settings::KafkaConfig;

/// How long before its hour a message's event may have reached Kafka: the record's
/// time is when the bridge took the callback, which can precede the message's own
/// time by the clocks' skew.
pub const EARLY_MARGIN_MS: i64 = 10 * 60 * 1000;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

/// The ids of every event in `topics` whose record time is `since_ms` or later, up to
/// the end of each partition as it is now. An event spooled during an outage and sent
/// hours later is found too: reading goes on to the end.
pub fn ids_since(
    kafka: &KafkaConfig,
    topics: &HashSet<&str>,
    since_ms: i64,
) -> anyhow::Result<HashSet<String>> {
    let consumer: BaseConsumer = crate::kafka::client_config(&kafka.security, &kafka.brokers)?
        .set(
            "group.id",
            format!("tim-kafka-bridge-reconcile-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut ids = HashSet::new();
    let mut times = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), TIMEOUT)
                .with_context(|| format!("cannot read the offsets of {topic}"))?;
            ends.insert((topic.to_string(), partition.id()), high);
            times.add_partition_offset(topic, partition.id(), Offset::Offset(since_ms))?;
        }
    }
    if ends.is_empty() {
        return Ok(ids);
    }
    let starts = consumer
        .offsets_for_times(times, TIMEOUT)
        .context("cannot find the offsets for the hour")?;
    let mut assignment = TopicPartitionList::new();
    let mut left = 0;
    for element in starts.elements() {
        let end = ends[&(element.topic().to_owned(), element.partition())];
        let start = match element.offset() {
            Offset::Offset(o) if o >= 0 => o,
            _ => end,
        };
        if start < end {
            assignment.add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(start),
            )?;
            left += 1;
        }
    }
    if left == 0 {
        return Ok(ids);
    }
    consumer.assign(&assignment)?;
    let mut done: HashSet<(String, i32)> = HashSet::new();
    while done.len() < left {
        let Some(message) = consumer.poll(TIMEOUT) else {
            anyhow::bail!(
                "Kafka sent nothing for {} s while reading the topics",
                TIMEOUT.as_secs()
            );
        };
        let message = message.context("cannot read the topics")?;
        if let Some(id) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<IdOnly>(p).ok())
        {
            ids.insert(id.id);
        }
        let at = (message.topic().to_owned(), message.partition());
        if message.offset() + 1 >= ends[&at] {
            done.insert(at);
        }
    }
    Ok(ids)
}

/// Publishes `events` with the bridge's producer settings, headers as the bridge sets
/// them plus `tim-origin: history`; returns how many Kafka confirmed.
pub async fn publish(
    kafka: &KafkaConfig,
    sdk_app_id: u64,
    command: &str,
    events: Vec<(String, Normalized)>,
) -> anyhow::Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let producer: FutureProducer = crate::kafka::producer_config(kafka)?
        .create()
        .context("cannot create the Kafka producer")?;
    let mut waiting = Vec::with_capacity(events.len());
    for (topic, event) in &events {
        let headers = crate::kafka::record_headers(command, sdk_app_id).insert(Header {
            key: "tim-origin",
            value: Some("history"),
        });
        let mut record = FutureRecord::to(topic)
            .payload(&event.payload)
            .headers(headers);
        if let Some(key) = &event.key {
            record = record.key(key);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| anyhow::anyhow!("Kafka refused an event: {error}"))?;
        waiting.push(delivery);
    }
    let mut confirmed = 0;
    for delivery in waiting {
        match delivery.await {
            Ok(Ok(_)) => confirmed += 1,
            Ok(Err((error, _))) => anyhow::bail!("Kafka did not take an event: {error}"),
            Err(_) => anyhow::bail!("the producer went away"),
        }
    }
    producer.flush(Timeout::After(TIMEOUT))?;
    Ok(confirmed)
}
