//! Limits on what a client can hold of the server, and who may call at all.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// One signed callback written by hand on `stream`, keeping the connection open.
async fn send_callback(stream: &mut TcpStream, key: &str, extra_headers: &str) -> String {
    let body = sent_body(key);
    let request = format!(
        "POST /callback?{} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        signed_query(SENT),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(stream).await
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// True when the server closed the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_slowloris_crowd_does_not_delay_callbacks_from_another_client() {
    let app = spawn_app_with(|s| {
        s.ack = tim_kafka_bridge::settings::Ack::Memory;
        s.limits.header_read_timeout_ms = 2_000;
    })
    .await;
    let address = host(&app);
    let crowd = 300;
    let mut slow = Vec::new();
    for _ in 0..crowd {
        slow.push(TcpStream::connect(&address).await.unwrap());
    }
    let trickle = tokio::spawn(async move {
        let head = b"POST /callback?SdkAppid=1 HTTP/1.1\r\nhost: x\r\n";
        for byte in head.iter().cycle().take(4) {
            for stream in slow.iter_mut() {
                let _ = stream.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut closed = 0;
        for stream in slow.iter_mut() {
            if closed_within(stream, Duration::from_millis(100)).await {
                closed += 1;
            }
        }
        closed
    });

    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..40 {
        let started = Instant::now();
        let answer = app.callback(SENT, &sent_body(&format!("calm-{i}"))).await;
        latencies.push(started.elapsed());
        assert_eq!(answer.status, 200, "{}", answer.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    let within_100ms = latencies
        .iter()
        .filter(|l| **l < Duration::from_millis(100))
        .count();
    // Timing on a shared machine: nearly all, and none near Tencent's 2 s limit.
    assert!(
        within_100ms >= 38,
        "only {within_100ms}/40 under 100 ms: {latencies:?}"
    );
    assert!(latencies[39] < Duration::from_secs(1), "{latencies:?}");

    let closed = trickle.await.unwrap();
    assert_eq!(
        closed, crowd,
        "every slow head is cut off after header_read_timeout_ms"
    );
    let records = read_records(&app.topic, 40).await;
    assert_eq!(records.len(), 40);
    assert_eq!(record_count(&app.topic).await, 40);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            r#"tim_bridge_http_connections_closed_total{{kind="header_timeout"}} {crowd}"#
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_over_the_limit_gets_503_in_tencents_shape_and_the_next_one_is_served() {
    let app = spawn_app_with(|s| s.limits.max_connections = 2).await;
    let address = host(&app);
    let mut first = TcpStream::connect(&address).await.unwrap();
    let second = TcpStream::connect(&address).await.unwrap();
    assert!(send_callback(&mut first, "held", "")
        .await
        .starts_with("HTTP/1.1 200"));

    let mut third = TcpStream::connect(&address).await.unwrap();
    let refused = read_answer(&mut third).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let json = &refused[refused.find('{').unwrap()..];
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["ActionStatus"], "FAIL");
    assert!(json["ErrorInfo"]
        .as_str()
        .unwrap()
        .contains("too many open connections"));

    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(&address).await.unwrap();
    assert!(send_callback(&mut fourth, "after", "")
        .await
        .starts_with("HTTP/1.1 200"));
    let records = read_records(&app.topic, 2).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["after", "held"]);
    assert_eq!(record_count(&app.topic).await, 2);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_and_a_busy_one_is_not() {
    let app = spawn_app_with(|s| s.limits.keep_alive_idle_ms = 400).await;
    let address = host(&app);
    let mut idle = TcpStream::connect(&address).await.unwrap();
    assert!(send_callback(&mut idle, "before-idle", "")
        .await
        .starts_with("HTTP/1.1 200"));
    let mut busy = TcpStream::connect(&address).await.unwrap();
    for i in 0..6 {
        let answer = send_callback(&mut busy, &format!("busy-{i}"), "").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(closed_within(&mut idle, Duration::from_millis(2_000)).await);
    assert_eq!(read_records(&app.topic, 7).await.len(), 7);
    assert_eq!(record_count(&app.topic).await, 7);
}

#[tokio::test]
async fn a_slow_head_after_a_served_request_is_cut_off_by_the_head_limit_not_the_idle_one() {
    let app = spawn_app_with(|s| {
        s.limits.header_read_timeout_ms = 500;
        s.limits.keep_alive_idle_ms = 60_000;
    })
    .await;
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    assert!(send_callback(&mut stream, "served-first", "")
        .await
        .starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    stream.write_all(b"POST /callback?Sdk").await.unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "closed after {waited:?}, before the head limit"
    );
    assert_eq!(read_records(&app.topic, 1).await.len(), 1);
    assert_eq!(record_count(&app.topic).await, 1);
}

#[tokio::test]
async fn the_last_request_a_connection_may_carry_is_answered_with_connection_close() {
    let app = spawn_app_with(|s| s.limits.max_requests_per_connection = 3).await;
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    for i in 0..3 {
        let answer = send_callback(&mut stream, &format!("req-{i}"), "").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(
            answer.to_ascii_lowercase().contains("connection: close"),
            i == 2,
            "{answer}"
        );
    }
    assert!(closed_within(&mut stream, Duration::from_secs(2)).await);
    assert_eq!(read_records(&app.topic, 3).await.len(), 3);
    assert_eq!(record_count(&app.topic).await, 3);
}

#[tokio::test]
async fn only_allowed_networks_may_call_and_forwarded_for_counts_only_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.allow_networks = vec!["10.0.0.0/8".parse().unwrap()];
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let address = host(&app);
    for (name, header, status) in [
        ("the proxy itself", "", "403"),
        (
            "a client outside",
            "x-forwarded-for: 203.0.113.5\r\n",
            "403",
        ),
        (
            "a spoofed first hop",
            "x-forwarded-for: 10.9.9.9, 203.0.113.5\r\n",
            "403",
        ),
        ("not an address", "x-forwarded-for: tencent\r\n", "403"),
        ("a client inside", "x-forwarded-for: 10.1.2.3\r\n", "200"),
    ] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let key = name.replace(' ', "-");
        let answer = send_callback(&mut stream, &key, header).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {answer}"
        );
        if status == "403" {
            assert!(
                answer.contains(r#""ActionStatus":"FAIL""#),
                "{name}: {answer}"
            );
        }
    }
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200, "probes are not behind the allowlist");
    let records = read_records(&app.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("a-client-inside"));
    assert_eq!(record_count(&app.topic).await, 1);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(
            r#"tim_bridge_callbacks_total{command="none",outcome="source_not_allowed"} 4"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_body_as_large_as_max_body_bytes_becomes_one_event_kafka_takes() {
    let app = spawn_app().await;
    let limit = tim_kafka_bridge::settings::Settings::default().max_body_bytes;
    // A custom element filling the body to within a few bytes of the limit, with
    // characters JSON writes escaped, and Chinese.
    let unit = "红包 \\\"quoted\\\" and \\\\ 🧧 ";
    let envelope = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"big","MsgBody":[{"MsgType":"TIMCustomElem","MsgContent":{"Data":""}}]}"#;
    let data = unit.repeat((limit - envelope.len()) / unit.len());
    let body = envelope.replace(r#""Data":"""#, &format!(r#""Data":"{data}""#));
    assert!(
        body.len() <= limit && body.len() > limit - unit.len() - 1,
        "{}",
        body.len()
    );

    assert_eq!(app.callback(SENT, &body).await.status, 200);
    let record = read_records(&app.topic, 1).await.remove(0);
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        record.value["data"]["body"][0]["data"],
        sent["MsgBody"][0]["MsgContent"]["Data"]
    );
    eprintln!(
        "a body of {} bytes made an event of {} bytes",
        body.len(),
        record.payload.len()
    );
    assert!(
        record.payload.len() < body.len() + 2048,
        "the event is the body and its envelope"
    );
}

#[tokio::test]
async fn at_shutdown_a_kept_alive_connection_is_closed_at_once_not_after_its_idle_limit() {
    let app = spawn_app_with(|s| s.limits.keep_alive_idle_ms = 60_000).await;
    let topic = app.topic.clone();
    let mut kept = TcpStream::connect(host(&app)).await.unwrap();
    assert!(send_callback(&mut kept, "before-shutdown", "")
        .await
        .starts_with("HTTP/1.1 200"));
    let stopping = tokio::spawn(app.shutdown());
    assert!(
        closed_within(&mut kept, Duration::from_secs(3)).await,
        "closed by the shutdown, not by the 60 s idle limit"
    );
    let report = stopping.await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(read_records(&topic, 1).await.len(), 1);
    assert_eq!(record_count(&topic).await, 1);
}
