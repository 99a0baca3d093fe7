//! The broker's own refusals, as production clusters make them: a record over the
//! topic's `max.message.bytes`, and topics that are not created on first use.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use crate::broker::brokers;
use crate::helpers::*;

/// Text lz4 cannot shrink much: a pseudo-random run of letters and digits.
pub(crate) fn incompressible(len: usize) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

pub(crate) async fn create_topic_with_limit(name: &str, max_message_bytes: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))
        .set("max.message.bytes", max_message_bytes);
    for result in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

async fn metric(app: &TestApp, name: &str, topic: &str) -> u64 {
    let metrics = app.get("/metrics").await.1;
    metrics
        .lines()
        .find(|l| {
            l.starts_with(name)
                && l.contains(&format!("topic=\"{topic}\""))
                && l.contains("reason=\"message_too_large\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_event_over_the_topics_max_message_bytes_is_refused_by_the_broker_and_dead_lettered() {
    let topic = unique_topic("tim.limited");
    create_topic_with_limit(&topic, "2048").await;
    let app = spawn_app_with(|s| {
        s.kafka.create_topics = false;
        s.kafka.topic = topic.clone();
    })
    .await;
    let big = text_message("too-big", &incompressible(8 * 1024));
    // The producer's own limit (message.max.bytes, 1 MB) lets it through: only the
    // broker can refuse it.
    assert_eq!(app.callback(SENT, &big).await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&app, "tim_bridge_events_dead_lettered_total", &topic).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the broker's refusal was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.callback(SENT, &sent_body("small")).await.status, 200);
    let records = read_records(&topic, 1).await;
    assert_eq!(records[0].key.as_deref(), Some("small"));
    assert_eq!(
        record_count(&topic).await,
        1,
        "the refused event is not on the topic"
    );
}
