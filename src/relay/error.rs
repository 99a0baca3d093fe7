//! Why the relay, or one redelivery, stops.

use std::fmt;
use std::net::SocketAddr;

use rdkafka::error::KafkaError;

use crate::outbound::ClientError;
use crate::settings::SettingsError;

#[derive(Debug)]
pub enum RelayError {
    Settings(SettingsError),
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// Kafka failed while the relay was `doing` this.
    Kafka {
        doing: String,
        source: KafkaError,
    },
    /// A subscription's HTTPS client cannot be made.
    Client {
        subscription: String,
        source: ClientError,
    },
    NoSubscription(String),
    NoDeadLetterTopic(String),
    DeadLetterTopicMissing(String),
    /// A redelivered dead letter is refused again: it stays one.
    StillRefused {
        id: String,
        partition: i32,
        offset: i64,
        last: String,
        attempts: u32,
    },
    Task(tokio::task::JoinError),
}

impl RelayError {
    /// Kafka's `source`, saying what the relay was doing.
    pub fn kafka(doing: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let doing = doing.into();
        move |source| Self::Kafka { doing, source }
    }
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Settings(error) => error.fmt(f),
            Self::Listen { address, source } => write!(f, "cannot listen on {address}: {source}"),
            Self::Kafka { doing, source } => write!(f, "{doing}: {source}"),
            Self::Client {
                subscription,
                source,
            } => write!(f, "subscriptions.{subscription}: {source}"),
            Self::NoSubscription(name) => write!(f, "no subscription is named `{name}`"),
            Self::NoDeadLetterTopic(name) => {
                write!(f, "subscription `{name}` has no dead_letter_topic")
            }
            Self::DeadLetterTopicMissing(topic) => {
                write!(f, "the dead-letter topic {topic} does not exist")
            }
            Self::StillRefused {
                id,
                partition,
                offset,
                last,
                attempts,
            } => write!(
                f,
                "the receiver still refuses {id} (offset {partition}/{offset}: {last} after {attempts} attempts); it stays a dead letter"
            ),
            Self::Task(error) => write!(f, "a relay task failed: {error}"),
        }
    }
}

impl std::error::Error for RelayError {}

impl From<SettingsError> for RelayError {
    fn from(error: SettingsError) -> Self {
        Self::Settings(error)
    }
}

impl From<tokio::task::JoinError> for RelayError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Task(error)
    }
}
