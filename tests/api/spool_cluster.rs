//! A spool belongs to the Kafka cluster it was written for: two Apache Kafka nodes with
//! cluster ids of their own, a spool written against one, a bridge and `spool drain`
//! pointed at the other refused, naming both, until told to adopt it.

use std::process::Command;

use tim_kafka_bridge::settings::{Config, Settings};
use tim_kafka_bridge::startup::Application;

use crate::broker::{brokers, Kafka, Layout};
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn same_spool_and_topics(from: &TestApp) -> impl Fn(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.spool_dir = from.spool_dir.clone();
        s.kafka.topic = from.topic.clone();
        s.kafka.other_topic = from.other_topic.clone();
        s.kafka.group_topic = from.group_topic.clone();
        s.kafka.user_topic = from.user_topic.clone();
        s.kafka.group_events_topic = from.group_events_topic.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_written_for_one_cluster_is_refused_by_another_until_adopted() {
    let other = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    // Events the first cluster cannot take yet (their topics do not exist there).
    let first = spawn_app_with(|s| s.kafka.create_topics = false).await;
    let mut keys = Vec::new();
    for n in 0..3 {
        let key = format!("for-the-first-cluster-{n}");
        assert_eq!(first.callback(SENT, &sent_body(&key)).await.status, 200);
        keys.push(key);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let recorded = loop {
        if let Ok(recorded) = std::fs::read_to_string(first.spool_dir.join("cluster")) {
            break recorded;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster is never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        recorded.contains(&format!("bootstrap={}", brokers())),
        "{recorded}"
    );
    let (spool, topic) = (first.spool_dir.clone(), first.topic.clone());
    let keep = same_spool_and_topics(&first);
    let mut pointed_elsewhere = test_settings(|s| {
        keep(s);
        s.kafka.brokers = Some(other.bootstrap());
    });
    drop(keep);
    assert_eq!(first.shutdown().await.left_in_spool, 3);

    let refusal = Application::build(Config::try_from(pointed_elsewhere.clone()).unwrap())
        .await
        .err()
        .expect("a bridge pointed at another cluster refuses the spool")
        .to_string();
    for said in [
        "holds 3 events".to_owned(),
        format!("(bootstrap {})", brokers()),
        format!("(bootstrap {})", other.bootstrap()),
        "--adopt-spool".into(),
    ] {
        assert!(refusal.contains(&said), "{said} in: {refusal}");
    }

    let drain = Command::new(BINARY)
        .args(["spool", "drain", "--patience", "10s", "--dir"])
        .arg(&spool)
        .env("TIM_BRIDGE_KAFKA_BROKERS", other.bootstrap())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&drain.stderr);
    assert_eq!(drain.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&other.bootstrap()) && said.contains("--adopt-spool"),
        "{said}"
    );
    assert_eq!(
        record_count_on(&other.bootstrap(), &topic).await,
        0,
        "nothing reached the other cluster"
    );

    pointed_elsewhere.adopt_spool = true;
    let config = Config::try_from(pointed_elsewhere).unwrap();
    let adopted = Application::build(config).await.expect("adopted");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(adopted.run_until(async {
        let _ = stopped.await;
    }));
    let records = read_records_from(&other.bootstrap(), &topic, 3).await;
    let mut read: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    assert_eq!(
        read, keys,
        "the adopted spool's events, in the cluster it was adopted by"
    );
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().left_in_spool, 0);
    let recorded = std::fs::read_to_string(spool.join("cluster")).unwrap();
    assert!(
        recorded.contains(&format!("bootstrap={}", other.bootstrap())),
        "{recorded}"
    );
}

/// Composed: the other cluster is down when the bridge starts, so it cannot tell whose
/// the spool is; callbacks are still taken and wait with the spooled events; when the
/// other cluster comes up and says who it is, the bridge stops by itself, sends none of
/// them there, and keeps them all for an `--adopt-spool` run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_answers_only_after_start_is_refused_then_and_gets_nothing_until_adopted() {
    let mut other = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    let first = spawn_app_with(|s| s.kafka.create_topics = false).await;
    let mut keys = Vec::new();
    for n in 0..3 {
        let key = format!("spooled-for-the-first-{n}");
        assert_eq!(first.callback(SENT, &sent_body(&key)).await.status, 200);
        keys.push(key);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !first.spool_dir.join("cluster").exists() {
        assert!(std::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let topic = first.topic.clone();
    let keep = same_spool_and_topics(&first);
    let pointed_elsewhere = test_settings(|s| {
        keep(s);
        s.kafka.brokers = Some(other.bootstrap());
    });
    drop(keep);
    assert_eq!(first.shutdown().await.left_in_spool, 3);
    tokio::task::block_in_place(|| other.kill());

    let config = Config::try_from(pointed_elsewhere.clone()).unwrap();
    let app = Application::build(config)
        .await
        .expect("with the cluster silent, the spool is not refused yet");
    let port = app.local_addr().port();
    let running = tokio::spawn(app.run_until(std::future::pending::<()>()));
    let taken = "taken-while-nobody-answered";
    let path = format!("/callback?{}", signed_query(SENT));
    let answer = tokio::task::block_in_place(|| bare_post(port, &path, &sent_body(taken)));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    keys.push(taken.to_owned());

    tokio::task::block_in_place(|| {
        other.restart();
        other.wait_ready();
    });
    let report = tokio::time::timeout(std::time::Duration::from_secs(60), running)
        .await
        .expect("the bridge stops by itself once the other cluster answers")
        .unwrap();
    let why = report.broken.expect("it says why it stopped");
    assert!(
        why.contains(&other.bootstrap()) && why.contains("--adopt-spool"),
        "{why}"
    );
    assert_eq!(
        report.left_in_spool, 4,
        "the spooled and the new callback wait"
    );
    // The bridge may stop before its background topic creation reached the cluster.
    assert_eq!(
        record_count_if_any(&other.bootstrap(), &topic).await,
        0,
        "nothing reached the other cluster"
    );

    let mut adopting = pointed_elsewhere;
    adopting.adopt_spool = true;
    let adopted = Application::build(Config::try_from(adopting).unwrap())
        .await
        .expect("adopted");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(adopted.run_until(async {
        let _ = stopped.await;
    }));
    let records = read_records_from(&other.bootstrap(), &topic, 4).await;
    let mut read: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    keys.sort();
    assert_eq!(
        read, keys,
        "every callback answered 200, once, in the adopting cluster"
    );
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().left_in_spool, 0);
}
