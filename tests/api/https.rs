//! HTTPS on the listener, and a certificate swapped by SIGHUP without dropping
//! connections.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::brokers;
use crate::helpers::*;
use crate::tls_support::{HttpsConnection, TestCa};

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");
fn write(path: &std::path::Path, text: &str) {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A bridge process serving HTTPS with a certificate of a test CA, publishing to
/// its own topic; `env` is added to its environment.
struct HttpsBridge {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: TestCa,
    first: crate::tls_support::Issued,
    topic: String,
    address: String,
    child: std::process::Child,
}

impl HttpsBridge {
    async fn start(topic: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let ca = TestCa::new();
        let first = ca.issue("first");
        write(&cert, &first.cert_pem);
        write(&key, &first.key_pem);
        let topic = format!("{topic}.{}", std::process::id());
        let config = dir.path().join("bridge.toml");
        write(
            &config,
            &format!(
                "ack = \"memory\"\n[[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{TOKEN}\"]\n\
                 [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\
                 [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ncreate_topics = true\n",
                brokers()
            ),
        );
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BINARY)
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("TIM_BRIDGE_LISTEN", &address)
            .envs(env.iter().copied())
            .env_remove("TIM_BRIDGE_KAFKA_BROKERS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            assert!(Instant::now() < deadline, "the bridge did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _dir: dir,
            cert,
            key,
            ca,
            first,
            topic,
            address,
            child,
        }
    }
}

#[tokio::test]
async fn https_callbacks_are_served_and_a_sighup_swaps_the_certificate_for_new_connections_only() {
    let HttpsBridge {
        _dir,
        cert,
        key,
        ca,
        first,
        topic,
        address,
        child,
    } = HttpsBridge::start("tim.https", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);

    let mut before = HttpsConnection::open(&ca, &address).await;
    assert_eq!(before.server_certificate, first.der);
    let callback = |key: &str| (format!("/callback?{}", signed_query(SENT)), sent_body(key));
    let (path, b) = callback("over-https");
    assert_eq!(before.post(&path, &b).await.0, 200);

    let second = ca.issue("second");
    write(&cert, &second.cert_pem);
    write(&key, &second.key_pem);
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let mut after = loop {
        let connection = HttpsConnection::open(&ca, &address).await;
        if connection.server_certificate == second.der {
            break connection;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (path, b) = callback("new-connection");
    assert_eq!(after.post(&path, &b).await.0, 200);
    let (path, b) = callback("old-connection");
    assert_eq!(
        before.post(&path, &b).await.0,
        200,
        "a connection opened before the reload goes on"
    );

    // A broken pair of files is refused and the served certificate stays.
    write(&cert, "not a certificate");
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut still = HttpsConnection::open(&ca, &address).await;
    assert_eq!(still.server_certificate, second.der);
    let (path, b) = callback("after-bad-reload");
    assert_eq!(still.post(&path, &b).await.0, 200);

    let records = read_records(&topic, 4).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "after-bad-reload",
            "new-connection",
            "old-connection",
            "over-https"
        ]
    );
    assert_eq!(record_count(&topic).await, 4);

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("Reloaded the HTTPS certificate"), "{log}");
    assert!(
        log.contains("Could not reload the HTTPS certificate"),
        "{log}"
    );
    assert!(output.status.success(), "{log}");
}

/// A certificate file that blocks its reader (a FIFO nobody writes, as a hung network
/// mount would) holds up the reload only, never the callbacks: with one runtime
/// thread, a reload read on it would stop the server.
#[tokio::test]
async fn a_certificate_reload_stuck_reading_its_file_does_not_hold_up_callbacks() {
    let HttpsBridge {
        _dir,
        cert,
        ca,
        first,
        topic,
        address,
        child,
        ..
    } = HttpsBridge::start("tim.https.stuck", &[("TOKIO_WORKER_THREADS", "1")]).await;
    let mut open = HttpsConnection::open(&ca, &address).await;
    let callback = |key: &str| (format!("/callback?{}", signed_query(SENT)), sent_body(key));
    let (path, b) = callback("before-stuck-reload");
    assert_eq!(open.post(&path, &b).await.0, 200);

    std::fs::remove_file(&cert).unwrap();
    let fifo = std::ffi::CString::new(cert.to_str().unwrap()).unwrap();
    // SAFETY: a path we own, made into a FIFO.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (path, b) = callback("during-stuck-reload");
    let answered = tokio::time::timeout(Duration::from_secs(5), open.post(&path, &b)).await;
    assert_eq!(
        answered.expect("a callback waited on a certificate read").0,
        200
    );

    // Let the read finish: the same certificate comes through the FIFO.
    let writer = std::thread::spawn({
        let (cert, pem) = (cert.clone(), first.cert_pem.clone());
        move || std::fs::write(cert, pem).unwrap()
    });
    writer.join().unwrap();
    let records = read_records(&topic, 2).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["before-stuck-reload", "during-stuck-reload"]);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
