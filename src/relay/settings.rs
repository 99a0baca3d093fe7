//! A relay file: its listener, the bridge's `[kafka]` table, librdkafka consumer
//! properties, and the subscriptions. Checked once, with errors naming the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;
use serde::Deserialize;

use crate::settings::{
    millis_at_least, KafkaSettings, Overlay, Secret, SettingsError, TracingSettings,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFile {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// librdkafka consumer properties, passed through (e.g. `session.timeout.ms`).
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// How long a shutdown waits for in-flight deliveries.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionFile>,
    /// OpenTelemetry traces, as the bridge's `[tracing]` (and the same `OTEL_*`
    /// variables): a consumer span per event and a client span per HTTP attempt.
    #[serde(default)]
    pub tracing: TracingSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFile {
    pub name: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub im_group: Option<String>,
    pub url: String,
    /// For an https:// URL signed by a private CA: that CA's PEM file, trusted instead
    /// of the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_retry_for")]
    pub retry_for: String,
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    #[serde(default)]
    pub give_up_on_4xx: bool,
    /// Cap of the backoff between two attempts.
    #[serde(default = "default_retry_max_delay_ms")]
    pub retry_max_delay_ms: u64,
}

fn default_listen() -> SocketAddr {
    "0.0.0.0:9090".parse().expect("a valid default address")
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_in_flight() -> usize {
    64
}
fn default_retry_for() -> String {
    "1h".into()
}
fn default_retry_max_delay_ms() -> u64 {
    30_000
}

/// A subscription, checked.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub name: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub types: Vec<String>,
    pub user: Option<String>,
    pub im_group: Option<String>,
    pub url: Uri,
    pub ca_file: Option<PathBuf>,
    /// The HMAC key: the base64 part of `whsec_...`, decoded.
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub retry_for: Duration,
    pub retry_max_delay: Duration,
    pub dead_letter_topic: Option<String>,
    pub give_up_on_4xx: bool,
}

#[derive(Debug)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub brokers: String,
    pub security: crate::settings::KafkaSecurity,
    pub consumer: BTreeMap<String, String>,
    pub shutdown_timeout: Duration,
    pub subscriptions: Vec<Subscription>,
    /// Checked: `tracing.checked()` cannot fail.
    pub tracing: TracingSettings,
}

impl RelayFile {
    pub fn read(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        crate::settings::from_toml_naming(text, "relay file")
    }

    /// Environment variables (`TIM_BRIDGE_KAFKA_*`, `TIM_BRIDGE_RELAY_LISTEN`) win
    /// over the file; then every setting is checked.
    pub fn check(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RelayConfig, SettingsError> {
        let env = Overlay::new(env);
        if let Some(listen) = env.address("TIM_BRIDGE_RELAY_LISTEN", "0.0.0.0:9090")? {
            self.listen = listen;
        }
        self.kafka.apply_connection_env(&env)?;
        self.kafka.security.validate()?;
        self.tracing.apply_env(|name| env.var(name))?;
        self.tracing.checked()?;
        let brokers = self
            .kafka
            .brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| {
                SettingsError::new("kafka.brokers", "required (or TIM_BRIDGE_KAFKA_BROKERS)")
            })?;
        if self.subscriptions.is_empty() {
            return Err(SettingsError::new(
                "subscriptions",
                "at least one [[subscriptions]] table is required",
            ));
        }
        let mut subscriptions = Vec::with_capacity(self.subscriptions.len());
        for (i, s) in self.subscriptions.into_iter().enumerate() {
            let checked = s.check(i)?;
            if subscriptions
                .iter()
                .any(|o: &Subscription| o.name == checked.name)
            {
                return Err(SettingsError::new(
                    format!("subscriptions[{i}].name"),
                    format!("`{}` is used twice", checked.name),
                ));
            }
            subscriptions.push(checked);
        }
        Ok(RelayConfig {
            listen: self.listen,
            brokers: brokers.trim().to_owned(),
            security: self.kafka.security,
            consumer: self.consumer,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            subscriptions,
            tracing: self.tracing,
        })
    }
}

impl SubscriptionFile {
    fn check(self, i: usize) -> Result<Subscription, SettingsError> {
        let at = |field: &str| format!("subscriptions[{i}].{field}");
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(SettingsError::new(
                at("name"),
                "letters, digits, `.`, `_` and `-` only, not empty",
            ));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(SettingsError::new(
                at("topics"),
                "at least one topic, none empty",
            ));
        }
        let url: Uri = self
            .url
            .parse()
            .map_err(|e| SettingsError::new(at("url"), format!("`{}`: {e}", self.url)))?;
        let shown = crate::outbound::redacted_url(&url);
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(SettingsError::new(
                at("url"),
                format!("`{shown}`: an http:// or https:// URL with a host"),
            ));
        }
        if let Some(ca) = &self.ca_file {
            if url.scheme_str() != Some("https") {
                return Err(SettingsError::new(
                    at("ca_file"),
                    "only for an https:// url",
                ));
            }
            crate::outbound::client(Some(ca), Duration::from_secs(1), 1)
                .map_err(|why| SettingsError::new(at("ca_file"), why.to_string()))?;
        }
        let secret = match (self.secret, self.secret_file) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::new(
                    at("secret_file"),
                    "set secret or secret_file, not both",
                ))
            }
            (Some(s), None) => Some(s.expose().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        SettingsError::new(
                            at("secret_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if secret.as_deref() == Some(super::sign::SPECIFICATION_EXAMPLE) {
            return Err(SettingsError::new(
                at("secret"),
                "is the Standard Webhooks specification's published example, known to everyone: \
                 make one of your own (`echo whsec_$(openssl rand -base64 24)`)",
            ));
        }
        let key = secret
            .map(|s| {
                super::sign::secret_key(&s).map_err(|why| SettingsError::new(at("secret"), why))
            })
            .transpose()?;
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let header = hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                SettingsError::new(at("headers"), format!("`{name}` is not a header name"))
            })?;
            let value = hyper::header::HeaderValue::from_str(value.expose()).map_err(|_| {
                SettingsError::new(
                    at("headers"),
                    format!("the value of `{name}` is not a header value"),
                )
            })?;
            headers.push((header, value));
        }
        let timeout = millis_at_least(&at("timeout_ms"), self.timeout_ms, 1)?;
        if self.max_in_flight == 0 {
            return Err(SettingsError::new(
                at("max_in_flight"),
                "must be at least 1",
            ));
        }
        let retry_for = humantime::parse_duration(&self.retry_for).map_err(|e| {
            SettingsError::new(
                at("retry_for"),
                format!("`{}`: {e} (e.g. 1h, 30m)", self.retry_for),
            )
        })?;
        let retry_max_delay =
            millis_at_least(&at("retry_max_delay_ms"), self.retry_max_delay_ms, 1)?;
        if let Some(topic) = &self.dead_letter_topic {
            if topic.trim().is_empty() || self.topics.contains(topic) {
                return Err(SettingsError::new(
                    at("dead_letter_topic"),
                    "a topic of its own, not one the subscription reads",
                ));
            }
        }
        Ok(Subscription {
            group_id: format!("tim-relay.{}", self.name),
            name: self.name,
            topics: self.topics,
            types: self.types,
            user: self.user,
            im_group: self.im_group,
            url,
            ca_file: self.ca_file,
            key,
            headers,
            timeout,
            max_in_flight: self.max_in_flight,
            retry_for,
            retry_max_delay,
            dead_letter_topic: self.dead_letter_topic,
            give_up_on_4xx: self.give_up_on_4xx,
        })
    }
}

impl RelayConfig {
    /// What `check-config` prints: every setting, secrets left out.
    /// The effective settings as a TOML file the relay reads back, secrets redacted
    /// (a subscription's secret and header values, passwords in URLs and properties).
    pub fn describe(&self) -> String {
        use toml::{Table, Value};
        let redacted = || Value::from("[redacted]");
        let mut root = Table::new();
        root.insert("listen".into(), self.listen.to_string().into());
        root.insert(
            "shutdown_timeout_ms".into(),
            (self.shutdown_timeout.as_millis() as i64).into(),
        );
        let mut kafka = Table::new();
        kafka.insert("brokers".into(), self.brokers.clone().into());
        if let Ok(Value::Table(security)) = Value::try_from(&self.security) {
            if !security.is_empty() {
                kafka.insert("security".into(), Value::Table(security));
            }
        }
        root.insert("kafka".into(), Value::Table(kafka));
        let consumer: Table = self
            .consumer
            .iter()
            .map(|(key, value)| {
                let secret = ["password", "secret", "key"]
                    .iter()
                    .any(|w| key.contains(w));
                let value = if secret {
                    redacted()
                } else {
                    value.clone().into()
                };
                (key.clone(), value)
            })
            .collect();
        root.insert("consumer".into(), Value::Table(consumer));
        let mut groups = String::new();
        let subscriptions = self
            .subscriptions
            .iter()
            .map(|s| {
                groups.push_str(&format!(
                    "# subscription {:?} reads as consumer group {:?}\n",
                    s.name, s.group_id
                ));
                let mut t = Table::new();
                t.insert("name".into(), s.name.clone().into());
                t.insert("topics".into(), s.topics.clone().into());
                t.insert("types".into(), s.types.clone().into());
                for (key, value) in [("user", &s.user), ("im_group", &s.im_group)] {
                    if let Some(value) = value {
                        t.insert(key.into(), value.clone().into());
                    }
                }
                t.insert(
                    "url".into(),
                    crate::outbound::redacted_url(&s.url).to_string().into(),
                );
                if let Some(ca) = &s.ca_file {
                    t.insert("ca_file".into(), ca.display().to_string().into());
                }
                if s.key.is_some() {
                    t.insert("secret".into(), redacted());
                }
                let headers: Table = s
                    .headers
                    .iter()
                    .map(|(name, _)| (name.to_string(), redacted()))
                    .collect();
                t.insert("headers".into(), Value::Table(headers));
                t.insert("timeout_ms".into(), (s.timeout.as_millis() as i64).into());
                t.insert("max_in_flight".into(), (s.max_in_flight as i64).into());
                t.insert(
                    "retry_for".into(),
                    humantime::format_duration(s.retry_for).to_string().into(),
                );
                t.insert(
                    "retry_max_delay_ms".into(),
                    (s.retry_max_delay.as_millis() as i64).into(),
                );
                if let Some(topic) = &s.dead_letter_topic {
                    t.insert("dead_letter_topic".into(), topic.clone().into());
                }
                t.insert("give_up_on_4xx".into(), s.give_up_on_4xx.into());
                Value::Table(t)
            })
            .collect::<Vec<_>>();
        root.insert("subscriptions".into(), Value::Array(subscriptions));
        if let Ok(Value::Table(mut tracing)) = Value::try_from(&self.tracing) {
            if let Some(Value::String(endpoint)) = tracing.get("endpoint").cloned() {
                // Only a URL with user info holds a secret.
                let url = endpoint.parse::<hyper::Uri>().ok();
                if let Some(url) = url.filter(|_| endpoint.contains('@')) {
                    let shown = crate::outbound::redacted_url(&url);
                    tracing.insert("endpoint".into(), shown.into());
                }
            }
            root.insert("tracing".into(), Value::Table(tracing));
        }
        let body = toml::to_string(&root).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!("{groups}{body}")
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
