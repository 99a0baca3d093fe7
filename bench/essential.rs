//! The essential work and nothing else: a bare hyper server that reads each
//! callback's body, runs the bridge's own `http::admit` (query, signature, body,
//! normalization, serialization), hands the event to librdkafka with the bridge's
//! producer settings, and answers OK. No metrics, replay filter, limits, queue or
//! confirmation tracking: how fast any implementation of the job can be on this
//! machine, to tell the bridge's overhead from the job's own cost.
//! `cargo run --release --example bench-essential -- ADDRESS BROKERS TOPIC TOKEN`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use tim_kafka_bridge::settings::{Config, Settings};
use tim_kafka_bridge::tencent::CallbackQuery;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OK: &[u8] = br#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().expect("ADDRESS");
    let brokers = args.next().expect("BROKERS");
    let topic: &'static str = args.next().expect("TOPIC").leak();
    let token = args.next().expect("TOKEN");
    let mut settings = Settings::from_toml(&format!(
        "request_time_skew_secs = 86400\n[[apps]]\nsdk_app_id = 1400000000\ntokens = [\"{token}\"]"
    ))
    .expect("settings");
    settings.kafka.brokers = Some(brokers);
    let config = Config::try_from(settings).expect("valid settings");
    let producer: ThreadedProducer<DefaultProducerContext> =
        tim_kafka_bridge::kafka::producer_config(&config.kafka)
            .expect("producer settings")
            .create()
            .expect("a producer");
    let shared = Arc::new((config.admission, producer));
    let listener = tokio::net::TcpListener::bind(&address).await.expect("bind");
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let query = CallbackQuery::parse(req.uri().query().unwrap_or(""));
                    let body = req.into_body().collect().await.expect("body").to_bytes();
                    let now = SystemTime::now();
                    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
                    let (settings, producer) = &*shared;
                    let admitted = tim_kafka_bridge::http::admit(settings, query, &body, secs, now)
                        .expect("a valid callback");
                    for event in admitted.events {
                        let mut record = BaseRecord::to(topic).payload(&event.payload);
                        if let Some(key) = &event.key {
                            record = record.key(key);
                        }
                        producer.send(record).map_err(|(e, _)| e).expect("enqueued");
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(OK))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
