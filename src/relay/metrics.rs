//! The relay's metrics, named `tim_relay_<name>_<unit>`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    pub subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub subscription: String,
    /// delivered, dead_lettered, gave_up, filtered
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub subscription: String,
    pub topic: String,
    pub partition: String,
}

pub struct RelayMetrics {
    registry: Registry,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub attempts: Family<SubscriptionLabels, Counter>,
    pub retries: Family<SubscriptionLabels, Counter>,
    pub latency: Family<SubscriptionLabels, Histogram>,
    pub in_flight: Family<SubscriptionLabels, Gauge>,
    pub lag: Family<PartitionLabels, Gauge>,
    pub joined: Family<SubscriptionLabels, Gauge>,
    pub trace_spans_dropped: Counter,
}

/// One subscription's series, looked up once when it starts, not per event.
#[derive(Clone)]
pub struct SubscriptionMetrics {
    delivered: Counter,
    dead_lettered: Counter,
    gave_up: Counter,
    filtered: Counter,
    attempts: Counter,
    retries: Counter,
    latency: Histogram,
    in_flight: Gauge,
    joined: Gauge,
}

/// Counts one delivery in flight while alive.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl SubscriptionMetrics {
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
    pub fn attempt(&self) {
        self.attempts.inc();
    }
    pub fn retried(&self) {
        self.retries.inc();
    }
    pub fn delivered(&self, seconds: f64) {
        self.delivered.inc();
        self.latency.observe(seconds);
    }
    pub fn dead_lettered(&self) {
        self.dead_lettered.inc();
    }
    pub fn gave_up(&self) {
        self.gave_up.inc();
    }
    pub fn filtered(&self) {
        self.filtered.inc();
    }
    pub fn set_joined(&self, joined: bool) {
        self.joined.set(joined as i64);
    }
}

fn sub(name: &str) -> SubscriptionLabels {
    SubscriptionLabels {
        subscription: name.to_owned(),
    }
}

impl Default for RelayMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = RelayMetrics {
            deliveries: Family::default(),
            attempts: Family::default(),
            retries: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 20))
            }),
            in_flight: Family::default(),
            lag: Family::default(),
            joined: Family::default(),
            trace_spans_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tim_relay_deliveries",
            "Events finished, by subscription and outcome (delivered, dead_lettered, gave_up, filtered)",
            m.deliveries.clone(),
        );
        registry.register(
            "tim_relay_attempts",
            "HTTP attempts made, by subscription",
            m.attempts.clone(),
        );
        registry.register(
            "tim_relay_retries",
            "Attempts that failed and were retried, by subscription",
            m.retries.clone(),
        );
        registry.register_with_unit(
            "tim_relay_delivery_latency",
            "From reading the event from Kafka to its 2xx",
            Unit::Seconds,
            m.latency.clone(),
        );
        registry.register(
            "tim_relay_in_flight",
            "Deliveries waiting for their receiver's answer",
            m.in_flight.clone(),
        );
        registry.register(
            "tim_relay_consumer_lag",
            "Records behind the end of each assigned partition (librdkafka's statistics)",
            m.lag.clone(),
        );
        registry.register(
            "tim_relay_group_joined",
            "1 while the subscription's consumer group has given this instance its assignment",
            m.joined.clone(),
        );
        registry.register(
            "tim_relay_trace_spans_dropped",
            "Spans not exported: the queue to the trace backend was full, or the backend did not take them",
            m.trace_spans_dropped.clone(),
        );
        RelayMetrics { registry, ..m }
    }
}

impl RelayMetrics {
    pub fn subscription(&self, name: &str) -> SubscriptionMetrics {
        let outcome = |outcome| {
            self.deliveries
                .get_or_create(&OutcomeLabels {
                    subscription: name.to_owned(),
                    outcome,
                })
                .clone()
        };
        SubscriptionMetrics {
            delivered: outcome("delivered"),
            dead_lettered: outcome("dead_lettered"),
            gave_up: outcome("gave_up"),
            filtered: outcome("filtered"),
            attempts: self.attempts.get_or_create(&sub(name)).clone(),
            retries: self.retries.get_or_create(&sub(name)).clone(),
            latency: self.latency.get_or_create(&sub(name)).clone(),
            in_flight: self.in_flight.get_or_create(&sub(name)).clone(),
            joined: self.joined.get_or_create(&sub(name)).clone(),
        }
    }

    pub fn set_lag(&self, subscription: &str, topic: &str, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&PartitionLabels {
                subscription: subscription.to_owned(),
                topic: topic.to_owned(),
                partition: partition.to_string(),
            })
            .set(lag);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode into a string");
        out
    }
}
