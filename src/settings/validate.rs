//! Checks of the settings that types alone do not make (ranges, names, producer
//! properties that would weaken delivery), each naming the setting.

use super::*;

impl Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.callback_path.starts_with('/') || self.callback_path.len() < 2 {
            return Err(SettingsError::new(
                "callback_path",
                "must be a path like /callback",
            ));
        }
        if ["/healthz", "/readyz", "/metrics"].contains(&self.callback_path.as_str()) {
            return Err(SettingsError::new(
                "callback_path",
                "is taken by a built-in endpoint",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(SettingsError::new("max_body_bytes", "must be above 0"));
        }
        self.limits.validate()?;
        if let Some(tls) = &self.tls {
            for (name, path) in [
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                std::fs::metadata(path).map_err(|e| {
                    SettingsError::new(name, format!("cannot read {}: {e}", path.display()))
                })?;
            }
        }
        self.kafka.security.validate()?;
        self.tracing.checked()?;
        if self.dedup_max_bytes < 1 << 20 {
            return Err(SettingsError::new(
                "dedup_max_bytes",
                "must be at least 1048576 (1 MiB): below, the replay filter would forget signed requests inside their window at a few hundred callbacks/s",
            ));
        }
        if self.queue_capacity == 0 {
            return Err(SettingsError::new("queue_capacity", "must be above 0"));
        }
        if self.enqueue_timeout_ms > 1_000 {
            return Err(SettingsError::new(
                "enqueue_timeout_ms",
                "must be at most 1000: Tencent waits 2 s",
            ));
        }
        if self.spool_max_bytes < 64 * 1024 {
            return Err(SettingsError::new(
                "spool_max_bytes",
                "must be at least 65536",
            ));
        }
        apps::check(&self.apps, self.allow_unsigned, self.dev)?;
        let kafka = &self.kafka;
        for (name, topic) in [
            ("kafka.topic", &kafka.topic),
            ("kafka.group_topic", &kafka.group_topic),
            ("kafka.user_topic", &kafka.user_topic),
            ("kafka.group_events_topic", &kafka.group_events_topic),
            ("kafka.other_topic", &kafka.other_topic),
        ]
        .into_iter()
        .chain(
            kafka
                .command_topics
                .values()
                .map(|t| ("kafka.command_topics", t)),
        ) {
            check_topic_name(name, topic)?;
        }
        if kafka.partitions < 1 {
            return Err(SettingsError::new("kafka.partitions", "must be at least 1"));
        }
        if kafka.replication_factor < 1 {
            return Err(SettingsError::new(
                "kafka.replication_factor",
                "must be at least 1",
            ));
        }
        check_topic_name("reconcile.state_topic", &self.reconcile.state_topic)?;
        millis_at_least(
            "reconcile.publish_timeout_ms",
            self.reconcile.publish_timeout_ms,
            1_000,
        )?;
        millis_at_least(
            "kafka.readiness_interval_ms",
            kafka.readiness_interval_ms,
            1,
        )?;
        for key in kafka.producer.keys() {
            if key == "bootstrap.servers" {
                return Err(SettingsError::new(
                    "kafka.producer.bootstrap.servers",
                    "set kafka.brokers (TIM_BRIDGE_KAFKA_BROKERS) instead",
                ));
            }
        }
        match kafka.producer.get("enable.idempotence").map(String::as_str) {
            None | Some("true") => {}
            Some(_) => return Err(SettingsError::new(
                "kafka.producer.enable.idempotence",
                "must stay true: the bridge's ordering and no-duplicate guarantees depend on it",
            )),
        }
        for key in ["max.in.flight.requests.per.connection", "max.in.flight"] {
            match kafka.producer.get(key).map(String::as_str) {
                None | Some("1") => {}
                Some(_) => return Err(SettingsError::new(
                    format!("kafka.producer.{key}"),
                    "must stay 1: with more requests in flight, librdkafka can report an event delivered that Kafka never wrote (a first batch refused on a new or long-idle partition while a later one was taken)",
                )),
            }
        }
        if kafka.producer.contains_key("statistics.interval.ms") {
            return Err(SettingsError::new(
                "kafka.producer.statistics.interval.ms",
                "set kafka.statistics_interval_ms instead",
            ));
        }
        if kafka.statistics_interval_ms == 0 {
            return Err(SettingsError::new(
                "kafka.statistics_interval_ms",
                "must be above 0: readiness learns from librdkafka's statistics whether Kafka gave the producer its id",
            ));
        }
        for key in ["message.timeout.ms", "delivery.timeout.ms"] {
            match kafka.producer.get(key).map(String::as_str) {
                None | Some("0") => {}
                Some(_) => return Err(SettingsError::new(
                    format!("kafka.producer.{key}"),
                    "must stay 0 (never give up): a record librdkafka times out while newer ones of its partition stay queued lets those land first; the bridge retries and reports stalls itself",
                )),
            }
        }
        match kafka.producer.get("acks").map(String::as_str) {
            None | Some("all") | Some("-1") => {}
            Some(_) => {
                return Err(SettingsError::new(
                    "kafka.producer.acks",
                    "must stay `all`: an event is only confirmed once every in-sync replica has it",
                ))
            }
        }
        Ok(())
    }
}

pub(super) fn check_topic_name(setting: &str, topic: &str) -> Result<(), SettingsError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(SettingsError::new(
            setting,
            format!("`{topic}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
        ))
    }
}
