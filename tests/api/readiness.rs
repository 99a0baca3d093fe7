//! docs/operations.md's table *What `/readyz` answers*, read from the file and checked
//! row by row against a real bridge and a real Kafka: each fault made for real (a wrong
//! SCRAM password, a broker certificate from another CA, a topic missing with
//! auto-creation off, the broker killed after a good start), in both ack modes, and
//! every callback answered 200 meanwhile read back once the cause is fixed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tim_kafka_bridge::settings::{Ack, KafkaSecurity, Mechanism, Settings};

use crate::broker::{brokers, Kafka, Layout, Listener};
use crate::helpers::*;
use crate::kafka_security::{mutual_tls, scram, secured, PASSWORD};
use crate::tls_support::TestCa;

const WORKS: &str = "Everything works";
const WRONG_PASSWORD: &str = "A wrong SASL password from the start";
const OTHER_CA: &str = "The brokers' certificate signed by another CA";
const MISSING_TOPIC: &str = "A topic missing, auto-creation off";
const BROKER_KILLED: &str = "The broker killed after a successful start";

/// What the runbook says `/readyz` answers in one mode.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    starts_with: String,
}

#[derive(Debug, Clone)]
struct Row {
    durable: Answer,
    memory: Answer,
    /// `name{labels}` → value.
    metrics: Vec<(String, f64)>,
}

/// The text between each pair of backticks in `cell`.
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn answer(cell: &str) -> Answer {
    let status = cell.trim().split(' ').next().unwrap().parse().unwrap();
    let starts_with = quoted(cell)[0].to_owned();
    Answer {
        status,
        starts_with,
    }
}

/// The table under `## What `/readyz` answers` in docs/operations.md, by case.
fn runbook() -> BTreeMap<String, Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text
        .split("## What `/readyz` answers")
        .nth(1)
        .expect("docs/operations.md has the readiness section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| case |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 4, "{line}");
            let metrics = quoted(cells[3])
                .into_iter()
                .map(|m| {
                    let (name, value) = m.rsplit_once(' ').unwrap();
                    (name.to_owned(), value.parse().unwrap())
                })
                .collect();
            let row = Row {
                durable: answer(cells[1]),
                memory: answer(cells[2]),
                metrics,
            };
            (cells[0].trim().to_owned(), row)
        })
        .collect()
}

fn row(case: &str) -> Row {
    runbook()
        .remove(case)
        .unwrap_or_else(|| panic!("docs/operations.md has no readiness row `{case}`"))
}

/// Waits up to 40 s for `/readyz` to give the row's answer for `ack`, then checks the
/// row's metrics; returns the body.
async fn answers_as_the_runbook_says(app: &TestApp, ack: Ack, case: &str) -> String {
    let row = row(case);
    let expected = match ack {
        Ack::Durable => &row.durable,
        Ack::Memory => &row.memory,
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let body = loop {
        let (status, body) = app.get("/readyz").await;
        if status.as_u16() == expected.status && body.starts_with(&expected.starts_with) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "{case}, ack = {ack:?}: the runbook says {expected:?}, the bridge {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let page = app.get("/metrics").await.1;
    for (name, value) in &row.metrics {
        assert_eq!(
            metric_value(&page, name),
            *value,
            "{case}, ack = {ack:?}: {name}\n{body}"
        );
    }
    body
}

/// Three callbacks, each answered 200; their keys.
async fn three_callbacks(app: &TestApp, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for n in 0..3 {
        let key = format!("{prefix}-{n}");
        let answer = app.callback(SENT, &sent_body(&key)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        keys.push(key);
    }
    keys
}

async fn read_back(brokers: &str, topic: &str, keys: &[String]) {
    let records = read_records_from(brokers, topic, keys.len()).await;
    let mut read: Vec<String> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    read.dedup();
    assert_eq!(read, keys, "every callback answered 200 is in Kafka");
}

/// The topics of `app`, for a bridge that takes over its spool.
fn same_topics(settings: &mut Settings, app: &TestApp) {
    settings.kafka.topic = app.topic.clone();
    settings.kafka.other_topic = app.other_topic.clone();
    settings.kafka.group_topic = app.group_topic.clone();
    settings.kafka.user_topic = app.user_topic.clone();
    settings.kafka.group_events_topic = app.group_events_topic.clone();
}

/// A bridge whose Kafka settings are wrong from the start: not ready in both modes;
/// with the spool, what it took arrives once a bridge with the right settings starts.
async fn wrong_from_the_start(
    case: &str,
    setting: &str,
    brokers: String,
    wrong: KafkaSecurity,
    right: KafkaSecurity,
) {
    let plain = secured().kafka.bootstrap();
    for ack in [Ack::Durable, Ack::Memory] {
        let app = spawn_app_with(|c| {
            c.ack = ack;
            c.kafka.create_topics = false;
            c.kafka.brokers = Some(brokers.clone());
            c.kafka.security = wrong.clone();
        })
        .await;
        let keys = three_callbacks(&app, &format!("{case}-{ack:?}")).await;
        let body = answers_as_the_runbook_says(&app, ack, case).await;
        assert!(body.contains(setting), "names {setting}: {body}");
        assert!(!body.contains("wrong-pw"), "never the password: {body}");
        if ack == Ack::Memory {
            continue;
        }
        let mut taking_over = Settings::default();
        same_topics(&mut taking_over, &app);
        taking_over.spool_dir = app.spool_dir.clone();
        app.shutdown().await;
        let fixed = spawn_app_with(|c| {
            c.kafka.topic = taking_over.kafka.topic;
            c.kafka.other_topic = taking_over.kafka.other_topic;
            c.kafka.group_topic = taking_over.kafka.group_topic;
            c.kafka.user_topic = taking_over.kafka.user_topic;
            c.kafka.group_events_topic = taking_over.kafka.group_events_topic;
            c.spool_dir = taking_over.spool_dir;
            c.kafka.brokers = Some(brokers.clone());
            c.kafka.security = right.clone();
        })
        .await;
        answers_as_the_runbook_says(&fixed, ack, WORKS).await;
        read_back(&plain, &fixed.topic, &keys).await;
    }
}

#[test]
fn the_runbook_has_a_row_for_each_case_tested_here_and_no_other() {
    let cases: Vec<String> = runbook().into_keys().collect();
    let mut tested = [
        WORKS,
        WRONG_PASSWORD,
        OTHER_CA,
        MISSING_TOPIC,
        BROKER_KILLED,
    ];
    tested.sort();
    assert_eq!(cases, tested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_everything_works_readiness_is_ready_in_both_modes() {
    for ack in [Ack::Durable, Ack::Memory] {
        let app = spawn_app_with(|c| c.ack = ack).await;
        answers_as_the_runbook_says(&app, ack, WORKS).await;
        let keys = three_callbacks(&app, &format!("works-{ack:?}")).await;
        read_back(brokers(), &app.topic, &keys).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_from_the_start_is_not_ready_and_nothing_it_took_is_lost() {
    let s = tokio::task::block_in_place(secured);
    wrong_from_the_start(
        WRONG_PASSWORD,
        "kafka.security.sasl_password",
        s.kafka.bootstrap_on(Listener::SaslSsl),
        scram(Mechanism::ScramSha256, "bridge", "wrong-pw", &s.pki),
        scram(Mechanism::ScramSha256, "bridge", PASSWORD, &s.pki),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_not_ready_and_nothing_it_took_is_lost() {
    let s = tokio::task::block_in_place(secured);
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("ca.pem"), TestCa::new().pem()).unwrap();
    let mut untrusting = mutual_tls(&s.pki);
    untrusting.ca_file = Some(other.path().join("ca.pem"));
    wrong_from_the_start(
        OTHER_CA,
        "kafka.security.ca_file",
        s.kafka.bootstrap_on(Listener::Ssl),
        untrusting,
        mutual_tls(&s.pki),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_missing_from_the_start_is_not_ready_until_it_is_created() {
    for ack in [Ack::Durable, Ack::Memory] {
        let app = spawn_app_with(|c| {
            c.ack = ack;
            c.kafka.create_topics = false;
        })
        .await;
        let keys = three_callbacks(&app, &format!("missing-{ack:?}")).await;
        let body = answers_as_the_runbook_says(&app, ack, MISSING_TOPIC).await;
        assert!(body.contains(&app.topic), "{body}");
        assert!(body.contains("kafka.create_topics"), "{body}");
        for topic in [
            &app.topic,
            &app.other_topic,
            &app.group_topic,
            &app.user_topic,
            &app.group_events_topic,
        ] {
            create_topic(topic).await;
        }
        answers_as_the_runbook_says(&app, ack, WORKS).await;
        read_back(brokers(), &app.topic, &keys).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_after_a_good_start_is_degraded_with_the_spool_and_not_ready_without() {
    let mut kafka = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    for ack in [Ack::Durable, Ack::Memory] {
        let app = spawn_app_with(|c| {
            c.ack = ack;
            c.kafka.brokers = Some(kafka.bootstrap());
        })
        .await;
        answers_as_the_runbook_says(&app, ack, WORKS).await;
        tokio::task::block_in_place(|| kafka.kill());
        let keys = three_callbacks(&app, &format!("killed-{ack:?}")).await;
        let body = answers_as_the_runbook_says(&app, ack, BROKER_KILLED).await;
        println!("broker killed, ack = {ack:?}: /readyz says {body}");
        tokio::task::block_in_place(|| kafka.restart());
        answers_as_the_runbook_says(&app, ack, WORKS).await;
        read_back(&kafka.bootstrap(), &app.topic, &keys).await;
    }
}
