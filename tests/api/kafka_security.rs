//! The bridge against Kafka's own secured listeners: SASL_SSL with SCRAM, mutual TLS,
//! and the StandardAuthorizer refusing a topic for real. No proxy in between.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tim_kafka_bridge::settings::{KafkaSecurity, Mechanism, Protocol, Secret};

use crate::broker::{Kafka, Layout, Listener};
use crate::helpers::*;
use crate::tls_support::TestCa;

pub(crate) const PASSWORD: &str = "bridge-s3cret";

/// One secured node for this file's tests: its certificates made here, users `bridge`
/// (every ACL) and `alice` (those a test gives her), SCRAM-SHA-256 and -512 each.
pub(crate) struct Secured {
    pub(crate) kafka: Kafka,
    pub(crate) pki: PathBuf,
}

pub(crate) fn secured() -> &'static Secured {
    static SECURED: OnceLock<Secured> = OnceLock::new();
    SECURED.get_or_init(|| {
        let ca = TestCa::new();
        let pki = tempfile::tempdir().unwrap().keep();
        let broker = ca.issue("localhost");
        std::fs::write(
            pki.join("broker-keystore.pem"),
            format!("{}{}", broker.key_pem, broker.cert_pem),
        )
        .unwrap();
        std::fs::write(pki.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(
            pki.join("users"),
            format!("bridge {PASSWORD}\nalice {PASSWORD}\n"),
        )
        .unwrap();
        let client = ca.issue("bridge");
        std::fs::write(pki.join("bridge.pem"), &client.cert_pem).unwrap();
        std::fs::write(pki.join("bridge.key"), &client.key_pem).unwrap();
        let kafka = Kafka::start(Layout {
            secure: Some(pki.clone()),
            ..Layout::default()
        });
        allow(
            &kafka,
            "bridge",
            "All",
            &["--topic", "*", "--group", "*", "--cluster"],
        );
        Secured { kafka, pki }
    })
}

/// kafka-acls.sh --add: `user` may do `operation` on `resources` (`--topic T`, `--cluster`, ...).
fn allow(kafka: &Kafka, user: &str, operation: &str, resources: &[&str]) {
    let (bootstrap, principal) = (kafka.bootstrap(), format!("User:{user}"));
    let mut args = vec![
        "--bootstrap-server",
        &bootstrap,
        "--add",
        "--allow-principal",
        &principal,
    ];
    args.extend(["--operation", operation]);
    args.extend_from_slice(resources);
    kafka.tool("acls", &args);
}

pub(crate) fn scram(mechanism: Mechanism, user: &str, password: &str, pki: &Path) -> KafkaSecurity {
    let security = KafkaSecurity {
        protocol: Protocol::SaslSsl,
        ca_file: Some(pki.join("ca.pem")),
        sasl_mechanism: Some(mechanism),
        sasl_username: Some(user.into()),
        sasl_password: Some(Secret::new(password)),
        ..Default::default()
    };
    security.validate().unwrap();
    security
}

pub(crate) fn mutual_tls(pki: &Path) -> KafkaSecurity {
    let security = KafkaSecurity {
        protocol: Protocol::Ssl,
        ca_file: Some(pki.join("ca.pem")),
        cert_file: Some(pki.join("bridge.pem")),
        key_file: Some(pki.join("bridge.key")),
        ..Default::default()
    };
    security.validate().unwrap();
    security
}

/// Publishes `keys` through the bridge over `security`, reads them back over the same.
async fn publish_and_read_back(security: KafkaSecurity, brokers: String, keys: &[&str]) {
    let app = spawn_app_with(|s| {
        s.kafka.brokers = Some(brokers.clone());
        s.kafka.security = security.clone();
    })
    .await;
    app.wait_until_ready().await;
    for key in keys {
        assert_eq!(app.callback(SENT, &sent_body(key)).await.status, 200);
    }
    let client = tim_kafka_bridge::kafka::client_config(&security, &brokers).unwrap();
    let records = read_records_with(client, &app.topic, keys.len()).await;
    let mut read: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    let mut sent = keys.to_vec();
    sent.sort();
    assert_eq!(read, sent);
}

/// Five fresh topics on the secured node, for a bridge's five topic settings.
async fn five_topics(s: &Secured) -> [String; 5] {
    let topics = [
        unique_topic("tim.c2c"),
        unique_topic("tim.other"),
        unique_topic("tim.group"),
        unique_topic("tim.users"),
        unique_topic("tim.group.events"),
    ];
    for topic in &topics {
        create_topic_on(&s.kafka.bootstrap(), topic).await;
    }
    topics
}

/// A bridge connected as `alice` (who has only the ACLs a test gives her) to `topics`.
async fn bridge_as_alice(s: &Secured, topics: &[String; 5]) -> TestApp {
    spawn_app_with(|c| {
        c.kafka.create_topics = false;
        c.kafka.brokers = Some(s.kafka.bootstrap_on(Listener::SaslSsl));
        c.kafka.security = scram(Mechanism::ScramSha256, "alice", PASSWORD, &s.pki);
        [
            c.kafka.topic,
            c.kafka.other_topic,
            c.kafka.group_topic,
            c.kafka.user_topic,
            c.kafka.group_events_topic,
        ] = topics.clone();
    })
    .await
}

/// `/readyz` of a bridge whose every answer for 10 s is not 200; the last body.
async fn never_ready(app: &TestApp) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get("/readyz").await;
        assert_ne!(status, 200, "ready: {body}");
        if Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sasl_ssl_with_scram_sha_256_and_512_the_events_read_back() {
    let s = tokio::task::block_in_place(secured);
    let brokers = s.kafka.bootstrap_on(Listener::SaslSsl);
    for (mechanism, key) in [
        (Mechanism::ScramSha256, "scram-sha-256"),
        (Mechanism::ScramSha512, "scram-sha-512"),
    ] {
        let security = scram(mechanism, "bridge", PASSWORD, &s.pki);
        publish_and_read_back(security, brokers.clone(), &[key]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_the_events_read_back() {
    let s = tokio::task::block_in_place(secured);
    let brokers = s.kafka.bootstrap_on(Listener::Ssl);
    publish_and_read_back(mutual_tls(&s.pki), brokers, &["mtls-1", "mtls-2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_without_a_write_acl_keeps_its_events_until_the_acl_is_added() {
    let s = tokio::task::block_in_place(secured);
    let topics = five_topics(s).await;
    // alice may write the message topic (so her idempotent producer gets an id) and
    // only see the other ones: Kafka answers TOPIC_AUTHORIZATION_FAILED for those.
    allow(
        &s.kafka,
        "alice",
        "All",
        &["--topic", &topics[0], "--group", "*", "--cluster"],
    );
    for topic in &topics[1..] {
        allow(&s.kafka, "alice", "Describe", &["--topic", topic]);
    }
    let app = bridge_as_alice(s, &topics).await;
    // Kafka has worked (an id, every topic described) before any write is refused: a
    // replica that loses a topic's ACL later is degraded, not taken out of service.
    app.wait_until_ready().await;
    let full = r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"@TGS#full"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut readiness, mut sent) = (String::new(), 0);
    while !readiness.contains("not authorized to write") {
        if Instant::now() > deadline {
            let metrics = app.get("/metrics").await.1;
            panic!("readiness never named the topic: {readiness}\n{metrics}");
        }
        let key = format!("allowed-{sent}");
        assert_eq!(app.callback(SENT, &sent_body(&key)).await.status, 200);
        assert_eq!(
            app.callback("Group.CallbackAfterGroupFull", full)
                .await
                .status,
            200
        );
        sent += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        readiness = app.get("/readyz").await.1;
    }
    assert!(readiness.starts_with("degraded:"), "{readiness}");
    assert!(readiness.contains(&app.other_topic), "{readiness}");
    let metrics = app.get("/metrics").await.1;
    let refusing = |kind| {
        metric_value(
            &metrics,
            &format!("tim_bridge_kafka_refusing{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(refusing("authorization"), 1.0, "{metrics}");
    assert_eq!(refusing("authentication"), 0.0, "{metrics}");
    let plain = s.kafka.bootstrap();
    assert_eq!(
        read_records_from(&plain, &app.topic, sent).await.len(),
        sent
    );
    assert_eq!(
        record_count_on(&plain, &app.other_topic).await,
        0,
        "refused"
    );

    allow(&s.kafka, "alice", "Write", &["--topic", &app.other_topic]);
    let records = read_records_from(&plain, &app.other_topic, sent).await;
    assert!(records
        .iter()
        .all(|r| r.headers["tim-command"] == "Group.CallbackAfterGroupFull"));
    app.wait_until_ready().await;
    assert_eq!(
        record_count_on(&plain, &app.other_topic).await,
        sent as i64,
        "every kept group-full callback arrived, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_without_a_write_acl_from_the_start_is_not_ready() {
    let s = tokio::task::block_in_place(secured);
    let topics = five_topics(s).await;
    // alice may see every topic and write none: Kafka never gives her producer an id.
    for topic in &topics {
        allow(&s.kafka, "alice", "Describe", &["--topic", topic]);
    }
    let app = bridge_as_alice(s, &topics).await;
    assert_eq!(
        app.callback(SENT, &sent_body("unwritable-1")).await.status,
        200
    );
    let body = never_ready(&app).await;
    assert!(
        body.starts_with("not ready: Kafka has not worked since start:"),
        "{body}"
    );

    allow(&s.kafka, "alice", "Write", &["--topic", &topics[0]]);
    app.wait_until_ready().await;
    let records = read_records_from(&s.kafka.bootstrap(), &topics[0], 1).await;
    assert_eq!(records[0].key.as_deref(), Some("unwritable-1"));
}
