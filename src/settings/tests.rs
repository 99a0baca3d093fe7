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
    let s = Settings::from_toml("[[apps]]\nsdk_app_id = 7\ntokens = [\"a\",\"b\",\"c\"]").unwrap();
    assert_eq!(s.validate().unwrap_err().setting, "apps[7].tokens");
}

#[test]
fn weakening_the_producer_is_refused() {
    let s = Settings::from_toml(
        "[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]\n[kafka.producer]\nacks = \"1\"",
    )
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
        Settings::from_toml("[[apps]]\nsdk_app_id = 7\ntokens = [\"0123456789abcdef\"]").unwrap();
    s.kafka.topic = "has space".into();
    assert_eq!(s.validate().unwrap_err().setting, "kafka.topic");
}

#[test]
fn the_example_file_in_deploy_is_valid_once_its_placeholder_token_is_replaced() {
    let mut s = Settings::from_toml(include_str!("../../deploy/tim-kafka-bridge.toml")).unwrap();
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
    let mut s = Settings::from_toml("[[apps]]\nsdk_app_id = 1\ntokens = [\"hunter2\"]").unwrap();
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
        ..App::default()
    };
    assert!(!format!("{app:?}").contains("hunter2"));
    assert!(!toml::to_string(&app).unwrap().contains("hunter2"));
}

#[test]
fn a_body_limit_whose_events_the_producer_would_refuse_is_warned_of() {
    let mut s = Settings::from_toml("max_body_bytes = 2000000\n[[apps]]\nsdk_app_id = 1").unwrap();
    let warning = s.event_size_warning().unwrap();
    assert!(warning.contains("message.max.bytes") && warning.contains("max_body_bytes"));
    s.kafka
        .producer
        .insert("message.max.bytes".into(), "3000000".into());
    assert_eq!(s.event_size_warning(), None);
    assert_eq!(Settings::default().event_size_warning(), None);
}

#[test]
fn the_rest_settings_reconcile_needs_are_checked_at_start_naming_each() {
    let app = |extra: &str| {
        let file =
            format!("[[apps]]\nsdk_app_id = 7\ntokens = [\"a-token-of-16-bytes\"]\n{extra}\n");
        Settings::from_toml(&file).and_then(|s| s.validate().map(|()| s))
    };
    let refused = |extra: &str| app(extra).unwrap_err().setting;
    assert_eq!(refused("admin = \"administrator\""), "apps[7].secret_key");
    assert_eq!(refused("secret_key = \"k\""), "apps[7].admin");
    assert_eq!(
        refused("admin = \"a\"\nsecret_key = \"replace-with-your-app-secret-key\""),
        "apps[7].secret_key"
    );
    let both = "admin = \"administrator\"\nsecret_key = \"k\"\n";
    assert_eq!(
        refused(&format!("{both}rest_url = \"http://gateway.example\"")),
        "apps[7].rest_url",
        "the UserSig would travel in the clear"
    );
    assert_eq!(
        refused(&format!(
            "{both}region = \"singapore\"\nrest_url = \"https://gateway.example\""
        )),
        "apps[7].rest_url"
    );
    assert_eq!(
        refused(&format!("{both}rest_ca_file = \"/no/such/ca.pem\"")),
        "apps[7].rest_ca_file"
    );
    assert_eq!(
        refused(&format!("{both}region = \"mars\"")),
        "apps[0].region"
    );
    let singapore = app(&format!("{both}region = \"singapore\"")).unwrap();
    assert_eq!(
        singapore.apps[0].rest_base(),
        "https://adminapisgp.im.qcloud.com"
    );
    let china = app(both).unwrap();
    assert_eq!(china.apps[0].rest_base(), "https://console.tim.qq.com");
}

#[test]
fn reconciles_state_topic_and_publish_timeout_are_checked() {
    let base = "[[apps]]\nsdk_app_id = 7\ntokens = [\"a-token-of-16-bytes\"]\n";
    let refused = |extra: &str| {
        Settings::from_toml(&format!("{base}[reconcile]\n{extra}\n"))
            .unwrap()
            .validate()
            .unwrap_err()
            .setting
    };
    assert_eq!(
        refused("state_topic = \"no spaces\""),
        "reconcile.state_topic"
    );
    assert_eq!(
        refused("publish_timeout_ms = 5"),
        "reconcile.publish_timeout_ms"
    );
}
