//! What Kafka refuses us and how to say it: the errors no retry fixes, the ones an
//! operator must (a missing ACL, bad credentials), and what `/readyz` and the log
//! report of them, without a line per record.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::quota::LineQuota;

/// What the cluster refuses us that an operator must fix, for `/readyz` to say.
pub(super) struct Problems {
    /// The last authentication or TLS failure librdkafka reported, and when.
    pub(super) credentials: Option<(Instant, String)>,
    /// Topics whose last delivery attempt failed, with what to say of it; a delivery
    /// to the topic clears it.
    pub(super) failing: HashMap<String, String>,
    /// Topics whose last delivery attempt Kafka refused as not authorized.
    pub(super) unauthorized: HashSet<String>,
    /// Lines per topic (or `client: <error>`).
    lines: LineQuota,
}

/// At most one line this often per topic about failed attempts, and per kind of
/// client error.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Default for Problems {
    fn default() -> Self {
        Self::logging_every(FAILURE_LOG_INTERVAL)
    }
}

impl Problems {
    fn logging_every(interval: Duration) -> Self {
        Self {
            credentials: None,
            failing: HashMap::new(),
            unauthorized: HashSet::new(),
            lines: LineQuota::new(interval),
        }
    }

    /// Counts a failure of `topic`; `Some(failures since the last line, this one
    /// included)` when a line is due.
    pub(super) fn quieted(&mut self, topic: &str) -> Option<u64> {
        self.lines.take(topic).map(|unlogged| unlogged + 1)
    }
}

/// How long a reported authentication or TLS failure explains a cluster that does not answer.
pub(super) const CREDENTIALS_PROBLEM_TTL: Duration = Duration::from_secs(60);

/// Records waiting this long with no confirmation at all: Kafka is not taking events
/// (no leader for their partitions, too few in-sync replicas, a hung broker); librdkafka
/// itself never gives up on them (`message.timeout.ms = 0`).
pub(super) const STALLED_AFTER_MS: u64 = 10_000;

/// Errors that no retry can fix. A missing ACL is not one of them: an operator adds
/// it, and until then the events wait and `/readyz` names the topic.
pub(super) fn retriable(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

/// The `reason` label of a refusal no retry can fix.
pub(super) fn refusal(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "message_too_large",
        Some(RDKafkaErrorCode::InvalidMessageSize) => "invalid_message_size",
        Some(RDKafkaErrorCode::InvalidRecord) => "invalid_record",
        Some(RDKafkaErrorCode::InvalidTopic) => "invalid_topic",
        _ => "refused",
    }
}

pub(super) fn unauthorized(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_a_topic_are_logged_once_per_interval_with_their_count() {
        let mut problems = Problems::logging_every(Duration::from_millis(250));
        assert_eq!(problems.quieted("t"), Some(1), "the first is logged");
        for _ in 0..9_999 {
            assert_eq!(problems.quieted("t"), None);
        }
        assert_eq!(
            problems.quieted("u"),
            Some(1),
            "another topic has its own line"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            problems.quieted("t"),
            Some(10_000),
            "the next line counts the quiet ones"
        );
    }
}
