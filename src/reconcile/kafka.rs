//! What the topics already hold, and publishing what they lack.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use md5::{Digest, Md5};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::event::Normalized;
use crate::settings::KafkaConfig;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Event ids, each kept as 16 bytes of its MD5: a million take ~30 MB rather than the
/// ~100 MB of the strings. Two ids sharing an MD5 is out of reach (2^-64 for 2^32 ids).
#[derive(Default)]
pub struct Ids(HashSet<u128>);

impl Ids {
    fn digest(id: &str) -> u128 {
        u128::from_le_bytes(Md5::digest(id.as_bytes()).into())
    }

    /// Whether `id` was not held yet.
    pub fn insert(&mut self, id: &str) -> bool {
        self.0.insert(Self::digest(id))
    }
}

fn consumer(kafka: &KafkaConfig) -> anyhow::Result<BaseConsumer> {
    crate::kafka::client_config(&kafka.security, &kafka.brokers)?
        .set(
            "group.id",
            format!("tim-kafka-bridge-reconcile-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Records fetched ahead, at most (librdkafka's default is 64 MiB).
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .context("cannot create a Kafka consumer")
}

/// The ids of every event in `topics` whose record time is from `since_ms` up to
/// `until_ms`: records are read from the first at or after `since_ms` to the first
/// after `until_ms` (or the end of the partition, when that time has not come yet).
pub fn ids_between(
    kafka: &KafkaConfig,
    topics: &HashSet<&str>,
    since_ms: i64,
    until_ms: i64,
) -> anyhow::Result<Ids> {
    let consumer = consumer(kafka)?;
    let mut starts = TopicPartitionList::new();
    let mut stops = TopicPartitionList::new();
    let mut highs: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        for partition in partitions(&consumer, topic)? {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .with_context(|| format!("cannot read the offsets of {topic}"))?;
            highs.insert((topic.to_string(), partition), high);
            starts.add_partition_offset(topic, partition, Offset::Offset(since_ms))?;
            stops.add_partition_offset(topic, partition, Offset::Offset(until_ms))?;
        }
    }
    let mut ranges = Vec::new();
    if !highs.is_empty() {
        let starts = consumer
            .offsets_for_times(starts, TIMEOUT)
            .context("cannot find the offsets of the hour's start")?;
        let stops = consumer
            .offsets_for_times(stops, TIMEOUT)
            .context("cannot find the offsets of the hour's end")?;
        for start in starts.elements() {
            let at = (start.topic().to_owned(), start.partition());
            let high = highs[&at];
            let stop = match stops.find_partition(&at.0, at.1).map(|e| e.offset()) {
                Some(Offset::Offset(o)) if o >= 0 => o.min(high),
                _ => high,
            };
            let start = match start.offset() {
                Offset::Offset(o) if o >= 0 => o,
                _ => high,
            };
            ranges.push((at.0, at.1, start, stop));
        }
    }
    let mut ids = Ids::default();
    read_ranges(&consumer, ranges, |message| {
        if let Some(id) = message.payload().and_then(crate::event::id_of) {
            ids.insert(&id);
        }
    })?;
    Ok(ids)
}

/// Every record of `topic` from its start to its end as it is now.
pub fn read_whole(
    kafka: &KafkaConfig,
    topic: &str,
    each: impl FnMut(&BorrowedMessage),
) -> anyhow::Result<()> {
    let consumer = consumer(kafka)?;
    let mut ranges = Vec::new();
    for partition in partitions(&consumer, topic)? {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {topic}"))?;
        ranges.push((topic.to_owned(), partition, low, high));
    }
    read_ranges(&consumer, ranges, each)
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none());
    let Some(found) = found else {
        anyhow::bail!("the topic {topic} does not exist (or this principal may not describe it)");
    };
    Ok(found.partitions().iter().map(|p| p.id()).collect())
}

/// Reads each `(topic, partition, from, to)` range, `to` excluded.
fn read_ranges(
    consumer: &BaseConsumer,
    ranges: Vec<(String, i32, i64, i64)>,
    mut each: impl FnMut(&BorrowedMessage),
) -> anyhow::Result<()> {
    let mut assignment = TopicPartitionList::new();
    let mut stops = HashMap::new();
    for (topic, partition, from, to) in ranges {
        if from < to {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(from))?;
            stops.insert((topic, partition), to);
        }
    }
    if stops.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    while !stops.is_empty() {
        let Some(message) = consumer.poll(TIMEOUT) else {
            anyhow::bail!(
                "Kafka sent nothing for {} s while reading the topics",
                TIMEOUT.as_secs()
            );
        };
        let message = message.context("cannot read the topics")?;
        let at = (message.topic().to_owned(), message.partition());
        let Some(&stop) = stops.get(&at) else {
            continue;
        };
        if message.offset() < stop {
            each(&message);
        }
        if message.offset() + 1 >= stop {
            stops.remove(&at);
            consumer.incremental_unassign(&{
                let mut done = TopicPartitionList::new();
                done.add_partition(&at.0, at.1);
                done
            })?;
        }
    }
    Ok(())
}

/// Counts what Kafka confirmed and what it did not.
#[derive(Default)]
pub struct Deliveries {
    confirmed: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.confirmed.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                let mut first = self.first_failure.lock().expect("not poisoned");
                first.get_or_insert_with(|| error.to_string());
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// What Kafka answered for the events sent since the last [`Publisher::settle`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    pub confirmed: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
}

/// The bridge's producer settings (idempotence, `acks=all`), with a bound on how long
/// an event may wait for Kafka: a run must end, and the next one does the hour again.
pub struct Publisher {
    producer: ThreadedProducer<Deliveries>,
    timeout: Duration,
    taken: (u64, u64),
}

impl Publisher {
    pub fn new(kafka: &KafkaConfig, timeout: Duration) -> anyhow::Result<Self> {
        let producer = crate::kafka::producer_config(kafka)?
            .set("client.id", "tim-kafka-bridge-reconcile")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            // Events waiting in librdkafka, at most (its default is 1 GiB): past it,
            // reading the file waits.
            .set("queue.buffering.max.kbytes", "32768")
            .create_with_context(Deliveries::default())
            .context("cannot create the Kafka producer")?;
        Ok(Self {
            producer,
            timeout,
            taken: (0, 0),
        })
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: rdkafka::message::OwnedHeaders,
    ) -> anyhow::Result<()> {
        let mut record = BaseRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((error, back))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, _)) => anyhow::bail!("Kafka refused an event: {error}"),
            }
        }
    }

    /// Queues one event as the bridge would, with `tim-origin: history`.
    pub fn send_event(
        &self,
        topic: &str,
        command: &str,
        sdk_app_id: u64,
        event: &Normalized,
    ) -> anyhow::Result<()> {
        let headers = crate::kafka::record_headers(command, sdk_app_id).insert(Header {
            key: "tim-origin",
            value: Some("history"),
        });
        self.send(topic, event.key.as_deref(), &event.payload, headers)
    }

    /// Waits until Kafka answered every event sent, or the timeout; counts what it
    /// answered since the last call.
    pub fn settle(&mut self) -> Settled {
        let waited = self.producer.flush(self.timeout + Duration::from_secs(5));
        let context = self.producer.context();
        let confirmed = context.confirmed.load(Ordering::Relaxed);
        let failed = context.failed.load(Ordering::Relaxed);
        let mut settled = Settled {
            confirmed: confirmed - self.taken.0,
            failed: failed - self.taken.1,
            first_failure: context.first_failure.lock().expect("not poisoned").take(),
        };
        self.taken = (confirmed, failed);
        if let Err(error) = waited {
            let unanswered = self.producer.in_flight_count().max(0) as u64;
            settled.failed += unanswered;
            settled
                .first_failure
                .get_or_insert_with(|| format!("{unanswered} not answered by Kafka: {error}"));
        }
        settled
    }
}
