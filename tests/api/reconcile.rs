//! `reconcile` against a stand-in for Tencent's REST API (HTTPS, a CA the test makes)
//! and the real Apache Kafka: the archived messages whose callbacks never reached the
//! bridge are published, with the id, key and partition their callbacks get, once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use tim_kafka_bridge::reconcile::Hour;
use tim_kafka_bridge::rest::usersig;

use crate::helpers::*;
use crate::tls_support::TestCa;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");
const ADMIN: &str = "administrator";
/// The official README's sample secret key.
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// Tencent's REST API as its pages describe it, for one app: `get_history`
/// (cloud.tencent.com/document/product/269/1650) answering the files of the hours it
/// holds, 1004 for the others, and serving the files; every request's `sdkappid`,
/// `identifier`, `random` and UserSig checked (HMAC and expiry) as Tencent does.
struct StandIn {
    url: String,
    served: Served,
}

/// `(ChatType, MsgTime)` → the hour's files, before gzip.
type Archive = HashMap<(String, String), Vec<String>>;

/// What the stand-in holds and how it behaves, shared with its connections.
#[derive(Clone)]
struct Served {
    hours: Arc<Mutex<Archive>>,
    calls: Arc<Mutex<Vec<String>>>,
    /// Answer the next `get_history` with 60018 ("too frequent, retry later").
    busy: Arc<AtomicBool>,
    /// Serve files with a byte changed after gzip: their GzipMD5 does not match.
    corrupt: Arc<AtomicBool>,
    /// Make broken gzip files (cut short) and list them as they are: their checksums
    /// match, they cannot be read.
    broken: Arc<AtomicBool>,
    /// Files after the first of an hour are not served while this is set.
    hold_back: Arc<AtomicBool>,
    base: String,
}

fn tencent_error(code: i64, info: &str) -> Value {
    json!({ "ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info })
}

impl StandIn {
    async fn start(ca: &TestCa) -> Self {
        let acceptor = ca.acceptor("tencent-stand-in");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let served = Served {
            hours: Arc::default(),
            calls: Arc::default(),
            busy: Arc::new(AtomicBool::new(true)),
            corrupt: Arc::default(),
            broken: Arc::default(),
            hold_back: Arc::default(),
            base: url.clone(),
        };
        let kept = served.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, served) = (acceptor.clone(), served.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let served = served.clone();
                        async move {
                            let answer = answer(request, &served).await;
                            Ok::<_, Infallible>(Response::new(Full::new(answer)))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, served: kept }
    }

    fn hold(&self, chat_type: &str, msg_time: &str, files: Vec<String>) {
        self.served
            .hours
            .lock()
            .unwrap()
            .insert((chat_type.to_owned(), msg_time.to_owned()), files);
    }
}

async fn answer(request: Request<hyper::body::Incoming>, served: &Served) -> Bytes {
    let (hours, calls, base) = (&served.hours, &served.calls, &served.base);
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if let Some(name) = path.strip_prefix("/files/") {
        let parts: Vec<&str> = name.split('-').collect();
        let n: usize = parts[2].parse().unwrap();
        while n > 0 && served.hold_back.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let file = hours.lock().unwrap()[&(parts[0].to_owned(), parts[1].to_owned())][n].clone();
        let mut gzipped = made_gzip(&file, served);
        if served.corrupt.load(Ordering::SeqCst) {
            let middle = gzipped.len() / 2;
            gzipped[middle] ^= 0xff;
        }
        return Bytes::from(gzipped);
    }
    calls.lock().unwrap().push(path.clone());
    // The common rules (intl.cloud.tencent.com/document/product/1047/34620).
    let checked = query.get("sdkappid").map(String::as_str) == Some("1400000001")
        && query.get("identifier").map(String::as_str) == Some(ADMIN)
        && query.get("contenttype").map(String::as_str) == Some("json")
        && query
            .get("random")
            .is_some_and(|r| r.parse::<u32>().is_ok());
    if !checked {
        return Bytes::from(tencent_error(60002, "bad request").to_string());
    }
    let sig = query.get("usersig").and_then(|s| usersig::decode(s));
    let valid = sig.as_ref().is_some_and(|sig| {
        let (time, expire) = (
            sig["TLS.time"].as_u64().unwrap(),
            sig["TLS.expire"].as_u64().unwrap(),
        );
        sig["TLS.identifier"] == ADMIN
            && sig["TLS.sdkappid"] == 1400000001
            && time + expire > now()
            && sig["TLS.sig"] == usersig::signature(1400000001, ADMIN, KEY, time, expire)
    });
    if !valid {
        return Bytes::from(tencent_error(60004, "usersig invalid").to_string());
    }
    assert_eq!(path, "/v4/open_msg_svc/get_history");
    if served.busy.swap(false, Ordering::SeqCst) {
        return Bytes::from(tencent_error(60018, "too frequent").to_string());
    }
    let asked: Value = serde_json::from_slice(&body).unwrap();
    let (chat, hour) = (
        asked["ChatType"].as_str().unwrap().to_owned(),
        asked["MsgTime"].as_str().unwrap().to_owned(),
    );
    // Files are kept 7 days: "文件有效期7天" (the same page).
    let kept_since = tim_kafka_bridge::reconcile::Hour::starting(now() - 7 * 86_400).beijing();
    if hour < kept_since {
        return Bytes::from(tencent_error(1005, "file expired").to_string());
    }
    let Some(files) = hours
        .lock()
        .unwrap()
        .get(&(chat.clone(), hour.clone()))
        .cloned()
    else {
        return Bytes::from(tencent_error(1004, "Err_File_Not_Ready").to_string());
    };
    let listed: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            let gzipped = made_gzip(file, served);
            json!({
                "URL": format!("{base}/files/{chat}-{hour}-{n}"),
                "ExpireTime": "2030-01-01 00:00:00",
                "FileSize": file.len(), "FileMD5": hex::encode(Md5::digest(file.as_bytes())),
                "GzipSize": gzipped.len(), "GzipMD5": hex::encode(Md5::digest(&gzipped)),
            })
        })
        .collect();
    Bytes::from(
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "File": listed })
            .to_string(),
    )
}

/// The gzip file Tencent made of `text`: whole, or cut short when `broken`.
fn made_gzip(text: &str, served: &Served) -> Vec<u8> {
    let mut gzipped = gzip(text);
    if served.broken.load(Ordering::SeqCst) {
        gzipped.truncate(gzipped.len() * 3 / 5);
    }
    gzipped
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A file as the page shows one: a header line, a message per line, `]}`.
fn archive_file(chat: &str, hour: &str, messages: &[Value]) -> String {
    let mut file = format!(
        "{{\"SdkAppId\":1400000001,\"ChatType\":\"{chat}\",\"MsgTime\":\"{hour}\",\"MsgList\":[\n"
    );
    let lines: Vec<String> = messages.iter().map(Value::to_string).collect();
    file.push_str(&lines.join(",\n"));
    file.push_str("\n]}\n");
    file
}

fn c2c(n: u64, at: u64) -> Value {
    json!({"From_Account": format!("a{n}"), "To_Account": "b", "MsgTimestamp": at,
           "MsgSeq": 1000 + n, "MsgRandom": 5000 + n,
           "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": format!("hello {n}")}}]})
}

fn group(n: u64, at: u64) -> Value {
    json!({"From_Account": "a", "GroupId": "@TGS#reconcile", "MsgTimestamp": at, "MsgSeq": 100 + n,
           "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": format!("to all {n}")}}]})
}

/// The callback Tencent would have sent for an archived message.
fn as_callback(message: &Value, command: &str) -> String {
    let mut body = message.clone();
    let time = body["MsgTimestamp"].take();
    body.as_object_mut().unwrap().remove("MsgTimestamp");
    body["MsgTime"] = time.clone();
    body["CallbackCommand"] = json!(command);
    if command == "C2C.CallbackAfterSendMsg" {
        body["MsgKey"] = json!(format!("{}_{}_{}", body["MsgSeq"], body["MsgRandom"], time));
    }
    body.to_string()
}

fn run_reconcile(config: &std::path::Path, from: &str, to: &str) -> (i32, String, String) {
    run_reconcile_with(config, from, to, &[])
}

fn run_reconcile_with(
    config: &std::path::Path,
    from: &str,
    to: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .args(["reconcile", "--config"])
        .arg(config)
        .args(["--from", from, "--to", to])
        .args(extra)
        .env_remove("TIM_BRIDGE_KAFKA_BROKERS")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn hour_line<'a>(out: &'a str, chat: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!(") {chat} ")))
        .unwrap_or_else(|| panic!("no {chat} line in {out}"))
}

/// A bridge, the stand-in for Tencent with a CA of the test's, and a reconcile config
/// file for both, with the app's secret key `key`.
struct SetUp {
    app: TestApp,
    tencent: StandIn,
    config: tempfile::NamedTempFile,
    _ca_file: tempfile::NamedTempFile,
}

async fn set_up(key: &str) -> SetUp {
    let app = spawn_app().await;
    let ca = TestCa::new();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca.pem()).unwrap();
    let tencent = StandIn::start(&ca).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[[apps]]\nsdk_app_id = 1400000001\ntokens = [\"{TOKEN}\"]\nadmin = \"{ADMIN}\"\nsecret_key = \"{key}\"\nrest_url = \"{}\"\nrest_ca_file = \"{}\"\n[reconcile]\nstate_topic = \"{}.reconcile-state\"\n[kafka]\ncreate_topics = true\nbrokers = \"{}\"\ntopic = \"{}\"\ngroup_topic = \"{}\"\nuser_topic = \"{}\"\ngroup_events_topic = \"{}\"\nother_topic = \"{}\"\n",
            tencent.url,
            ca_file.path().display(),
            app.topic,
            crate::broker::brokers(),
            app.topic,
            app.group_topic,
            app.user_topic,
            app.group_events_topic,
            app.other_topic,
        ),
    )
    .unwrap();
    SetUp {
        app,
        tencent,
        config,
        _ca_file: ca_file,
    }
}

fn hour_range(hour_start: u64) -> (Hour, String, String) {
    let hour = Hour::starting(hour_start);
    (hour, hour.utc(), Hour::starting(hour_start + 3600).utc())
}

fn status_json(config: &std::path::Path) -> Value {
    let output = Command::new(BINARY)
        .args(["reconcile", "status", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn keys_of(records: &[Record]) -> Vec<String> {
    let mut keys: Vec<String> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    keys
}

fn c2c_key(message: &Value) -> String {
    format!(
        "{}_{}_{}",
        message["MsgSeq"], message["MsgRandom"], message["MsgTimestamp"]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_publishes_exactly_the_archived_messages_missing_from_the_topics_as_their_callbacks_would(
) {
    let SetUp {
        app,
        tencent,
        config,
        _ca_file: _ca,
    } = set_up(KEY).await;

    // The previous hour, in UTC and as Tencent names it (Beijing time): 1,000 one-to-one
    // messages in two files, 300 group messages in one.
    let hour_start = (now() / 3600 - 1) * 3600;
    let (hour, from, to) = hour_range(hour_start);
    let c2c_messages: Vec<Value> = (0..1000).map(|n| c2c(n, hour_start + n % 3600)).collect();
    let group_messages: Vec<Value> = (0..300).map(|n| group(n, hour_start + n * 7)).collect();
    // One line a writer broke, between two messages: counted, and the rest goes on.
    let first_file = archive_file("C2C", &hour.beijing(), &c2c_messages[..500]).replacen(
        "},\n",
        "},\nnot a message, a line the writer broke,\n",
        1,
    );
    let second_file = archive_file("C2C", &hour.beijing(), &c2c_messages[500..]);
    tencent.hold("C2C", &hour.beijing(), vec![first_file, second_file]);
    tencent.hold(
        "Group",
        &hour.beijing(),
        vec![archive_file("Group", &hour.beijing(), &group_messages)],
    );

    // 700 and 200 of them reached the bridge as callbacks; the others were lost.
    let group_sent = "Group.CallbackAfterSendMsg";
    let reached = |n: usize, every: usize, of: usize| n % every < of;
    for (n, message) in c2c_messages.iter().enumerate() {
        if reached(n, 10, 7) {
            let answer = app.callback(SENT, &as_callback(message, SENT)).await;
            assert_eq!(answer.status, 200);
        }
    }
    for (n, message) in group_messages.iter().enumerate() {
        if reached(n, 3, 2) {
            let answer = app
                .callback(group_sent, &as_callback(message, group_sent))
                .await;
            assert_eq!(answer.status, 200);
        }
    }
    read_records(&app.topic, 700).await;
    read_records(&app.group_topic, 200).await;

    let (code, out, err) = tokio::task::block_in_place(|| {
        run_reconcile_with(config.path(), &from, &to, &["--dry-run"])
    });
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        hour_line(&out, "C2C").contains("archived 1000 already 700 missing 300 published 0"),
        "{out}"
    );
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        700,
        "a dry run publishes nothing"
    );

    let (code, out, err) = tokio::task::block_in_place(|| run_reconcile(config.path(), &from, &to));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        hour_line(&out, "C2C")
            .contains("done      archived 1000 already 700 missing 300 published 300 unreadable 1"),
        "{out}"
    );
    assert!(
        hour_line(&out, "Group")
            .contains("archived 300 already 200 missing 100 published 100 unreadable 0"),
        "{out}"
    );
    assert!(out.contains("hour (UTC)"), "the summary table: {out}");
    let c2c_records = read_records(&app.topic, 1000).await;
    let group_records = read_records(&app.group_topic, 300).await;
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        1000
    );
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.group_topic).await,
        300
    );
    let mut expected: Vec<String> = c2c_messages.iter().map(c2c_key).collect();
    expected.sort();
    assert_eq!(
        keys_of(&c2c_records),
        expected,
        "every archived message once, keyed by its rebuilt MsgKey"
    );
    let from_history = c2c_records
        .iter()
        .filter(|r| r.headers.get("tim-origin").map(String::as_str) == Some("history"))
        .count();
    assert_eq!(from_history, 300);
    let mut expected_groups: Vec<String> = (0..300)
        .map(|n| format!("group:@TGS#reconcile:{}", 100 + n))
        .collect();
    expected_groups.sort();
    assert_eq!(keys_of(&group_records), expected_groups);

    // The state topic says the hour is done: the next run leaves it alone, `--force`
    // does it again and finds everything there, `reconcile status` shows it.
    let (code, out, err) = tokio::task::block_in_place(|| run_reconcile(config.path(), &from, &to));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(hour_line(&out, "C2C").contains("done earlier"), "{out}");
    let (code, out, err) =
        tokio::task::block_in_place(|| run_reconcile_with(config.path(), &from, &to, &["--force"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        hour_line(&out, "C2C").contains("already 1000 missing 0 published 0"),
        "{out}"
    );
    assert!(
        hour_line(&out, "Group").contains("already 300 missing 0 published 0"),
        "{out}"
    );
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        1000
    );
    let status = tokio::task::block_in_place(|| status_json(config.path()));
    assert_eq!(status["complete"], true, "{status}");
    let hours = status["hours"].as_array().unwrap();
    assert_eq!(
        hours
            .iter()
            .find(|h| h["chat_type"] == "C2C")
            .map(|h| h["unreadable_lines"].clone()),
        Some(serde_json::json!(["file 0 line 3"])),
        "the broken line is named by file and line: {status}"
    );
    let c2c_state = status["hours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["chat_type"] == "C2C" && h["beijing_hour"] == hour.beijing().as_str())
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(c2c_state["outcome"], "done");
    assert_eq!(c2c_state["archived"], 1000);
    assert_eq!(c2c_state["already"], 1000, "the --force run's");

    // Its callback, arriving late after all, gets the very id, key and partition.
    let late = &c2c_messages[7];
    assert_eq!(
        app.callback(SENT, &as_callback(late, SENT)).await.status,
        200
    );
    let all = read_records(&app.topic, 1001).await;
    let twins: Vec<_> = all
        .iter()
        .filter(|r| r.key.as_deref() == Some(c2c_key(late).as_str()))
        .collect();
    assert_eq!(twins.len(), 2);
    assert_eq!(
        twins[0].headers.get("tim-origin").map(String::as_str),
        Some("history")
    );
    assert_eq!(twins[0].value["timorigin"], "history");
    assert!(
        twins[1].value.get("timorigin").is_none(),
        "made from its callback"
    );
    assert_eq!(twins[0].value["id"], twins[1].value["id"]);
    assert_eq!(twins[0].partition, twins[1].partition);

    // An hour Tencent has no file for: past reconcile.ready_after_secs it had no
    // message (empty, exit 0); the current hour is not finished yet (exit 1).
    let (_, earlier_from, earlier_to) = hour_range(hour_start - 3600);
    let (code, out, _) = tokio::task::block_in_place(|| {
        run_reconcile_with(config.path(), &earlier_from, &earlier_to, &["--json"])
    });
    assert_eq!(code, 0, "{out}");
    let earlier: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(earlier["complete"], true);
    assert_eq!(earlier["hours"][0]["outcome"], "empty", "{earlier}");
    let (_, current_from, current_to) = hour_range(hour_start + 3600);
    let (code, out, _) =
        tokio::task::block_in_place(|| run_reconcile(config.path(), &current_from, &current_to));
    assert_eq!(code, 1, "{out}");
    assert!(
        hour_line(&out, "C2C").contains("not_ready")
            && out.contains("1004")
            && out.contains("NOT DONE"),
        "{out}"
    );
    assert!(
        err_said_retry(&tencent),
        "the first get_history was answered 60018 and tried again"
    );
}

fn err_said_retry(tencent: &StandIn) -> bool {
    !tencent.served.busy.load(Ordering::SeqCst) && tencent.served.calls.lock().unwrap().len() >= 7
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_in_the_middle_and_started_again_publishes_nothing_twice() {
    let SetUp {
        app,
        tencent,
        config,
        _ca_file: _ca,
    } = set_up(KEY).await;
    let hour_start = (now() / 3600 - 1) * 3600;
    let (hour, from, to) = hour_range(hour_start);
    let messages: Vec<Value> = (0..600).map(|n| c2c(n, hour_start + n)).collect();
    let files = messages
        .chunks(200)
        .map(|chunk| archive_file("C2C", &hour.beijing(), chunk))
        .collect();
    tencent.hold("C2C", &hour.beijing(), files);
    tencent.hold(
        "Group",
        &hour.beijing(),
        vec![archive_file("Group", &hour.beijing(), &[])],
    );
    for message in messages.iter().step_by(6) {
        assert_eq!(
            app.callback(SENT, &as_callback(message, SENT)).await.status,
            200
        );
    }
    read_records(&app.topic, 100).await;

    // The first file is read and its missing events published; the second is not
    // served yet when the run is killed with SIGKILL.
    tencent.served.hold_back.store(true, Ordering::SeqCst);
    let mut first = Command::new(BINARY)
        .args(["reconcile", "--config"])
        .arg(config.path())
        .args(["--from", &from, "--to", &to])
        .env_remove("TIM_BRIDGE_KAFKA_BROKERS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first_file_missing = 200 - 200 / 6 - 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while record_count_on(crate::broker::brokers(), &app.topic).await < 100 + first_file_missing {
        assert!(
            std::time::Instant::now() < deadline,
            "the first file's events never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    tencent.served.hold_back.store(false, Ordering::SeqCst);
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        100 + first_file_missing,
        "killed while the second file was not served yet"
    );

    let (code, out, err) = tokio::task::block_in_place(|| run_reconcile(config.path(), &from, &to));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        hour_line(&out, "C2C").contains(&format!(
            "archived 600 already {} missing {} published {}",
            100 + first_file_missing,
            500 - first_file_missing,
            500 - first_file_missing
        )),
        "{out}"
    );
    let records = read_records(&app.topic, 600).await;
    let mut expected: Vec<String> = messages.iter().map(c2c_key).collect();
    expected.sort();
    assert_eq!(keys_of(&records), expected, "each message once");
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_tencent_no_longer_keeps_and_never_reconciled_is_reported_lost_for_good() {
    let SetUp {
        app,
        config,
        _ca_file: _ca,
        ..
    } = set_up(KEY).await;
    let (_, from, to) = hour_range((now() / 3600 - 8 * 24) * 3600);
    let (code, out, err) = tokio::task::block_in_place(|| run_reconcile(config.path(), &from, &to));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(hour_line(&out, "C2C").contains("LOST"), "{out}");
    assert!(hour_line(&out, "Group").contains("lost for good"), "{out}");
    assert!(err.contains("LOST FOR GOOD"), "{err}");
    let status = tokio::task::block_in_place(|| status_json(config.path()));
    assert_eq!(status["complete"], false);
    assert_eq!(status["hours"][0]["outcome"], "lost", "{status}");
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        0
    );
}

/// Reconciles an hour of 200 messages whose one file `damage` spoils: it is fetched
/// again, the hour is reported failed with `reason`, and nothing of it is published.
async fn a_damaged_file_publishes_nothing(damage: fn(&Served) -> &AtomicBool, reason: &str) {
    let SetUp {
        app,
        tencent,
        config,
        _ca_file: _ca,
    } = set_up(KEY).await;
    damage(&tencent.served).store(true, Ordering::SeqCst);
    let hour_start = (now() / 3600 - 1) * 3600;
    let (hour, from, to) = hour_range(hour_start);
    let messages: Vec<Value> = (0..200).map(|n| c2c(n, hour_start + n + 1)).collect();
    tencent.hold(
        "C2C",
        &hour.beijing(),
        vec![archive_file("C2C", &hour.beijing(), &messages)],
    );
    let (code, out, err) = tokio::task::block_in_place(|| run_reconcile(config.path(), &from, &to));
    assert_eq!(code, 1, "{out}\n{err}");
    let line = hour_line(&out, "C2C");
    assert!(line.contains("failed") && line.contains(reason), "{out}");
    assert!(err.contains("fetching it again"), "{err}");
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_match_its_checksums_is_fetched_again_then_reported_and_nothing_published(
) {
    a_damaged_file_publishes_nothing(
        |served| &served.corrupt,
        "file 0: GzipSize/GzipMD5 do not match",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_gzip_file_whose_checksums_match_is_fetched_again_then_reported_and_nothing_published(
) {
    a_damaged_file_publishes_nothing(|served| &served.broken, "file 0: cannot read the file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_stops_reconcile_naming_the_setting() {
    let SetUp {
        app,
        config,
        _ca_file: _ca,
        ..
    } = set_up("not-the-key").await;
    let (code, out, err) = tokio::task::block_in_place(|| {
        run_reconcile(
            config.path(),
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00Z",
        )
    });
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("60004") && err.contains("secret_key"), "{err}");
    assert_eq!(
        record_count_on(crate::broker::brokers(), &app.topic).await,
        0
    );
}

/// Tencent's own `tls-sig-api-v2` (PyPI 1.1, installed by scripts/test) makes a UserSig
/// for the same app, identifier, key and time: both decode to the same document, HMAC
/// included (the strings differ: JSON spacing and zlib level are each package's own).
#[test]
fn a_user_sig_is_the_one_tencents_own_package_makes() {
    let python = std::env::var("TIM_BRIDGE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    for (app, identifier, key, time, expire) in [
        (1400000000u64, "xiaojun", KEY, 1700000000u64, 15552000u64),
        (
            1600012345,
            "administrator",
            "another secret key of 64 characters, with spaces!!",
            now(),
            604800,
        ),
        (20000001, "管理员", KEY, 1234567890, 86400),
    ] {
        let script = format!(
            "import time\ntime.time = lambda: {time}\nimport TLSSigAPIv2\nprint(TLSSigAPIv2.TLSSigAPIv2({app}, {key:?}).gen_sig({identifier:?}, {expire}))"
        );
        let output = Command::new(&python)
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = String::from_utf8(output.stdout).unwrap();
        let ours = usersig::user_sig(app, identifier, key, time, expire);
        let (theirs, ours) = (
            usersig::decode(theirs.trim()).unwrap(),
            usersig::decode(&ours).unwrap(),
        );
        assert_eq!(ours, theirs, "{identifier}");
        assert_eq!(ours["TLS.time"], time);
    }
}
