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
