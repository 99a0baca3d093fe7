//! One subscription: a consumer group member that delivers each key's events in
//! order, one at a time, and different keys' events concurrently. A partition's
//! committed offset is its lowest offset not yet finished, so a crash re-delivers
//! and never skips.

use super::RelayError;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::dead::DeadLetters;
use super::deliver::{headers_of, Deliverer, Event, Fate};
use super::metrics::{RelayMetrics, SubscriptionMetrics};
use super::settings::{RelayConfig, Subscription};
use super::trace::Traced;
use crate::replay::Filter;
use crate::telemetry::Telemetry;

/// Events read but not finished, at most: beyond it the relay stops reading.
const MAX_PENDING: usize = 20_000;

type Tp = (String, i32);

#[derive(Default)]
struct Partition {
    /// Changes at each assignment, so a late completion of a revoked one is ignored.
    generation: u64,
    /// Offsets read and not finished.
    pending: BTreeSet<i64>,
    /// The offset after the last one read.
    next: Option<i64>,
    stored: Option<i64>,
    /// Per key, the events waiting behind the one in flight (the front).
    keys: HashMap<Vec<u8>, VecDeque<Event>>,
    tasks: HashMap<i64, AbortHandle>,
}

impl Partition {
    /// The offset to commit: the lowest unfinished, else the next to read.
    fn safe(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

#[derive(Default)]
struct State {
    partitions: HashMap<Tp, Partition>,
    generations: u64,
    pending: usize,
}

struct Shared {
    name: String,
    joined: Arc<AtomicBool>,
    sub: SubscriptionMetrics,
    state: Mutex<State>,
    metrics: Arc<RelayMetrics>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct RelayContext {
    shared: Arc<Shared>,
}

impl ClientContext for RelayContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.shared.metrics.set_lag(
                        &self.shared.name,
                        topic,
                        *partition,
                        p.consumer_lag,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for RelayContext {
    /// Abandons the revoked partitions' deliveries and commits their safe offsets
    /// before they go to another member.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        self.shared.joined.store(false, Ordering::Relaxed);
        self.shared.sub.set_joined(false);
        let mut commit = TopicPartitionList::new();
        {
            let mut state = self.shared.lock();
            for element in revoked.elements() {
                let tp = (element.topic().to_owned(), element.partition());
                let Some(partition) = state.partitions.remove(&tp) else {
                    continue;
                };
                state.pending -= partition.pending.len();
                for task in partition.tasks.values() {
                    task.abort();
                }
                if let Some(safe) = partition.safe() {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(safe));
                }
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(subscription = %self.shared.name, error = %e, "Cannot commit revoked partitions' offsets; their events will be delivered again.");
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                self.shared.joined.store(true, Ordering::Relaxed);
                self.shared.sub.set_joined(true);
                let partitions: Vec<_> = assigned
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(subscription = %self.shared.name, ?partitions, "Partitions assigned.");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.shared.joined.store(false, Ordering::Relaxed);
                self.shared.sub.set_joined(false);
                tracing::warn!(subscription = %self.shared.name, error = %e, "The consumer group failed to rebalance.");
            }
        }
    }
}

struct Done {
    tp: Tp,
    generation: u64,
    offset: i64,
    key: Vec<u8>,
}

pub struct Runner {
    subscription: Arc<Subscription>,
    consumer: Arc<StreamConsumer<RelayContext>>,
    shared: Arc<Shared>,
    deliverer: Arc<Deliverer>,
    dead: Option<Arc<DeadLetters>>,
    filter: Filter,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    telemetry: Option<Arc<Telemetry>>,
}

impl Runner {
    pub fn new(
        config: &RelayConfig,
        subscription: Subscription,
        metrics: Arc<RelayMetrics>,
        producer: Option<FutureProducer>,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Result<Self, RelayError> {
        let subscription = Arc::new(subscription);
        let shared = Arc::new(Shared {
            name: subscription.name.clone(),
            joined: Arc::new(AtomicBool::new(false)),
            sub: metrics.subscription(&subscription.name),
            state: Mutex::new(State::default()),
            metrics: Arc::clone(&metrics),
        });
        let mut client = crate::kafka::client_config(&config.security, &config.brokers)?;
        client
            .set("group.id", &subscription.group_id)
            .set("client.id", format!("tim-relay.{}", subscription.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000");
        for (key, value) in &config.consumer {
            client.set(key, value);
        }
        let consumer: StreamConsumer<RelayContext> = client
            .create_with_context(RelayContext {
                shared: Arc::clone(&shared),
            })
            .map_err(RelayError::kafka(format!(
                "cannot create the consumer of `{}`",
                subscription.name
            )))?;
        let topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(RelayError::kafka(format!(
                "cannot subscribe `{}` to {topics:?}",
                subscription.name
            )))?;
        shared.sub.set_joined(false);
        let dead = match (&subscription.dead_letter_topic, producer) {
            (Some(topic), Some(producer)) => {
                Some(Arc::new(DeadLetters::new(producer, topic.clone())))
            }
            _ => None,
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Self {
            filter: Filter {
                types: subscription.types.clone(),
                user: subscription.user.clone(),
                conversation: None,
                im_group: subscription.im_group.clone(),
            },
            deliverer: Arc::new(Deliverer::new(
                Arc::clone(&subscription),
                shared.sub.clone(),
            )?),
            subscription,
            consumer: Arc::new(consumer),
            shared,
            dead,
            done_tx,
            done_rx,
            telemetry,
        })
    }

    /// Reads and delivers until `stop`, then waits up to `grace` for deliveries in
    /// flight, abandons the rest and commits.
    pub async fn run(mut self, stop: CancellationToken, grace: Duration) {
        let consumer = Arc::clone(&self.consumer);
        let mut stream = consumer.stream();
        let mut commit = tokio::time::interval(Duration::from_secs(1));
        loop {
            let room = self.shared.lock().pending < MAX_PENDING;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(done) = self.done_rx.recv() => self.finish(done),
                message = stream.next(), if room => match message {
                    Some(Ok(m)) => self.read(&m),
                    Some(Err(e)) => {
                        tracing::warn!(subscription = %self.subscription.name, error = %e, "Kafka consumer error.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => break,
                },
                _ = commit.tick() => {
                    self.store_all();
                    let _ = self.consumer.commit_consumer_state(CommitMode::Async);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.lock().pending > 0 {
            match tokio::time::timeout_at(deadline, self.done_rx.recv()).await {
                Ok(Some(done)) => self.finish(done),
                _ => break,
            }
        }
        {
            let state = self.shared.lock();
            for partition in state.partitions.values() {
                partition.tasks.values().for_each(AbortHandle::abort);
            }
        }
        self.store_all();
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(subscription = %self.subscription.name, error = %e, "Nothing to commit at shutdown.");
        }
        drop(stream);
        self.consumer.unsubscribe();
    }

    fn read(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let tp = (m.topic().to_owned(), m.partition());
        let offset = m.offset();
        let payload = Bytes::copy_from_slice(m.payload().unwrap_or_default());
        // The whole event is read only when a filter needs it; the id always.
        let (admitted, id) = if !self.filter.is_empty() {
            let parsed: Option<Value> = serde_json::from_slice(&payload).ok();
            let id = parsed
                .as_ref()
                .and_then(|v| v["id"].as_str())
                .map(str::to_owned);
            (parsed.as_ref().is_some_and(|v| self.filter.admits(v)), id)
        } else {
            (true, crate::event::id_of(&payload))
        };
        let mut state = self.shared.lock();
        if !state.partitions.contains_key(&tp) {
            state.generations += 1;
        }
        let generation = state.generations;
        let partition = state
            .partitions
            .entry(tp.clone())
            .or_insert_with(|| Partition {
                generation,
                ..Partition::default()
            });
        if partition.next.is_some_and(|next| offset < next) {
            return;
        }
        partition.next = Some(offset + 1);
        if !admitted {
            self.shared.sub.filtered();
            return;
        }
        let id = id.unwrap_or_else(|| format!("{}-{}-{offset}", tp.0, tp.1));
        // Records without a key are independent of each other.
        let key = m
            .key()
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| format!("\u{0}{offset}").into_bytes());
        let headers = headers_of(m);
        let event = Event {
            topic: tp.0.clone(),
            partition: tp.1,
            offset,
            key: m.key().map(<[u8]>::to_vec),
            id,
            payload,
            headers,
            read_at: Instant::now(),
        };
        partition.pending.insert(offset);
        let queue = partition.keys.entry(key.clone()).or_default();
        queue.push_back(event);
        let start = queue.len() == 1;
        let generation = partition.generation;
        if start {
            let first = queue.front().expect("just pushed").clone();
            let task = self.spawn(tp.clone(), generation, key, first);
            partition.tasks.insert(offset, task);
        }
        state.pending += 1;
    }

    fn finish(&mut self, done: Done) {
        let mut state = self.shared.lock();
        let Some(partition) = state.partitions.get_mut(&done.tp) else {
            return;
        };
        if partition.generation != done.generation || !partition.pending.remove(&done.offset) {
            return;
        }
        partition.tasks.remove(&done.offset);
        let next = match partition.keys.get_mut(&done.key) {
            Some(queue) => {
                queue.pop_front();
                match queue.front() {
                    Some(event) => Some(event.clone()),
                    None => {
                        partition.keys.remove(&done.key);
                        None
                    }
                }
            }
            None => None,
        };
        if let Some(event) = next {
            let offset = event.offset;
            let task = self.spawn(done.tp.clone(), done.generation, done.key, event);
            partition.tasks.insert(offset, task);
        }
        state.pending -= 1;
    }

    fn spawn(&self, tp: Tp, generation: u64, key: Vec<u8>, event: Event) -> AbortHandle {
        let deliverer = Arc::clone(&self.deliverer);
        let dead = self.dead.clone();
        let done = self.done_tx.clone();
        let metrics = self.shared.sub.clone();
        let telemetry = self.telemetry.clone();
        tokio::spawn(async move {
            let name = deliverer.subscription.name.clone();
            let offset = event.offset;
            let traced = telemetry.map(|t| Traced::start(&t, &event));
            let fate = deliverer
                .deliver(&event, dead.is_none(), traced.as_ref())
                .await;
            let failed = match &fate {
                Fate::Delivered => None,
                Fate::Failed { last, attempts } => match &dead {
                    Some(dead) => {
                        dead.send(&name, &event, last, *attempts).await;
                        metrics.dead_lettered();
                        tracing::warn!(subscription = %name, id = %event.id, last = %last, attempts, "An event was dead-lettered.");
                        Some(("dead-lettered", last.as_str()))
                    }
                    None => {
                        metrics.gave_up();
                        tracing::warn!(subscription = %name, id = %event.id, last = %last, attempts, "The receiver refused an event; it was given up (no dead_letter_topic).");
                        Some(("given up", last.as_str()))
                    }
                },
            };
            if let Some(traced) = traced {
                traced.end(&deliverer.subscription, &event, failed);
            }
            let _ = done.send(Done {
                tp,
                generation,
                offset,
                key,
            });
        })
        .abort_handle()
    }

    /// True while the group has given this member its assignment.
    pub fn joined(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.shared.joined)
    }
}

impl Runner {
    /// Stores each partition's safe offset, for the next commit (once a second, at a
    /// revocation, at shutdown): one call for all of them, not one per event.
    fn store_all(&self) {
        let mut state = self.shared.lock();
        let mut tpl = TopicPartitionList::new();
        let mut changed = Vec::new();
        for (tp, partition) in &state.partitions {
            if let Some(safe) = partition.safe().filter(|s| partition.stored != Some(*s)) {
                if tpl
                    .add_partition_offset(&tp.0, tp.1, Offset::Offset(safe))
                    .is_ok()
                {
                    changed.push((tp.clone(), safe));
                }
            }
        }
        if changed.is_empty() || self.consumer.store_offsets(&tpl).is_err() {
            return;
        }
        for (tp, safe) in changed {
            if let Some(partition) = state.partitions.get_mut(&tp) {
                partition.stored = Some(safe);
            }
        }
    }
}
