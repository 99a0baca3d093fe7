use std::collections::HashMap;

use crate::helpers::*;

#[tokio::test]
async fn a_messages_send_and_recall_arrive_in_that_order_on_one_partition() {
    let app = spawn_app().await;
    // Shaped like Tencent's MsgSeq_MsgRandom_MsgTime; keys too alike can share a partition by chance.
    let keys: Vec<String> = (0..24u64)
        .map(|i| {
            format!(
                "{}_{}_{}",
                48374 + i * 7919,
                (i * 2654435761) % (1 << 32),
                1557481126 + i
            )
        })
        .collect();

    for key in &keys {
        app.send_then_recall(key).await;
    }

    let records = read_records(&app.topic, keys.len() * 2).await;
    let mut by_key: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in &records {
        by_key.entry(r.key.clone().unwrap()).or_default().push(r);
    }
    let partitions: std::collections::HashSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 4, "24 keys spread over the 4 partitions");
    for key in &keys {
        let mut story = by_key.remove(key).unwrap();
        story.sort_by_key(|r| r.offset);
        assert_eq!(story.len(), 2, "{key}");
        assert_eq!(story[0].partition, story[1].partition, "{key}");
        assert_eq!(story[0].value["type"], "tim.c2c.message.sent", "{key}");
        assert_eq!(story[1].value["type"], "tim.c2c.message.withdrawn", "{key}");
    }
}

/// librdkafka refuses a record at once when its own queue is full; that is
/// backpressure, and a recall sent after its message must still land after it.
async fn a_full_librdkafka_queue_keeps_each_story_in_order(ack: tim_kafka_bridge::settings::Ack) {
    let app = spawn_app_with(|s| {
        s.ack = ack;
        // Room for four records in librdkafka: the queue is full almost at once.
        s.kafka
            .producer
            .insert("queue.buffering.max.messages".into(), "4".into());
    })
    .await;
    let keys: Vec<String> = (0..150).map(|i| format!("queue-full-{i}")).collect();
    for key in &keys {
        app.send_then_recall(key).await;
    }
    let records = read_records(&app.topic, keys.len() * 2).await;
    assert_eq!(records.len(), keys.len() * 2);
    assert_each_recall_after_its_send("a full librdkafka queue", &keys, &records);
    let (_, metrics) = app.get("/metrics").await;
    let waits = metric_value(&metrics, "tim_bridge_producer_queue_full_total");
    assert!(
        waits >= 1.0,
        "the queue was never full, so nothing was tested:\n{metrics}"
    );
}

#[tokio::test]
async fn with_ack_memory_a_full_librdkafka_queue_is_waited_out_in_order() {
    a_full_librdkafka_queue_keeps_each_story_in_order(tim_kafka_bridge::settings::Ack::Memory)
        .await;
}

#[tokio::test]
async fn with_ack_durable_a_full_librdkafka_queue_is_waited_out_in_order() {
    a_full_librdkafka_queue_keeps_each_story_in_order(tim_kafka_bridge::settings::Ack::Durable)
        .await;
}
