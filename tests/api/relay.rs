//! `tim-kafka-bridge relay`: subscriptions over HTTP, run as the binary against the
//! test broker, delivering to receivers this test runs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::broker::brokers;
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");

#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) headers: HashMap<String, String>,
    body: Bytes,
    pub(super) event: Value,
    at: Instant,
    pub(super) status: u16,
}

/// How a receiver answers a request: status, `Retry-After`, delay before answering.
type Behaviour = dyn Fn(&Value, usize) -> (u16, Option<u64>, Duration) + Send + Sync;

pub(super) struct Receiver {
    pub(super) url: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(super) async fn start(
        behaviour: impl Fn(&Value, usize) -> (u16, Option<u64>, Duration) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        // Requests by event id as they arrive: one the relay gave up waiting for is
        // never answered, nor logged.
        let arrivals: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let shared = Arc::clone(&log);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (log, behaviour, arrivals) = (
                    Arc::clone(&shared),
                    Arc::clone(&behaviour),
                    Arc::clone(&arrivals),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (log, behaviour, arrivals) = (
                            Arc::clone(&log),
                            Arc::clone(&behaviour),
                            Arc::clone(&arrivals),
                        );
                        async move {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                                .collect::<HashMap<_, _>>();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let nth = {
                                let mut arrivals = arrivals.lock().unwrap();
                                let n = arrivals.entry(event["id"].to_string()).or_default();
                                *n += 1;
                                *n - 1
                            };
                            let (status, retry_after, delay) = behaviour(&event, nth);
                            tokio::time::sleep(delay).await;
                            log.lock().unwrap().push(Received {
                                headers,
                                body,
                                event,
                                at: Instant::now(),
                                status,
                            });
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            if let Some(secs) = retry_after {
                                response.headers_mut().insert("retry-after", secs.into());
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/events"),
            log,
        }
    }

    fn delivered(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .cloned()
            .collect()
    }

    pub(super) fn all(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `count` distinct events were answered 2xx.
    pub(super) async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            let ids: HashSet<_> = delivered
                .iter()
                .map(|r| r.event["id"].to_string())
                .collect();
            if ids.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} events delivered in {within:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn ok(_: &Value, _: usize) -> (u16, Option<u64>, Duration) {
    (204, None, Duration::ZERO)
}

pub(super) struct Relay {
    child: Child,
    listen: String,
    log: std::path::PathBuf,
}

impl Relay {
    fn config(subscriptions: &str) -> (String, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let text = format!(
            "listen = \"{listen}\"\nshutdown_timeout_ms = 2000\n[kafka]\nbrokers = \"{}\"\n\
             [consumer]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\
             \"topic.metadata.refresh.interval.ms\" = \"1000\"\n{subscriptions}",
            brokers()
        );
        (listen, text)
    }

    fn file(text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("{}.toml", unique_topic("relay")));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(super) async fn start(subscriptions: &str) -> Self {
        let (listen, text) = Self::config(subscriptions);
        let path = Self::file(&text);
        let log = path.with_extension("log");
        let child = Command::new(BINARY)
            .args(["relay", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let relay = Self { child, listen, log };
        relay.wait_ready().await;
        relay
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if get(&self.listen, "/readyz")
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the relay never joined: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) async fn metrics(&self) -> String {
        get(&self.listen, "/metrics")
            .await
            .expect("the relay answers")
            .1
    }

    pub(super) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET, or None while nothing listens.
async fn get(listen: &str, path: &str) -> Option<(u16, String)> {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .get(format!("http://{listen}{path}").parse().unwrap())
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `outcome` deliveries of `subscription` in a /metrics page.
pub(super) fn deliveries(page: &str, subscription: &str, outcome: &str) -> f64 {
    metric_value(
        page,
        &format!(
            "tim_relay_deliveries_total{{subscription=\"{subscription}\",outcome=\"{outcome}\"}}"
        ),
    )
}

pub(super) fn subscription(name: &str, topic: &str, url: &str, extra: &str) -> String {
    format!(
        "[[subscriptions]]\nname = \"{name}\"\ntopics = [\"{topic}\"]\nurl = \"{url}\"\n{extra}\n"
    )
}

fn state(account: &str, n: u64) -> String {
    json!({"CallbackCommand": "State.StateChange", "EventTime": 1_700_000_000_000u64 + n,
        "Info": {"Action": if n.is_multiple_of(2) { "Login" } else { "Logout" }, "To_Account": account}})
    .to_string()
}

pub(super) async fn send_states(app: &TestApp, users: &[String], from: u64, per_user: u64) {
    for n in from..from + per_user {
        for user in users {
            assert_eq!(
                app.callback("State.StateChange", &state(user, n))
                    .await
                    .status,
                200
            );
        }
    }
}

/// For each key, the events in the order the receiver first saw them: their
/// `event_time`s, which the test sent increasing.
fn first_arrivals(received: &[Received]) -> HashMap<String, Vec<u64>> {
    let mut seen = HashSet::new();
    let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
    let mut sorted = received.to_vec();
    sorted.sort_by_key(|r| r.at);
    for r in sorted {
        if seen.insert(r.event["id"].to_string()) {
            by_key
                .entry(r.event["subject"].as_str().unwrap().to_owned())
                .or_default()
                .push(r.event["data"]["event_time"].as_u64().unwrap());
        }
    }
    by_key
}

fn assert_each_key_in_order(received: &[Received], per_key: usize) {
    for (key, times) in first_arrivals(received) {
        assert_eq!(times.len(), per_key, "{key}: every event, none skipped");
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {times:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_a_subscription_and_one_takes_over_when_the_other_is_killed() {
    let app = spawn_app().await;
    // Slow enough that deliveries are in flight when one relay dies.
    let receiver = Receiver::start(|_, _| (204, None, Duration::from_millis(20))).await;
    let name = unique_topic("shared");
    let sub = subscription(&name, &app.user_topic, &receiver.url, "max_in_flight = 8");
    let users: Vec<String> = (0..16).map(|i| format!("u{i}")).collect();

    let mut a = Relay::start(&sub).await;
    let b = Relay::start(&sub).await;
    send_states(&app, &users, 0, 10).await;
    receiver.wait_for(160, Duration::from_secs(60)).await;
    let (page_a, page_b) = (a.metrics().await, b.metrics().await);
    let (by_a, by_b) = (
        deliveries(&page_a, &name, "delivered"),
        deliveries(&page_b, &name, "delivered"),
    );
    assert!(
        by_a > 0.0 && by_b > 0.0,
        "both did part of the work: {by_a} and {by_b}"
    );

    // Killed while the second half flows: some of its deliveries are in flight.
    tokio::join!(send_states(&app, &users, 10, 15), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.kill_9();
    });
    let received = receiver.wait_for(16 * 25, Duration::from_secs(90)).await;
    assert_each_key_in_order(&received, 25);
    let duplicates = received.len() - 16 * 25;
    eprintln!(
        "delivered {} requests for 400 events: {duplicates} duplicates after the kill",
        received.len()
    );
    assert!(
        deliveries(&b.metrics().await, &name, "delivered") > by_b,
        "the survivor took over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_its_receiver_refuses_is_dead_lettered_while_others_flow_and_redelivered_later() {
    let app = spawn_app().await;
    let broken = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&broken);
    let receiver = Receiver::start(move |event, _| {
        let bad = event["data"]["account"] == "bad";
        (
            if bad && flag.load(Ordering::Relaxed) {
                500
            } else {
                200
            },
            None,
            Duration::ZERO,
        )
    })
    .await;
    let dead = unique_topic("tim.relay.dead");
    create_topic(&dead).await;
    let name = unique_topic("flaky");
    let sub = subscription(
        &name,
        &app.user_topic,
        &receiver.url,
        &format!("retry_for = \"3s\"\nretry_max_delay_ms = 500\ndead_letter_topic = \"{dead}\"\nmax_in_flight = 4"),
    );
    let relay = Relay::start(&sub).await;
    let users: Vec<String> = ["bad", "g1", "g2", "g3", "g4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    send_states(&app, &users, 0, 3).await;

    // The good keys arrive while the bad one fails.
    let good = receiver.wait_for(12, Duration::from_secs(30)).await;
    assert!(good.iter().all(|r| r.event["data"]["account"] != "bad"));
    assert_each_key_in_order(&good, 3);

    let letters = read_records(&dead, 3).await;
    assert!(letters.iter().all(|r| r.key.as_deref() == Some("user:bad")));
    for r in &letters {
        assert_eq!(r.headers["tim-relay-subscription"], name);
        assert_eq!(r.headers["tim-relay-last"], "500");
        assert!(r.headers["tim-relay-attempts"].parse::<u32>().unwrap() >= 2);
        assert!(r.headers["tim-relay-source"].starts_with(&format!("{}/", app.user_topic)));
        assert_eq!(r.headers["tim-command"], "State.StateChange");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries(&relay.metrics().await, &name, "dead_lettered") < 3.0 {
        assert!(Instant::now() < deadline, "{}", relay.metrics().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    broken.store(false, Ordering::Relaxed);
    let (_, text) = Relay::config(&sub);
    let output = Command::new(BINARY)
        .args(["relay", "--redeliver-dead", &name, "--config"])
        .arg(Relay::file(&text))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("3 dead letters"));
    let bad: Vec<_> = receiver
        .delivered()
        .into_iter()
        .filter(|r| r.event["data"]["account"] == "bad")
        .collect();
    assert_each_key_in_order(&bad, 3);
}

#[tokio::test]
async fn the_signature_verifies_with_the_standard_webhooks_library() {
    let app = spawn_app().await;
    let receiver = Receiver::start(ok).await;
    let secret = "whsec_VBuh8f42vH/u060x0wL2krkdh+w+sYhF";
    let name = unique_topic("signed");
    let sub = subscription(
        &name,
        &app.user_topic,
        &receiver.url,
        &format!("secret = \"{secret}\"\nheaders = {{ Authorization = \"Bearer t0k3n\" }}"),
    );
    let _relay = Relay::start(&sub).await;
    assert_eq!(
        app.callback("State.StateChange", &state("signer", 1))
            .await
            .status,
        200
    );
    let r = receiver
        .wait_for(1, Duration::from_secs(30))
        .await
        .remove(0);
    assert_eq!(r.headers["content-type"], "application/cloudevents+json");
    assert_eq!(r.headers["authorization"], "Bearer t0k3n");
    assert_eq!(r.headers["webhook-id"], r.event["id"].as_str().unwrap());

    let case = std::env::temp_dir().join(format!("{name}.json"));
    std::fs::write(
        &case,
        json!({"secret": secret, "headers": r.headers, "body": String::from_utf8(r.body.to_vec()).unwrap()}).to_string(),
    )
    .unwrap();
    let python = std::env::var("TIM_BRIDGE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_webhook.py");
    let verified = Command::new(&python)
        .arg(script)
        .arg(&case)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "standardwebhooks refused the signature (or is not installed for {python}; scripts/test installs it): {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // Tampered, it must fail: the check is real.
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&case).unwrap()).unwrap();
    tampered["body"] = Value::String(
        tampered["body"]
            .as_str()
            .unwrap()
            .replace("signer", "other"),
    );
    std::fs::write(&case, tampered.to_string()).unwrap();
    let refused = Command::new(&python)
        .arg(script)
        .arg(&case)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_retry_after_and_a_receiver_that_hangs_past_the_timeout() {
    let app = spawn_app().await;
    let typed = Receiver::start(ok).await;
    let patient = Receiver::start(|_, nth| {
        if nth == 0 {
            (429, Some(2), Duration::ZERO)
        } else {
            (204, None, Duration::ZERO)
        }
    })
    .await;
    let hung = Receiver::start(|_, nth| {
        (
            204,
            None,
            if nth == 0 {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            },
        )
    })
    .await;
    let (t, p, h) = (
        unique_topic("typed"),
        unique_topic("patient"),
        unique_topic("hung"),
    );
    let subs = [
        subscription(
            &t,
            &app.user_topic,
            &typed.url,
            "types = [\"tim.user.friend_added\"]",
        ),
        subscription(
            &p,
            &app.user_topic,
            &patient.url,
            "types = [\"tim.user.state_changed\"]",
        ),
        subscription(
            &h,
            &app.user_topic,
            &hung.url,
            "types = [\"tim.user.state_changed\"]\ntimeout_ms = 500",
        ),
    ]
    .concat();
    let relay = Relay::start(&subs).await;
    assert_eq!(
        app.callback("State.StateChange", &state("x", 1))
            .await
            .status,
        200
    );
    let friend = r#"{"CallbackCommand":"Sns.CallbackFriendAdd","PairList":[{"From_Account":"x","To_Account":"y"}]}"#;
    assert_eq!(
        app.callback("Sns.CallbackFriendAdd", friend).await.status,
        200
    );

    let got = typed.wait_for(1, Duration::from_secs(30)).await;
    patient.wait_for(1, Duration::from_secs(30)).await;
    hung.wait_for(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        typed
            .all()
            .iter()
            .all(|r| r.event["type"] == "tim.user.friend_added")
            && got.len() == 1
    );
    let attempts = patient.all();
    assert_eq!(attempts.len(), 2, "one 429, then the 2xx");
    assert!(
        attempts[1].at - attempts[0].at >= Duration::from_millis(1900),
        "Retry-After: 2 honoured"
    );
    let page = relay.metrics().await;
    assert_eq!(
        hung.delivered().len(),
        1,
        "the hung attempt was given up and retried"
    );
    assert_eq!(deliveries(&page, &t, "filtered"), 1.0, "{page}");
    assert!(
        metric_value(
            &page,
            &format!("tim_relay_retries_total{{subscription=\"{h}\"}}")
        ) >= 1.0,
        "{page}"
    );
}

#[test]
fn a_bad_relay_file_stops_it_naming_the_setting_and_check_config_reads_relay_files() {
    let (_, good) = Relay::config(&subscription(
        "ok",
        "t",
        "https://relay:hunter2-password@127.0.0.1:9/x",
        "",
    ));
    let checked = Command::new(BINARY)
        .args(["check-config", "--config"])
        .arg(Relay::file(&good))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(printed.contains("tim-relay.ok"), "{printed}");
    let read_back: toml::Table = toml::from_str(&printed).expect("check-config prints TOML");
    assert!(read_back.contains_key("consumer"), "{printed}");
    assert_eq!(read_back["subscriptions"][0]["name"].as_str(), Some("ok"));
    assert!(
        !printed.contains("hunter2") && printed.contains("relay:[redacted]@127.0.0.1:9"),
        "a password in a URL is not printed: {printed}"
    );

    let bad = good.replace(
        "https://relay:hunter2-password@127.0.0.1:9/x",
        "ftp://vendor.example/hook",
    );
    for args in [
        &["relay", "--config"][..],
        &["check-config", "--config"][..],
    ] {
        let output = Command::new(BINARY)
            .args(args)
            .arg(Relay::file(&bad))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("subscriptions[0].url"), "{stderr}");
    }
}
