use std::time::{Duration, Instant};

use tim_kafka_bridge::settings::Ack;

use crate::helpers::*;

fn sent(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
    )
}

#[tokio::test]
async fn a_full_memory_queue_answers_503_and_the_queued_events_arrive_once_kafka_can_take_them() {
    let app = spawn_app_with(|s| {
        s.ack = Ack::Memory;
        s.kafka.create_topics = false;
        s.queue_capacity = 3;
        s.enqueue_timeout_ms = 50;
    })
    .await;

    let mut statuses = Vec::new();
    for i in 0..4 {
        let answer = app
            .callback("C2C.CallbackAfterSendMsg", &sent(&format!("q{i}")))
            .await;
        statuses.push(answer.status.as_u16());
        if answer.status == 503 {
            assert_eq!(answer.body["ActionStatus"], "FAIL");
        }
    }
    create_topic(&app.topic).await;

    assert_eq!(statuses, [200, 200, 200, 503]);
    let records = read_records(&app.topic, 3).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["q0", "q1", "q2"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        record_count(&app.topic).await,
        3,
        "the refused callback was not published"
    );
}

#[tokio::test]
async fn events_kafka_refused_for_a_while_are_sent_again_by_the_bridge_in_order_and_once() {
    let app = spawn_app_with(|s| {
        s.ack = Ack::Memory;
        s.kafka.create_topics = false;
        s.kafka.retry_max_delay_ms = 200;
        // librdkafka reports the missing topic after 300 ms instead of 30 s.
        s.kafka
            .producer
            .insert("topic.metadata.propagation.max.ms".into(), "300".into());
    })
    .await;
    let keys: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
    for key in &keys {
        app.send_then_recall(key).await;
    }
    let failures = format!(
        r#"tim_bridge_delivery_failures_total{{topic="{}"}} "#,
        app.topic
    );
    let failed_attempts = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(failures.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed_attempts(&app.get("/metrics").await.1) < 20 {
        assert!(Instant::now() < deadline, "Kafka refused nothing twice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create_topic(&app.topic).await;

    let records = read_records(&app.topic, 10).await;
    assert_each_recall_after_its_send("refused-for-a-while", &keys, &records);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(record_count(&app.topic).await, 10, "each event once");
}

#[tokio::test]
async fn with_ack_memory_shutdown_lists_the_events_kafka_never_confirmed() {
    let app = spawn_app_with(|s| {
        s.ack = Ack::Memory;
        s.kafka.create_topics = false;
        s.shutdown_timeout_ms = 500;
    })
    .await;
    let topic = app.topic.clone();
    for key in ["never-1", "never-2"] {
        assert_eq!(
            app.callback("C2C.CallbackAfterSendMsg", &sent(key))
                .await
                .status,
            200
        );
    }

    let mut report = app.shutdown().await;

    report.unconfirmed.sort();
    assert_eq!(report.delivered, 0);
    assert_eq!(report.unconfirmed, ["never-1", "never-2"]);
    create_topic(&topic).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        record_count(&topic).await,
        0,
        "nothing was published after the report"
    );
}

#[tokio::test]
async fn events_left_in_the_spool_at_shutdown_are_sent_by_the_next_start_in_order() {
    let first = spawn_app_with(|s| {
        s.kafka.create_topics = false;
        s.shutdown_timeout_ms = 300;
    })
    .await;
    let (topic, spool_dir) = (first.topic.clone(), first.spool_dir.clone());
    for key in ["kept-1", "kept-2"] {
        assert_eq!(
            first
                .callback("C2C.CallbackAfterSendMsg", &sent(key))
                .await
                .status,
            200
        );
    }
    let withdrawn = r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b","MsgKey":"kept-1"}"#;
    assert_eq!(
        first
            .callback("C2C.CallbackAfterMsgWithDraw", withdrawn)
            .await
            .status,
        200
    );
    let report = first.shutdown().await;
    assert_eq!(report.left_in_spool, 3);
    create_topic(&topic).await;

    let second = spawn_app_with(|s| {
        s.kafka.topic = topic.clone();
        s.spool_dir = spool_dir.clone();
    })
    .await;
    assert_eq!(
        second
            .callback("C2C.CallbackAfterSendMsg", &sent("after-restart"))
            .await
            .status,
        200
    );

    let mut records = read_records(&topic, 4).await;
    records.sort_by_key(|r| (r.partition, r.offset));
    let kept_1: Vec<_> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some("kept-1"))
        .collect();
    assert_eq!(kept_1.len(), 2);
    assert_eq!(kept_1[0].value["type"], "tim.c2c.message.sent");
    assert_eq!(kept_1[1].value["type"], "tim.c2c.message.withdrawn");
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["after-restart", "kept-1", "kept-1", "kept-2"]);
    let report = second.shutdown().await;
    assert_eq!(report.left_in_spool, 0);
    assert_eq!(record_count(&topic).await, 4);
}

#[tokio::test]
async fn a_full_spool_answers_503_and_everything_answered_200_still_arrives() {
    let app = spawn_app_with(|s| {
        s.kafka.create_topics = false;
        s.spool_max_bytes = 64 * 1024;
    })
    .await;
    let padding = "填".repeat(300);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let body = format!(
            r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"full-{i}",
            "MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"{padding}"}}}}]}}"#
        );
        let answer = app.callback("C2C.CallbackAfterSendMsg", &body).await;
        match answer.status.as_u16() {
            200 => accepted.push(format!("full-{i}")),
            503 => {
                assert_eq!(answer.body["ActionStatus"], "FAIL");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert!(refused > 0, "a 64 KiB spool fills up");
    create_topic(&app.topic).await;

    let records = read_records(&app.topic, accepted.len()).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    accepted.sort();
    assert_eq!(keys, accepted);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(record_count(&app.topic).await, accepted.len() as i64);
}

#[tokio::test]
async fn the_very_same_signed_request_refused_503_is_taken_when_tencent_sends_it_again() {
    let app = spawn_app_with(|s| {
        s.ack = Ack::Memory;
        s.kafka.create_topics = false;
        s.queue_capacity = 1;
        s.enqueue_timeout_ms = 50;
        s.dedup_window_secs = 300;
    })
    .await;
    assert_eq!(app.callback(SENT, &sent("first")).await.status, 200);
    // One query, signed once: what Tencent sends again after a failure.
    let query = format!("/callback?{}", signed_query(SENT));
    let refused = app
        .post(&query, Some("application/json"), &sent("retried"))
        .await;
    assert_eq!(refused.status, 503);
    create_topic(&app.topic).await;
    read_records(&app.topic, 1).await;

    let again = app
        .post(&query, Some("application/json"), &sent("retried"))
        .await;
    assert_eq!(again.status, 200);
    let records = read_records(&app.topic, 2).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["first", "retried"],
        "published, not taken for a replay"
    );
}
