//! With `ack = durable`, no callback answered 200 is lost: not to a kill -9, not to a
//! Kafka outage. `scripts/chaos.sh` runs the crash scenario bigger, with more kills.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::broker::{brokers, Kafka, Layout};
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bridge as its own process, so that it can be killed.
pub struct BridgeProcess {
    child: Child,
}

impl BridgeProcess {
    pub fn start(port: u16, spool: &Path, topic: &str, brokers: &str) -> Self {
        Self::start_with(port, spool, topic, brokers, &[])
    }

    /// As `start`, with more variables in its environment.
    pub fn start_with(
        port: u16,
        spool: &Path,
        topic: &str,
        brokers: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(BINARY);
        command.envs(env.iter().copied());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TIM_BRIDGE_")) {
            command.env_remove(name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spool.with_extension("log"))
            .unwrap();
        let child = command
            .arg("serve")
            .env("TIM_BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TIM_BRIDGE_KAFKA_BROKERS", brokers)
            .env("TIM_BRIDGE_SDKAPPID", SIGNED_APP.to_string())
            .env("TIM_BRIDGE_TOKEN", TOKEN)
            .env("TIM_BRIDGE_TOPIC", topic)
            .env("TIM_BRIDGE_OTHER_TOPIC", topic)
            .env("TIM_BRIDGE_SPOOL_DIR", spool)
            .env("TIM_BRIDGE_ACK", "durable")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the bridge did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        BridgeProcess { child }
    }

    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap();
    }
}

/// A bridge a test left running (it failed, or had no more use for it) is killed.
impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A spool directory of its own, kept after the test for a look at what it left.
fn fresh_spool() -> PathBuf {
    tempfile::tempdir().unwrap().keep().join("spool")
}

/// A POST of `body` to the bridge process's callback path with `query`.
fn callback_request(port: u16, query: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://127.0.0.1:{port}/callback?{query}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn sent(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"{key}",
        "MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"崩溃测试 💥 {key}"}}}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_with_sigkill_mid_load_loses_no_callback_it_answered_200() {
    let total = setting("TIM_BRIDGE_CHAOS_CALLBACKS", 20_000);
    let kills = setting("TIM_BRIDGE_CHAOS_KILLS", 1);
    let clients = 32;
    let topic = unique_topic("tim.chaos");
    create_topic(&topic).await;
    let (spool, port) = (fresh_spool(), free_port());
    let mut bridge = BridgeProcess::start(port, &spool, &topic, brokers());

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let load: Vec<_> = (0..clients)
        .map(|_| {
            let (next, acked, client) = (Arc::clone(&next), Arc::clone(&acked), client.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let body = sent(&format!("chaos-{i}"));
                    // Not answered 200 (the bridge was down): send it again, as a careful client would.
                    loop {
                        let query = signed_query("C2C.CallbackAfterSendMsg");
                        match client.request(callback_request(port, &query, &body)).await {
                            Ok(r) if r.status() == 200 => {
                                acked.lock().unwrap().push(i);
                                break;
                            }
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                }
            })
        })
        .collect();
    for k in 1..=kills {
        while acked.lock().unwrap().len() < total * k / (kills + 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bridge.kill_9();
        bridge = BridgeProcess::start(port, &spool, &topic, brokers());
    }
    for task in load {
        task.await.unwrap();
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let count = settled_count(brokers(), &topic, acked.len()).await;
    let records = read_records(&topic, count).await;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *copies.entry(r.key.clone().unwrap()).or_default() += 1;
    }
    let lost = acked
        .iter()
        .filter(|i| !copies.contains_key(&format!("chaos-{i}")))
        .count();
    let duplicated: usize = copies.values().map(|n| n - 1).sum();
    println!(
        "chaos: scenario=kill callbacks={total} kills={kills} acked={} delivered={} records={} lost={lost} duplicated={duplicated}",
        acked.len(),
        copies.len(),
        records.len()
    );
    bridge.terminate();
    assert_eq!(acked.len(), total);
    assert_eq!(lost, 0, "callbacks answered 200 that never reached Kafka");
    assert_eq!(copies.len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_under_load_gets_no_503_and_loses_nothing_and_keeps_order() {
    let outage = Duration::from_secs(setting("TIM_BRIDGE_OUTAGE_SECS", 30) as u64);
    let mut broker = Kafka::start(Layout::default());
    let address = broker.bootstrap();
    let app = Arc::new(
        spawn_app_with(|s| {
            s.kafka.brokers = Some(address.clone());
            s.kafka.readiness_interval_ms = 200;
        })
        .await,
    );
    let running = Arc::new(AtomicBool::new(true));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|client| {
            let (app, running, statuses) = (
                Arc::clone(&app),
                Arc::clone(&running),
                Arc::clone(&statuses),
            );
            tokio::spawn(async move {
                let mut keys = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let key = format!("outage-{client}-{}", keys.len());
                    let withdrawn = withdrawn_message(&key);
                    let s1 = app
                        .callback("C2C.CallbackAfterSendMsg", &sent(&key))
                        .await
                        .status;
                    let s2 = app
                        .callback("C2C.CallbackAfterMsgWithDraw", &withdrawn)
                        .await
                        .status;
                    statuses.lock().unwrap().extend([s1.as_u16(), s2.as_u16()]);
                    keys.push(key);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                keys
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.kill();
    // The readiness check gives the cluster 5 s to answer before calling it gone.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ready_status, ready_body) = app.get("/readyz").await;
    tokio::time::sleep(outage.saturating_sub(Duration::from_secs(8))).await;
    tokio::task::block_in_place(|| broker.restart());
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::Relaxed);
    let mut keys = Vec::new();
    for task in load {
        keys.extend(task.await.unwrap());
    }

    let statuses = std::mem::take(&mut *statuses.lock().unwrap());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every callback answered 200 through the outage"
    );
    assert_eq!(ready_status, 200, "{ready_body}");
    assert!(ready_body.starts_with("degraded"), "{ready_body}");
    // Every event, whatever duplicates come with them: after a broker's restart, a
    // record Kafka kept but never confirmed is sent again (at least once).
    let event = |key: &str, kind: &str| format!("{key} {kind}");
    let expected: HashSet<String> = keys
        .iter()
        .flat_map(|k| {
            [
                event(k, "tim.c2c.message.sent"),
                event(k, "tim.c2c.message.withdrawn"),
            ]
        })
        .collect();
    let mut missing = expected.clone();
    let mut checked = 0;
    let records = read_records_until(
        &address,
        &app.topic,
        Duration::from_secs(180),
        move |read| {
            for r in &read[checked..] {
                missing.remove(&event(
                    r.key.as_deref().unwrap_or(""),
                    r.value["type"].as_str().unwrap_or(""),
                ));
            }
            checked = read.len();
            missing.is_empty()
        },
    )
    .await;
    let mut missing = expected.clone();
    for r in &records {
        missing.remove(&event(
            r.key.as_deref().unwrap_or(""),
            r.value["type"].as_str().unwrap_or(""),
        ));
    }
    if !missing.is_empty() {
        // Which side lost them: the topic's own count, and what the bridge says it holds.
        let in_topic = record_count_on(&address, &app.topic).await;
        let metrics = app.get("/metrics").await.1;
        let bridge: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                [
                    "tim_bridge_queue_depth",
                    "dead_letter",
                    "events_produced",
                    "restarts",
                ]
                .iter()
                .any(|m| l.contains(m) && !l.starts_with('#'))
            })
            .collect();
        panic!(
            "{} of {} events answered 200 are not in Kafka ({} records read, {in_topic} in the topic; the bridge: {bridge:?}): {missing:?}",
            missing.len(),
            expected.len(),
            records.len()
        );
    }
    let mut stories: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in &records {
        stories.entry(r.key.clone().unwrap()).or_default().push(r);
    }
    println!(
        "outage: {} callbacks over {} s of outage, {} records, {} of them duplicates",
        statuses.len(),
        outage.as_secs(),
        records.len(),
        records.len() - expected.len()
    );
    for key in &keys {
        let story = stories.get_mut(key).unwrap_or_else(|| panic!("{key} lost"));
        story.sort_by_key(|r| r.offset);
        assert_eq!(story[0].value["type"], "tim.c2c.message.sent", "{key}");
        assert_eq!(
            story.last().unwrap().value["type"],
            "tim.c2c.message.withdrawn",
            "{key}"
        );
        assert!(
            story.iter().all(|r| r.partition == story[0].partition),
            "{key}"
        );
    }
}

#[tokio::test]
async fn every_line_about_a_callback_names_its_peer_its_app_and_its_command() {
    let topic = unique_topic("tim.spans");
    create_topic(&topic).await;
    let (spool, port) = (fresh_spool(), free_port());
    let bridge = BridgeProcess::start(port, &spool, &topic, brokers());
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let post =
        |query: String, key: &str| client.request(callback_request(port, &query, &sent(key)));
    let good = signed_query("C2C.CallbackAfterSendMsg");
    let forged = format!("{}{}", &good[..good.rfind("Sign=").unwrap()], "Sign=00");
    assert_eq!(post(forged, "forged").await.unwrap().status(), 401);
    assert_eq!(post(good, "span-ok").await.unwrap().status(), 200);
    let records = read_records(&topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("span-ok"));
    bridge.terminate();

    let log = std::fs::read_to_string(spool.with_extension("log")).unwrap();
    let rejected = log
        .lines()
        .find(|l| l.contains("Rejected a callback"))
        .unwrap_or_else(|| panic!("no line about the forged callback in:\n{log}"));
    for field in [
        "peer=127.0.0.1".to_owned(),
        format!("app={SIGNED_APP}"),
        "command=C2C.CallbackAfterSendMsg".to_owned(),
        "status=401".to_owned(),
    ] {
        assert!(
            rejected.contains(&field),
            "{field} missing from: {rejected}"
        );
    }
}
