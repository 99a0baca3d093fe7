//! The bridge's metrics, named `tim_bridge_<name>_<unit>` (counters end in `_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    pub command: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLabels {
    pub topic: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub broker: String,
}

/// A window statistic of librdkafka's: `avg` or `p99`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerStatLabels {
    pub broker: String,
    pub stat: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicStatLabels {
    pub topic: String,
    pub stat: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub callback_duration: Histogram,
    pub keyed_by_conversation: Counter,
    /// Finished spans dropped: the export queue was full, or the backend did not take them.
    pub trace_spans_dropped: Counter,
    pub events_produced: Family<TopicLabels, Counter>,
    pub delivery_failures: Family<TopicLabels, Counter>,
    pub events_dead_lettered: Family<DeadLabels, Counter>,
    pub dead_letters: Gauge,
    pub producer_restarts: Counter,
    pub producer_queue_full: Counter,
    pub delivery_latency: Histogram,
    pub queue_depth: Gauge,
    pub kafka_ready: Gauge,
    /// 1 once the producer has worked with these settings since start (see `Readiness`).
    pub kafka_worked: Gauge,
    /// 1 while Kafka refuses the bridge's credentials (`cause="authentication"`) or a
    /// topic's writes (`cause="authorization"`).
    pub kafka_refusing: Family<KindLabels, Gauge>,
    /// From librdkafka's statistics (`kafka/statistics.rs`).
    pub kafka_broker_rtt: Family<BrokerStatLabels, Gauge<f64, AtomicU64>>,
    pub kafka_broker_in_flight: Family<BrokerLabels, Gauge>,
    pub kafka_broker_waiting: Family<BrokerLabels, Gauge>,
    pub kafka_broker_errors: Family<BrokerLabels, Counter>,
    pub kafka_broker_retries: Family<BrokerLabels, Counter>,
    pub kafka_topic_batch_messages: Family<TopicStatLabels, Gauge>,
    pub kafka_topic_batch_bytes: Family<TopicStatLabels, Gauge>,
    pub kafka_topic_queued: Family<TopicLabels, Gauge>,
    pub spool_bytes: Gauge,
    pub spool_oldest_age: Gauge<f64, AtomicU64>,
    pub spool_fsync: Histogram,
    pub spool_corrupt: Counter,
    pub spool_write_failures: Counter,
    pub spool_write_failing: Gauge,
    /// 1 while the spool cannot record Kafka's confirmations (its `confirmed` file).
    pub spool_progress_failing: Gauge,
    /// 1 while the spool cannot start a new segment (no inode, no space, a read-only disk).
    pub spool_roll_failing: Gauge,
    /// Failed writes of the `confirmed` file and failed rolls.
    pub spool_bookkeeping_failures: Family<KindLabels, Counter>,
    pub spool_thread_deaths: Counter,
    pub duplicates: Family<KindLabels, Counter>,
    /// Keys a duplicate filter forgot before their window ended (its memory bound).
    pub dedup_evictions: Family<KindLabels, Counter>,
    pub connections_open: Gauge,
    /// Connections closed by the server, by reason (over_limit, header_timeout, idle, tls_handshake).
    pub connections_closed: Family<KindLabels, Counter>,
    pub handler_panics: Counter,
    pub tls_reloads: Family<KindLabels, Counter>,
    /// Apps taking unsigned callbacks (`allow_unsigned`); 0 unless asked for.
    pub unsigned_apps: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            callbacks: Family::default(),
            callback_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            keyed_by_conversation: Counter::default(),
            trace_spans_dropped: Counter::default(),
            events_produced: Family::default(),
            delivery_failures: Family::default(),
            events_dead_lettered: Family::default(),
            dead_letters: Gauge::default(),
            producer_restarts: Counter::default(),
            producer_queue_full: Counter::default(),
            delivery_latency: Histogram::new(exponential_buckets(0.000_5, 2.0, 18)),
            queue_depth: Gauge::default(),
            kafka_ready: Gauge::default(),
            kafka_worked: Gauge::default(),
            kafka_refusing: Family::default(),
            kafka_broker_rtt: Family::default(),
            kafka_broker_in_flight: Family::default(),
            kafka_broker_waiting: Family::default(),
            kafka_broker_errors: Family::default(),
            kafka_broker_retries: Family::default(),
            kafka_topic_batch_messages: Family::default(),
            kafka_topic_batch_bytes: Family::default(),
            kafka_topic_queued: Family::default(),
            spool_bytes: Gauge::default(),
            spool_oldest_age: Gauge::default(),
            spool_fsync: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            spool_corrupt: Counter::default(),
            spool_write_failures: Counter::default(),
            spool_write_failing: Gauge::default(),
            spool_progress_failing: Gauge::default(),
            spool_roll_failing: Gauge::default(),
            spool_bookkeeping_failures: Family::default(),
            spool_thread_deaths: Counter::default(),
            duplicates: Family::default(),
            dedup_evictions: Family::default(),
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            handler_panics: Counter::default(),
            tls_reloads: Family::default(),
            unsigned_apps: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tim_bridge_callbacks",
            "Callbacks answered, by command and outcome (ok or the rejection reason)",
            m.callbacks.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_callback_duration",
            "Time from request head to answer",
            Unit::Seconds,
            m.callback_duration.clone(),
        );
        registry.register(
            "tim_bridge_events_keyed_by_conversation",
            "Sent-message callbacks without MsgKey, keyed by their conversation instead",
            m.keyed_by_conversation.clone(),
        );
        registry.register(
            "tim_bridge_trace_spans_dropped",
            "Finished spans dropped: the export queue was full, or the trace backend did not take them",
            m.trace_spans_dropped.clone(),
        );
        registry.register(
            "tim_bridge_events_produced",
            "Events Kafka confirmed, by topic",
            m.events_produced.clone(),
        );
        registry.register(
            "tim_bridge_delivery_failures",
            "Failed delivery attempts (each is retried), by topic",
            m.delivery_failures.clone(),
        );
        registry.register(
            "tim_bridge_events_dead_lettered",
            "Events Kafka refused for good (too large, invalid), kept in the dead-letter log, by topic and reason",
            m.events_dead_lettered.clone(),
        );
        registry.register(
            "tim_bridge_producer_restarts",
            "Kafka producers replaced after librdkafka reported them fatal",
            m.producer_restarts.clone(),
        );
        registry.register(
            "tim_bridge_producer_queue_full",
            "Times librdkafka's queue was full (queue.buffering.max.messages or .kbytes): events waited, in order, for room",
            m.producer_queue_full.clone(),
        );
        registry.register(
            "tim_bridge_dead_letters",
            "Events in the dead-letter log (<spool_dir>/dead), waiting for `spool drain --dead`",
            m.dead_letters.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_delivery_latency",
            "Time from accepting a callback to Kafka confirming its event",
            Unit::Seconds,
            m.delivery_latency.clone(),
        );
        registry.register(
            "tim_bridge_forward_queue_depth",
            "Events accepted and not yet confirmed by Kafka (in memory or in the spool)",
            m.queue_depth.clone(),
        );
        registry.register(
            "tim_bridge_kafka_ready",
            "1 while the cluster answers and every configured topic exists",
            m.kafka_ready.clone(),
        );
        registry.register(
            "tim_bridge_kafka_worked",
            "1 once the producer has connected, authenticated, found every topic and got its producer id since this process started; 0 until then",
            m.kafka_worked.clone(),
        );
        registry.register(
            "tim_bridge_kafka_refusing",
            "1 while Kafka refuses the bridge's credentials or certificate (kind=authentication) or its writes to a topic (kind=authorization)",
            m.kafka_refusing.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_kafka_broker_rtt",
            "Round-trip time of the producer's requests to a broker, librdkafka's rolling avg and p99 (kafka.statistics_interval_ms)",
            Unit::Seconds,
            m.kafka_broker_rtt.clone(),
        );
        registry.register(
            "tim_bridge_kafka_broker_requests_in_flight",
            "Requests sent to a broker and waiting for its answer",
            m.kafka_broker_in_flight.clone(),
        );
        registry.register(
            "tim_bridge_kafka_broker_requests_waiting",
            "Requests waiting to be sent to a broker",
            m.kafka_broker_waiting.clone(),
        );
        registry.register(
            "tim_bridge_kafka_broker_send_errors",
            "Requests to a broker that failed (librdkafka's txerrs)",
            m.kafka_broker_errors.clone(),
        );
        registry.register(
            "tim_bridge_kafka_broker_send_retries",
            "Requests to a broker sent again (librdkafka's txretries)",
            m.kafka_broker_retries.clone(),
        );
        registry.register(
            "tim_bridge_kafka_topic_batch_messages",
            "Messages per batch the producer sent for a topic, rolling avg and p99",
            m.kafka_topic_batch_messages.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_kafka_topic_batch",
            "Bytes per batch the producer sent for a topic, rolling avg and p99",
            Unit::Bytes,
            m.kafka_topic_batch_bytes.clone(),
        );
        registry.register(
            "tim_bridge_kafka_topic_queued_messages",
            "Messages librdkafka holds for a topic, queued or being sent",
            m.kafka_topic_queued.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_spool",
            "Bytes of spool segments on disk",
            Unit::Bytes,
            m.spool_bytes.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_spool_oldest_unconfirmed_age",
            "Age of the oldest spooled event Kafka has not confirmed",
            Unit::Seconds,
            m.spool_oldest_age.clone(),
        );
        registry.register_with_unit(
            "tim_bridge_spool_fsync",
            "Time to write and fsync one group of spooled events",
            Unit::Seconds,
            m.spool_fsync.clone(),
        );
        registry.register(
            "tim_bridge_spool_corrupt_records",
            "Spooled records found torn or corrupt and skipped",
            m.spool_corrupt.clone(),
        );
        registry.register(
            "tim_bridge_spool_write_failures",
            "Writes or fsyncs of the spool that failed (a full disk, an I/O error); their callbacks were answered 503",
            m.spool_write_failures.clone(),
        );
        registry.register(
            "tim_bridge_spool_write_failing",
            "1 while the spool cannot store events (its last write or fsync failed), else 0",
            m.spool_write_failing.clone(),
        );
        registry.register(
            "tim_bridge_spool_progress_failing",
            "1 while the spool cannot record what Kafka confirmed (its confirmed file cannot be written): nothing is deleted meanwhile, and a restart sends again what was confirmed since",
            m.spool_progress_failing.clone(),
        );
        registry.register(
            "tim_bridge_spool_roll_failing",
            "1 while the spool cannot start a new segment (no free inode, no space, a read-only disk): the segment being written grows until it can",
            m.spool_roll_failing.clone(),
        );
        registry.register(
            "tim_bridge_spool_bookkeeping_failures",
            "Failed writes of the spool's confirmed watermark (kind=progress) and failed segment rolls (kind=roll)",
            m.spool_bookkeeping_failures.clone(),
        );
        registry.register(
            "tim_bridge_spool_thread_deaths",
            "Spool threads that panicked; the bridge stops (exit 1) for a supervisor to restart it",
            m.spool_thread_deaths.clone(),
        );
        registry.register(
            "tim_bridge_duplicates_dropped",
            "Answered OK and not published again: a replayed signed request, or an event id seen in the dedup window",
            m.duplicates.clone(),
        );
        registry.register(
            "tim_bridge_dedup_evictions",
            "Keys a duplicate filter (kind=request: signed requests; kind=event: event ids) forgot before their window ended, for want of dedup_max_bytes: a replay of them inside the window would be published again",
            m.dedup_evictions.clone(),
        );
        registry.register(
            "tim_bridge_http_connections_open",
            "HTTP connections being served",
            m.connections_open.clone(),
        );
        registry.register(
            "tim_bridge_http_connections_closed",
            "Connections the server closed or refused, by reason: over_limit, header_timeout, idle, tls_handshake",
            m.connections_closed.clone(),
        );
        registry.register(
            "tim_bridge_handler_panics",
            "Requests whose handler panicked; each was answered 500",
            m.handler_panics.clone(),
        );
        registry.register(
            "tim_bridge_tls_reloads",
            "Reloads of the HTTPS certificate, by outcome (ok, error)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "tim_bridge_unsigned_apps",
            "Apps that take callbacks without a signature (allow_unsigned = true, or serve --dev)",
            m.unsigned_apps.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn callback(&self, command: &'static str, outcome: &'static str) {
        self.callbacks
            .get_or_create(&CallbackLabels { command, outcome })
            .inc();
    }

    /// Creates the series an alert or dashboard needs from the start, at zero: a
    /// labelled family exports nothing until its first sample otherwise.
    pub fn preregister(&self, topics: &[String]) {
        for topic in topics {
            let labels = Self::topic(topic);
            let _ = self.events_produced.get_or_create(&labels);
            let _ = self.delivery_failures.get_or_create(&labels);
            let _ = self.events_dead_lettered.get_or_create(&DeadLabels {
                topic: topic.clone(),
                reason: "message_too_large".into(),
            });
        }
        for kind in ["authentication", "authorization"] {
            let _ = self.kafka_refusing.get_or_create(&KindLabels { kind });
        }
        for kind in ["request", "event"] {
            let _ = self.duplicates.get_or_create(&KindLabels { kind });
            let _ = self.dedup_evictions.get_or_create(&KindLabels { kind });
        }
        for kind in [
            "over_limit",
            "over_limit_unanswered",
            "header_timeout",
            "idle",
            "tls_handshake",
        ] {
            let _ = self.connections_closed.get_or_create(&KindLabels { kind });
        }
        for kind in ["ok", "error"] {
            let _ = self.tls_reloads.get_or_create(&KindLabels { kind });
        }
        for typed in &crate::tencent::command::Typed::ALL[..7] {
            let _ = self.callbacks.get_or_create(&CallbackLabels {
                command: typed.as_str(),
                outcome: "ok",
            });
        }
    }

    pub fn topic(topic: &str) -> TopicLabels {
        TopicLabels {
            topic: topic.to_owned(),
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
