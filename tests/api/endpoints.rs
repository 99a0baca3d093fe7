use crate::helpers::*;

#[tokio::test]
async fn health_is_ok_and_readiness_follows_kafka() {
    let app = spawn_app().await;

    let (health, _) = app.get("/healthz").await;
    app.wait_until_ready().await;
    assert_eq!(app.callback("C2C.CallbackAfterSendMsg", r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"m"}"#).await.status, 200);

    assert_eq!(health, 200);
    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("m")
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            r#"tim_bridge_events_produced_total{{topic="{}"}} 1"#,
            app.topic
        )),
        "{metrics}"
    );
    assert!(metrics.contains("tim_bridge_kafka_ready 1"), "{metrics}");
    assert!(
        metrics.contains("tim_bridge_delivery_latency_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tim_bridge_forward_queue_depth 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_ack_memory_readiness_fails_naming_a_missing_topic() {
    let missing = format!("tim.missing-{}", now());
    let app = spawn_app_with(|s| {
        s.ack = tim_kafka_bridge::settings::Ack::Memory;
        s.kafka.create_topics = false;
        s.kafka
            .command_topics
            .insert("Group.CallbackAfterSendMsg".into(), missing.clone());
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;

    let (status, body) = app.get("/readyz").await;

    assert_eq!(status, 503);
    assert!(body.contains(&missing), "{body}");
}

#[tokio::test]
async fn librdkafka_statistics_show_the_brokers_round_trip_and_the_topics_batches() {
    let app = spawn_app().await;
    app.wait_until_ready().await;
    for n in 0..20 {
        let key = format!("statistics-{n}");
        assert_eq!(app.callback(SENT, &sent_body(&key)).await.status, 200);
    }
    assert_eq!(read_records(&app.topic, 20).await.len(), 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (rtt, batch) = (
        "tim_bridge_kafka_broker_rtt_seconds{".to_owned(),
        format!(
            "tim_bridge_kafka_topic_batch_messages{{topic=\"{}\",stat=\"avg\"}}",
            app.topic
        ),
    );
    loop {
        let page = app.get("/metrics").await.1;
        let rtt_p99: Option<f64> = page
            .lines()
            .find(|l| l.starts_with(&rtt) && l.contains("stat=\"p99\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok());
        let batches = metric_value(&page, &batch);
        if rtt_p99.is_some_and(|s| s > 0.0) && batches >= 1.0 {
            assert!(rtt_p99.unwrap() < 5.0, "a loopback broker: {page}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no statistics after 15 s:\n{page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
