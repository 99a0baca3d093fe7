//! The binary as a newcomer runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tim_kafka_bridge::tencent::sign::sign_hex;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

fn clean_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TIM_BRIDGE_")) {
        command.env_remove(name);
    }
    command
}

#[test]
fn serve_without_brokers_and_without_dev_refuses_and_says_why() {
    let output = clean_env(&mut Command::new(BINARY))
        .args(["serve"])
        .env("TIM_BRIDGE_SDKAPPID", "1400000000")
        .env("TIM_BRIDGE_TOKEN", "a-token-of-the-im-console")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TIM_BRIDGE_KAFKA_BROKERS") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_setting_stops_start_up_naming_it() {
    let output = clean_env(&mut Command::new(BINARY))
        .args(["serve", "--dev"])
        .env("TIM_BRIDGE_LISTEN", "not-an-address")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TIM_BRIDGE_LISTEN"));
}

#[test]
fn serve_dev_prints_a_curl_that_publishes_an_event_it_then_prints() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let folder = tempfile::tempdir().unwrap();
    let mut child = clean_env(&mut Command::new(BINARY))
        .args(["serve", "--dev"])
        .current_dir(folder.path())
        .env("TIM_BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.as_ref().unwrap().contains("kcat -b"))
        .map(Result::unwrap)
        .collect();
    assert!(
        printed.iter().any(|l| l.contains("curl -sS")),
        "{printed:?}"
    );
    let spool_line = printed
        .iter()
        .find(|l| l.contains("development spool"))
        .expect("the spool is printed");
    let spool = spool_line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        std::path::Path::new(spool).join("LOCK").exists(),
        "{spool_line}"
    );

    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let url = format!(
        "/callback?SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&RequestTime={t}&Sign={}",
        sign_hex(tim_kafka_bridge::dev::TOKEN, &t)
    );
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh","MsgKey":"dev-1","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"红包 🧧"}}]}"#;
    let answer = crate::helpers::bare_post(port, &url, body);
    let event_line = lines
        .map(Result::unwrap)
        .find(|l| l.starts_with('{'))
        .expect("the event is printed");
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !folder.path().join("spool").exists(),
        "a real serve from this folder would find the development spool"
    );
    let event: serde_json::Value = serde_json::from_str(&event_line).unwrap();
    crate::helpers::assert_valid_event(&event);
    assert_eq!(event["subject"], "dev-1");
    assert_eq!(event["data"]["body"][0]["text"], "红包 🧧");
}

#[test]
fn check_config_prints_valid_settings_with_secrets_redacted() {
    let output = clean_env(&mut Command::new(BINARY))
        .args(["check-config", "--config", "deploy/tim-kafka-bridge.toml"])
        .env("TIM_BRIDGE_TOKEN", "do-not-print-this-token")
        .env("TIM_BRIDGE_TOPIC", "from.the.environment")
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(!printed.contains("do-not-print-this-token"), "{printed}");
    assert!(printed.contains("[redacted]"));
    assert!(
        printed.contains(r#"topic = "from.the.environment""#),
        "the environment wins: {printed}"
    );
    let read_back = tim_kafka_bridge::settings::Settings::from_toml(&printed)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(read_back.setting.ends_with(".tokens"), "{read_back}");
}

#[test]
fn check_config_refuses_invalid_settings_naming_them() {
    let output = clean_env(&mut Command::new(BINARY))
        .args(["check-config", "--config", "deploy/tim-kafka-bridge.toml"])
        .env("TIM_BRIDGE_ACK", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TIM_BRIDGE_ACK"));

    let no_brokers = clean_env(&mut Command::new(BINARY))
        .arg("check-config")
        .env("TIM_BRIDGE_SDKAPPID", "1400000000")
        .env("TIM_BRIDGE_TOKEN", "a-token-of-the-im-console")
        .output()
        .unwrap();
    assert_eq!(no_brokers.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_brokers.stderr).contains("kafka.brokers"));
}

/// `check-config` on a file of `[[apps]]`, brokers and `extra`, with `env`.
fn check_config_of(extra: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(
        &file,
        format!(
            "[[apps]]\nsdk_app_id = 1400000000\ntokens = [\"a-token-of-the-im-console\"]\n\
             [kafka]\nbrokers = \"127.0.0.1:9\"\n{extra}\n"
        ),
    )
    .unwrap();
    clean_env(&mut Command::new(BINARY))
        .args(["check-config", "--config"])
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn check_config_refuses_what_serve_refuses_naming_the_setting() {
    let zstd = check_config_of("[kafka.producer]\n\"compression.type\" = \"zstd\"", &[]);
    assert!(
        zstd.status.success(),
        "zstd is built in: {}",
        String::from_utf8_lossy(&zstd.stderr)
    );
    let not_a_cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_a_cert.path(), "not a certificate\n").unwrap();
    let path = not_a_cert.path().to_str().unwrap();
    for (extra, env, setting) in [
        (
            "[kafka.producer]\n\"bogus.property\" = \"1\"",
            vec![],
            "kafka.producer.\"bogus.property\"",
        ),
        (
            "[kafka.producer]\n\"compression.type\" = \"brotli\"",
            vec![],
            "kafka.producer.\"compression.type\"",
        ),
        (
            "",
            vec![
                ("TIM_BRIDGE_TLS_CERT_FILE", path),
                ("TIM_BRIDGE_TLS_KEY_FILE", path),
            ],
            "tls.cert_file",
        ),
    ] {
        let output = check_config_of(extra, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid setting `{setting}`")),
            "{extra} {env:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_startup_deadline_serve_exits_1_when_kafka_never_worked_and_keeps_what_it_took() {
    let brokers = tokio::task::block_in_place(crate::broker::brokers);
    let port = crate::helpers::free_port();
    let spool = tempfile::tempdir().unwrap();
    let topic = crate::helpers::unique_topic("tim.c2c.never");
    let token = "deadline-token-0123456789";
    let mut child = clean_env(&mut Command::new(BINARY))
        .args(["serve"])
        .env("TIM_BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TIM_BRIDGE_SDKAPPID", "1400000000")
        .env("TIM_BRIDGE_TOKEN", token)
        .env("TIM_BRIDGE_KAFKA_BROKERS", brokers)
        .env("TIM_BRIDGE_TOPIC", &topic)
        .env("TIM_BRIDGE_SPOOL_DIR", spool.path())
        .env("TIM_BRIDGE_KAFKA_STARTUP_DEADLINE_MS", "4000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = crate::helpers::now().to_string();
    let url = format!(
        "/callback?SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&RequestTime={t}&Sign={}",
        sign_hex(token, &t)
    );
    let answer = crate::helpers::bare_post(
        port,
        &url,
        &crate::helpers::sent_body("kept-by-the-deadline"),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "still running 40 s after a 4 s deadline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kafka.startup_deadline_ms") && stderr.contains(&topic),
        "the reason names the setting and the missing topic: {stderr}"
    );

    let fixed = crate::helpers::spawn_app_with(|s| {
        s.kafka.topic = topic.clone();
        s.spool_dir = spool.path().to_owned();
    })
    .await;
    let records = crate::helpers::read_records(&topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("kept-by-the-deadline"));
    fixed.shutdown().await;
}
