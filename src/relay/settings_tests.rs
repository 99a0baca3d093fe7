//! A relay file's checks, each naming the setting.

use super::*;

fn check(text: &str) -> Result<RelayConfig, SettingsError> {
    RelayFile::from_toml(text)?.check(|_| None)
}

const GOOD: &str = r#"
    [kafka]
    brokers = "k:9092"
    [[subscriptions]]
    name = "search-indexer"
    topics = ["tim.c2c.messages"]
    url = "http://search.internal/events"
    secret = "whsec_VBuh8f42vH/u060x0wL2krkdh+w+sYhF"
"#;

#[test]
fn a_good_file_gives_a_group_per_subscription_and_its_defaults() {
    let config = check(GOOD).unwrap();
    let s = &config.subscriptions[0];
    assert_eq!(s.group_id, "tim-relay.search-indexer");
    assert_eq!((s.max_in_flight, s.timeout), (64, Duration::from_secs(5)));
    assert_eq!(s.retry_for, Duration::from_secs(3600));
    assert!(s.key.is_some());
}

#[test]
fn each_bad_setting_is_named() {
    let cases = [
        (
            GOOD.replace("http://search.internal/events", "ftp://x"),
            "subscriptions[0].url",
        ),
        (
            GOOD.replace("whsec_VBuh8f42vH/u060x0wL2krkdh+w+sYhF", "plain"),
            "subscriptions[0].secret",
        ),
        (
            GOOD.replace("name = \"search-indexer\"", "name = \"a b\""),
            "subscriptions[0].name",
        ),
        (GOOD.replace("brokers = \"k:9092\"", ""), "kafka.brokers"),
        (
            format!("{GOOD}\nretry_for = \"soon\""),
            "subscriptions[0].retry_for",
        ),
        (
            format!("{GOOD}\nmax_in_flight = 0"),
            "subscriptions[0].max_in_flight",
        ),
        (
            format!("{GOOD}\ntimeout_ms = 0"),
            "subscriptions[0].timeout_ms",
        ),
        (
            format!("{GOOD}\nretry_max_delay_ms = 0"),
            "subscriptions[0].retry_max_delay_ms",
        ),
        (
            format!("{GOOD}\ndead_letter_topic = \"tim.c2c.messages\""),
            "subscriptions[0].dead_letter_topic",
        ),
        (
            format!(
                "{GOOD}\n{}",
                GOOD.split("[[subscriptions]]")
                    .nth(1)
                    .map(|s| format!("[[subscriptions]]{s}"))
                    .unwrap()
            ),
            "subscriptions[1].name",
        ),
        (format!("{GOOD}\nunknown = 1"), "subscriptions[0].unknown"),
        (
            GOOD.replace(
                "whsec_VBuh8f42vH/u060x0wL2krkdh+w+sYhF",
                crate::relay::sign::SPECIFICATION_EXAMPLE,
            ),
            "subscriptions[0].secret",
        ),
        (
            format!("{GOOD}\nca_file = \"/etc/ssl/ca.pem\""),
            "subscriptions[0].ca_file",
        ),
        (
            GOOD.replace("http://search", "https://search") + "\nca_file = \"/nonexistent/ca.pem\"",
            "subscriptions[0].ca_file",
        ),
    ];
    for (text, setting) in cases {
        let error = check(&text).unwrap_err();
        assert_eq!(error.setting, setting, "{error}");
    }
}

#[test]
fn the_environment_overlays_the_file_as_it_does_the_bridges() {
    let env = |name: &str| match name {
        "TIM_BRIDGE_RELAY_LISTEN" => Some(" 127.0.0.1:9999 ".to_owned()),
        "TIM_BRIDGE_KAFKA_BROKERS" => Some("other:9092".to_owned()),
        "TIM_BRIDGE_KAFKA_SECURITY_PROTOCOL" => Some("   ".to_owned()),
        _ => None,
    };
    let config = RelayFile::from_toml(GOOD).unwrap().check(env).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(config.brokers, "other:9092");
    assert_eq!(
        config.security.protocol,
        crate::settings::Protocol::Plaintext,
        "blank is unset"
    );

    let bad = |name: &str| (name == "TIM_BRIDGE_RELAY_LISTEN").then(|| "nowhere".to_owned());
    let error = RelayFile::from_toml(GOOD).unwrap().check(bad).unwrap_err();
    assert_eq!(error.setting, "TIM_BRIDGE_RELAY_LISTEN", "{error}");
}

#[test]
fn the_example_files_in_deploy_are_valid_but_their_placeholder_secret() {
    let shipped = include_str!("../../deploy/relay.toml");
    let refused = check(shipped).unwrap_err();
    assert_eq!(refused.setting, "subscriptions[0].secret", "{refused}");
    let example = check(&shipped.replace(
        "whsec_replace-with-a-secret-of-your-own",
        "whsec_VBuh8f42vH/u060x0wL2krkdh+w+sYhF",
    ))
    .unwrap();
    assert_eq!(example.subscriptions.len(), 2);
    let configmap = include_str!("../../deploy/k8s/relay/configmap.yaml");
    let embedded: String = configmap
        .split("relay.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let file = RelayFile::from_toml(&embedded).unwrap();
    assert_eq!(file.subscriptions[0].name, "search-indexer");
}

#[test]
fn tracing_is_off_by_default_and_set_by_the_file_or_the_standard_otel_variables() {
    assert_eq!(check(GOOD).unwrap().tracing.endpoint, None);
    let file = GOOD.replace(
        "[kafka]",
        "[tracing]\nendpoint = \"http://jaeger:4318\"\n[kafka]",
    );
    let config = check(&file).unwrap();
    assert_eq!(
        config.tracing.endpoint.as_deref(),
        Some("http://jaeger:4318")
    );
    let described = config.describe();
    assert!(
        described.contains("[tracing]\nendpoint = \"http://jaeger:4318\""),
        "{described}"
    );
    assert_eq!(
        RelayFile::from_toml(&described)
            .unwrap()
            .tracing
            .service_name,
        config.tracing.service_name,
        "check-config prints a file the relay reads back"
    );
    let from_env = RelayFile::from_toml(GOOD)
        .unwrap()
        .check(|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".into()),
            "OTEL_SERVICE_NAME" => Some("relay".into()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        from_env.tracing.endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(from_env.tracing.service_name, "relay");
    let grpc = RelayFile::from_toml(&file)
        .unwrap()
        .check(|name| (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "grpc".into()))
        .unwrap_err();
    assert_eq!(grpc.setting, "tracing.protocol", "{grpc}");
}
