use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use crate::broker::brokers;
use crate::helpers::*;

async fn create_topic(name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    results.into_iter().for_each(|r| {
        r.unwrap();
    });
}

fn sent(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
    )
}

#[tokio::test]
async fn a_full_queue_answers_503_and_the_queued_events_arrive_once_kafka_can_take_them() {
    let app = spawn_app_with(|s| {
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
async fn shutdown_lists_the_events_kafka_never_confirmed() {
    let app = spawn_app_with(|s| {
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
