//! Traces against a real Jaeger (scripts/jaeger: Jaeger v2 built from the Go module
//! proxy, OTLP/HTTP and its query API on loopback) and the real Kafka: one callback
//! makes a server span and a producer span per event in one trace, and its record
//! carries that trace in `traceparent`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// A Jaeger on free loopback ports, stopped when dropped.
struct Jaeger {
    dir: tempfile::TempDir,
    otlp: String,
    query: String,
}

impl Jaeger {
    /// On free loopback ports. A port `free_port` named can be taken by a parallel
    /// test before Jaeger binds it: then Jaeger starts again on new ones.
    fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/jaeger");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let dir = tempfile::tempdir().unwrap();
            let (otlp_port, query_port) = (free_port(), free_port());
            let output = Command::new(&script)
                .args(["up", "--dir"])
                .arg(dir.path())
                .args(["--otlp-port", &otlp_port.to_string()])
                .args(["--query-port", &query_port.to_string()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() && stderr.contains("address already in use") && attempts < 5
            {
                continue;
            }
            assert!(
                output.status.success(),
                "scripts/jaeger up failed: {stderr}"
            );
            return Self {
                otlp: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
                query: format!("http://127.0.0.1:{query_port}"),
                dir,
            };
        }
    }

    /// The trace's spans once Jaeger holds at least `spans` of them.
    fn trace(&self, trace_id: &str, spans: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = Command::new("curl")
                .args(["-sf", &format!("{}/api/traces/{trace_id}", self.query)])
                .output()
                .unwrap();
            if let Ok(answer) = serde_json::from_slice::<Value>(&found.stdout) {
                let spans_found = answer["data"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if spans_found.len() >= spans {
                    return spans_found;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Jaeger never held {spans} spans of trace {trace_id}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/jaeger");
        let _ = Command::new(script)
            .args(["down", "--dir"])
            .arg(self.dir.path())
            .status();
    }
}

/// A signed callback sent with `traceparent` when given.
fn post_callback(app: &TestApp, body: &str, traceparent: Option<&str>) -> String {
    let header = traceparent.map(|t| format!("traceparent: {t}\r\n"));
    post_with_headers(app, body, &header.unwrap_or_default())
}

/// A signed callback with `headers` (whole lines, each ending in CRLF).
fn post_with_headers(app: &TestApp, body: &str, trace_header: &str) -> String {
    use std::io::{Read, Write};
    let address = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /callback?{} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{trace_header}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        signed_query(SENT),
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
        .unwrap_or_else(|| panic!("no tag {key} in {span}"))
}

fn span_named<'a>(spans: &'a [Value], prefix: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["operationName"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no span {prefix}… in {spans:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_one_trace_from_its_request_to_kafkas_confirmation_and_its_record_carries_it()
{
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let endpoint = jaeger.otlp.clone();
    let app = spawn_app_with(move |s| s.tracing.endpoint = Some(endpoint)).await;

    // A callback without traceparent starts a trace; one with it continues the caller's.
    let answer = tokio::task::block_in_place(|| post_callback(&app, &sent_body("traced-1"), None));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let callers = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    let answer = tokio::task::block_in_place(|| {
        post_with_headers(
            &app,
            &sent_body("traced-2"),
            &format!("traceparent: {callers}\r\ntracestate: {state}\r\n"),
        )
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let records = read_records(&app.topic, 2).await;
    // `replay` names each event's trace.
    let replayed = Command::new(env!("CARGO_BIN_EXE_tim-kafka-bridge"))
        .args([
            "replay",
            "--brokers",
            crate::broker::brokers(),
            "--topic",
            &app.topic,
            "--quiet",
        ])
        .env_remove("TIM_BRIDGE_KAFKA_BROKERS")
        .output()
        .unwrap();
    let replayed: Vec<Value> = String::from_utf8(replayed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replayed.len(), 2);
    for line in &replayed {
        let record = records
            .iter()
            .find(|r| r.offset == line["offset"] && r.partition == line["partition"])
            .unwrap();
        assert_eq!(
            line["trace_id"],
            record.headers["traceparent"].split('-').nth(1).unwrap()
        );
    }
    for record in &records {
        let traceparent = &record.headers["traceparent"];
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            (parts.len(), parts[0], parts[3]),
            (4, "00", "01"),
            "{traceparent}"
        );
        let trace_id = parts[1];
        if record.key.as_deref() == Some("traced-2") {
            assert_eq!(
                trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
                "the caller's trace"
            );
            assert_eq!(record.headers["tracestate"], state, "and its tracestate");
        } else {
            assert!(!record.headers.contains_key("tracestate"));
        }
        let spans = tokio::task::block_in_place(|| jaeger.trace(trace_id, 2));
        let server = span_named(&spans, "POST /callback");
        let producer = span_named(&spans, "send ");
        assert_eq!(
            producer["spanID"], parts[2],
            "the record names its producer span"
        );
        let parent_of = |span: &Value| span["references"][0]["spanID"].clone();
        assert_eq!(parent_of(producer), server["spanID"]);
        assert_eq!(tag(server, "http.response.status_code"), 200);
        assert_eq!(tag(server, "tim.command"), SENT);
        assert_eq!(tag(producer, "messaging.system"), "kafka");
        assert_eq!(
            tag(producer, "messaging.destination.name"),
            app.topic.as_str()
        );
        assert_eq!(
            tag(producer, "messaging.destination.partition.id"),
            record.partition.to_string().as_str()
        );
        assert_eq!(
            tag(producer, "messaging.kafka.message.key"),
            record.key.as_deref().unwrap()
        );
        assert_eq!(tag(producer, "cloudevents.event_id"), &record.value["id"]);
        if record.key.as_deref() == Some("traced-2") {
            assert_eq!(
                parent_of(server),
                "00f067aa0ba902b7",
                "under the caller's span"
            );
        }
        let ends = |s: &Value| s["startTime"].as_u64().unwrap() + s["duration"].as_u64().unwrap();
        assert!(
            ends(producer) >= ends(server),
            "the producer span ends at Kafka's confirmation, after the answer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sampling_off_no_span_reaches_jaeger_and_records_still_carry_an_unsampled_traceparent()
{
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let endpoint = jaeger.otlp.clone();
    let app = spawn_app_with(move |s| {
        s.tracing.endpoint = Some(endpoint);
        s.tracing.sampler = "parentbased_always_off".into();
    })
    .await;
    let answer = tokio::task::block_in_place(|| post_callback(&app, &sent_body("unsampled"), None));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let record = read_records(&app.topic, 1).await.remove(0);
    let traceparent = &record.headers["traceparent"];
    assert!(traceparent.ends_with("-00"), "not sampled: {traceparent}");
    // A sampled one through the same bridge reaches Jaeger: the unsampled one had
    // every chance to, and did not.
    let callers = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let answer = tokio::task::block_in_place(|| {
        post_callback(&app, &sent_body("sampled-by-its-caller"), Some(callers))
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::task::block_in_place(|| jaeger.trace("0af7651916cd43dd8448eb211c80319c", 2));
    let trace_id = traceparent.split('-').nth(1).unwrap();
    let found = Command::new("curl")
        .args(["-s", &format!("{}/api/traces/{trace_id}", jaeger.query)])
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert!(
        answer["data"].as_array().is_none_or(|d| d.is_empty()),
        "no span of the unsampled trace: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jaeger_killed_callbacks_are_all_delivered_and_the_dropped_spans_are_counted() {
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let endpoint = jaeger.otlp.clone();
    let app = spawn_app_with(move |s| s.tracing.endpoint = Some(endpoint)).await;
    drop(jaeger);
    for n in 0..50 {
        let answer = app
            .callback(SENT, &sent_body(&format!("backend-gone-{n}")))
            .await;
        assert_eq!(answer.status, 200);
    }
    let records = read_records(&app.topic, 50).await;
    assert_eq!(records.len(), 50);
    assert!(records
        .iter()
        .all(|r| r.headers.contains_key("traceparent")));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = app.get("/metrics").await;
        let dropped: f64 = metrics
            .lines()
            .find(|l| l.starts_with("tim_bridge_trace_spans_dropped_total "))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if dropped >= 100.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "50 server and 50 producer spans dropped and counted, not {dropped}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_continues_the_trace_with_a_consumer_span_and_a_span_per_attempt_to_the_subscriber(
) {
    use crate::relay::{subscription, Receiver, Relay};
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let endpoint = jaeger.otlp.clone();
    let app = spawn_app_with(move |s| s.tracing.endpoint = Some(endpoint)).await;
    // The first attempt is refused, the second taken: two client spans.
    let receiver = Receiver::start(|_, nth| {
        if nth == 0 {
            (503, Some(0), Duration::ZERO)
        } else {
            (204, None, Duration::ZERO)
        }
    })
    .await;
    let relay = Relay::start(&format!(
        "[tracing]\nendpoint = \"{}\"\nservice_name = \"tim-relay\"\n{}",
        jaeger.otlp,
        subscription("traced", &app.topic, &receiver.url, "")
    ))
    .await;
    // A relay that does not trace passes the record's context on as it is.
    let plain_receiver = Receiver::start(|_, _| (204, None, Duration::ZERO)).await;
    let plain = Relay::start(&subscription("plain", &app.topic, &plain_receiver.url, "")).await;

    let headers = "traceparent: 00-7bf92f3577b34da6a3ce929d0e0e4739-00f067aa0ba902ba-01\r\n\
                   tracestate: rojo=00f067aa0ba902ba\r\n";
    let answer =
        tokio::task::block_in_place(|| post_with_headers(&app, &sent_body("relayed"), headers));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let record = read_records(&app.topic, 1).await.remove(0);
    receiver.wait_for(1, Duration::from_secs(30)).await;
    let traceparent = &record.headers["traceparent"];
    let trace_id = traceparent.split('-').nth(1).unwrap();
    let spans = tokio::task::block_in_place(|| jaeger.trace(trace_id, 7));

    let id = |s: &Value| s["spanID"].as_str().unwrap().to_owned();
    let parent_of = |s: &Value| {
        s["references"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["refType"] == "CHILD_OF")
            .map(|r| r["spanID"].as_str().unwrap().to_owned())
    };
    let server = span_named(&spans, "POST /callback");
    let producer = span_named(&spans, "send ");
    for step in ["admit", "spool append"] {
        assert_eq!(
            parent_of(span_named(&spans, step)),
            Some(id(server)),
            "{step}"
        );
    }
    let consumer = span_named(&spans, "process ");
    // Its parent is the producer span, and it links it too, as the messaging
    // conventions ask; Jaeger shows the two as one FOLLOWS_FROM reference.
    let references = consumer["references"].as_array().unwrap();
    assert_eq!(references.len(), 1, "{consumer}");
    assert_eq!(
        references[0]["spanID"], producer["spanID"],
        "the consumer span follows the producer span: {consumer}"
    );
    assert_eq!(tag(consumer, "messaging.operation.type"), "process");
    assert_eq!(
        tag(consumer, "messaging.destination.name"),
        app.topic.as_str()
    );
    assert_eq!(tag(consumer, "messaging.kafka.message.key"), "relayed");
    assert_eq!(tag(consumer, "cloudevents.event_id"), &record.value["id"]);
    assert_eq!(tag(consumer, "tim.subscription"), "traced");

    let mut attempts: Vec<&Value> = spans
        .iter()
        .filter(|s| s["operationName"] == "POST")
        .collect();
    attempts.sort_by_key(|s| s["startTime"].as_u64());
    assert_eq!(attempts.len(), 2, "one client span per attempt");
    for attempt in &attempts {
        assert_eq!(parent_of(attempt), Some(id(consumer)));
        assert_eq!(tag(attempt, "http.request.method"), "POST");
    }
    assert_eq!(tag(attempts[0], "http.response.status_code"), 503);
    assert_eq!(tag(attempts[0], "error"), true);
    assert_eq!(tag(attempts[1], "http.response.status_code"), 204);
    assert_eq!(tag(attempts[1], "http.request.resend_count"), 1);

    // Each webhook request carried its own attempt's context: the receiver's spans
    // would join this trace under it.
    let received = receiver.all();
    assert_eq!(received.len(), 2);
    for (request, attempt) in received.iter().zip(&attempts) {
        assert_eq!(
            request.headers["traceparent"],
            format!("00-{trace_id}-{}-01", id(attempt))
        );
        assert_eq!(request.headers["tracestate"], "rojo=00f067aa0ba902ba");
    }
    let passed_on = plain_receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(passed_on[0].headers["traceparent"], *traceparent);
    assert_eq!(passed_on[0].headers["tracestate"], "rojo=00f067aa0ba902ba");
    assert_eq!(passed_on[0].event, record.value);
    let processes: std::collections::HashSet<_> = spans
        .iter()
        .map(|s| s["processID"].as_str().unwrap())
        .collect();
    assert_eq!(
        processes.len(),
        2,
        "the bridge's and the traced relay's spans, none of the other relay's"
    );
    drop((relay, plain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_kafka_refuses_for_good_ends_its_producer_span_as_an_error_naming_the_dead_letter()
{
    use crate::refusals::{create_topic_with_limit, incompressible};
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let topic = unique_topic("tim.limited");
    create_topic_with_limit(&topic, "2048").await;
    let endpoint = jaeger.otlp.clone();
    let app = spawn_app_with(move |s| {
        s.tracing.endpoint = Some(endpoint);
        s.kafka.create_topics = false;
        s.kafka.topic = topic.clone();
    })
    .await;
    let callers = "00-5bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-01";
    let big = text_message("too-big", &incompressible(8 * 1024));
    let answer = tokio::task::block_in_place(|| post_callback(&app, &big, Some(callers)));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let spans = tokio::task::block_in_place(|| jaeger.trace("5bf92f3577b34da6a3ce929d0e0e4737", 4));
    let producer = span_named(&spans, "send ");
    assert_eq!(tag(producer, "error"), true);
    assert_eq!(
        tag(producer, "otel.status_description").as_str().unwrap(),
        "refused for good by Kafka: message_too_large"
    );
    let logs = producer["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "event" && f["value"] == "dead-lettered")),
        "a dead-lettered event: {producer}"
    );
    // Nothing of it is on the topic; a small one after it is.
    assert_eq!(app.callback(SENT, &sent_body("small")).await.status, 200);
    let records = read_records(&app.topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("small"));
    assert_eq!(record_count(&app.topic).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_before_kafka_confirmed_ends_the_producer_span_after_its_restart() {
    use crate::durability::BridgeProcess;
    let jaeger = tokio::task::block_in_place(Jaeger::start);
    let spool = tempfile::tempdir().unwrap().keep().join("spool");
    let topic = unique_topic("tim.traced.restart");
    crate::refusals::create_topic_with_limit(&topic, "1048588").await;
    let port = free_port();
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp.as_str())];
    // No Kafka at all: the event waits in the spool.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut bridge = BridgeProcess::start_with(port, &spool, &topic, &nowhere, &otel);
    let app = TestApp::at(&format!("http://127.0.0.1:{port}"));
    let callers = "00-6bf92f3577b34da6a3ce929d0e0e4738-00f067aa0ba902b9-01";
    let answer =
        tokio::task::block_in_place(|| post_callback(&app, &sent_body("killed"), Some(callers)));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4738";
    // The server span and its steps are exported; the producer span cannot end yet.
    let before = tokio::task::block_in_place(|| jaeger.trace(trace_id, 3));
    assert!(before
        .iter()
        .all(|s| !s["operationName"].as_str().unwrap().starts_with("send ")));
    bridge.kill_9();

    let restarted =
        BridgeProcess::start_with(port, &spool, &topic, crate::broker::brokers(), &otel);
    let record = read_records(&topic, 1).await.remove(0);
    let traceparent = &record.headers["traceparent"];
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );
    let spans = tokio::task::block_in_place(|| jaeger.trace(trace_id, 4));
    let server = span_named(&spans, "POST /callback");
    let producer = span_named(&spans, "send ");
    assert_eq!(producer["spanID"], traceparent.split('-').nth(2).unwrap());
    assert_eq!(producer["references"][0]["spanID"], server["spanID"]);
    assert_eq!(tag(producer, "messaging.destination.name"), topic.as_str());
    let start = |s: &Value| s["startTime"].as_i64().unwrap();
    assert!(
        (start(producer) - start(server)).abs() < 50_000,
        "the producer span starts when the first bridge took the event: {producer}"
    );
    restarted.terminate();
}
