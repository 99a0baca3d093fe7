//! `tim-kafka-bridge replay`: reads the bridge's topics from an offset or a time and
//! writes each event out, as a JSON line or as a POST to an internal service.
//!
//! One thread polls Kafka and hands each record to a worker per partition; a worker
//! writes (or delivers) its partition's records in order and, with `--group`, commits
//! only past what it has written or got a 2xx for. So an interrupted replay resumes
//! where it stopped, and per-key order holds.

mod error;
mod position;
mod sink;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::settings::KafkaSecurity;
pub use error::ReplayError;
pub use position::{parse_from, parse_until, From, PositionError, Until};
use sink::Sink;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Bootstrap servers.
    #[arg(long, env = "TIM_BRIDGE_KAFKA_BROKERS")]
    brokers: String,
    /// Topic to read; repeatable. Default: TIM_BRIDGE_TOPIC, or tim.c2c.messages.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// beginning | end | offset:N | P:N (repeatable) | time:<RFC 3339> | ago:<duration, like 15m>
    #[arg(long = "from")]
    from: Vec<String>,
    /// end (the high watermarks at start; the default) | time:<RFC 3339>
    #[arg(long)]
    until: Option<String>,
    /// Stop after writing this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Keep reading new events.
    #[arg(long)]
    follow: bool,
    /// Only events of this type; repeatable.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only events this user sent or received, or about this user (their presence,
    /// profile, lists, group membership).
    #[arg(long)]
    user: Option<String>,
    /// Only events of this IM group or community topic (its GroupId or TopicId).
    /// Not to be confused with --group, the consumer group.
    #[arg(long = "im-group", value_name = "GROUP_ID")]
    im_group: Option<String>,
    /// Only the conversation between these two users: A,B.
    #[arg(long)]
    conversation: Option<String>,
    /// Start from this consumer group's committed offsets (when it has some) and commit
    /// past what is written out.
    #[arg(long)]
    group: Option<String>,
    /// POST each event to this URL instead of printing it; retried until a 2xx.
    #[arg(long)]
    to_url: Option<String>,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Which events to write out.
#[derive(Debug, Default)]
pub struct Filter {
    pub types: Vec<String>,
    pub user: Option<String>,
    pub conversation: Option<(String, String)>,
    pub im_group: Option<String>,
}

/// The data fields that name a user an event is about.
const USER_FIELDS: &[&str] = &["from", "to", "account", "peer", "member"];

impl Filter {
    /// True when it admits every event, without reading it.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
            && self.user.is_none()
            && self.conversation.is_none()
            && self.im_group.is_none()
    }

    pub fn admits(&self, event: &Value) -> bool {
        let data = &event["data"];
        let party = |field: &str| data[field].as_str().map(str::to_owned);
        let (from, to) = (party("from"), party("to"));
        (self.types.is_empty() || self.types.iter().any(|t| event["type"] == t.as_str()))
            && self
                .user
                .as_ref()
                .is_none_or(|u| USER_FIELDS.iter().any(|f| data[*f] == u.as_str()))
            && self
                .im_group
                .as_ref()
                .is_none_or(|g| data["group_id"] == g.as_str() || data["topic_id"] == g.as_str())
            && self.conversation.as_ref().is_none_or(|(a, b)| {
                (from.as_ref() == Some(a) && to.as_ref() == Some(b))
                    || (from.as_ref() == Some(b) && to.as_ref() == Some(a))
            })
    }
}

struct Plan {
    assignment: TopicPartitionList,
    /// Exclusive end per partition, for a bounded replay.
    ends: HashMap<(String, i32), i64>,
}

pub async fn run(args: ReplayArgs) -> ExitCode {
    match replay(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tim-kafka-bridge replay: {error}");
            ExitCode::from(2)
        }
    }
}

async fn replay(args: ReplayArgs) -> Result<(), ReplayError> {
    let from = parse_from(&args.from, SystemTime::now())?;
    let until = parse_until(args.until.as_deref(), args.follow)?;
    let conversation = match &args.conversation {
        None => None,
        Some(c) => match c.split_once(',') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Some((a.to_owned(), b.to_owned())),
            _ => return Err(ReplayError::Conversation(c.clone())),
        },
    };
    let filter = Filter {
        types: args.types.clone(),
        user: args.user.clone(),
        conversation,
        im_group: args.im_group.clone(),
    };
    let topics = if args.topics.is_empty() {
        vec![std::env::var("TIM_BRIDGE_TOPIC").unwrap_or_else(|_| "tim.c2c.messages".into())]
    } else {
        args.topics.clone()
    };
    // The bridge's own variables say how to reach a secured cluster.
    let mut security = KafkaSecurity::default();
    security
        .apply_env(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .and_then(|()| security.validate())?;
    let consumer: Arc<BaseConsumer> = Arc::new(
        crate::kafka::client_config(&security, &args.brokers)?
            .set(
                "group.id",
                args.group
                    .clone()
                    .unwrap_or_else(|| format!("tim-kafka-bridge-replay-{}", std::process::id())),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .create()
            .map_err(ReplayError::kafka("cannot create a Kafka consumer"))?,
    );
    let plan = {
        let (consumer, topics, group) =
            (Arc::clone(&consumer), topics.clone(), args.group.is_some());
        let from = from.clone();
        tokio::task::spawn_blocking(move || plan(&consumer, &topics, &from, group)).await??
    };
    consumer
        .assign(&plan.assignment)
        .map_err(ReplayError::kafka("cannot assign partitions"))?;

    let sink = Arc::new(match &args.to_url {
        Some(url) => Sink::url(url)?,
        None => Sink::stdout(),
    });
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let remaining = Arc::new(AtomicI64::new(-1));
    let progress = (!args.quiet).then(|| {
        spawn_progress(
            Arc::clone(&written),
            Arc::clone(&remaining),
            Arc::clone(&stop),
        )
    });
    {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.store(true, Ordering::Relaxed);
        });
    }

    let mut workers: HashMap<(String, i32), mpsc::Sender<Item>> = HashMap::new();
    let mut handles = Vec::new();
    for element in plan.assignment.elements() {
        let (tx, rx) = mpsc::channel(256);
        let commit = args.group.is_some();
        let (sink, consumer, written) = (
            Arc::clone(&sink),
            Arc::clone(&consumer),
            Arc::clone(&written),
        );
        handles.push(tokio::spawn(worker(rx, sink, consumer, commit, written)));
        workers.insert((element.topic().to_owned(), element.partition()), tx);
    }

    let poll_stop = Arc::clone(&stop);
    // A broker may answer offsets-for-times coarsely (by batch): records before the
    // start time are skipped here too.
    let not_before = match from {
        From::Time(ms) => Some(ms),
        _ => None,
    };
    let polled = tokio::task::spawn_blocking(move || {
        let bounds = Bounds {
            ends: plan.ends,
            until,
            not_before,
            count: args.count,
            remaining,
        };
        poll(&consumer, bounds, &filter, &workers, &poll_stop)
    })
    .await?;
    for handle in handles {
        handle.await??;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    polled
}

/// Start offsets (checked against the watermarks) and, for a bounded replay, the
/// high watermarks at start.
fn plan(
    consumer: &BaseConsumer,
    topics: &[String],
    from: &From,
    group: bool,
) -> Result<Plan, ReplayError> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(ReplayError::kafka("the Kafka cluster does not answer"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| ReplayError::NoTopic(topic.clone()))?;
        if let From::Partitions(list) = from {
            if let Some((p, _)) = list.iter().find(|(p, _)| *p >= partitions) {
                return Err(ReplayError::NoPartition {
                    topic: topic.clone(),
                    partition: *p,
                    partitions,
                });
            }
        }
        let mut committed = HashMap::new();
        if group {
            let mut all = TopicPartitionList::new();
            for p in 0..partitions {
                all.add_partition(topic, p);
            }
            let offsets = consumer
                .committed_offsets(all, timeout)
                .map_err(ReplayError::kafka("cannot read the group's offsets"))?;
            for e in offsets.elements() {
                if let Offset::Offset(o) = e.offset() {
                    committed.insert(e.partition(), o);
                }
            }
        }
        let mut times = TopicPartitionList::new();
        for p in 0..partitions {
            let (low, high) =
                consumer
                    .fetch_watermarks(topic, p, timeout)
                    .map_err(ReplayError::kafka(format!(
                        "cannot read the offsets of {topic}[{p}]"
                    )))?;
            let start = match (committed.get(&p), from) {
                (Some(o), _) => Some(*o),
                (None, From::Beginning) => Some(low),
                (None, From::End) => Some(high),
                (None, From::Offset(n)) => Some(check_range(topic, p, *n, low, high)?),
                (None, From::Partitions(list)) => match list.iter().find(|(lp, _)| *lp == p) {
                    Some((_, n)) => Some(check_range(topic, p, *n, low, high)?),
                    None => continue,
                },
                (None, From::Time(ms)) => {
                    times
                        .add_partition_offset(topic, p, Offset::Offset(*ms))
                        .map_err(ReplayError::kafka("planning"))?;
                    None
                }
            };
            if let Some(start) = start {
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(start))
                    .map_err(ReplayError::kafka("planning"))?;
            }
            ends.insert((topic.clone(), p), high);
        }
        if times.count() > 0 {
            let found = consumer
                .offsets_for_times(times, timeout)
                .map_err(ReplayError::kafka("cannot find offsets for that time"))?;
            for e in found.elements() {
                let end = ends[&(topic.clone(), e.partition())];
                let start = match e.offset() {
                    Offset::Offset(o) if o >= 0 => o,
                    _ => end,
                };
                assignment
                    .add_partition_offset(topic, e.partition(), Offset::Offset(start))
                    .map_err(ReplayError::kafka("planning"))?;
            }
        }
    }
    Ok(Plan { assignment, ends })
}

fn check_range(
    topic: &str,
    partition: i32,
    offset: i64,
    low: i64,
    high: i64,
) -> Result<i64, ReplayError> {
    if (low..=high).contains(&offset) {
        Ok(offset)
    } else {
        Err(ReplayError::OutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
            low,
            high,
        })
    }
}

/// A record for a worker: written out when `event` is some, only committed past otherwise.
struct Item {
    topic: String,
    partition: i32,
    offset: i64,
    line: Option<(Value, Value)>,
}

/// Where a replay stops, and the start time, if it starts at one.
struct Bounds {
    ends: HashMap<(String, i32), i64>,
    until: Until,
    not_before: Option<i64>,
    count: Option<u64>,
    /// Records left before the end, for the progress line (-1 when following).
    remaining: Arc<AtomicI64>,
}

fn poll(
    consumer: &BaseConsumer,
    bounds: Bounds,
    filter: &Filter,
    workers: &HashMap<(String, i32), mpsc::Sender<Item>>,
    stop: &AtomicBool,
) -> Result<(), ReplayError> {
    let Bounds {
        ends,
        until,
        not_before,
        count,
        remaining,
    } = bounds;
    let until = &until;
    let mut open: HashMap<(String, i32), i64> = consumer
        .assignment()
        .map_err(ReplayError::kafka("reading the assignment"))?
        .elements()
        .iter()
        .filter_map(|e| {
            let key = (e.topic().to_owned(), e.partition());
            let start = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            let end = ends[&key];
            (matches!(until, Until::Follow) || start < end).then_some((key, end))
        })
        .collect();
    if !matches!(until, Until::Follow) {
        let positions = consumer
            .assignment()
            .map_err(ReplayError::kafka("reading the assignment"))?;
        let left: i64 = positions
            .elements()
            .iter()
            .map(
                |e| match (e.offset(), open.get(&(e.topic().to_owned(), e.partition()))) {
                    (Offset::Offset(o), Some(end)) => (end - o).max(0),
                    _ => 0,
                },
            )
            .sum();
        remaining.store(left, Ordering::Relaxed);
    }
    let mut admitted = 0u64;
    while !open.is_empty() && !stop.load(Ordering::Relaxed) && count.is_none_or(|c| admitted < c) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.map_err(ReplayError::kafka("cannot read from Kafka"))?;
        let key = (m.topic().to_owned(), m.partition());
        let Some(&end) = open.get(&key) else { continue };
        if !matches!(until, Until::Follow) {
            remaining.fetch_sub(1, Ordering::Relaxed);
        }
        let timestamp = m.timestamp().to_millis();
        let past_time = matches!(until, Until::Time(t) if timestamp.is_some_and(|ts| ts > *t));
        if !matches!(until, Until::Follow) && (m.offset() >= end || past_time) {
            open.remove(&key);
            continue;
        }
        let event: Value = match m.payload().map(serde_json::from_slice) {
            Some(Ok(v)) => v,
            _ => Value::Null,
        };
        let too_early = not_before.is_some_and(|t| timestamp.is_some_and(|ts| ts < t));
        let line = (!too_early && filter.admits(&event)).then(|| {
            admitted += 1;
            let meta = serde_json::json!({
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": timestamp,
                "key": m.key().map(String::from_utf8_lossy),
            });
            (meta, event)
        });
        let item = Item {
            topic: key.0.clone(),
            partition: key.1,
            offset: m.offset(),
            line,
        };
        if workers[&key].blocking_send(item).is_err() {
            return Err(ReplayError::WriterStopped);
        }
        if !matches!(until, Until::Follow) && m.offset() + 1 >= end {
            open.remove(&key);
        }
    }
    Ok(())
}

async fn worker(
    mut items: mpsc::Receiver<Item>,
    sink: Arc<Sink>,
    consumer: Arc<BaseConsumer>,
    commit: bool,
    written: Arc<AtomicU64>,
) -> Result<(), ReplayError> {
    let mut since_commit = 0;
    while let Some(item) = items.recv().await {
        if let Some((meta, event)) = &item.line {
            sink.write(meta, event).await?;
            written.fetch_add(1, Ordering::Relaxed);
        }
        since_commit += 1;
        if commit && (sink.commits_each() || since_commit >= 200 || items.is_empty()) {
            sink.flush().await?;
            let mut position = TopicPartitionList::new();
            position
                .add_partition_offset(&item.topic, item.partition, Offset::Offset(item.offset + 1))
                .map_err(ReplayError::kafka("cannot commit"))?;
            let consumer = Arc::clone(&consumer);
            tokio::task::spawn_blocking(move || consumer.commit(&position, CommitMode::Sync))
                .await?
                .map_err(ReplayError::kafka("cannot commit"))?;
            since_commit = 0;
        }
    }
    sink.flush().await
}

fn spawn_progress(
    written: Arc<AtomicU64>,
    remaining: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let (mut last_report, mut reported) = (Instant::now(), 0);
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let n = written.load(Ordering::Relaxed);
            // Following and idle: nothing new to say.
            let idle = n == reported && remaining.load(Ordering::Relaxed) < 0;
            if last_report.elapsed() >= Duration::from_secs(2) && !idle {
                reported = n;
                let rate = n as f64 / started.elapsed().as_secs_f64();
                match remaining.load(Ordering::Relaxed) {
                    left if left >= 0 => eprintln!(
                        "replay: {n} events, {rate:.0} events/s, about {left} records left"
                    ),
                    _ => eprintln!("replay: {n} events, {rate:.0} events/s, following"),
                }
                last_report = Instant::now();
            }
        }
        let n = written.load(Ordering::Relaxed);
        eprintln!(
            "replay: done, {n} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent(from: &str, to: &str) -> Value {
        json!({"type": "tim.c2c.message.sent", "data": {"from": from, "to": to}})
    }

    #[test]
    fn filters_select_by_type_user_and_conversation() {
        let by_user = Filter {
            user: Some("a".into()),
            ..Default::default()
        };
        assert!(by_user.admits(&sent("a", "b")) && by_user.admits(&sent("c", "a")));
        assert!(!by_user.admits(&sent("b", "c")));
        let by_pair = Filter {
            conversation: Some(("a".into(), "b".into())),
            ..Default::default()
        };
        assert!(by_pair.admits(&sent("b", "a")) && !by_pair.admits(&sent("a", "c")));
        let by_type = Filter {
            types: vec!["tim.c2c.message.withdrawn".into()],
            ..Default::default()
        };
        assert!(!by_type.admits(&sent("a", "b")));
        assert!(Filter::default().admits(&sent("a", "b")));
    }

    #[test]
    fn filters_select_user_and_group_events_by_user_and_by_im_group() {
        let login = json!({"type": "tim.user.state_changed", "data": {"account": "a"}});
        let friend =
            json!({"type": "tim.user.friend_added", "data": {"account": "b", "peer": "a"}});
        let joined =
            json!({"type": "tim.group.member_joined", "data": {"group_id": "g1", "member": "a"}});
        let topic = json!({"type": "tim.group.topic_created", "data": {"group_id": "g1", "topic_id": "t1"}});
        let by_user = Filter {
            user: Some("a".into()),
            ..Default::default()
        };
        assert!([&login, &friend, &joined].iter().all(|e| by_user.admits(e)));
        assert!(!by_user.admits(&topic));
        let by_group = |g: &str| Filter {
            im_group: Some(g.into()),
            ..Default::default()
        };
        assert!(by_group("g1").admits(&joined) && by_group("g1").admits(&topic));
        assert!(by_group("t1").admits(&topic) && !by_group("t1").admits(&joined));
        assert!(!by_group("g1").admits(&login));
    }
}
