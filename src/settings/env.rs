//! The `TIM_BRIDGE_*` environment variables over the file's settings.

use super::*;

impl Settings {
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
}
