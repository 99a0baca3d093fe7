//! The settings once checked: what the bridge runs on. A [`Config`] is only made by
//! `Config::try_from(settings)`, which runs every check of [`Settings::validate`] and
//! requires brokers, so whatever holds one holds settings that were validated. Times
//! are `Duration`s, counts that must not be zero are `NonZero`, topics are
//! [`TopicName`]s; each component is handed its own part.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::validate::check_topic_name;
use super::{Ack, App, KafkaSecurity, Network, Settings, SettingsError, Tls};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `/metrics` and `/readyz` here rather than on `listen`.
    pub admin_listen: Option<SocketAddr>,
    pub http: HttpConfig,
    pub admission: Admission,
    pub dedup: DedupConfig,
    pub buffer: BufferConfig,
    pub kafka: KafkaConfig,
    /// Bound on draining connections and on Kafka's last confirmations at shutdown.
    pub shutdown_timeout: Duration,
    /// Checked by `validate`; off unless it has an endpoint.
    pub tracing: super::TracingSettings,
}

/// What the server needs: the path, the limits, who may call.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub callback_path: String,
    pub max_body_bytes: NonZeroUsize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: NonZeroUsize,
    pub keep_alive_idle: Duration,
    pub max_requests_per_connection: u64,
    pub allow_networks: Vec<Network>,
    pub trusted_proxies: Vec<Network>,
    pub tls: Option<Tls>,
    /// Whether `/metrics` and `/readyz` are answered here (no `admin_listen`).
    pub serves_admin: bool,
}

/// What admitting a callback needs: the apps and their tokens, the clock's
/// tolerance, and which commands are published.
#[derive(Debug, Clone)]
pub struct Admission {
    pub apps: Vec<App>,
    pub request_time_skew: Duration,
    pub forward_other_commands: bool,
    pub publish_before_callbacks: bool,
}

#[derive(Debug, Clone)]
pub struct DedupConfig {
    /// `None`: event ids are not remembered (signed requests always are).
    pub event_window: Option<Duration>,
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub ack: Ack,
    pub capacity: NonZeroUsize,
    pub enqueue_timeout: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Send the spool's events even when it was written for another Kafka cluster.
    pub adopt_spool: bool,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: TopicName,
    pub group_topic: TopicName,
    pub user_topic: TopicName,
    pub group_events_topic: TopicName,
    pub other_topic: TopicName,
    pub command_topics: BTreeMap<String, TopicName>,
    /// Whether commands beyond the typed ones are published (to `other_topic`).
    pub publishes_other: bool,
    pub producer: BTreeMap<String, String>,
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    pub readiness_interval: Duration,
    /// `serve` gives up when Kafka has not once worked this long after start.
    pub startup_deadline: Option<Duration>,
    pub statistics_interval: Duration,
    pub retry_max_delay: Duration,
    pub security: KafkaSecurity,
}

/// A name Kafka takes for a topic: 1–249 of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicName(String);

impl TopicName {
    pub fn new(setting: &str, name: &str) -> Result<Self, SettingsError> {
        check_topic_name(setting, name).map(|()| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<Settings> for Config {
    type Error = SettingsError;

    fn try_from(s: Settings) -> Result<Self, SettingsError> {
        s.validate()?;
        let kafka = KafkaConfig::try_from(&s)?;
        let buffer = BufferConfig::try_from(&s)?;
        let nonzero = |value: usize| NonZeroUsize::new(value).expect("checked by validate");
        let ms = Duration::from_millis;
        Ok(Config {
            listen: s.listen,
            admin_listen: s.admin_listen,
            http: HttpConfig {
                callback_path: s.callback_path,
                max_body_bytes: nonzero(s.max_body_bytes),
                header_read_timeout: ms(s.limits.header_read_timeout_ms),
                body_read_timeout: ms(s.limits.body_read_timeout_ms),
                max_connections: nonzero(s.limits.max_connections),
                keep_alive_idle: ms(s.limits.keep_alive_idle_ms),
                max_requests_per_connection: s.limits.max_requests_per_connection,
                allow_networks: s.allow_networks,
                trusted_proxies: s.trusted_proxies,
                tls: s.tls,
                serves_admin: s.admin_listen.is_none(),
            },
            admission: Admission {
                apps: s.apps,
                request_time_skew: Duration::from_secs(s.request_time_skew_secs),
                forward_other_commands: s.forward_other_commands,
                publish_before_callbacks: s.publish_before_callbacks,
            },
            dedup: DedupConfig {
                event_window: (s.dedup_window_secs > 0)
                    .then(|| Duration::from_secs(s.dedup_window_secs)),
                max_bytes: s.dedup_max_bytes,
            },
            buffer,
            kafka,
            shutdown_timeout: ms(s.shutdown_timeout_ms),
            tracing: s.tracing,
        })
    }
}

impl TryFrom<&Settings> for BufferConfig {
    type Error = SettingsError;

    /// Where events wait, alone, for what needs no app (`spool drain`).
    fn try_from(s: &Settings) -> Result<Self, SettingsError> {
        Ok(BufferConfig {
            ack: s.ack,
            capacity: NonZeroUsize::new(s.queue_capacity)
                .ok_or_else(|| SettingsError::new("queue_capacity", "must be at least 1"))?,
            enqueue_timeout: Duration::from_millis(s.enqueue_timeout_ms),
            spool_dir: s.spool_dir.clone(),
            spool_max_bytes: s.spool_max_bytes,
            adopt_spool: s.adopt_spool,
        })
    }
}

impl TryFrom<&Settings> for KafkaConfig {
    type Error = SettingsError;

    /// The Kafka part alone, for what needs no app (`spool drain`): brokers, topics,
    /// the producer's properties and the security settings, each checked.
    fn try_from(s: &Settings) -> Result<Self, SettingsError> {
        s.require_brokers()?;
        s.kafka.security.validate()?;
        let k = &s.kafka;
        let command_topics = k
            .command_topics
            .iter()
            .map(|(command, topic)| {
                let setting = format!("kafka.command_topics.{command}");
                Ok((command.clone(), TopicName::new(&setting, topic)?))
            })
            .collect::<Result<_, SettingsError>>()?;
        Ok(KafkaConfig {
            brokers: k.brokers.clone().unwrap_or_default().trim().to_owned(),
            topic: TopicName::new("kafka.topic", &k.topic)?,
            group_topic: TopicName::new("kafka.group_topic", &k.group_topic)?,
            user_topic: TopicName::new("kafka.user_topic", &k.user_topic)?,
            group_events_topic: TopicName::new("kafka.group_events_topic", &k.group_events_topic)?,
            other_topic: TopicName::new("kafka.other_topic", &k.other_topic)?,
            command_topics,
            publishes_other: s.forward_other_commands || s.publish_before_callbacks,
            producer: k.producer.clone(),
            create_topics: k.create_topics,
            partitions: k.partitions,
            replication_factor: k.replication_factor,
            readiness_interval: Duration::from_millis(k.readiness_interval_ms),
            startup_deadline: (k.startup_deadline_ms > 0)
                .then(|| Duration::from_millis(k.startup_deadline_ms)),
            statistics_interval: Duration::from_millis(k.statistics_interval_ms),
            retry_max_delay: Duration::from_millis(k.retry_max_delay_ms),
            security: k.security.clone(),
        })
    }
}

impl Admission {
    pub fn app(&self, sdk_app_id: u64) -> Option<&App> {
        self.apps.iter().find(|a| a.sdk_app_id == sdk_app_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Settings {
        let mut s = Settings::from_toml(toml).unwrap();
        s.kafka.brokers = Some("kafka:9092".into());
        s
    }

    #[test]
    fn a_config_carries_durations_and_the_checked_topics() {
        let config = Config::try_from(settings(
            "enqueue_timeout_ms = 250\n[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]\n[kafka]\nretry_max_delay_ms = 1500",
        ))
        .unwrap();
        assert_eq!(config.buffer.enqueue_timeout, Duration::from_millis(250));
        assert_eq!(config.kafka.retry_max_delay, Duration::from_millis(1500));
        assert_eq!(config.kafka.topic.as_str(), "tim.c2c.messages");
        assert_eq!(config.dedup.event_window, None);
        assert!(config.admission.app(7).is_some());
    }

    #[test]
    fn settings_that_fail_a_check_make_no_config_and_the_error_names_the_setting() {
        let error = Config::try_from(settings(
            "queue_capacity = 0\n[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]",
        ))
        .unwrap_err();
        assert_eq!(error.setting, "queue_capacity");
        let mut no_brokers = settings("[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]");
        no_brokers.kafka.brokers = None;
        assert_eq!(
            Config::try_from(no_brokers).unwrap_err().setting,
            "kafka.brokers"
        );
    }

    #[test]
    fn a_command_topic_is_a_checked_topic_name_too() {
        let mut s = settings("[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]");
        s.kafka
            .command_topics
            .insert("State.StateChange".into(), "no spaces allowed".into());
        assert_eq!(
            Config::try_from(s).unwrap_err().setting,
            "kafka.command_topics"
        );
    }
}
