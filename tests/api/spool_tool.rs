//! Dead letters and spools without a bridge: `tim-kafka-bridge spool inspect | drain`,
//! run as an operator would, against the real broker.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::broker::{brokers, Kafka, Layout};
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn spool_command(args: &[&str], dir: &Path, brokers: &str) -> Output {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TIM_BRIDGE_")) {
        command.env_remove(name);
    }
    command
        .arg("spool")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("TIM_BRIDGE_KAFKA_BROKERS", brokers)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn inspect(dir: &Path) -> Value {
    let out = spool_command(&["inspect", "--json", "--dead"], dir, "127.0.0.1:1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn drain(args: &[&str], dir: &Path, brokers: &str) -> String {
    let out = spool_command(&[&["drain"], args].concat(), dir, brokers);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "spool drain failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_producer_refuses_is_a_dead_letter_and_spool_drain_dead_delivers_it() {
    let app = spawn_app_with(|s| {
        s.kafka
            .producer
            .insert("message.max.bytes".into(), "3000".into());
    })
    .await;
    assert_eq!(
        app.callback(SENT, &text_message("too-big", &"大".repeat(2000)))
            .await
            .status,
        200
    );
    assert_eq!(app.callback(SENT, &sent_body("fits")).await.status, 200);
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("fits")
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !app
        .get("/metrics")
        .await
        .1
        .contains("tim_bridge_dead_letters 1")
    {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (topic, dir) = (app.topic.clone(), app.spool_dir.clone());
    app.shutdown().await;

    let report = inspect(&dir);
    assert_eq!(report["dead_letters"], 1, "{report}");
    assert_eq!(
        report["dead_by_topic"][&topic]["message_too_large"], 1,
        "{report}"
    );
    assert_eq!(report["dead"][0]["key"], "too-big", "{report}");
    assert_eq!(report["waiting"], 0, "{report}");

    // With the default limit, as an operator would after fixing the setting.
    let out = drain(&["--dead"], &dir, brokers());
    assert!(
        out.contains("dead letters: sent 1, refused again 0, left 0"),
        "{out}"
    );
    let records = read_records(&topic, 2).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["fits", "too-big"]);
    assert_eq!(inspect(&dir)["dead_letters"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_spool_of_a_killed_bridge_is_drained_into_the_restarted_broker() {
    let mut kafka = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    let bootstrap = kafka.bootstrap();
    let topic = unique_topic("tim.orphan");
    create_topic_on(&bootstrap, &topic).await;
    let spool = tempfile::tempdir().unwrap().keep().join("spool");
    let port = free_port();
    kafka.kill();
    let mut bridge = crate::durability::BridgeProcess::start(port, &spool, &topic, &bootstrap);
    let app = TestApp::at(&format!("http://127.0.0.1:{port}"));
    let mut acked = Vec::new();
    for i in 0..300 {
        let key = format!("orphan-{i}");
        assert_eq!(
            app.callback(SENT, &sent_body(&key)).await.status,
            200,
            "{key}"
        );
        acked.push(key);
    }
    bridge.kill_9();

    let before = inspect(&spool);
    assert_eq!(before["waiting"], 300, "{before}");
    tokio::task::block_in_place(|| kafka.restart());
    let out = drain(&[], &spool, &bootstrap);
    assert!(out.contains("sent 300 records, 0 left"), "{out}");
    let records = read_records_from(&bootstrap, &topic, 300).await;
    assert_eq!(chaos_report("orphaned-spool", &acked, 1, &records), 0);
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    acked.sort();
    assert_eq!(keys, acked, "every 200 is in Kafka");
    assert_eq!(inspect(&spool)["waiting"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_a_spool_a_running_bridge_holds() {
    let app = spawn_app().await;
    let out = spool_command(&["drain"], &app.spool_dir, brokers());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another bridge"), "{stderr}");
}
