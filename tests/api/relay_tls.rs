//! The relay over HTTPS: certificates and host names verified, a private CA trusted
//! only where a subscription names it, and a receiver's endless answer cut short.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::helpers::*;
use crate::relay::{deliveries, send_states, subscription, Relay};
use crate::tls_support::TestCa;

/// A receiver over HTTPS with a certificate `ca` issued for localhost; `endless`: it
/// answers 200 with a body that never ends.
struct TlsReceiver {
    url: String,
    ids: Arc<Mutex<Vec<String>>>,
}

impl TlsReceiver {
    async fn start(ca: &TestCa, endless: bool) -> Self {
        let acceptor = ca.acceptor("receiver");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ids: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&ids);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let event: Value = serde_json::from_slice(&body).unwrap();
                            seen.lock()
                                .unwrap()
                                .push(event["id"].as_str().unwrap().to_owned());
                            let body: BoxBody<Bytes, Infallible> = if endless {
                                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                                StreamBody::new(futures_util::stream::repeat_with(move || {
                                    Ok(Frame::data(chunk.clone()))
                                }))
                                .boxed()
                            } else {
                                Full::new(Bytes::new()).boxed()
                            };
                            Ok::<_, Infallible>(Response::new(body))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("https://localhost:{port}/events"),
            ids,
        }
    }

    async fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let mut ids = self.ids.lock().unwrap().clone();
            ids.sort();
            ids.dedup();
            if ids.len() >= count {
                return ids;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} delivered",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_delivers_over_https_to_a_receiver_its_ca_file_trusts_and_to_no_other() {
    let app = spawn_app().await;
    let ca = TestCa::new();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca.pem()).unwrap();
    let receiver = TlsReceiver::start(&ca, false).await;
    let (trusting, public) = (unique_topic("trusting"), unique_topic("public-roots"));
    let subs = format!(
        "{}{}",
        subscription(
            &trusting,
            &app.user_topic,
            &receiver.url,
            &format!("ca_file = \"{}\"", ca_file.path().display())
        ),
        subscription(&public, &app.user_topic, &receiver.url, "timeout_ms = 1000"),
    );
    let relay = Relay::start(&subs).await;
    let users: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
    send_states(&app, &users, 0, 5).await;

    let ids = receiver.wait_for(20, Duration::from_secs(60)).await;
    let records = read_records(&app.user_topic, 20).await;
    let mut in_kafka: Vec<String> = records
        .iter()
        .map(|r| r.value["id"].as_str().unwrap().to_owned())
        .collect();
    in_kafka.sort();
    assert_eq!(ids, in_kafka, "every event of the topic, over HTTPS");
    let page = relay.metrics().await;
    assert_eq!(deliveries(&page, &trusting, "delivered"), 20.0);
    assert_eq!(
        deliveries(&page, &public, "delivered"),
        0.0,
        "the public roots do not trust the test CA"
    );
    // Each event counted once per subscription: only the trusting one's arrived.
    assert_eq!(receiver.ids.lock().unwrap().len(), 20);
    // Said in the log once a few attempts have failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !relay.logs().contains("UnknownIssuer") {
        assert!(Instant::now() < deadline, "{}", relay.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_an_endless_body_is_delivered_to_once_per_event() {
    let app = spawn_app().await;
    let ca = TestCa::new();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca.pem()).unwrap();
    let receiver = TlsReceiver::start(&ca, true).await;
    let name = unique_topic("endless");
    let extra = format!(
        "ca_file = \"{}\"\ntimeout_ms = 3000",
        ca_file.path().display()
    );
    let relay = Relay::start(&subscription(&name, &app.user_topic, &receiver.url, &extra)).await;
    let users: Vec<String> = (0..2).map(|i| format!("u{i}")).collect();
    send_states(&app, &users, 0, 5).await;

    let ids = receiver.wait_for(10, Duration::from_secs(60)).await;
    let records = read_records(&app.user_topic, 10).await;
    assert_eq!(ids.len(), records.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries(&relay.metrics().await, &name, "delivered") < 10.0 {
        assert!(Instant::now() < deadline, "{}", relay.metrics().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Taken at the first attempt: the answer's status counts, its body is cut short.
    assert_eq!(
        receiver.ids.lock().unwrap().len(),
        10,
        "no event sent twice"
    );
}
