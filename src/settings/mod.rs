//! Typed settings: a TOML file, then `TIM_BRIDGE_*` environment variables on top,
//! checked once at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod apps;
mod config;
mod env;
mod kafka_security;
mod network;
mod traces;
mod validate;

pub use apps::{printable, App, DEV_TOKEN, MIN_TOKEN_BYTES};
pub use config::{
    Admission, BufferConfig, Config, DedupConfig, HttpConfig, KafkaConfig, TopicName,
};
pub use env::{millis_at_least, Overlay};
pub use kafka_security::{KafkaSecurity, Mechanism, Protocol};
pub use network::{client_address, parse_networks, Limits, Network, Tls};
pub use traces::{Sampler, TracingSettings};

/// A secret that never prints itself.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Every environment variable the bridge reads (`TIM_BRIDGE_CONFIG` names the file).
pub const ENV_VARS: &[&str] = &[
    "TIM_BRIDGE_CONFIG",
    "TIM_BRIDGE_LISTEN",
    "TIM_BRIDGE_ADMIN_LISTEN",
    "TIM_BRIDGE_CALLBACK_PATH",
    "TIM_BRIDGE_SDKAPPID",
    "TIM_BRIDGE_TOKEN",
    "TIM_BRIDGE_REST_ADMIN",
    "TIM_BRIDGE_SECRET_KEY",
    "TIM_BRIDGE_REST_URL",
    "TIM_BRIDGE_ALLOW_UNSIGNED",
    "TIM_BRIDGE_KAFKA_BROKERS",
    "TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS",
    "TIM_BRIDGE_TOPIC",
    "TIM_BRIDGE_GROUP_TOPIC",
    "TIM_BRIDGE_USER_TOPIC",
    "TIM_BRIDGE_GROUP_EVENTS_TOPIC",
    "TIM_BRIDGE_OTHER_TOPIC",
    "TIM_BRIDGE_ACK",
    "TIM_BRIDGE_SPOOL_DIR",
    "TIM_BRIDGE_TLS_CERT_FILE",
    "TIM_BRIDGE_TLS_KEY_FILE",
    "TIM_BRIDGE_ALLOW_NETWORKS",
    "TIM_BRIDGE_TRUSTED_PROXIES",
    "TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL",
    "TIM_BRIDGE_KAFKA_CA_FILE",
    "TIM_BRIDGE_KAFKA_CERT_FILE",
    "TIM_BRIDGE_KAFKA_KEY_FILE",
    "TIM_BRIDGE_KAFKA_KEY_PASSWORD",
    "TIM_BRIDGE_KAFKA_SASL_MECHANISM",
    "TIM_BRIDGE_KAFKA_SASL_USERNAME",
    "TIM_BRIDGE_KAFKA_SASL_PASSWORD",
    "TIM_BRIDGE_KAFKA_SASL_PASSWORD_FILE",
];

/// Settings `serve` cannot start without (outside `--dev`).
pub const REQUIRED_ENV_VARS: &[&str] = &["TIM_BRIDGE_SDKAPPID", "TIM_BRIDGE_KAFKA_BROKERS"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `/metrics` and `/readyz` are served instead of the callback port (which
    /// then answers them 404): the probes' and the scraper's port, kept off the
    /// public one. None: on the callback port.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    #[serde(default = "default_callback_path")]
    pub callback_path: String,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How far `RequestTime` may be from the local clock, either way.
    #[serde(default = "default_request_time_skew_secs")]
    pub request_time_skew_secs: u64,
    /// Forward commands the bridge does not type to `kafka.other_topic`.
    #[serde(default = "default_true")]
    pub forward_other_commands: bool,
    /// Also publish the before-callbacks, for audit: `C2C.CallbackBeforeSendMsg` as
    /// `tim.c2c.message.pre_send`, the others as `tim.callback`. Each is answered
    /// "allow" either way. (`publish_before_send`, its old name, is still read.)
    #[serde(default, alias = "publish_before_send")]
    pub publish_before_callbacks: bool,
    /// Events accepted but not yet confirmed by Kafka, at most.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How long a callback may wait for room in a full queue before it gets 503.
    #[serde(default = "default_enqueue_timeout_ms")]
    pub enqueue_timeout_ms: u64,
    /// Bound on draining connections and flushing Kafka at shutdown.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Drop events whose `id` was published this recently (0: off), e.g. when Tencent's
    /// retry-on-timeout sends a callback again. Signed requests replayed inside their
    /// freshness window are always dropped.
    #[serde(default)]
    pub dedup_window_secs: u64,
    /// Memory each duplicate filter may take, in bytes: it remembers every key for
    /// its whole window up to `dedup::rate_held` callbacks/s (64 MiB: ~16,400/s over
    /// the 121 s replay window), and past that forgets the oldest early, counted.
    #[serde(default = "default_dedup_max_bytes")]
    pub dedup_max_bytes: u64,
    /// When a callback is answered: once its event is fsynced to the spool (`durable`), or
    /// once it is in the in-memory queue (`memory`).
    #[serde(default)]
    pub ack: Ack,
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    #[serde(default)]
    pub limits: Limits,
    /// Serve HTTPS instead of HTTP.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Source networks allowed to send callbacks; empty: any.
    #[serde(default)]
    pub allow_networks: Vec<Network>,
    /// Proxies whose `X-Forwarded-For` names the real client.
    #[serde(default)]
    pub trusted_proxies: Vec<Network>,
    #[serde(default)]
    pub apps: Vec<App>,
    /// Take callbacks without a signature for apps with no token; without it such an
    /// app is refused at start-up.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Set by `serve --dev` (which allows its own known token), never by a file.
    #[serde(skip)]
    pub dev: bool,
    /// Set by `--adopt-spool`, never by a file: send a spool's events to the configured
    /// cluster even when it was written for another.
    #[serde(skip)]
    pub adopt_spool: bool,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub reconcile: ReconcileSettings,
    #[serde(default)]
    pub tracing: TracingSettings,
}

/// `reconcile`'s own settings (its Kafka and apps are the bridge's).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// The compacted topic where each hour's outcome is kept, so that the next run,
    /// anywhere, continues where the last one stopped.
    #[serde(default = "default_state_topic")]
    pub state_topic: String,
    /// How long before its hour an event may have reached Kafka (the clocks' skew):
    /// an hour's records are read from its start less this.
    #[serde(default = "default_early_margin_secs")]
    pub early_margin_secs: u64,
    /// How long after its hour an event may have reached Kafka and still be found
    /// (a spool drained after an outage): records are read up to the hour's end plus
    /// this. One that reached Kafka later is published again, with the same id.
    #[serde(default = "default_late_margin_secs")]
    pub late_margin_secs: u64,
    /// How long after its end Tencent should have finished an hour's files (its pages:
    /// "一般1小时内处理完毕"). `--last` asks only for hours this old; for such an hour
    /// 1004 means it had no message, before that that it is not ready yet.
    #[serde(default = "default_ready_after_secs")]
    pub ready_after_secs: u64,
    /// How long Kafka may take to confirm a published event before the hour is
    /// reported not done (the run then exits 1, and the next run does the hour again).
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        toml::from_str("").expect("empty reconcile settings take their defaults")
    }
}

fn default_state_topic() -> String {
    "tim.reconcile.state".into()
}
fn default_early_margin_secs() -> u64 {
    600
}
fn default_late_margin_secs() -> u64 {
    6 * 3600
}
fn default_ready_after_secs() -> u64 {
    3600
}
fn default_publish_timeout_ms() -> u64 {
    120_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    #[default]
    Durable,
    Memory,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    #[serde(default)]
    pub brokers: Option<String>,
    /// Topic of the typed one-to-one message events (sent and withdrawn).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Topic of group message events (sent, recalled, read, extended).
    #[serde(default = "default_group_topic")]
    pub group_topic: String,
    /// Topic of user events: presence, profiles, friends and blocklists.
    #[serde(default = "default_user_topic")]
    pub user_topic: String,
    /// Topic of the group lifecycle: creation, membership, changes, destruction.
    #[serde(default = "default_group_events_topic")]
    pub group_events_topic: String,
    /// Topic of the generic events of every other command.
    #[serde(default = "default_other_topic")]
    pub other_topic: String,
    /// Callback command → topic, overriding the ones above.
    #[serde(default)]
    pub command_topics: BTreeMap<String, String>,
    /// librdkafka producer properties, passed through.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
    #[serde(default)]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    #[serde(default = "default_readiness_interval_ms")]
    pub readiness_interval_ms: u64,
    /// `serve` exits 1 when Kafka has not once worked this long after start; 0 waits for ever.
    #[serde(default)]
    pub startup_deadline_ms: u64,
    /// How often librdkafka reports its statistics (metrics, and readiness's producer id).
    #[serde(default = "default_statistics_interval_ms")]
    pub statistics_interval_ms: u64,
    /// Cap of the backoff between two delivery attempts of one event.
    #[serde(default = "default_retry_max_delay_ms")]
    pub retry_max_delay_ms: u64,
    #[serde(default)]
    pub security: KafkaSecurity,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        toml::from_str("").expect("empty kafka settings take their defaults")
    }
}

fn default_listen() -> SocketAddr {
    "0.0.0.0:8080".parse().expect("valid default address")
}
fn default_callback_path() -> String {
    "/callback".into()
}
/// An event's envelope and fields beyond its body, at most (a body of 262,122 bytes
/// made an event of 262,396 in tests/api/limits.rs).
pub const EVENT_OVERHEAD_BYTES: usize = 4096;

fn default_max_body_bytes() -> usize {
    256 * 1024
}
fn default_request_time_skew_secs() -> u64 {
    60
}
fn default_true() -> bool {
    true
}
fn default_queue_capacity() -> usize {
    10_000
}
fn default_enqueue_timeout_ms() -> u64 {
    200
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
fn default_dedup_max_bytes() -> u64 {
    64 << 20
}

fn default_spool_dir() -> PathBuf {
    "./spool".into()
}
fn default_spool_max_bytes() -> u64 {
    1 << 30
}
fn default_topic() -> String {
    "tim.c2c.messages".into()
}
fn default_group_topic() -> String {
    "tim.group.messages".into()
}
fn default_user_topic() -> String {
    "tim.users".into()
}
fn default_group_events_topic() -> String {
    "tim.group.events".into()
}
fn default_other_topic() -> String {
    "tim.callbacks.other".into()
}
fn default_partitions() -> i32 {
    4
}
fn default_replication_factor() -> i32 {
    1
}
fn default_readiness_interval_ms() -> u64 {
    5_000
}
fn default_statistics_interval_ms() -> u64 {
    1_000
}
fn default_retry_max_delay_ms() -> u64 {
    30_000
}

/// A setting that cannot be used, named as the user wrote it.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingsError {
    pub setting: String,
    pub reason: String,
}

impl SettingsError {
    pub(crate) fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.setting, self.reason)
    }
}

impl std::error::Error for SettingsError {}

/// A TOML file into `T`; an error names the setting by its path (`listen`,
/// `kafka.bogus`, `kafka.producer."linger.ms"`), else `whole`.
pub(crate) fn from_toml_naming<T: serde::de::DeserializeOwned>(
    text: &str,
    whole: &str,
) -> Result<T, SettingsError> {
    toml::from_str(text).map_err(|plain: toml::de::Error| {
        let Ok(de) = toml::Deserializer::parse(text) else {
            // Not TOML at all: where it breaks is all there is to say.
            let at = plain
                .span()
                .and_then(|span| text.get(span))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| whole.to_owned());
            return SettingsError::new(at, plain.message().to_owned());
        };
        let Err(error) = serde_path_to_error::deserialize::<_, T>(de) else {
            return SettingsError::new(whole, plain.message().to_owned());
        };
        let path = error.path().to_string();
        let setting = match path.as_str() {
            "." | "" => whole.to_owned(),
            path => path.to_owned(),
        };
        SettingsError::new(setting, error.inner().message().to_owned())
    })
}

impl Default for Settings {
    fn default() -> Self {
        toml::from_str("").expect("empty settings take their defaults")
    }
}

impl Settings {
    /// Reads the file (if any) and applies the process environment; `Config::try_from`
    /// checks the result.
    pub fn read(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::read_with_env(file, |name| std::env::var(name).ok())
    }

    pub fn read_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SettingsError::new("--config", format!("cannot read {}: {e}", path.display()))
                })?;
                Self::from_toml(&text)?
            }
            None => Self::default(),
        };
        settings.apply_env(env)?;
        Ok(settings)
    }

    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        from_toml_naming(text, "config file")
    }

    /// What `serve` and `check-config` warn about at start: settings that run, but not
    /// as one probably meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = apps::warnings(&self.apps);
        warnings.extend(self.event_size_warning());
        warnings
    }

    /// Why the producer might refuse the events of the largest bodies taken: an event
    /// is its body plus under 1 KiB, and librdkafka refuses one above its
    /// `message.max.bytes` (1,000,000 unless `[kafka.producer]` says otherwise).
    pub fn event_size_warning(&self) -> Option<String> {
        let largest_event = self.max_body_bytes.saturating_add(EVENT_OVERHEAD_BYTES);
        let limit = self
            .kafka
            .producer
            .get("message.max.bytes")
            .map_or(Some(1_000_000), |v| v.trim().parse::<usize>().ok())?;
        (largest_event > limit).then(|| {
            format!(
                "max_body_bytes allows events of up to {largest_event} bytes, above the producer's \
                 message.max.bytes ({limit}): such events will be dead letters; raise \
                 [kafka.producer] \"message.max.bytes\" and the topics' max.message.bytes, or lower max_body_bytes"
            )
        })
    }

    /// Brokers are required to serve, except in `--dev`, which brings its own.
    pub fn require_brokers(&self) -> Result<(), SettingsError> {
        match &self.kafka.brokers {
            Some(b) if !b.trim().is_empty() => Ok(()),
            _ => Err(SettingsError::new(
                "kafka.brokers",
                "not set: set TIM_BRIDGE_KAFKA_BROKERS (or kafka.brokers), or run `serve --dev` for an in-process cluster",
            )),
        }
    }

    /// The settings as TOML, with tokens and secret-looking producer properties redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for (key, value) in shown.kafka.producer.iter_mut() {
            if [
                "password",
                "secret",
                "token",
                "key.pem",
                "oauthbearer.config",
                "jaas",
            ]
            .iter()
            .any(|s| key.contains(s))
            {
                *value = "[redacted]".into();
            }
        }
        toml::to_string(&shown).expect("settings always serialize")
    }
}

#[cfg(test)]
mod tests;
