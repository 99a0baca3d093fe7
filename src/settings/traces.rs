//! `[tracing]`: OpenTelemetry traces, off unless an OTLP endpoint is set. The
//! standard `OTEL_*` variables win over the file, as everywhere in the ecosystem.

use serde::{Deserialize, Serialize};

use super::SettingsError;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingSettings {
    /// The OTLP/HTTP base URL (`http://collector:4318`); spans go to `<it>/v1/traces`.
    /// None: tracing is off, and costs nothing.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `http/protobuf`, the only one this build speaks.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// As `OTEL_TRACES_SAMPLER`: `parentbased_traceidratio` (the default), `traceidratio`,
    /// `parentbased_always_on`, `always_on`, `parentbased_always_off`, `always_off`.
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// The ratio of the `traceidratio` samplers, 0 to 1.
    #[serde(default = "default_sampler_arg")]
    pub sampler_arg: f64,
    /// Finished spans waiting for the exporter, at most: past it they are dropped and
    /// counted, never waited for.
    #[serde(default = "default_queue_spans")]
    pub queue_spans: usize,
}

impl Default for TracingSettings {
    fn default() -> Self {
        toml::from_str("").expect("empty tracing settings take their defaults")
    }
}

fn default_protocol() -> String {
    "http/protobuf".into()
}
fn default_service_name() -> String {
    "tim-kafka-bridge".into()
}
fn default_sampler() -> String {
    "parentbased_traceidratio".into()
}
fn default_sampler_arg() -> f64 {
    1.0
}
fn default_queue_spans() -> usize {
    8192
}

/// Whether a new root trace, or a span under a parent that was (not) sampled, is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub parent_based: bool,
    /// The share of root traces sampled, by trace id.
    pub ratio: f64,
}

impl Sampler {
    pub fn sampled(&self, parent: Option<bool>, trace_id: u128) -> bool {
        match parent {
            Some(sampled) if self.parent_based => sampled,
            _ => {
                // The spec's TraceIdRatioBased: the lower 64 bits against the ratio.
                let low = trace_id as u64 >> 1;
                (low as f64) < self.ratio * (u64::MAX >> 1) as f64
            }
        }
    }
}

impl TracingSettings {
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        if let Some(endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.endpoint = Some(endpoint);
        }
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            self.protocol = protocol;
        }
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        if let Some(sampler) = var("OTEL_TRACES_SAMPLER") {
            self.sampler = sampler;
        }
        if let Some(arg) = var("OTEL_TRACES_SAMPLER_ARG") {
            self.sampler_arg = arg.trim().parse().map_err(|_| {
                SettingsError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!("`{arg}` is not a number from 0 to 1"),
                )
            })?;
        }
        Ok(())
    }

    /// The endpoint's traces URL and the sampler, or None when tracing is off.
    pub fn checked(&self) -> Result<Option<(String, Sampler)>, SettingsError> {
        let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        let uri: hyper::Uri = endpoint.parse().map_err(|e| {
            SettingsError::new(
                "tracing.endpoint",
                format!("`{endpoint}` is not a URL: {e}"),
            )
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(SettingsError::new(
                "tracing.endpoint",
                format!("`{endpoint}` must be an http:// or https:// URL (OTLP/HTTP, port 4318 by convention)"),
            ));
        }
        if self.protocol != "http/protobuf" {
            return Err(SettingsError::new(
                "tracing.protocol",
                format!("`{}`: this build exports OTLP over HTTP only (`http/protobuf`); point it at the collector's HTTP port (4318)", self.protocol),
            ));
        }
        if !(0.0..=1.0).contains(&self.sampler_arg) {
            return Err(SettingsError::new(
                "tracing.sampler_arg",
                "must be from 0 to 1",
            ));
        }
        if self.queue_spans == 0 {
            return Err(SettingsError::new("tracing.queue_spans", "must be above 0"));
        }
        let ratio = self.sampler_arg;
        let sampler = match self.sampler.as_str() {
            "always_on" => Sampler { parent_based: false, ratio: 1.0 },
            "always_off" => Sampler { parent_based: false, ratio: 0.0 },
            "traceidratio" => Sampler { parent_based: false, ratio },
            "parentbased_always_on" => Sampler { parent_based: true, ratio: 1.0 },
            "parentbased_always_off" => Sampler { parent_based: true, ratio: 0.0 },
            "parentbased_traceidratio" => Sampler { parent_based: true, ratio },
            other => {
                return Err(SettingsError::new(
                    "tracing.sampler",
                    format!("`{other}`: one of parentbased_traceidratio, traceidratio, parentbased_always_on, always_on, parentbased_always_off, always_off"),
                ))
            }
        };
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        Ok(Some((url, sampler)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_set_and_otel_variables_win() {
        let mut settings = TracingSettings::default();
        assert_eq!(settings.checked().unwrap(), None);
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ];
        settings
            .apply_env(|name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
        let (url, sampler) = settings.checked().unwrap().unwrap();
        assert_eq!(url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(
            sampler,
            Sampler {
                parent_based: false,
                ratio: 0.25
            }
        );
    }

    #[test]
    fn grpc_and_unknown_samplers_are_refused_naming_the_setting() {
        let mut settings = TracingSettings {
            endpoint: Some("http://collector:4317".into()),
            protocol: "grpc".into(),
            ..TracingSettings::default()
        };
        assert_eq!(settings.checked().unwrap_err().setting, "tracing.protocol");
        settings.protocol = "http/protobuf".into();
        settings.sampler = "sometimes".into();
        assert_eq!(settings.checked().unwrap_err().setting, "tracing.sampler");
    }

    #[test]
    fn parent_based_follows_the_parent_and_a_ratio_samples_its_share() {
        let sampler = Sampler {
            parent_based: true,
            ratio: 0.1,
        };
        assert!(sampler.sampled(Some(true), 0));
        assert!(!sampler.sampled(Some(false), 0));
        let sampled = (0..10_000u128)
            .filter(|n| {
                sampler.sampled(
                    None,
                    n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                )
            })
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 10,000");
    }
}
