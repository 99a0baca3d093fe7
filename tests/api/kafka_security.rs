//! The bridge against a broker reached over TLS, with and without SASL.

use std::time::{Duration, Instant};

use tim_kafka_bridge::settings::{KafkaSecurity, Mechanism, Protocol, Secret};

use crate::broker::Tansu;
use crate::helpers::*;
use crate::tls_support::{tls_proxy, TestCa};

/// A broker behind a TLS proxy, and the CA file that trusts it.
async fn secured_broker(users: &[(&str, &str)]) -> (Tansu, String, tempfile::TempDir) {
    let ca = TestCa::new();
    let port = free_port();
    let broker = Tansu::start_behind(port, users);
    tls_proxy(&ca.issue("broker"), port, broker.address()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    (broker, format!("127.0.0.1:{port}"), dir)
}

async fn publish_and_read_back(security: KafkaSecurity, brokers: &str, keys: &[&str]) {
    let app = spawn_app_with(|s| {
        s.kafka.brokers = Some(brokers.to_owned());
        s.kafka.security = security.clone();
    })
    .await;
    for key in keys {
        assert_eq!(app.callback(SENT, &sent_body(key)).await.status, 200);
    }
    let client = tim_kafka_bridge::kafka::client_config(&security, brokers).unwrap();
    let records = read_records_with(client, &app.topic, keys.len()).await;
    let mut read: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    let mut sent = keys.to_vec();
    sent.sort();
    assert_eq!(read, sent);
    app.wait_until_ready().await;
}

#[tokio::test]
async fn over_tls_the_bridge_creates_its_topics_publishes_and_the_events_read_back() {
    let (_broker, brokers, dir) = secured_broker(&[]).await;
    let security = KafkaSecurity {
        protocol: Protocol::Ssl,
        ca_file: Some(dir.path().join("ca.pem")),
        ..Default::default()
    };
    security.validate().unwrap();
    publish_and_read_back(security, &brokers, &["tls-1", "tls-2"]).await;
}

#[tokio::test]
async fn over_tls_with_scram_the_events_read_back_and_a_wrong_password_is_not_ready() {
    let (_broker, brokers, dir) = secured_broker(&[("bridge", "s3cret-pw")]).await;
    let security = |mechanism, password: &str| KafkaSecurity {
        protocol: Protocol::SaslSsl,
        ca_file: Some(dir.path().join("ca.pem")),
        sasl_mechanism: Some(mechanism),
        sasl_username: Some("bridge".into()),
        sasl_password: Some(Secret::new(password)),
        ..Default::default()
    };
    // tansu 0.6.0 offers SCRAM-SHA-256 (and OAUTHBEARER) only: its SASL library is
    // built without PLAIN and SCRAM-SHA-512, so those two are checked as settings.
    publish_and_read_back(
        security(Mechanism::ScramSha256, "s3cret-pw"),
        &brokers,
        &["scram-sha-256"],
    )
    .await;

    let app = spawn_app_with(|s| {
        s.ack = tim_kafka_bridge::settings::Ack::Memory;
        s.kafka.brokers = Some(brokers.clone());
        s.kafka.security = security(Mechanism::ScramSha256, "wrong");
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = app.get("/readyz").await;
        assert_ne!(status, 200, "ready with a wrong password: {body}");
        if Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!body.contains("wrong"), "the password never shows: {body}");
}
