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
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (otlp_port, query_port) = (free_port(), free_port());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/jaeger");
        let output = Command::new(script)
            .args(["up", "--dir"])
            .arg(dir.path())
            .args(["--otlp-port", &otlp_port.to_string()])
            .args(["--query-port", &query_port.to_string()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/jaeger up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self {
            otlp: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
            query: format!("http://127.0.0.1:{query_port}"),
            dir,
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
    use std::io::{Read, Write};
    let address = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let trace_header = traceparent
        .map(|t| format!("traceparent: {t}\r\n"))
        .unwrap_or_default();
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
    let answer =
        tokio::task::block_in_place(|| post_callback(&app, &sent_body("traced-2"), Some(callers)));
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
