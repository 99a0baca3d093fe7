//! `tim-kafka-bridge replay`: reads the bridge's topics from an offset or a time and
//! writes each event out, as a JSON line or as a POST to an internal service.
//!
//! One thread polls Kafka and hands each record to a worker per partition; a worker
//! writes (or delivers) its partition's records in order and, with `--group`, commits
//! only past what it has written or got a 2xx for. So an interrupted replay resumes
//! where it stopped, and per-key order holds.

mod error;
mod position;
mod read;
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
use read::{poll, spawn_progress, worker, Bounds, Item};
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

#[cfg(test)]
mod tests;
