//! The Kafka ceiling: a bare rdkafka producer, configured as the bridge's, sending
//! events like the bridge's as fast as the broker takes them.
//! `cargo run --release --example bench-kafka-ceiling -- BROKERS TOPIC COUNT`

use std::time::Instant;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tim_kafka_bridge::settings::{KafkaConfig, Settings};

fn kafka_settings(brokers: &str) -> KafkaConfig {
    let mut settings = Settings::default();
    settings.kafka.brokers = Some(brokers.to_owned());
    KafkaConfig::try_from(&settings).expect("valid settings")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().expect("BROKERS");
    let topic = args.next().expect("TOPIC");
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(200_000);
    let producer: FutureProducer =
        tim_kafka_bridge::kafka::producer_config(&kafka_settings(&brokers))
            .unwrap()
            .create()
            .expect("a producer");
    let payload = include_str!("event.json");
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..count {
        let key = format!("ceiling-{i}");
        loop {
            match producer.send_result(FutureRecord::to(&topic).key(&key).payload(payload)) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err(_) => tokio::task::yield_now().await,
            }
        }
        if pending.len() == 10_000 {
            for d in pending.drain(..) {
                d.await.expect("delivered").expect("no error");
            }
        }
    }
    for d in pending {
        d.await.expect("delivered").expect("no error");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\":{count},\"seconds\":{secs:.3},\"records_per_second\":{:.0}}}",
        count as f64 / secs
    );
}
