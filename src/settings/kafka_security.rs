//! How the bridge authenticates to Kafka: TLS and SASL, turned into librdkafka
//! properties in one place so the producer, the admin client and `replay` agree.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn librdkafka(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }
    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
}

/// `[kafka.security]`. Files are read by librdkafka when the client starts; the password
/// comes from the setting, its environment variable, or `sasl_password_file`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    #[serde(default)]
    pub protocol: Protocol,
    /// CA bundle that signed the brokers' certificates (PEM); the system's when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for brokers that require mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
    pub sasl_mechanism: Option<Mechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub sasl_password_file: Option<PathBuf>,
}

impl KafkaSecurity {
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        if let Some(v) = var("TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL") {
            self.protocol = match v.trim().to_ascii_lowercase().as_str() {
                "plaintext" => Protocol::Plaintext,
                "ssl" => Protocol::Ssl,
                "sasl_plaintext" => Protocol::SaslPlaintext,
                "sasl_ssl" => Protocol::SaslSsl,
                other => {
                    return Err(SettingsError::new(
                        "TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL",
                        format!("`{other}` is not plaintext, ssl, sasl_plaintext or sasl_ssl"),
                    ))
                }
            };
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_SASL_MECHANISM") {
            self.sasl_mechanism = Some(Mechanism::parse(v.trim()).ok_or_else(|| {
                SettingsError::new(
                    "TIM_BRIDGE_KAFKA_SASL_MECHANISM",
                    format!(
                        "`{}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                        v.trim()
                    ),
                )
            })?);
        }
        let path = |name| var(name).map(|v| PathBuf::from(v.trim()));
        if let Some(p) = path("TIM_BRIDGE_KAFKA_CA_FILE") {
            self.ca_file = Some(p);
        }
        if let Some(p) = path("TIM_BRIDGE_KAFKA_CERT_FILE") {
            self.cert_file = Some(p);
        }
        if let Some(p) = path("TIM_BRIDGE_KAFKA_KEY_FILE") {
            self.key_file = Some(p);
        }
        if let Some(p) = path("TIM_BRIDGE_KAFKA_SASL_PASSWORD_FILE") {
            self.sasl_password_file = Some(p);
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_KEY_PASSWORD") {
            self.key_password = Some(Secret::new(v));
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_SASL_USERNAME") {
            self.sasl_username = Some(v.trim().to_owned());
        }
        if let Some(v) = var("TIM_BRIDGE_KAFKA_SASL_PASSWORD") {
            self.sasl_password = Some(Secret::new(v));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let err = |setting: &str, reason: &str| {
            Err(SettingsError::new(
                format!("kafka.security.{setting}"),
                reason,
            ))
        };
        if self.protocol.sasl() {
            if self.sasl_mechanism.is_none() {
                return err(
                    "sasl_mechanism",
                    "required with a sasl_* protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                );
            }
            if self.sasl_username.as_deref().is_none_or(str::is_empty) {
                return err("sasl_username", "required with a sasl_* protocol");
            }
            if self.sasl_password.is_some() == self.sasl_password_file.is_some() {
                return err(
                    "sasl_password",
                    "give exactly one of sasl_password (TIM_BRIDGE_KAFKA_SASL_PASSWORD) and sasl_password_file",
                );
            }
            if self.sasl_mechanism == Some(Mechanism::Plain) && !self.protocol.tls() {
                tracing::warn!("SASL PLAIN without TLS sends the Kafka password in clear text.");
            }
        } else if self.sasl_mechanism.is_some() || self.sasl_username.is_some() {
            return err(
                "protocol",
                "SASL settings are given but the protocol is not sasl_plaintext or sasl_ssl",
            );
        }
        if !self.protocol.tls()
            && (self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some())
        {
            return err(
                "protocol",
                "TLS files are given but the protocol is not ssl or sasl_ssl",
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return err(
                "cert_file",
                "a client certificate needs its key_file, and the other way round",
            );
        }
        for (name, file) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("sasl_password_file", &self.sasl_password_file),
        ] {
            if let Some(path) = file {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(SettingsError::new(
                        format!("kafka.security.{name}"),
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The librdkafka properties; reads the password file.
    pub fn client_properties(&self) -> Result<Vec<(&'static str, String)>, SettingsError> {
        let mut props = vec![("security.protocol", self.protocol.librdkafka().to_owned())];
        let path = |p: &PathBuf| p.display().to_string();
        if let Some(p) = &self.ca_file {
            props.push(("ssl.ca.location", path(p)));
        }
        if let Some(p) = &self.cert_file {
            props.push(("ssl.certificate.location", path(p)));
        }
        if let Some(p) = &self.key_file {
            props.push(("ssl.key.location", path(p)));
        }
        if let Some(s) = &self.key_password {
            props.push(("ssl.key.password", s.expose().to_owned()));
        }
        if let Some(m) = self.sasl_mechanism {
            props.push(("sasl.mechanism", m.name().to_owned()));
        }
        if let Some(u) = &self.sasl_username {
            props.push(("sasl.username", u.clone()));
        }
        if let Some(s) = &self.sasl_password {
            props.push(("sasl.password", s.expose().to_owned()));
        } else if let Some(p) = &self.sasl_password_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                SettingsError::new(
                    "kafka.security.sasl_password_file",
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            props.push((
                "sasl.password",
                text.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        Ok(props)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_needs_a_mechanism_a_user_and_one_password() {
        let mut s = KafkaSecurity {
            protocol: Protocol::SaslSsl,
            ..Default::default()
        };
        assert_eq!(
            s.validate().unwrap_err().setting,
            "kafka.security.sasl_mechanism"
        );
        s.sasl_mechanism = Some(Mechanism::ScramSha512);
        s.sasl_username = Some("bridge".into());
        assert_eq!(
            s.validate().unwrap_err().setting,
            "kafka.security.sasl_password"
        );
        s.sasl_password = Some(Secret::new("pw"));
        s.validate().unwrap();
    }

    #[test]
    fn the_environment_sets_every_part_and_the_properties_follow() {
        let mut s = KafkaSecurity::default();
        s.apply_env(|name| match name {
            "TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL" => Some("SASL_SSL".into()),
            "TIM_BRIDGE_KAFKA_SASL_MECHANISM" => Some("scram-sha-256".into()),
            "TIM_BRIDGE_KAFKA_SASL_USERNAME" => Some("bridge".into()),
            "TIM_BRIDGE_KAFKA_SASL_PASSWORD" => Some("s3cret".into()),
            _ => None,
        })
        .unwrap();
        let props = s.client_properties().unwrap();
        for expected in [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "bridge"),
            ("sasl.password", "s3cret"),
        ] {
            assert!(
                props.iter().any(|(k, v)| (*k, v.as_str()) == expected),
                "{expected:?}"
            );
        }
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn tls_files_without_a_tls_protocol_are_refused() {
        let s = KafkaSecurity {
            ca_file: Some("/etc/ssl/ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().setting, "kafka.security.protocol");
    }
}
