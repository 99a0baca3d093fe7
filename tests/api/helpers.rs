use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tim_kafka_bridge::delivery::ShutdownReport;
use tim_kafka_bridge::settings::{App, Config, Secret, Settings};
use tim_kafka_bridge::startup::Application;
use tim_kafka_bridge::tencent::sign::sign_hex;
use tokio::sync::oneshot;

use crate::broker::brokers;

pub const SIGNED_APP: u64 = 1400000001;
pub const UNSIGNED_APP: u64 = 1400000002;
pub const TOKEN: &str = "test-token-0123456789";
/// The token before a rotation, still taken for the signed app.
pub const PREVIOUS_TOKEN: &str = "previous-token-0123456789";
pub const PARTITIONS: i32 = 4;

pub struct TestApp {
    pub address: String,
    /// `http://host:port` of the admin listener, when `admin_listen` is set.
    pub admin_address: Option<String>,
    pub topic: String,
    pub other_topic: String,
    pub group_topic: String,
    pub user_topic: String,
    pub group_events_topic: String,
    pub spool_dir: std::path::PathBuf,
    /// The bridge's producer as it started (for librdkafka's fault injection).
    pub producer: Option<tim_kafka_bridge::kafka::KafkaProducer>,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<ShutdownReport>>,
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

#[derive(Debug)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<String>,
    pub headers: HashMap<String, String>,
    pub value: Value,
    /// The value's bytes as the broker served them.
    pub payload: Vec<u8>,
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The bridge on port 0, against the test broker, with fresh topics of four partitions.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The settings `spawn_app_with` starts from, customized.
pub fn test_settings(customize: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        apps: vec![
            App {
                sdk_app_id: SIGNED_APP,
                tokens: vec![Secret::new(PREVIOUS_TOKEN), Secret::new(TOKEN)],
                ..App::default()
            },
            App {
                sdk_app_id: UNSIGNED_APP,
                tokens: vec![],
                ..App::default()
            },
        ],
        allow_unsigned: true,
        shutdown_timeout_ms: 5_000,
        spool_dir: tempfile::tempdir().expect("a spool directory").keep(),
        ..Settings::default()
    };
    settings.kafka.brokers = Some(brokers().to_owned());
    settings.kafka.topic = unique("tim.c2c");
    settings.kafka.other_topic = unique("tim.other");
    settings.kafka.group_topic = unique("tim.group");
    settings.kafka.user_topic = unique("tim.users");
    settings.kafka.group_events_topic = unique("tim.group.events");
    settings.kafka.create_topics = true;
    settings.kafka.partitions = PARTITIONS;
    settings.kafka.readiness_interval_ms = 200;
    customize(&mut settings);
    settings
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let settings = test_settings(customize);
    let config = Config::try_from(settings.clone()).expect("test settings are valid");

    let app = Application::build(config).await.expect("the bridge starts");
    let address = format!("http://{}", app.local_addr());
    let admin_address = app.admin_addr().map(|a| format!("http://{a}"));
    let producer = Some(app.producer());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        admin_address,
        topic: settings.kafka.topic.clone(),
        other_topic: settings.kafka.other_topic.clone(),
        group_topic: settings.kafka.group_topic.clone(),
        user_topic: settings.kafka.user_topic.clone(),
        group_events_topic: settings.kafka.group_events_topic.clone(),
        spool_dir: settings.spool_dir.clone(),
        producer,
        client: Client::builder(TokioExecutor::new()).build_http(),
        stop: Some(stop),
        running: Some(running),
    }
}

impl TestApp {
    /// A bridge running as its own process at `address`.
    pub fn at(address: &str) -> Self {
        TestApp {
            address: address.to_owned(),
            admin_address: None,
            topic: String::new(),
            other_topic: String::new(),
            group_topic: String::new(),
            user_topic: String::new(),
            group_events_topic: String::new(),
            spool_dir: std::path::PathBuf::new(),
            producer: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: None,
            running: None,
        }
    }
}

pub const SENT: &str = "C2C.CallbackAfterSendMsg";

/// The smallest valid sent-message body, keyed `key`.
pub fn sent_body(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"{SENT}","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
    )
}

/// A sent-message body keyed `key` whose one text element says `text` (JSON-escaped
/// already, where it needs to be).
pub fn text_message(key: &str, text: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"{SENT}","From_Account":"a","To_Account":"b","MsgKey":"{key}","MsgTime":1557481126,
        "MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"{text}"}}}}]}}"#
    )
}

/// A withdrawal body of the message keyed `key`, sent by `a` to `b`.
pub fn withdrawn_message(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
    )
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The query Tencent sends for `command`, signed for the signed app.
pub fn signed_query(command: &str) -> String {
    let t = now().to_string();
    format!(
        "SdkAppid={SIGNED_APP}&CallbackCommand={command}&contenttype=json&ClientIP=10.1.2.3&OptPlatform=iOS&RequestTime={t}&Sign={}",
        sign_hex(TOKEN, &t)
    )
}

impl TestApp {
    /// The message keyed `key` sent, then withdrawn: two callbacks one after the
    /// other, each answered 200.
    pub async fn send_then_recall(&self, key: &str) {
        let sent = self.callback(SENT, &text_message(key, "hi")).await;
        assert_eq!(sent.status, 200, "send {key}");
        let recalled = self
            .callback("C2C.CallbackAfterMsgWithDraw", &withdrawn_message(key))
            .await;
        assert_eq!(recalled.status, 200, "recall {key}");
    }

    /// A callback as Tencent sends it: signed, JSON.
    pub async fn callback(&self, command: &str, body: &str) -> Answer {
        self.post(
            &format!("/callback?{}", signed_query(command)),
            Some("application/json"),
            body,
        )
        .await
    }

    pub async fn post(
        &self,
        path_and_query: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Answer {
        self.request(Method::POST, path_and_query, content_type, body.to_owned())
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let answer = self.raw(Method::GET, path, None, String::new()).await;
        (answer.0, String::from_utf8_lossy(&answer.2).into_owned())
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: String,
    ) -> Answer {
        let (status, content_type, bytes) = self.raw(method, path, content_type, body).await;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// A signed callback whose body is any bytes, valid UTF-8 or not.
    pub async fn callback_bytes(&self, command: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "{}/callback?{}",
                self.address,
                signed_query(command)
            ))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .expect("the bridge answers");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).expect("a JSON answer"),
        )
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: String,
    ) -> (StatusCode, String, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.address));
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("the bridge answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, bytes)
    }

    pub async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let admin = self.admin_address.as_deref().map(TestApp::at);
        loop {
            let (status, body) = admin.as_ref().unwrap_or(self).get("/readyz").await;
            if status == StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "not ready after 30 s: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the bridge as SIGTERM would and returns its report.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.stop.take().unwrap().send(()).ok();
        self.running.take().unwrap().await.unwrap()
    }
}

/// Reads `topic` from the beginning until `count` records arrived (or fails after 30 s);
/// every value must be valid against the event schema.
pub async fn read_records(topic: &str, count: usize) -> Vec<Record> {
    read_records_from(brokers(), topic, count).await
}

pub async fn read_records_from(brokers: &str, topic: &str, count: usize) -> Vec<Record> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", brokers);
    read_records_with(client, topic, count).await
}

/// Reads as `client` (brokers and security) is configured to.
pub async fn read_records_with(client: ClientConfig, topic: &str, count: usize) -> Vec<Record> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let within = Duration::from_secs(60);
        let records = read_blocking(client, &topic, within, |read| read.len() >= count);
        assert!(
            records.len() >= count,
            "read {} of {count} records from {topic} in {within:?}",
            records.len()
        );
        records
    })
    .await
    .unwrap()
}

/// Reads `topic` from the beginning until `done` says what was read is complete, or
/// until `within` has passed: the caller says what is missing. Counting records is not enough where duplicates may be
/// among them (an outage): the count is reached before the last records are read.
pub async fn read_records_until(
    brokers: &str,
    topic: &str,
    within: Duration,
    done: impl FnMut(&[Record]) -> bool + Send + 'static,
) -> Vec<Record> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", brokers);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(client, &topic, within, done))
        .await
        .unwrap()
}

fn read_blocking(
    mut client: ClientConfig,
    topic: &str,
    within: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = client
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + within;
    while !done(&records) && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("the broker serves records");
        let payload = m.payload().expect("a value");
        let value: Value = serde_json::from_slice(payload).expect("a JSON value");
        assert_valid_schema(&value);
        // Decoding costs as much again (a debug build's serde): every record of the
        // first 10,000 read, then one in 50, so that the chaos runs' hundreds of
        // thousands are read within their time.
        if records.len() < 10_000 || records.len() % 50 == 0 {
            assert_decodes_as_its_type(payload);
        }
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            key: m.key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
            headers,
            value,
            payload: m.payload().unwrap_or_default().to_vec(),
        });
    }
    records
}

/// How many records `topic` holds, from its high watermarks.
pub async fn record_count(topic: &str) -> i64 {
    record_count_on(brokers(), topic).await
}

/// The records of `topic` on `brokers`, 0 when the topic does not exist there.
pub async fn record_count_if_any(brokers: &str, topic: &str) -> i64 {
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    let exists = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(&t), Duration::from_secs(10))
            .expect("the cluster's metadata");
        metadata.topics().iter().any(|found| {
            found.name() == t && found.error().is_none() && !found.partitions().is_empty()
        })
    })
    .await
    .unwrap();
    if exists {
        record_count_on(brokers, topic).await
    } else {
        0
    }
}

pub async fn record_count_on(brokers: &str, topic: &str) -> i64 {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("a consumer");
        // Right after a leader moves, the first answer can be NOT_LEADER_FOR_PARTITION.
        let deadline = Instant::now() + Duration::from_secs(30);
        (0..PARTITIONS)
            .map(|p| loop {
                match consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)) {
                    Ok((low, high)) => return high - low,
                    Err(e) if Instant::now() > deadline => panic!("watermarks of {topic}: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            })
            .sum()
    })
    .await
    .unwrap()
}

pub async fn topic_exists(topic: &str) -> bool {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        metadata.topics().iter().any(|t| t.name() == topic)
    })
    .await
    .unwrap()
}

pub fn assert_valid_event(event: &Value) {
    assert_valid_schema(event);
    assert_decodes_as_its_type(&serde_json::to_vec(event).unwrap());
}

/// The event is valid against the JSON Schema.
pub fn assert_valid_schema(event: &Value) {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(tim_event::SCHEMA).unwrap();
        jsonschema::validator_for(&schema).expect("the event schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event not valid against the schema: {errors:?}\n{event:#}"
    );
}

/// The contract's Rust types read it as the data of its own type, never as `Other`.
pub fn assert_decodes_as_its_type(payload: &[u8]) {
    let decoded = tim_event::decode(payload).unwrap_or_else(|e| {
        panic!(
            "tim_event::decode refuses it: {e}\n{}",
            String::from_utf8_lossy(payload)
        )
    });
    assert_eq!(
        decoded.data.event_type().map(tim_event::EventType::as_str),
        Some(decoded.event_type.as_str()),
        "decoded as the data of another type: {}",
        String::from_utf8_lossy(payload)
    );
}

pub async fn create_topic_on(brokers: &str, name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

pub async fn create_topic(name: &str) {
    create_topic_on(brokers(), name).await
}

pub fn unique_topic(prefix: &str) -> String {
    unique(prefix)
}

/// Prints the `chaos:` line `scripts/chaos.sh` reports: how many callbacks were
/// answered 200 (`acked`, by key), how many of those are in `records`, how many are
/// not, and how many records are extra copies (each key has `per_key` events).
/// Returns the number lost.
pub fn chaos_report(scenario: &str, acked: &[String], per_key: usize, records: &[Record]) -> usize {
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *copies.entry(r.key.as_deref().unwrap_or("")).or_default() += 1;
    }
    let lost = acked
        .iter()
        .filter(|k| !copies.contains_key(k.as_str()))
        .count();
    let delivered = acked.len() - lost;
    let duplicated = records.len().saturating_sub(per_key * copies.len());
    println!(
        "chaos: scenario={scenario} acked={} delivered={delivered} lost={lost} duplicated={duplicated}",
        acked.len()
    );
    lost
}

/// Waits until `topic` on `brokers` stops growing and holds at least `at_least` records;
/// how many it holds.
pub async fn settled_count(brokers: &str, topic: &str, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = -1;
    loop {
        let now = record_count_on(brokers, topic).await;
        if now >= at_least as i64 && now == last {
            return now as usize;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} holds {now} records, {at_least} expected"
        );
        last = now;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Each key's records, in the order read.
pub fn stories(records: &[Record]) -> HashMap<&str, Vec<&Record>> {
    let mut stories: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in records {
        stories
            .entry(r.key.as_deref().unwrap_or(""))
            .or_default()
            .push(r);
    }
    stories
}

/// Whether `key`'s story holds an event of type `kind`.
pub fn landed(stories: &HashMap<&str, Vec<&Record>>, key: &str, kind: &str) -> bool {
    stories
        .get(key)
        .is_some_and(|story| story.iter().any(|r| r.value["type"] == kind))
}

/// For every key of `recalled`: its send and its recall are in `records`, on one
/// partition, the first send before the first recall.
pub fn assert_each_recall_after_its_send(scenario: &str, recalled: &[String], records: &[Record]) {
    let stories = stories(records);
    for key in recalled {
        let story = stories
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{scenario}: {key} answered 200 and never arrived"));
        let first = |kind: &str| {
            story
                .iter()
                .filter(|r| r.value["type"] == kind)
                .map(|r| r.offset)
                .min()
        };
        let (sent, recalled) = (
            first("tim.c2c.message.sent"),
            first("tim.c2c.message.withdrawn"),
        );
        let told: Vec<_> = story
            .iter()
            .map(|r| {
                (
                    r.partition,
                    r.offset,
                    r.value["type"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert!(
            sent.is_some() && recalled.is_some(),
            "{scenario}: {key} incomplete: {told:?}"
        );
        assert!(
            story.iter().all(|r| r.partition == story[0].partition),
            "{scenario}: {key} on two partitions: {told:?}"
        );
        assert!(
            sent < recalled,
            "{scenario}: {key} recalled before it was sent: {told:?}"
        );
    }
}

/// The value of an unlabelled metric in an OpenMetrics page, 0 when absent.
pub fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A bare HTTP/1.1 POST, so this test needs no runtime.
pub fn bare_post(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
