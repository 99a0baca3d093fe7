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
    /// delivered, dead_lettered, gave_up, filtered, abandoned
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
}

/// Counts one delivery in flight while alive.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
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
        RelayMetrics { registry, ..m }
    }
}

impl RelayMetrics {
    pub fn in_flight(&self, subscription: &str) -> InFlight {
        let gauge = self.in_flight.get_or_create(&sub(subscription)).clone();
        gauge.inc();
        InFlight(gauge)
    }

    pub fn attempt(&self, subscription: &str) {
        self.attempts.get_or_create(&sub(subscription)).inc();
    }

    pub fn retried(&self, subscription: &str) {
        self.retries.get_or_create(&sub(subscription)).inc();
    }

    pub fn delivered(&self, subscription: &str, seconds: f64) {
        self.outcome(subscription, "delivered");
        self.latency
            .get_or_create(&sub(subscription))
            .observe(seconds);
    }

    pub fn outcome(&self, subscription: &str, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                subscription: subscription.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn set_joined(&self, subscription: &str, joined: bool) {
        self.joined
            .get_or_create(&sub(subscription))
            .set(joined as i64);
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
