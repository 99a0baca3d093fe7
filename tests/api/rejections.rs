use crate::helpers::*;
use hyper::Method;

const SENT: &str = "C2C.CallbackAfterSendMsg";
const GOOD: &str = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"good"}"#;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    reason: &'static str,
}

fn case(name: &'static str, path: String, body: &str, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        method: Method::POST,
        path,
        content_type: Some("application/json"),
        body: body.to_owned(),
        status,
        reason,
    }
}

fn signed(command: &str) -> String {
    format!("/callback?{}", signed_query(command))
}

#[tokio::test]
async fn each_bad_request_gets_its_status_and_tencents_fail_body_and_nothing_is_published() {
    let app = spawn_app_with(|s| s.max_body_bytes = 4096).await;
    let stale = (now() - 120).to_string();
    let stale_sign = tim_kafka_bridge::tencent::sign::sign_hex(TOKEN, &stale);
    let cases = vec![
        Case { method: Method::GET, ..case("GET on the callback path", signed(SENT), "", 405, "method") },
        case("an unknown path", "/nope".into(), GOOD, 404, "no such path"),
        case("a body over the limit", signed(SENT), &" ".repeat(5000), 413, "larger than 4096"),
        Case { content_type: Some("text/plain"), ..case("a form content type", signed(SENT), GOOD, 415, "content type") },
        case("no SdkAppid", format!("/callback?CallbackCommand={SENT}"), GOOD, 403, "SdkAppid is missing"),
        case("an unknown SdkAppid", format!("/callback?SdkAppid=42&CallbackCommand={SENT}"), GOOD, 403, "not an app"),
        case("no signature", format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}"), GOOD, 401, "missing"),
        case(
            "a wrong signature",
            format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}&RequestTime={}&Sign={}", now(), "ab".repeat(32)),
            GOOD,
            401,
            "does not match",
        ),
        case(
            "a stale RequestTime",
            format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}&RequestTime={stale}&Sign={stale_sign}"),
            GOOD,
            401,
            "at most 60 s either way is taken (request_time_skew_secs)",
        ),
        case("a body that is not JSON", signed(SENT), "{not json", 400, "not JSON"),
        case(
            "a body for another command",
            signed(SENT),
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b","MsgKey":"k"}"#,
            400,
            "differs",
        ),
        case("a body without From_Account", signed(SENT), r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","To_Account":"b"}"#, 400, "From_Account"),
        case(
            "a MsgSeq beyond 32 bits",
            signed(SENT),
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgSeq":4294967296}"#,
            400,
            "MsgSeq",
        ),
        case(
            "a withdraw without MsgKey",
            signed("C2C.CallbackAfterMsgWithDraw"),
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b"}"#,
            400,
            "MsgKey",
        ),
        case(
            "a malformed element",
            signed(SENT),
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":1}}]}"#,
            400,
            "MsgBody[0].MsgContent.Text",
        ),
        case("a repeated SdkAppid", format!("/callback?SdkAppid={UNSIGNED_APP}&sdkappid={UNSIGNED_APP}"), GOOD, 400, "more than once"),
        case("a repeated Sign", format!("{}&Sign=00", signed(SENT)), GOOD, 400, "Sign is given more than once"),
        case("an empty SdkAppid", format!("/callback?SdkAppid=&CallbackCommand={SENT}"), GOOD, 403, "not an app"),
        case("an empty Sign", format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}&RequestTime={}&Sign=", now()), GOOD, 401, "Sign"),
        case("no query at all", "/callback".into(), GOOD, 403, "missing"),
        case("a huge query string", format!("{}&pad={}", signed(SENT), "x".repeat(10_000)), GOOD, 414, "longer than 4096"),
    ];

    for c in cases {
        let answer = app.request(c.method, &c.path, c.content_type, c.body).await;
        assert_eq!(
            answer.status.as_u16(),
            c.status,
            "{}: {}",
            c.name,
            answer.body
        );
        assert_eq!(answer.body["ActionStatus"], "FAIL", "{}", c.name);
        assert_eq!(answer.body["ErrorCode"], 1, "{}", c.name);
        let info = answer.body["ErrorInfo"].as_str().unwrap();
        assert!(info.contains(c.reason), "{}: {info}", c.name);
        assert!(
            !info.contains(TOKEN) && !info.contains(&stale_sign),
            "{}: a reason never echoes a secret",
            c.name
        );
    }

    only_a_good_callback_is_published_after(&app).await;
    assert_eq!(record_count(&app.other_topic).await, 0);
    let (_, metrics) = app.get("/metrics").await;
    for line in [
        r#"tim_bridge_callbacks_total{command="C2C.CallbackAfterSendMsg",outcome="signature_mismatch"} 2"#,
        r#"tim_bridge_callbacks_total{command="C2C.CallbackAfterSendMsg",outcome="request_time_skewed"} 1"#,
        r#"tim_bridge_callbacks_total{command="C2C.CallbackAfterSendMsg",outcome="bad_body"} 5"#,
        r#"tim_bridge_callbacks_total{command="C2C.CallbackAfterSendMsg",outcome="ok"} 1"#,
        r#"tim_bridge_callbacks_total{command="none",outcome="query_too_long"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

#[tokio::test]
async fn hostile_bodies_are_refused_nothing_is_published_and_the_bridge_stays_healthy() {
    let app = spawn_app().await;
    let head =
        r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b""#;
    let with = |rest: &str| format!("{head}{rest}}}").into_bytes();
    let mut invalid_utf8 = with(r#","MsgKey":"k","CloudCustomData":"x""#);
    let at = invalid_utf8.len() - 3;
    invalid_utf8[at] = 0xff;
    let element = r#"{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}},"#;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("invalid UTF-8", invalid_utf8, 400),
        (
            "a raw NUL byte in a string",
            with(",\"MsgKey\":\"a\u{0}b\""),
            400,
        ),
        (
            "deep nesting",
            with(&format!(
                r#","MsgBody":{}{}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            )),
            400,
        ),
        (
            "100,000 body elements",
            with(&format!(
                r#","MsgBody":[{}]"#,
                element.repeat(100_000).trim_end_matches(',')
            )),
            413,
        ),
        (
            "a number beyond u64",
            with(r#","MsgTime":123456789012345678901234567890"#),
            400,
        ),
        ("a negative MsgRandom", with(r#","MsgRandom":-1"#), 400),
        ("duplicate keys", with(r#","From_Account":"again""#), 400),
        (
            "an account of the wrong type",
            br#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":5,"To_Account":"b"}"#
                .to_vec(),
            400,
        ),
        (
            "MsgBody that is not an array",
            with(r#","MsgBody":{"MsgType":"TIMTextElem"}"#),
            400,
        ),
        ("an empty body", Vec::new(), 400),
    ];

    for (name, body, status) in cases {
        let (got, answer) = app.callback_bytes("C2C.CallbackAfterSendMsg", body).await;
        assert_eq!(got.as_u16(), status, "{name}: {answer}");
        assert_eq!(answer["ActionStatus"], "FAIL", "{name}");
    }

    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(
        app.callback("C2C.CallbackAfterSendMsg", GOOD).await.status,
        200
    );
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("good")
    );
    assert_eq!(
        record_count(&app.topic).await,
        1,
        "only the good callback was published"
    );
}

#[tokio::test]
async fn a_body_that_takes_too_long_gets_408_and_is_not_published() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.limits.body_read_timeout_ms = 300).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /callback?{} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        signed_query(SENT),
        GOOD.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&GOOD.as_bytes()[..10]).await.unwrap();

    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();

    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("took too long"), "{answer}");
    assert_eq!(app.callback(SENT, GOOD).await.status, 200);
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("good")
    );
    assert_eq!(record_count(&app.topic).await, 1);
}

/// Raw HTTP on one connection: the head, then `feed` writing the body in the
/// background; returns what the server wrote before it closed (or 10 s passed).
async fn exchange<F, Fut>(app: &TestApp, head: String, feed: F) -> String
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(feed(write));
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

fn chunked_head() -> String {
    format!(
        "POST /callback?{} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        signed_query(SENT)
    )
}

#[tokio::test]
async fn endless_bodies_and_giant_heads_are_cut_off_and_nothing_is_published() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|s| {
        s.limits.body_read_timeout_ms = 1_000;
        s.max_body_bytes = 64 * 1024;
    })
    .await;

    let trickle = exchange(&app, chunked_head(), |mut w| async move {
        loop {
            if w.write_all(b"1\r\n \r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        trickle.starts_with("HTTP/1.1 408"),
        "a trickling chunked body: {trickle}"
    );
    assert!(trickle.contains(r#""ActionStatus":"FAIL""#), "{trickle}");

    let flood = exchange(&app, chunked_head(), |mut w| async move {
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        for _ in 0..80 {
            if w.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await
    })
    .await;
    assert!(
        flood.starts_with("HTTP/1.1 413"),
        "a chunked body past the limit: {flood}"
    );
    assert!(flood.contains(r#""ActionStatus":"FAIL""#), "{flood}");

    let giant = format!(
        "POST /callback?{}&pad={} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}",
        signed_query(SENT),
        "x".repeat(1 << 20)
    );
    let giant = exchange(&app, giant, |_| async {}).await;
    assert!(giant.starts_with("HTTP/1.1 431"), "a 1 MiB head: {giant}");

    assert_eq!(app.get("/healthz").await.0, 200);
    only_a_good_callback_is_published_after(&app).await;
}

/// After the bad requests: a good callback still gets 200, and it alone is in Kafka.
async fn only_a_good_callback_is_published_after(app: &TestApp) {
    assert_eq!(app.callback(SENT, GOOD).await.status, 200);
    let records = read_records(&app.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("good"));
    assert_eq!(
        record_count(&app.topic).await,
        1,
        "only the good callback was published"
    );
}
