//! The `TIM_BRIDGE_*` environment variables over a file's settings: the bridge's, and
//! (through [`Overlay`] and [`KafkaSettings::apply_connection_env`]) the relay's.

use std::time::Duration;

use super::*;

/// The environment as settings read it: a variable set to blanks is not set, and a
/// value that does not parse names its variable.
pub struct Overlay<F>(F);

impl<F: Fn(&str) -> Option<String>> Overlay<F> {
    pub fn new(env: F) -> Self {
        Self(env)
    }

    /// The variable's value, trimmed, when it is set to something.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The variable's value as it is, even empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// An address like `example`.
    pub fn address(&self, name: &str, example: &str) -> Result<Option<SocketAddr>, SettingsError> {
        self.parsed(name, &format!("an address like {example}"))
    }

    /// A number of milliseconds.
    pub fn millis(&self, name: &str) -> Result<Option<u64>, SettingsError> {
        self.parsed(name, "a number of milliseconds")
    }

    /// The value read as a `T`; refused naming the variable and saying it is not `what`.
    fn parsed<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, SettingsError> {
        self.var(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    SettingsError::new(name, format!("`{}` is not {what}", printable(&v, 64)))
                })
            })
            .transpose()
    }
}

impl KafkaSettings {
    /// `TIM_BRIDGE_KAFKA_BROKERS` and `TIM_BRIDGE_KAFKA_SECURITY_*`: how to reach the
    /// cluster, read alike by the bridge and the relay.
    pub fn apply_connection_env(
        &mut self,
        env: &Overlay<impl Fn(&str) -> Option<String>>,
    ) -> Result<(), SettingsError> {
        if let Some(v) = env.var("TIM_BRIDGE_KAFKA_BROKERS") {
            self.brokers = Some(v);
        }
        self.security.apply_env(|name| env.var(name))
    }
}

/// `ms` milliseconds as a duration, refused below `min` naming the setting `at`.
pub fn millis_at_least(at: &str, ms: u64, min: u64) -> Result<Duration, SettingsError> {
    if ms < min {
        return Err(SettingsError::new(at, format!("must be at least {min}")));
    }
    Ok(Duration::from_millis(ms))
}

impl Settings {
    /// Environment variables win over the file.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        let env = Overlay::new(env);
        let var = |name: &str| env.var(name);
        if let Some(listen) = env.address("TIM_BRIDGE_LISTEN", "0.0.0.0:8080")? {
            self.listen = listen;
        }
        if let Some(admin) = env.address("TIM_BRIDGE_ADMIN_LISTEN", "0.0.0.0:9091")? {
            self.admin_listen = Some(admin);
        }
        if let Some(v) = var("TIM_BRIDGE_CALLBACK_PATH") {
            self.callback_path = v.trim().to_owned();
        }
        if let Some(v) = var("TIM_BRIDGE_SDKAPPID") {
            self.apps = apps::apps_from_env(&v, &self.apps)?;
        }
        if let Some(v) = env.raw("TIM_BRIDGE_TOKEN") {
            let tokens = apps::tokens_from_env(&v)?;
            for app in &mut self.apps {
                app.tokens = tokens.clone();
            }
        }
        // Tencent's REST API, for `reconcile`: set on every app, as the token is.
        for app in &mut self.apps {
            if let Some(admin) = var("TIM_BRIDGE_REST_ADMIN") {
                app.admin = Some(admin);
            }
            if let Some(key) = var("TIM_BRIDGE_SECRET_KEY") {
                app.secret_key = Some(Secret::new(key));
            }
            if let Some(url) = var("TIM_BRIDGE_REST_URL") {
                app.rest_url = Some(url);
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
        self.kafka.apply_connection_env(&env)?;
        if let Some(ms) = env.millis("TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS")? {
            self.kafka.startup_deadline_ms = ms;
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
        self.tracing.apply_env(var)
    }
}
