//! Typed settings: a TOML file, then `TIM_BRIDGE_*` environment variables on top,
//! checked once at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod apps;
mod config;
mod kafka_security;
mod network;

pub use apps::{printable, App, DEV_TOKEN, MIN_TOKEN_BYTES};
pub use config::{
    Admission, BufferConfig, Config, DedupConfig, HttpConfig, KafkaConfig, TopicName,
};
pub use kafka_security::{KafkaSecurity, Mechanism, Protocol};
pub use network::{client_address, parse_networks, Limits, Network, Tls};

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

    /// Environment variables win over the file.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("TIM_BRIDGE_LISTEN") {
            self.listen = v.trim().parse().map_err(|_| {
                SettingsError::new(
                    "TIM_BRIDGE_LISTEN",
                    format!("`{v}` is not an address like 0.0.0.0:8080"),
                )
            })?;
        }
        if let Some(v) = var("TIM_BRIDGE_ADMIN_LISTEN") {
            self.admin_listen = Some(v.trim().parse().map_err(|_| {
                SettingsError::new(
                    "TIM_BRIDGE_ADMIN_LISTEN",
                    format!(
                        "`{}` is not an address like 0.0.0.0:9091",
                        printable(&v, 64)
                    ),
                )
            })?);
        }
        if let Some(v) = var("TIM_BRIDGE_CALLBACK_PATH") {
            self.callback_path = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_SDKAPPID") {
            self.apps = apps::apps_from_env(&v, &self.apps)?;
        }
        if let Some(v) = env("TIM_BRIDGE_TOKEN") {
            let tokens = apps::tokens_from_env(&v)?;
            for app in &mut self.apps {
                app.tokens = tokens.clone();
            }
        }
        if let Some(v) = var("TIM_BRIDGE_ALLOW_UNSIGNED") {
            self.allow_unsigned = match v.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(SettingsError::new(
                        "TIM_BRIDGE_ALLOW_UNSIGNED",
                        format!("`{}` is neither `true` nor `false`", printable(other, 32)),
                    ))
                }
            };
        }
        if let Some(v) = var("TIM_BRIDGE_ACK") {
            self.ack = match v.trim() {
                "durable" => Ack::Durable,
                "memory" => Ack::Memory,
                other => {
                    return Err(SettingsError::new(
                        "TIM_BRIDGE_ACK",
                        format!("`{other}` is neither `durable` nor `memory`"),
                    ))
                }
            };
        }
        if let Some(v) = var("TIM_BRIDGE_SPOOL_DIR") {
            self.spool_dir = v.trim().into();
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_BROKERS") {
            self.kafka.brokers = Some(v.trim().to_owned());
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS") {
            self.kafka.startup_deadline_ms = v.trim().parse().map_err(|_| {
                SettingsError::new(
                    "TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS",
                    format!("`{}` is not a number of milliseconds", v.trim()),
                )
            })?;
        }
        if let Some(v) = var("TIM_BRIDGE_TOPIC") {
            self.kafka.topic = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_GROUP_TOPIC") {
            self.kafka.group_topic = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_USER_TOPIC") {
            self.kafka.user_topic = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_GROUP_EVENTS_TOPIC") {
            self.kafka.group_events_topic = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_OTHER_TOPIC") {
            self.kafka.other_topic = v.trim().to_owned();
        }
        let cert = var("TIM_BRIDGE_TLS_CERT_FILE");
        let key = var("TIM_BRIDGE_TLS_KEY_FILE");
        match (cert, key, &mut self.tls) {
            (None, None, _) => {}
            (Some(c), Some(k), _) => {
                self.tls = Some(Tls {
                    cert_file: c.trim().into(),
                    key_file: k.trim().into(),
                })
            }
            (c, k, Some(tls)) => {
                if let Some(c) = c {
                    tls.cert_file = c.trim().into();
                }
                if let Some(k) = k {
                    tls.key_file = k.trim().into();
                }
            }
            (_, _, None) => {
                return Err(SettingsError::new(
                    "TIM_BRIDGE_TLS_CERT_FILE",
                    "HTTPS needs both TIM_BRIDGE_TLS_CERT_FILE and TIM_BRIDGE_TLS_KEY_FILE",
                ))
            }
        }
        for (name, list) in [
            ("TIM_BRIDGE_ALLOW_NETWORKS", &mut self.allow_networks),
            ("TIM_BRIDGE_TRUSTED_PROXIES", &mut self.trusted_proxies),
        ] {
            if let Some(v) = var(name) {
                *list = parse_networks(&v)
                    .map_err(|reason| SettingsError::new(name, reason.to_string()))?;
            }
        }
        self.kafka.security.apply_env(var)?;
        Ok(())
    }

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
        if kafka.readiness_interval_ms == 0 {
            return Err(SettingsError::new(
                "kafka.readiness_interval_ms",
                "must be above 0",
            ));
        }
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

    /// Brokers are required to serve, except in `--dev`, which brings its own.
    /// Why the producer might refuse the events of the largest bodies taken: an event
    /// is its body plus under 1 KiB, and librdkafka refuses one above its
    /// `message.max.bytes` (1,000,000 unless `[kafka.producer]` says otherwise).
    /// What `serve` and `check-config` warn about at start: settings that run, but not
    /// as one probably meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = apps::warnings(&self.apps);
        warnings.extend(self.event_size_warning());
        warnings
    }

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

fn check_topic_name(setting: &str, topic: &str) -> Result<(), SettingsError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_wins_over_the_file() {
        let file = r#"
            listen = "127.0.0.1:9000"
            [[apps]]
            sdk_app_id = 1
            tokens = ["from-the-file-0123"]
            [kafka]
            topic = "file.topic"
        "#;
        let mut s = Settings::from_toml(file).unwrap();
        s.apply_env(env(&[
            ("TIM_BRIDGE_TOPIC", "env.topic"),
            ("TIM_BRIDGE_SDKAPPID", "1, 1400000002"),
            ("TIM_BRIDGE_TOKEN", "t0ken-from-the-environment"),
        ]))
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.kafka.topic, "env.topic");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.apps.len(), 2);
        assert_eq!(s.apps[1].tokens[0].expose(), "t0ken-from-the-environment");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let err = Settings::from_toml("listne = \"x\"").unwrap_err();
        assert_eq!(err.setting, "listne", "{err}");
    }

    #[test]
    fn a_type_error_in_the_file_names_the_setting_by_its_path_not_the_value() {
        for (text, setting) in [
            ("listen = \"x\"", "listen"),
            ("ack = \"fast\"", "ack"),
            ("[kafka]\nbogus = 1", "kafka.bogus"),
            ("[kafka]\npartitions = \"many\"", "kafka.partitions"),
            ("[[apps]]\nsdk_app_id = \"x\"", "apps[0].sdk_app_id"),
            (
                "[kafka.producer]\n\"linger.ms\" = 5",
                "kafka.producer.linger.ms",
            ),
        ] {
            assert_eq!(
                Settings::from_toml(text).unwrap_err().setting,
                setting,
                "{text}"
            );
        }
    }

    #[test]
    fn a_bad_sdkappid_names_the_variable() {
        let mut s = Settings::default();
        let err = s
            .apply_env(env(&[("TIM_BRIDGE_SDKAPPID", "abc")]))
            .unwrap_err();
        assert_eq!(err.setting, "TIM_BRIDGE_SDKAPPID");
    }

    #[test]
    fn ack_is_durable_unless_memory_is_asked_for() {
        assert_eq!(Settings::default().ack, Ack::Durable);
        let mut s = Settings::default();
        s.apply_env(env(&[
            ("TIM_BRIDGE_ACK", "memory"),
            ("TIM_BRIDGE_SPOOL_DIR", "/var/spool/tim"),
        ]))
        .unwrap();
        assert_eq!(
            (s.ack, s.spool_dir.to_str()),
            (Ack::Memory, Some("/var/spool/tim"))
        );
        let err = s.apply_env(env(&[("TIM_BRIDGE_ACK", "fast")])).unwrap_err();
        assert_eq!(err.setting, "TIM_BRIDGE_ACK");
    }

    #[test]
    fn no_app_is_refused() {
        let err = Settings::default().validate().unwrap_err();
        assert_eq!(err.setting, "apps");
    }

    #[test]
    fn three_tokens_are_refused() {
        let s =
            Settings::from_toml("[[apps]]\nsdk_app_id = 7\ntokens = [\"a\",\"b\",\"c\"]").unwrap();
        assert_eq!(s.validate().unwrap_err().setting, "apps[7].tokens");
    }

    #[test]
    fn weakening_the_producer_is_refused() {
        let s = Settings::from_toml("[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]\n[kafka.producer]\nacks = \"1\"")
            .unwrap();
        assert_eq!(s.validate().unwrap_err().setting, "kafka.producer.acks");
        let s = Settings::from_toml(
            "[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]\n[kafka.producer]\n\"max.in.flight\" = \"5\"",
        )
        .unwrap();
        assert_eq!(
            s.validate().unwrap_err().setting,
            "kafka.producer.max.in.flight"
        );
        let s = Settings::from_toml(
            "[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]\n[kafka.producer]\n\"message.timeout.ms\" = \"30000\"",
        )
        .unwrap();
        assert_eq!(
            s.validate().unwrap_err().setting,
            "kafka.producer.message.timeout.ms"
        );
    }

    #[test]
    fn a_bad_topic_name_is_refused() {
        let mut s =
            Settings::from_toml("[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]")
                .unwrap();
        s.kafka.topic = "has space".into();
        assert_eq!(s.validate().unwrap_err().setting, "kafka.topic");
    }

    #[test]
    fn the_example_file_in_deploy_is_valid_once_its_placeholder_token_is_replaced() {
        let mut s =
            Settings::from_toml(include_str!("../../deploy/tim-kafka-bridge.toml")).unwrap();
        let refused = s.validate().unwrap_err();
        assert!(refused.reason.contains("placeholder"), "{refused}");
        s.apply_env(env(&[("TIM_BRIDGE_TOKEN", "the-token-of-the-im-console")]))
            .unwrap();
        s.validate().unwrap();
        assert_eq!(s.kafka.partitions, 12);
    }

    #[test]
    fn every_listed_variable_is_read() {
        for name in ENV_VARS.iter().filter(|n| **n != "TIM_BRIDGE_CONFIG") {
            let value = match *name {
                "TIM_BRIDGE_LISTEN" | "TIM_BRIDGE_ADMIN_LISTEN" => "127.0.0.1:9",
                "TIM_BRIDGE_SDKAPPID" => "1, 42",
                "TIM_BRIDGE_ALLOW_UNSIGNED" => "true",
                "TIM_BRIDGE_ACK" => "memory",
                "TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS" => "60000",
                "TIM_BRIDGE_ALLOW_NETWORKS" | "TIM_BRIDGE_TRUSTED_PROXIES" => "10.0.0.0/8",
                "TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL" => "ssl",
                "TIM_BRIDGE_KAFKA_SASL_MECHANISM" => "PLAIN",
                _ => "changed",
            };
            let mut s = Settings::from_toml(
                "[[apps]]\nsdk_app_id = 1\ntokens = [\"0123456789abcdef\"]\n[tls]\ncert_file = \"c\"\nkey_file = \"k\"",
            )
            .unwrap();
            let before = format!("{s:?}");
            s.apply_env(env(&[(name, value)])).unwrap();
            let after = format!("{s:?}");
            let token_changed = *name == "TIM_BRIDGE_TOKEN" && s.apps[0].tokens.len() == 1;
            assert!(
                before != after || token_changed,
                "{name} is listed but not read"
            );
        }
    }

    #[test]
    fn the_redacted_toml_hides_tokens_and_producer_secrets_and_reads_back() {
        let mut s =
            Settings::from_toml("[[apps]]\nsdk_app_id = 1\ntokens = [\"hunter2\"]").unwrap();
        s.kafka
            .producer
            .insert("sasl.password".into(), "swordfish".into());
        s.kafka.producer.insert("linger.ms".into(), "7".into());
        s.kafka.security = KafkaSecurity {
            protocol: Protocol::SaslSsl,
            sasl_mechanism: Some(Mechanism::ScramSha512),
            sasl_username: Some("bridge".into()),
            sasl_password: Some(Secret::new("opensesame")),
            key_password: Some(Secret::new("keypass")),
            ..KafkaSecurity::default()
        };
        let shown = s.to_redacted_toml();
        for secret in ["hunter2", "swordfish", "opensesame", "keypass"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("SCRAM-SHA-512"), "{shown}");
        assert!(shown.contains("\"linger.ms\" = \"7\""), "{shown}");
        // It reads back; its tokens are no tokens any more.
        let read_back = Settings::from_toml(&shown).unwrap().validate().unwrap_err();
        assert_eq!(read_back.setting, "apps[1].tokens");
    }

    #[test]
    fn secrets_never_print() {
        let app = App {
            sdk_app_id: 1,
            tokens: vec![Secret::new("hunter2")],
        };
        assert!(!format!("{app:?}").contains("hunter2"));
        assert!(!toml::to_string(&app).unwrap().contains("hunter2"));
    }

    #[test]
    fn a_body_limit_whose_events_the_producer_would_refuse_is_warned_of() {
        let mut s =
            Settings::from_toml("max_body_bytes = 2000000\n[[apps]]\nsdk_app_id = 1").unwrap();
        let warning = s.event_size_warning().unwrap();
        assert!(warning.contains("message.max.bytes") && warning.contains("max_body_bytes"));
        s.kafka
            .producer
            .insert("message.max.bytes".into(), "3000000".into());
        assert_eq!(s.event_size_warning(), None);
        assert_eq!(Settings::default().event_size_warning(), None);
    }
}
