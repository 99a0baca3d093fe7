//! Each hour's outcome, kept in a compacted topic keyed `<SDKAppID>/<chat type>/<Beijing
//! hour>`: a CronJob, another replica or a person at a terminal continues where the
//! last run stopped, and `reconcile status` prints it.

use std::collections::BTreeMap;

use anyhow::Context;
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};

use super::events::ChatType;
use super::kafka::Publisher;
use crate::settings::KafkaConfig;

/// How an hour ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its files were read and what the topics lacked published.
    Done,
    /// Tencent answers 1004 for an hour it should have finished: no message then.
    /// Asked again on every run that covers it, in case Tencent was only late.
    Empty,
    /// Tencent has not finished the hour yet (1004): the next run tries again.
    NotReady,
    /// A file or Kafka failed it: the next run tries again.
    Failed,
    /// Older than Tencent keeps files (1005) and never done: lost for good.
    Lost,
}

impl Outcome {
    /// Whether the hour needs nothing more.
    pub fn settled(self) -> bool {
        matches!(self, Outcome::Done | Outcome::Empty)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Empty => "empty",
            Outcome::NotReady => "not_ready",
            Outcome::Failed => "failed",
            Outcome::Lost => "LOST",
        }
    }
}

/// What the archive and the topics held for one hour.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub archived: u64,
    pub already: u64,
    /// Not in the topics: published, unless `--dry-run`.
    pub missing: u64,
    pub published: u64,
    pub unreadable: u64,
    /// Where the first unreadable lines are, `file <n> line <m>` (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_lines: Vec<String>,
    /// Messages the normalizer refused, by reason.
    pub refused: BTreeMap<String, u64>,
}

/// One hour of one chat type of one app: a line of the summary, a record of the state
/// topic, an element of `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourReport {
    pub sdk_app_id: u64,
    pub chat_type: ChatType,
    /// The hour's start, RFC 3339 UTC.
    pub hour: String,
    /// `get_history`'s `MsgTime` for it.
    pub beijing_hour: String,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When this outcome was reached, RFC 3339 UTC.
    pub at: String,
}

impl HourReport {
    pub fn key(&self) -> String {
        key(self.sdk_app_id, self.chat_type, &self.beijing_hour)
    }
}

pub fn key(sdk_app_id: u64, chat: ChatType, beijing_hour: &str) -> String {
    format!("{sdk_app_id}/{}/{beijing_hour}", chat.as_str())
}

/// The last outcome of every hour the state topic holds, by key.
pub fn read(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<BTreeMap<String, HourReport>> {
    let mut state = BTreeMap::new();
    let mut unreadable = 0;
    super::kafka::read_whole(kafka, topic, |message| {
        let Some(key) = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
        else {
            return;
        };
        match message.payload().map(serde_json::from_slice::<HourReport>) {
            None => {
                state.remove(&key);
            }
            Some(Ok(report)) => {
                state.insert(key, report);
            }
            Some(Err(_)) => unreadable += 1,
        }
    })
    .with_context(|| format!("cannot read the state topic {topic} (reconcile.state_topic)"))?;
    if unreadable > 0 {
        tracing::warn!(
            topic,
            unreadable,
            "Records of the state topic that are not an hour's outcome; skipped."
        );
    }
    Ok(state)
}

/// Writes `report` to the state topic and waits for Kafka to confirm it.
pub fn write(publisher: &mut Publisher, topic: &str, report: &HourReport) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(report).expect("a report serializes");
    publisher.send(
        topic,
        Some(&report.key()),
        &payload,
        rdkafka::message::OwnedHeaders::new(),
    )?;
    let settled = publisher.settle();
    if settled.failed > 0 || settled.confirmed == 0 {
        anyhow::bail!(
            "Kafka did not take the hour's state in {topic} (reconcile.state_topic): {}",
            settled.first_failure.unwrap_or_default()
        );
    }
    Ok(())
}
