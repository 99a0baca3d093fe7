//! Secure by default (docs/security.md): authentication is never switched off
//! silently, private messages stay private on disk and in the log, and a replayed
//! request is published once whatever the case of its `Sign`.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::brokers;
use crate::helpers::*;
use tim_kafka_bridge::tencent::sign::sign_hex;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");
const OLD_TOKEN: &str = "old-token-of-the-im-console";
const NEW_TOKEN: &str = "new-token-of-the-im-console";

/// The bridge as a process, started under umask 022 as a container's would be.
struct Bridge {
    child: Child,
    port: u16,
    log: PathBuf,
    spool: PathBuf,
    topic: String,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `file` (a settings file, with `listen`, `spool_dir` and the
/// topics added) and `env`; the start-up refusal's output when it exits instead.
fn serve(file: &str, env: &[(&str, &str)]) -> Result<Bridge, String> {
    let root = tempfile::tempdir().unwrap().keep();
    let (port, spool, topic) = (free_port(), root.join("spool"), unique_topic("tim.secure"));
    let config = root.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nspool_dir = \"{}\"\n{file}\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\nother_topic = \"{topic}\"\n\
             group_topic = \"{topic}\"\nuser_topic = \"{topic}\"\ngroup_events_topic = \"{topic}\"\n\
             create_topics = true\npartitions = {PARTITIONS}\n",
            spool.display(),
            brokers()
        ),
    )
    .unwrap();
    let log = root.join("bridge.log");
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TIM_BRIDGE_")) {
        command.env_remove(name);
    }
    // SAFETY: umask(2) is async-signal-safe, called between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = std::fs::read_to_string(&log).unwrap();
            return Err(format!("exit {:?}: {output}", status.code()));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Bridge {
                child,
                port,
                log,
                spool,
                topic,
            });
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn refused(file: &str, env: &[(&str, &str)]) -> String {
    match serve(file, env) {
        Ok(bridge) => panic!("the bridge started; its log: {}", bridge.log_text()),
        Err(output) => {
            assert!(output.starts_with("exit Some(2)"), "{output}");
            output
        }
    }
}

impl Bridge {
    /// One request on its own connection: the status and the body.
    fn call(&self, method: &str, target: &str, body: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    fn post(&self, query: &str, body: &str) -> (u16, String) {
        self.call("POST", &format!("/callback?{query}"), body)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap();
        self.log_text()
    }
}

fn query(app: u64, command: &str, token: Option<&str>) -> String {
    let mut query =
        format!("SdkAppid={app}&CallbackCommand={command}&contenttype=json&ClientIP=10.1.2.3&OptPlatform=iOS");
    if let Some(token) = token {
        let t = now().to_string();
        query.push_str(&format!("&RequestTime={t}&Sign={}", sign_hex(token, &t)));
    }
    query
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_id_variable_keeps_the_file_tokens_and_an_unsigned_forgery_is_refused() {
    // What the issue reproduced: tokens in the file, TIM_BRIDGE_SDKAPPID from the
    // ConfigMap. The tokens used to be dropped and a forged callback published.
    let file =
        format!("[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{OLD_TOKEN}\", \"{NEW_TOKEN}\"]");
    let env = [("TIM_BRIDGE_SDKAPPID", "1400000001")];
    let bridge = serve(&file, &env).unwrap();

    let forged = bridge.post(&query(SIGNED_APP, SENT, None), &sent_body("forged"));
    let old = bridge.post(&query(SIGNED_APP, SENT, Some(OLD_TOKEN)), &sent_body("old"));
    let new = bridge.post(&query(SIGNED_APP, SENT, Some(NEW_TOKEN)), &sent_body("new"));

    assert_eq!(forged.0, 401, "{}", forged.1);
    assert_eq!((old.0, new.0), (200, 200));
    let records = read_records(&bridge.topic, 2).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["new", "old"]);
    assert_eq!(
        settled_count(brokers(), &bridge.topic, 2).await,
        2,
        "the forgery is not in Kafka"
    );
    bridge.stop();
}

#[test]
fn the_app_id_variable_naming_other_apps_than_the_file_stops_start_up_naming_both() {
    let file = format!("[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{OLD_TOKEN}\"]");
    let output = refused(&file, &[("TIM_BRIDGE_SDKAPPID", "1400000009")]);
    assert!(
        output.contains("TIM_BRIDGE_SDKAPPID") && output.contains("[[apps]]"),
        "{output}"
    );
}

#[test]
fn a_missing_blank_placeholder_dev_or_short_token_stops_start_up_naming_the_setting() {
    let app = format!("[[apps]]\nsdk_app_id = {SIGNED_APP}");
    for (env, says) in [
        (vec![], "allow_unsigned"),
        (
            vec![("TIM_BRIDGE_TOKEN", "  ")],
            "`TIM_BRIDGE_TOKEN`: is set but blank",
        ),
        (
            vec![("TIM_BRIDGE_TOKEN", "replace-with-your-callback-token")],
            "placeholder",
        ),
        (vec![("TIM_BRIDGE_TOKEN", "dev-token")], "serve --dev"),
        (vec![("TIM_BRIDGE_TOKEN", "short-token")], "at least 16"),
    ] {
        let output = refused(&app, &env);
        assert!(output.contains(says), "{env:?}: {output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_callbacks_are_taken_only_when_asked_for_with_a_warning_and_a_metric() {
    let bridge = serve(
        &format!("allow_unsigned = true\n[[apps]]\nsdk_app_id = {UNSIGNED_APP}"),
        &[],
    )
    .unwrap();
    let answer = bridge.post(&query(UNSIGNED_APP, SENT, None), &sent_body("unsigned"));
    assert_eq!(answer.0, 200, "{}", answer.1);
    let records = read_records(&bridge.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("unsigned"));
    let (_, metrics) = bridge.call("GET", "/metrics", "");
    assert_eq!(metric_value(&metrics, "tim_bridge_unsigned_apps"), 1.0);
    let log = bridge.stop();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("allow_unsigned")
            && l.contains("1400000002")),
        "{log}"
    );
}

/// Every path under `dir` with group or other permissions.
fn readable_by_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != wanted {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names.extend(files_under(&path));
        }
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_bridge_writes_is_owner_only_under_umask_022_and_older_ones_are_tightened() {
    let spool = tempfile::tempdir().unwrap().keep().join("spool");
    let app = format!("[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{NEW_TOKEN}\"]");
    let signed = || query(SIGNED_APP, SENT, Some(NEW_TOKEN));
    let bridge = serve_on(&spool, &app);
    // The producer refuses events above 3000 bytes: this one becomes a dead letter.
    let large = text_message("too-large", &"x".repeat(4000));
    assert_eq!(bridge.post(&signed(), &large).0, 200);
    assert_eq!(bridge.post(&signed(), &sent_body("private")).0, 200);
    let records = read_records(&bridge.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("private"));
    let letters = spool.join("dead").join("letters.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !letters.exists() {
        assert!(
            Instant::now() < deadline,
            "no dead letter: {}",
            bridge.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    bridge.stop();
    let names = files_under(&spool);
    for expected in ["LOCK", "confirmed", "spare-segment", "dead", "letters.log"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("seg-")), "{names:?}");
    assert_eq!(readable_by_others(&spool), Vec::<String>::new());

    // As an older version under a umask of 022 left them.
    let loosen = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    loosen(&spool, 0o755);
    loosen(&spool.join("dead"), 0o755);
    loosen(&letters, 0o644);
    loosen(&spool.join("confirmed"), 0o644);
    let again = serve_on(&spool, &app);
    assert_eq!(again.post(&signed(), &sent_body("after")).0, 200);
    let records = read_records(&again.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("after"));
    let log = again.stop();
    assert!(log.contains("now owner-only"), "{log}");
    assert_eq!(readable_by_others(&spool), Vec::<String>::new());
}

/// `serve` on an existing spool directory.
fn serve_on(spool: &Path, file: &str) -> Bridge {
    let mut bridge = serve(
        &format!("{file}\n[kafka.producer]\n\"message.max.bytes\" = \"3000\""),
        &[("TIM_BRIDGE_SPOOL_DIR", spool.to_str().unwrap())],
    )
    .unwrap();
    bridge.spool = spool.to_owned();
    bridge
}

/// Message text, and every value of a wrong type: never in the log, at any level.
const TEXT: &str = "PRIVATE_TEXT_XYZ";
const NUMBER: &str = "987654321987";
/// Account ids and MsgKeys of a readable body: at DEBUG only.
const ID: &str = "acct_XYZ";

/// Bodies carrying the markers in every field, readable or of a wrong type.
fn marked_bodies() -> Vec<(&'static str, String)> {
    let c2c = |fields: &str| {
        format!(
            r#"{{"CallbackCommand":"{SENT}","From_Account":"{ID}_from","To_Account":"{ID}_to","MsgKey":"{ID}_key",{fields}}}"#
        )
    };
    let text = |content: &str| {
        c2c(&format!(
            r#""MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{content}}}]"#
        ))
    };
    vec![
        (
            SENT,
            c2c(&format!(
                r#""MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"{TEXT}"}}}}],"CloudCustomData":"{TEXT}""#
            )),
        ),
        (SENT, c2c(&format!(r#""MsgBody":"{TEXT}""#))),
        (SENT, c2c(&format!(r#""MsgBody":[],"MsgSeq":"{TEXT}""#))),
        (
            SENT,
            c2c(&format!(r#""MsgBody":[],"MsgRandom":{NUMBER}.5"#)),
        ),
        (SENT, text(&format!(r#"{{"Text":["{TEXT}"]}}"#))),
        (SENT, text(&format!(r#""{TEXT}""#))),
        (SENT, text(&format!(r#"{{"Text":{NUMBER}}}"#))),
        (
            SENT,
            format!(
                r#"{{"CallbackCommand":"{SENT}","From_Account":"a","To_Account":{NUMBER},"MsgBody":[]}}"#
            ),
        ),
        (
            SENT,
            format!(
                r#"{{"CallbackCommand":"{SENT}","From_Account":{{"{TEXT}":1}},"To_Account":"b"}}"#
            ),
        ),
        (
            SENT,
            format!(r#"{{"CallbackCommand":"{SENT}","MsgBody": {TEXT}}}"#),
        ),
        (
            SENT,
            format!(r#"{{"CallbackCommand":"{TEXT}","From_Account":"a","To_Account":"b"}}"#),
        ),
        (
            "Group.CallbackAfterSendMsg",
            format!(
                r#"{{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":{NUMBER},"From_Account":"a","MsgBody":[]}}"#
            ),
        ),
        (
            "C2C.CallbackAfterMsgWithDraw",
            format!(
                r#"{{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b","MsgKey":["{TEXT}"]}}"#
            ),
        ),
        // A before-callback is allowed whatever its body; its warning must not quote it.
        (
            "C2C.CallbackBeforeSendMsg",
            format!(
                r#"{{"CallbackCommand":"C2C.CallbackBeforeSendMsg","From_Account":"a","To_Account":"b","MsgBody":"{TEXT}"}}"#
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_of_a_body_reaches_the_log_or_the_answer_at_info_nor_message_text_at_debug() {
    let app = format!("publish_before_callbacks = false\n[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{NEW_TOKEN}\"]");
    for level in ["info", "debug"] {
        let bridge = serve(&app, &[("RUST_LOG", level)]).unwrap();
        let mut answers = Vec::new();
        for (command, body) in marked_bodies() {
            let (status, answer) = bridge.post(&query(SIGNED_APP, command, Some(NEW_TOKEN)), &body);
            assert!(
                !answer.contains(TEXT) && !answer.contains(NUMBER),
                "{answer}"
            );
            answers.push(status);
        }
        assert_eq!(answers[0], 200, "the readable one is taken");
        assert_eq!(
            answers.iter().filter(|s| **s == 400).count(),
            12,
            "{answers:?}"
        );
        let records = read_records(&bridge.topic, 1).await;
        assert!(
            String::from_utf8_lossy(&records[0].payload).contains(TEXT),
            "published whole"
        );
        let log = bridge.stop();
        assert!(log.contains("Rejected a callback"), "{log}");
        assert!(
            !log.contains(TEXT) && !log.contains(NUMBER),
            "{level}: {log}"
        );
        assert_eq!(log.contains(ID), level == "debug", "{level}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_cannot_write_a_line_of_its_own_into_the_log() {
    let app = format!("[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{NEW_TOKEN}\"]");
    let bridge = serve(&app, &[]).unwrap();
    let forged = r#"{"CallbackCommand":"x\r\nERROR fake: injected \u001b[31m","From_Account":"a","To_Account":"b"}"#;
    let answer = bridge.post(&query(SIGNED_APP, SENT, Some(NEW_TOKEN)), forged);
    assert_eq!(answer.0, 400);
    let query_forged = query(
        SIGNED_APP,
        "x%0D%0AERROR%20fake%3A%20injected%1B",
        Some(NEW_TOKEN),
    )
    .replace("SdkAppid=1400000001", "SdkAppid=1400000001%0D%0AERROR");
    assert_ne!(bridge.post(&query_forged, &sent_body("k")).0, 200);
    assert_eq!(
        bridge
            .post(&query(SIGNED_APP, SENT, Some(NEW_TOKEN)), &sent_body("k"))
            .0,
        200
    );
    let records = read_records(&bridge.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("k"));
    let log = bridge.stop();
    assert!(!log.lines().any(|l| l.starts_with("ERROR fake")), "{log}");
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_are_logged_once_per_reason_per_interval_and_each_is_counted() {
    let app = format!("[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{NEW_TOKEN}\"]");
    let bridge = serve(&app, &[]).unwrap();
    for _ in 0..50 {
        assert_eq!(
            bridge
                .post(&query(SIGNED_APP, SENT, Some(NEW_TOKEN)), "{")
                .0,
            400
        );
        assert_eq!(
            bridge
                .post(&query(SIGNED_APP, SENT, Some("not-the-token-at-all")), "{}")
                .0,
            401
        );
    }
    assert_eq!(
        bridge
            .post(&query(SIGNED_APP, SENT, Some(NEW_TOKEN)), &sent_body("ok"))
            .0,
        200
    );
    let (_, metrics) = bridge.call("GET", "/metrics", "");
    let count = |outcome: &str| {
        let series =
            format!(r#"tim_bridge_callbacks_total{{command="{SENT}",outcome="{outcome}"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(
        (count("bad_body"), count("signature_mismatch")),
        (50.0, 50.0)
    );
    let records = read_records(&bridge.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("ok"));
    let log = bridge.stop();
    let lines = |reason: &str| {
        log.lines()
            .filter(|l| l.contains("Rejected a callback") && l.contains(reason))
            .count()
    };
    assert_eq!(lines("not JSON"), 1, "{log}");
    assert_eq!(lines("Sign does not match"), 1, "{log}");
}

#[tokio::test]
async fn a_signed_request_replayed_with_its_sign_in_upper_case_is_published_once() {
    let app = spawn_app().await;
    let t = now().to_string();
    let sign = sign_hex(TOKEN, &t);
    let query = |sign: &str| {
        format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}&contenttype=json&RequestTime={t}&Sign={sign}")
    };
    let body = sent_body("replayed");
    let first = app
        .post(&query(&sign), Some("application/json"), &body)
        .await;
    let again = app
        .post(
            &query(&sign.to_uppercase()),
            Some("application/json"),
            &body,
        )
        .await;
    assert_eq!((first.status.as_u16(), again.status.as_u16()), (200, 200));
    read_records(&app.topic, 1).await;
    assert_eq!(settled_count(brokers(), &app.topic, 1).await, 1);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"tim_bridge_duplicates_dropped_total{kind="request"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_an_admin_port_metrics_and_readiness_leave_the_callback_port() {
    let app = spawn_app_with(|s| s.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let admin = TestApp::at(app.admin_address.as_deref().expect("an admin listener"));
    for path in ["/metrics", "/readyz"] {
        assert_eq!(
            app.get(path).await.0.as_u16(),
            404,
            "{path} on the callback port"
        );
    }
    assert_eq!(app.get("/healthz").await.0.as_u16(), 200);
    let sent = app.callback(SENT, &sent_body("on-the-callback-port")).await;
    assert_eq!(sent.status.as_u16(), 200);
    let records = read_records(&app.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("on-the-callback-port"));
    let (status, metrics) = admin.get("/metrics").await;
    assert_eq!(status.as_u16(), 200);
    assert!(
        metrics.contains(&format!(r#"command="{SENT}",outcome="ok"}} 1"#)),
        "{metrics}"
    );
    assert_eq!(admin.get("/readyz").await.0.as_u16(), 200);
    assert_eq!(
        admin.get("/callback").await.0.as_u16(),
        404,
        "no callbacks on the admin port"
    );
}
