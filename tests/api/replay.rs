//! `tim-kafka-bridge replay` against events the bridge published to the real broker.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::broker::brokers;
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn replay(topic: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = Command::new(BINARY)
        .args([
            "replay",
            "--brokers",
            brokers(),
            "--topic",
            topic,
            "--quiet",
        ])
        .args(args)
        .env_remove("TIM_BRIDGE_KAFKA_BROKERS")
        .output()
        .unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn keys(lines: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = lines
        .iter()
        .map(|l| format!("{}/{}", l["key"].as_str().unwrap(), l["event"]["type"]))
        .collect();
    keys.sort();
    keys
}

fn expected(records: &[&Record]) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| format!("{}/{}", r.key.as_deref().unwrap(), r.value["type"]))
        .collect();
    keys.sort();
    keys
}

/// Each partition's lines come in offset order.
fn assert_partition_order(lines: &[Value]) {
    let mut last: HashMap<i64, i64> = HashMap::new();
    for l in lines {
        let (p, o) = (
            l["partition"].as_i64().unwrap(),
            l["offset"].as_i64().unwrap(),
        );
        assert!(
            last.insert(p, o).is_none_or(|prev| prev < o),
            "partition {p} out of order"
        );
    }
}

/// Two batches of a message story (sent, withdrawn) a couple of seconds apart.
async fn published_batches(app: &TestApp) -> (Vec<Record>, SystemTime) {
    for (batch, range) in [(0, 0..6u64), (1, 6..10u64)] {
        if batch == 1 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        for i in range {
            let (from, to) = if i % 2 == 0 {
                ("alice", "bob")
            } else {
                ("carol", "bob")
            };
            for command in ["C2C.CallbackAfterSendMsg", "C2C.CallbackAfterMsgWithDraw"] {
                let body = format!(
                    r#"{{"CallbackCommand":"{command}","From_Account":"{from}","To_Account":"{to}","MsgKey":"{}_{}_1557481126"}}"#,
                    48374 + i * 7919,
                    (i * 2654435761) % (1 << 32)
                );
                assert_eq!(app.callback(command, &body).await.status, 200);
            }
        }
        if batch == 0 {
            read_records(&app.topic, 12).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    let records = read_records(&app.topic, 20).await;
    let mut sorted: Vec<i64> = records.iter().map(|r| r.timestamp_ms).collect();
    sorted.sort();
    let boundary = (sorted[11] + sorted[12]) / 2;
    (
        records,
        SystemTime::UNIX_EPOCH + Duration::from_millis(boundary as u64),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_starts_and_stops_where_asked_with_exactly_the_expected_events() {
    let app = spawn_app().await;
    let (records, middle) = published_batches(&app).await;
    let all: Vec<&Record> = records.iter().collect();
    let middle_text = humantime::format_rfc3339_millis(middle).to_string();
    let middle_ms = middle
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let busy = (0..PARTITIONS)
        .max_by_key(|p| records.iter().filter(|r| r.partition == *p).count())
        .unwrap();

    let cases: Vec<(Vec<String>, Vec<&Record>)> = vec![
        (vec![], all.clone()),
        (vec!["--from".into(), "beginning".into()], all.clone()),
        (
            vec!["--from".into(), "offset:1".into()],
            all.iter().copied().filter(|r| r.offset >= 1).collect(),
        ),
        (
            vec!["--from".into(), format!("{busy}:1")],
            all.iter()
                .copied()
                .filter(|r| r.partition == busy && r.offset >= 1)
                .collect(),
        ),
        (
            vec!["--from".into(), format!("time:{middle_text}")],
            all.iter()
                .copied()
                .filter(|r| r.timestamp_ms >= middle_ms)
                .collect(),
        ),
        (
            vec!["--until".into(), format!("time:{middle_text}")],
            all.iter()
                .copied()
                .filter(|r| r.timestamp_ms <= middle_ms)
                .collect(),
        ),
        (vec!["--from".into(), "end".into()], vec![]),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, lines, stderr) = replay(&app.topic, &args);
        assert_eq!(status, 0, "{args:?}: {stderr}");
        assert_eq!(keys(&lines), expected(&want), "{args:?}");
        assert_partition_order(&lines);
    }
    let (_, first_batch, _) = replay(&app.topic, &["--until", &format!("time:{middle_text}")]);
    assert_eq!(
        first_batch.len(),
        12,
        "the first batch is 6 messages, sent and withdrawn"
    );
    let (_, five, _) = replay(&app.topic, &["--count", "5"]);
    assert_eq!(five.len(), 5);
    let line = &replay(&app.topic, &["--count", "1"]).1[0];
    assert_eq!(line["topic"], app.topic.as_str());
    assert!(line["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(line["event"]["specversion"], "1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_exactly_the_expected_events() {
    let app = spawn_app().await;
    let (records, _) = published_batches(&app).await;

    let (_, withdrawn, _) = replay(&app.topic, &["--type", "tim.c2c.message.withdrawn"]);
    let (_, alice, _) = replay(&app.topic, &["--user", "alice"]);
    let (_, carol_bob, _) = replay(&app.topic, &["--conversation", "bob,carol"]);
    let (_, both, _) = replay(
        &app.topic,
        &["--user", "carol", "--type", "tim.c2c.message.sent"],
    );

    let pick = |f: &dyn Fn(&Record) -> bool| {
        expected(&records.iter().filter(|r| f(r)).collect::<Vec<_>>())
    };
    assert_eq!(
        keys(&withdrawn),
        pick(&|r| r.value["type"] == "tim.c2c.message.withdrawn")
    );
    assert_eq!(
        keys(&alice),
        pick(&|r| r.value["data"]["from"] == "alice" || r.value["data"]["to"] == "alice")
    );
    assert_eq!(
        keys(&carol_bob),
        pick(&|r| r.value["data"]["from"] == "carol")
    );
    assert_eq!(
        keys(&both),
        pick(&|r| r.value["data"]["from"] == "carol" && r.value["type"] == "tim.c2c.message.sent")
    );
    assert_eq!(
        (withdrawn.len(), alice.len(), carol_bob.len(), both.len()),
        (10, 10, 10, 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_stopped_halfway_resumes_with_the_rest_and_no_gap() {
    let app = spawn_app().await;
    let (records, _) = published_batches(&app).await;
    let group = format!("replay-group-{}", now());

    let (s1, first, e1) = replay(&app.topic, &["--group", &group, "--count", "7"]);
    let (s2, rest, e2) = replay(&app.topic, &["--group", &group]);
    let (_, nothing_left, _) = replay(&app.topic, &["--group", &group]);

    assert_eq!((s1, s2), (0, 0), "{e1} {e2}");
    assert_eq!(first.len(), 7);
    let mut together: Vec<Value> = first.clone();
    together.extend(rest.iter().cloned());
    assert_eq!(
        keys(&together),
        expected(&records.iter().collect::<Vec<_>>()),
        "every event once, no gap"
    );
    assert!(nothing_left.is_empty());
}

#[tokio::test]
async fn a_missing_topic_partition_or_offset_is_a_clear_error() {
    let app = spawn_app().await;
    assert_eq!(app.callback("C2C.CallbackAfterSendMsg", r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"k"}"#).await.status, 200);
    let r = read_records(&app.topic, 1).await.remove(0);

    let cases = [
        (
            "no.such.topic".to_owned(),
            vec![],
            "topic no.such.topic does not exist",
        ),
        (
            app.topic.clone(),
            vec!["--from".to_owned(), "9:0".to_owned()],
            "partition 9",
        ),
        (
            app.topic.clone(),
            vec!["--from".to_owned(), format!("{}:50", r.partition)],
            "out of range",
        ),
        (
            app.topic.clone(),
            vec!["--from".to_owned(), "sideways".to_owned()],
            "expected",
        ),
    ];
    for (topic, args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, lines, stderr) = replay(&topic, &args);
        assert_eq!(status, 2, "{args:?}");
        assert!(lines.is_empty());
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// An internal service that fails each event's first two attempts.
async fn flaky_service() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/events", listener.local_addr().unwrap());
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let log = Arc::clone(&delivered);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (log, attempts) = (Arc::clone(&log), Arc::clone(&attempts));
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (log, attempts) = (Arc::clone(&log), Arc::clone(&attempts));
                async move {
                    let event: Value = serde_json::from_slice(
                        &req.into_body().collect().await.unwrap().to_bytes(),
                    )
                    .unwrap();
                    let id = event["id"].as_str().unwrap().to_owned();
                    let n = {
                        let mut a = attempts.lock().unwrap();
                        *a.entry(id).and_modify(|n| *n += 1).or_insert(1)
                    };
                    let status = if n <= 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        log.lock().unwrap().push(event);
                        StatusCode::OK
                    };
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (address, delivered)
}

fn committed(group: &str, topic: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut all = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        all.add_partition(topic, p);
    }
    consumer
        .committed_offsets(all, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_url_delivers_every_event_in_key_order_and_commits_only_past_delivered_ones() {
    let app = spawn_app().await;
    let (records, _) = published_batches(&app).await;
    let (url, delivered) = flaky_service().await;
    let group = format!("replay-url-{}", now());
    let by_id: HashMap<String, &Record> = records
        .iter()
        .map(|r| (r.value["id"].as_str().unwrap().to_owned(), r))
        .collect();
    let (topic, group_id, target) = (app.topic.clone(), group.clone(), url.clone());
    let run = move || {
        Command::new(BINARY)
            .args([
                "replay",
                "--brokers",
                brokers(),
                "--topic",
                &topic,
                "--quiet",
                "--group",
                &group_id,
                "--to-url",
                &target,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    let mut first = run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.lock().unwrap().len() < 6 {
        assert!(Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill: HashSet<(i32, i64)> = delivered
        .lock()
        .unwrap()
        .iter()
        .map(|e| by_id[e["id"].as_str().unwrap()])
        .map(|r| (r.partition, r.offset))
        .collect();
    for (partition, offset) in committed(&group, &app.topic) {
        for o in 0..offset {
            assert!(
                at_kill.contains(&(partition, o)),
                "committed past {partition}:{o}, which was not delivered"
            );
        }
    }
    let status = tokio::task::spawn_blocking(move || run().wait().unwrap())
        .await
        .unwrap();

    assert!(status.success());
    let delivered = delivered.lock().unwrap().clone();
    let ids: HashSet<&str> = delivered
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), records.len(), "every event delivered");
    assert!(
        delivered.len() - ids.len() <= PARTITIONS as usize,
        "at most one repeat per partition, from the kill"
    );
    let mut stories: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &delivered {
        stories
            .entry(e["subject"].as_str().unwrap())
            .or_default()
            .push(e["type"].as_str().unwrap());
    }
    for (key, story) in stories {
        let first_withdrawn = story
            .iter()
            .position(|t| *t == "tim.c2c.message.withdrawn")
            .unwrap();
        assert!(
            story[..first_withdrawn].contains(&"tim.c2c.message.sent"),
            "{key}: {story:?}"
        );
    }
}
