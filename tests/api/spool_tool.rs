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

/// `spool drain` with `args`: whether it exited 0, and what it printed.
fn drain_may_fail(args: &[&str], dir: &Path, brokers: &str) -> (bool, String) {
    let out = spool_command(&[&["drain"], args].concat(), dir, brokers);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn raise_max_message_bytes(topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let config =
        AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", "1048588");
    for result in admin
        .alter_configs([&config], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_behind_waiting_ones_is_one_dead_letter_through_restarts_and_drains_and_one_record(
) {
    let (limited, late) = (unique_topic("tim.limited"), unique_topic("tim.late"));
    crate::refusals::create_topic_with_limit(&limited, "2048").await;
    let bridge = |spool: Option<std::path::PathBuf>| {
        let (limited, late) = (limited.clone(), late.clone());
        spawn_app_with(move |s| {
            s.kafka.create_topics = false;
            s.kafka.topic = limited;
            s.kafka
                .command_topics
                .insert("C2C.CallbackAfterMsgWithDraw".into(), late);
            if let Some(spool) = spool {
                s.spool_dir = spool;
            }
        })
    };
    // Two events for a topic that does not exist yet, then one its topic refuses.
    let app = bridge(None).await;
    for key in ["waiting-1", "waiting-2"] {
        let answer = app
            .callback("C2C.CallbackAfterMsgWithDraw", &withdrawn_message(key))
            .await;
        assert_eq!(answer.status, 200);
    }
    let big = text_message("too-big", &crate::refusals::incompressible(8 * 1024));
    assert_eq!(app.callback(SENT, &big).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric_value(&app.get("/metrics").await.1, "tim_bridge_dead_letters") != 1.0 {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = app.spool_dir.clone();
    let report = app.shutdown().await;
    assert_eq!(report.left_in_spool, 2, "the dead letter is settled");
    let counts = |report: &Value| (report["waiting"].clone(), report["dead_letters"].clone());
    assert_eq!(counts(&inspect(&dir)), (2.into(), 1.into()));

    for round in 1..=2 {
        let (ok, out) = drain_may_fail(&["--patience", "5s"], &dir, brokers());
        assert!(
            !ok,
            "round {round}: a drain that leaves events exits non-zero: {out}"
        );
        assert!(
            out.contains("sent 0 records, 2 left") && out.contains("1 dead letters wait"),
            "round {round}: {out}"
        );
        let app = bridge(Some(dir.clone())).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let metrics = app.get("/metrics").await.1;
        assert_eq!(
            metric_value(&metrics, "tim_bridge_dead_letters"),
            1.0,
            "{metrics}"
        );
        assert_eq!(
            metric_value(&metrics, "tim_bridge_forward_queue_depth"),
            2.0,
            "{metrics}"
        );
        assert_eq!(app.shutdown().await.left_in_spool, 2, "round {round}");
        assert_eq!(
            counts(&inspect(&dir)),
            (2.into(), 1.into()),
            "round {round}"
        );
    }

    create_topic(&late).await;
    let (ok, out) = drain_may_fail(&[], &dir, brokers());
    assert!(!ok, "a dead letter is still left behind: {out}");
    assert!(
        out.contains("sent 2 records, 0 left") && out.contains("1 dead letters wait"),
        "{out}"
    );
    raise_max_message_bytes(&limited).await;
    let (ok, out) = drain_may_fail(&["--dead"], &dir, brokers());
    assert!(ok, "{out}");
    assert!(
        out.contains("dead letters: sent 1, refused again 0, left 0; 0 dead letters wait"),
        "{out}"
    );
    assert_eq!(counts(&inspect(&dir)), (0.into(), 0.into()));
    let (ok, out) = drain_may_fail(&["--dead"], &dir, brokers());
    assert!(
        ok && out.contains("dead letters: sent 0"),
        "sent once: {out}"
    );

    assert_eq!(read_records(&late, 2).await.len(), 2);
    let records = read_records(&limited, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("too-big"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        record_count(&limited).await,
        1,
        "one record, not one per refusal"
    );
}
