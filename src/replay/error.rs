//! Why a replay stops.

use std::fmt;

use rdkafka::error::KafkaError;

use super::position::PositionError;
use crate::outbound::ClientError;
use crate::settings::SettingsError;

#[derive(Debug)]
pub enum ReplayError {
    Position(PositionError),
    /// `--conversation` is not `A,B`.
    Conversation(String),
    Settings(SettingsError),
    /// Kafka failed while the replay was `doing` this.
    Kafka {
        doing: String,
        source: KafkaError,
    },
    NoTopic(String),
    NoPartition {
        topic: String,
        partition: i32,
        partitions: i32,
    },
    OutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        low: i64,
        high: i64,
    },
    /// `--to-url` cannot be used: why.
    Url(String),
    Client(ClientError),
    /// A POST was given up on.
    Post(String),
    /// Standard output cannot be written.
    Stdout(String),
    WriterStopped,
    Task(tokio::task::JoinError),
}

impl ReplayError {
    /// Kafka's `source`, saying what the replay was doing.
    pub fn kafka(doing: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let doing = doing.into();
        move |source| Self::Kafka { doing, source }
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Position(error) => error.fmt(f),
            Self::Conversation(value) => write!(f, "--conversation {value}: expected A,B"),
            Self::Settings(error) => error.fmt(f),
            Self::Kafka { doing, source } => write!(f, "{doing}: {source}"),
            Self::NoTopic(topic) => write!(f, "topic {topic} does not exist"),
            Self::NoPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "partition {partition} of topic {topic} does not exist (it has {partitions})"
            ),
            Self::OutOfRange {
                topic,
                partition,
                offset,
                low,
                high,
            } => write!(
                f,
                "offset {offset} is out of range for {topic}[{partition}] ({low} to {high})"
            ),
            Self::Url(why) => write!(f, "--to-url {why}"),
            Self::Client(error) => error.fmt(f),
            Self::Post(why) => f.write_str(why),
            Self::Stdout(why) => write!(f, "cannot write to stdout: {why}"),
            Self::WriterStopped => f.write_str("the stdout writer stopped"),
            Self::Task(error) => write!(f, "a replay task failed: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<PositionError> for ReplayError {
    fn from(error: PositionError) -> Self {
        Self::Position(error)
    }
}

impl From<SettingsError> for ReplayError {
    fn from(error: SettingsError) -> Self {
        Self::Settings(error)
    }
}

impl From<tokio::task::JoinError> for ReplayError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Task(error)
    }
}
