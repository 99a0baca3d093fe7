//! What happens to a record Kafka did not take: a retriable failure stalls its topic
//! (`stalls.rs`), and one task sends the topic's waiting records again, in dispatch
//! order, after a capped, jittered backoff; a refusal for good goes to the dead-letter
//! log, logged and counted there.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use opentelemetry::KeyValue;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::held::queue_full;
use super::stalls::Due;
use super::tracking::InFlight;
use super::{Forwarder, Shared};
use crate::delivery::Outcome;
use crate::kafka::problems::{refusal, retriable, unauthorized};

/// The wait before attempt number `attempt` (1 for the first retry): from 100 ms,
/// doubling, jittered, never above `max`.
pub(super) fn backoff(attempt: u32, max: Duration) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
        // Past 32 doublings of 100 ms every delay is the maximum anyway.
        .nth(attempt.saturating_sub(1).min(32) as usize)
        // The jitter is added after backon's own cap, up to doubling it.
        .map_or(max, |wait| wait.min(max))
}

impl Shared {
    pub(super) fn failed(&self, mut in_flight: Box<InFlight>, error: KafkaError) {
        if self.abandon.is_cancelled() {
            return self.tracking.finish_as(*in_flight, Outcome::Abandoned);
        }
        // Only a fatal producer fails records with these when we are not shutting down:
        // librdkafka purges its queue before it reports the fatal error itself.
        if matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::PurgeQueue
                    | RDKafkaErrorCode::PurgeInflight
            )
        ) {
            self.held.replacing.store(true, Ordering::SeqCst);
            self.fatal.notify_one();
            crate::telemetry::note(
                in_flight.record.trace.as_ref(),
                &mut in_flight.notes,
                "producer replaced",
                vec![KeyValue::new("error.type", error.to_string())],
            );
        }
        in_flight = match self.held.hold_while_paused(in_flight) {
            Some(in_flight) => in_flight,
            None => return,
        };
        if !retriable(&error) {
            return self.refused_for_good(*in_flight, error);
        }
        in_flight.attempt += 1;
        crate::telemetry::note(
            in_flight.record.trace.as_ref(),
            &mut in_flight.notes,
            "retry",
            vec![
                KeyValue::new("tim.attempt", in_flight.attempt as i64),
                KeyValue::new("error.type", error.to_string()),
            ],
        );
        let record = &in_flight.record;
        self.tracking.count(&record.topic, |c| &c.failures);
        let refused = unauthorized(&error);
        let problem = if refused {
            format!(
                "not authorized to write {} ({error}); check the topic's ACLs (WRITE and DESCRIBE)",
                record.topic
            )
        } else {
            format!("Kafka does not take events for {} ({error})", record.topic)
        };
        let since_last_line = {
            let mut problems = self.problems();
            problems.failing.insert(record.topic.clone(), problem);
            if refused {
                problems.unauthorized.insert(record.topic.clone());
            } else {
                problems.unauthorized.remove(&record.topic);
            }
            problems.quieted(&record.topic)
        };
        self.any_failing.store(true, Ordering::Relaxed);
        // One line per topic per interval, whatever the outage's size; the metric counts each.
        if let Some(failures) = since_last_line {
            // Keys name accounts (`user:<account>`): at debug only.
            tracing::debug!(
                topic = %record.topic,
                msg_key = record.key.as_deref().unwrap_or(""),
                "The key of the event Kafka did not take."
            );
            tracing::warn!(
                topic = %record.topic,
                error = %error,
                attempt = in_flight.attempt,
                failures_since_last_line = failures,
                "Kafka did not take an event; retrying."
            );
        }
        let wait = backoff(in_flight.attempt, self.max_retry_delay);
        self.stalls.stall(in_flight, wait);
    }

    /// Kafka refused the record for good: it is kept in the dead-letter log, which logs
    /// and counts it.
    fn refused_for_good(&self, mut in_flight: InFlight, error: KafkaError) {
        let record = &in_flight.record;
        match self.dead_letters.keep(record, refusal(&error), &error) {
            Ok(_) => {
                if let (Some(telemetry), Some(trace)) = (self.telemetry.get(), &record.trace) {
                    let notes = std::mem::take(&mut in_flight.notes);
                    telemetry.refused(record, trace, notes, refusal(&error));
                }
                self.tracking.finish_as(in_flight, Outcome::DeadLettered)
            }
            Err(dead_error) => {
                let key = record.key.as_deref().unwrap_or("");
                tracing::debug!(topic = %record.topic, msg_key = key, "The refused event's key.");
                tracing::error!(topic = %record.topic, error = %error, dead_letter_error = %dead_error,
                    "Kafka refused an event for good and the dead-letter log cannot take it; with ack = durable it stays in the spool, with ack = memory it is lost.");
                self.tracking.finish_as(in_flight, Outcome::Abandoned);
            }
        }
    }

    /// At shutdown: what waits in a stall will not be sent.
    pub(super) fn abandon_stalled(&self) {
        for in_flight in self.stalls.take_all() {
            self.tracking.finish_as(*in_flight, Outcome::Abandoned);
        }
    }
}

impl Forwarder {
    /// Sends again, in dispatch order, the records of every stalled topic that is due.
    fn resend_stalled(&self) {
        if self.shared.held.replacing.load(Ordering::SeqCst) {
            return;
        }
        let mut refused = Vec::new();
        self.shared.stalls.resend_due(|records: Due| {
            let current = self.current();
            let mut waiting = records.into_iter();
            while let Some(in_flight) = waiting.next() {
                if let Err((error, in_flight)) = self.shared.produce(&current, in_flight) {
                    let mut left: Due = waiting.collect();
                    if queue_full(&error) {
                        left.insert(0, in_flight);
                        return Some((left, Duration::from_millis(5)));
                    }
                    // Refused at once (librdkafka knows the topic is missing): the topic waits
                    // its next backoff; the record is handled once every stall is unlocked
                    // (it joins that wait, or is refused for good).
                    let wait = backoff(in_flight.attempt + 1, self.shared.max_retry_delay);
                    refused.push((in_flight, error));
                    return Some((left, wait));
                }
            }
            None
        });
        for (in_flight, error) in refused {
            self.shared.failed(in_flight, error);
        }
    }
}

/// Sends the records of stalled topics again, each topic's in dispatch order once its
/// backoff has passed, until the forwarder goes; then abandons what still waits.
pub(super) async fn retry_stalled(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        let next = shared.stalls.next_due();
        let due = async move {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.abandon.cancelled() => break,
            _ = shared.stalls.wake.notified() => {}
            _ = due => {}
        }
        let Some(this) = forwarder.upgrade() else {
            break;
        };
        this.resend_stalled();
    }
    shared.abandon_stalled();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_waits_about_a_hundred_milliseconds() {
        let wait = backoff(1, Duration::from_secs(30));
        assert!(wait >= Duration::from_millis(100), "{wait:?}");
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
    }

    #[test]
    fn waits_grow_and_never_pass_the_maximum_however_many_attempts() {
        let max = Duration::from_secs(2);
        assert!(backoff(5, max) >= Duration::from_millis(1_600).min(max));
        for attempt in [10, 33, 1_000, u32::MAX] {
            assert!(backoff(attempt, max) <= max, "attempt {attempt}");
        }
    }
}
