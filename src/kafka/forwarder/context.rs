//! The producer's context: librdkafka's delivery reports, client errors and
//! statistics arrive here, on the producer's polling thread, and what they tell
//! (a problem with Kafka, the idempotent producer's id) is read from here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::Message as _;

use super::tracking::InFlight;
use super::Shared;
use crate::kafka::problems::{CREDENTIALS_PROBLEM_TTL, STALLED_AFTER_MS};
use crate::kafka::statistics;

/// The producer's context: it receives librdkafka's delivery reports.
pub struct Deliveries {
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for Deliveries {
    /// librdkafka's statistics: metrics, and whether the producer holds its id.
    fn stats_raw(&self, statistics: &[u8]) {
        let shared = &self.shared;
        if let Some(assigned) =
            statistics::record(statistics, shared.tracking.metrics(), &shared.totals)
        {
            shared.producer_id.store(assigned, Ordering::Relaxed);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(error = %error, reason, "The Kafka producer is in a fatal state; replacing it.");
            self.shared.held.replacing.store(true, Ordering::SeqCst);
            self.shared.fatal.notify_one();
            return;
        }
        let setting = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                "kafka.security.sasl_username and kafka.security.sasl_password"
            }
            Some(RDKafkaErrorCode::SSL) => {
                "kafka.security.ca_file, kafka.security.cert_file and kafka.security.key_file"
            }
            _ => {
                // librdkafka repeats these every reconnect (every ~50 ms with no broker):
                // one line per kind of error per interval, with the count.
                let kind = format!("client: {error}");
                if let Some(errors) = self.shared.problems().quieted(&kind) {
                    tracing::warn!(error = %error, reason, errors_since_last_line = errors, "The Kafka client reports an error.");
                }
                return;
            }
        };
        let problem = format!("Kafka authentication failed ({reason}); check {setting}");
        let mut problems = self.shared.problems();
        problems.credentials = Some((Instant::now(), problem));
        if let Some(errors) = problems.quieted("client: credentials") {
            drop(problems);
            tracing::error!(error = %error, reason, errors_since_last_line = errors, "Kafka refuses the bridge's connection; check {setting}.");
        }
    }
}

impl Deliveries {
    /// Why Kafka does not take our events, if it does not: bad credentials or
    /// certificates, topics the bridge may not write, or topics whose last delivery
    /// failed (no leader, too few in-sync replicas, ...). `None` when there is none.
    pub fn problem(&self) -> Option<String> {
        let problems = self.shared.problems();
        if let Some((at, problem)) = &problems.credentials {
            if at.elapsed() < CREDENTIALS_PROBLEM_TTL {
                return Some(problem.clone());
            }
        }
        let waiting = self.shared.tracking.waiting();
        let stalled_ms = self.shared.tracking.stalled_ms();
        if waiting > 0 && stalled_ms >= STALLED_AFTER_MS {
            return Some(format!(
                "Kafka has confirmed none of the {waiting} events sent to it for {} s",
                stalled_ms / 1000
            ));
        }
        if problems.failing.is_empty() {
            return None;
        }
        let mut failing: Vec<&str> = problems.failing.values().map(String::as_str).collect();
        failing.sort();
        Some(failing.join("; "))
    }

    /// Whether Kafka refuses, now, the bridge's credentials and any topic's writes.
    pub fn refusing(&self) -> (bool, bool) {
        let problems = self.shared.problems();
        let credentials = problems
            .credentials
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < CREDENTIALS_PROBLEM_TTL);
        (credentials, !problems.unauthorized.is_empty())
    }

    /// Whether the producer in use got its idempotent producer id: Kafka took the
    /// credentials and lets it write. Needs `statistics.interval.ms`.
    pub fn has_producer_id(&self) -> bool {
        self.shared.producer_id.load(Ordering::Relaxed)
    }

    /// The cluster answered us: an earlier authentication failure is over.
    pub fn answered(&self) {
        self.shared.problems().credentials = None;
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut in_flight: Box<InFlight>) {
        let generation = in_flight.generation;
        let of_topic = self.shared.stalls.outstanding(&in_flight.record.topic);
        match result {
            Ok(message) => {
                if let (Some(telemetry), Some(trace)) =
                    (self.shared.telemetry.get(), &in_flight.record.trace)
                {
                    telemetry.delivered(
                        &in_flight.record,
                        trace,
                        (message.partition(), message.offset()),
                        std::mem::take(&mut in_flight.notes),
                    );
                }
                self.shared.confirmed(*in_flight)
            }
            Err((error, _)) => self.shared.failed(in_flight, error.clone()),
        }
        // After the record is finished, held or stalled, so that a replacement or a
        // stall's retry sees it there.
        self.shared.generations.reported(generation);
        self.shared.stalls.reported(of_topic);
        self.shared.held.report_handled();
    }
}
