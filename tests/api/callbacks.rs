use serde_json::json;

use crate::helpers::*;

const SEED_000: &str = include_str!("../fixtures/seed_000_send.json");
const SEED_001: &str = include_str!("../fixtures/seed_001_send_oldest.json");
const SEED_002: &str = include_str!("../fixtures/seed_002_send_en.json");
const SEED_003: &str = include_str!("../fixtures/seed_003_withdraw.json");
const SEED_004: &str = include_str!("../fixtures/seed_004_send_newer.json");
const SENT: &str = "C2C.CallbackAfterSendMsg";
const WITHDRAWN: &str = "C2C.CallbackAfterMsgWithDraw";

#[tokio::test]
async fn a_signed_sent_callback_is_answered_ok_and_lands_keyed_by_its_msg_key() {
    let app = spawn_app().await;

    let answer = app.callback(SENT, SEED_000).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(
        answer.body,
        json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0})
    );
    let records = read_records(&app.topic, 1).await;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("48374_2837546_1557481126"));
    assert_eq!(r.headers["content-type"], "application/cloudevents+json");
    assert_eq!(r.headers["tim-command"], SENT);
    assert_eq!(r.headers["tim-sdkappid"], SIGNED_APP.to_string());
    assert_eq!(r.value["type"], "tim.c2c.message.sent");
    assert_eq!(r.value["source"], format!("/tim/{SIGNED_APP}"));
    assert_eq!(r.value["data"]["from"], "jared");
    assert_eq!(
        r.value["data"]["body"],
        json!([{"type":"text","text":"red packet"}])
    );
    assert_eq!(r.value["data"]["client_ip"], "10.1.2.3");
    assert_eq!(r.value["data"]["platform"], "iOS");
}

#[tokio::test]
async fn every_seed_body_is_taken_and_published() {
    let app = spawn_app().await;
    let seeds = [
        (SENT, SEED_000),
        (SENT, SEED_001),
        (SENT, SEED_002),
        (WITHDRAWN, SEED_003),
        (SENT, SEED_004),
    ];

    // Unsigned, because seeds 000 and 002 are the same body: signed in one second,
    // the second would be a replay.
    for (command, body) in seeds {
        let query = format!("/callback?SdkAppid={UNSIGNED_APP}&CallbackCommand={command}");
        assert_eq!(
            app.post(&query, Some("application/json"), body)
                .await
                .status,
            200,
            "{body}"
        );
    }

    let records = read_records(&app.topic, seeds.len()).await;
    let mut keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    let mut expected = vec!["48374_2837546_1557481126".to_owned(); 4];
    expected.push("c2c:Jonh:jared".into());
    expected.sort();
    assert_eq!(
        keys, expected,
        "the oldest body, without MsgKey, is keyed by its conversation"
    );
    assert_eq!(record_count(&app.topic).await, seeds.len() as i64);
}

#[tokio::test]
async fn an_app_without_a_token_takes_unsigned_callbacks() {
    let app = spawn_app().await;
    let query =
        format!("/callback?SdkAppid={UNSIGNED_APP}&CallbackCommand={SENT}&contenttype=json");

    let answer = app.post(&query, Some("application/json"), SEED_000).await;

    assert_eq!(answer.status, 200);
    let records = read_records(&app.topic, 1).await;
    assert_eq!(records[0].value["source"], format!("/tim/{UNSIGNED_APP}"));
}

#[tokio::test]
async fn a_callback_signed_with_the_previous_token_is_taken_during_a_rotation() {
    let app = spawn_app().await;
    let t = now().to_string();
    let sign = tim_kafka_bridge::tencent::sign::sign_hex(PREVIOUS_TOKEN, &t);
    let query = format!(
        "/callback?SdkAppid={SIGNED_APP}&CallbackCommand={SENT}&RequestTime={t}&Sign={sign}"
    );

    assert_eq!(app.post(&query, None, SEED_000).await.status, 200);

    assert_eq!(
        read_records(&app.topic, 1).await[0].key.as_deref(),
        Some("48374_2837546_1557481126")
    );
}

#[tokio::test]
async fn another_command_goes_to_the_other_topic_with_its_body_kept_whole() {
    let app = spawn_app().await;
    let body = r#"{"CallbackCommand":"Group.CallbackOnMemberStateChange","GroupId":"@TGS#live",
        "EventType":"Online","MemberList":[{"Member_Account":"a"}],"Note":"大家好 👋"}"#;

    assert_eq!(
        app.callback("Group.CallbackOnMemberStateChange", body)
            .await
            .status,
        200
    );

    let records = read_records(&app.other_topic, 1).await;
    let r = &records[0];
    assert_eq!(r.key, None);
    assert_eq!(
        r.headers["tim-command"],
        "Group.CallbackOnMemberStateChange"
    );
    assert_eq!(r.value["type"], "tim.callback");
    assert_eq!(
        r.value["data"]["body"],
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    );
    assert_eq!(record_count(&app.topic).await, 0);
}

#[tokio::test]
async fn a_before_send_callback_is_allowed_and_not_published() {
    let app = spawn_app().await;
    let before = r#"{"CallbackCommand":"C2C.CallbackBeforeSendMsg","From_Account":"a","To_Account":"b",
        "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}"#;
    let marker = r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"g"}"#;

    let answer = app.callback("C2C.CallbackBeforeSendMsg", before).await;
    assert_eq!(
        app.callback("Group.CallbackAfterGroupFull", marker)
            .await
            .status,
        200
    );

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0})
    );
    let records = read_records(&app.other_topic, 1).await;
    assert_eq!(
        records[0].value["data"]["command"],
        "Group.CallbackAfterGroupFull"
    );
    assert_eq!(record_count(&app.other_topic).await, 1);
    assert_eq!(record_count(&app.topic).await, 0);
}

#[tokio::test]
async fn other_commands_are_answered_but_not_forwarded_when_switched_off() {
    let app = spawn_app_with(|s| s.forward_other_commands = false).await;
    let other = r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"g"}"#;

    assert_eq!(
        app.callback("Group.CallbackAfterGroupFull", other)
            .await
            .status,
        200
    );
    assert_eq!(app.callback(SENT, SEED_000).await.status, 200);

    assert_eq!(
        read_records(&app.topic, 1).await[0].value["type"],
        "tim.c2c.message.sent"
    );
    assert_eq!(record_count(&app.topic).await, 1);
    assert!(
        !topic_exists(&app.other_topic).await,
        "the other topic is not even needed"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_reports_every_accepted_event_as_delivered() {
    let app = spawn_app().await;
    for i in 0..20 {
        let body = format!(
            r#"{{"CallbackCommand":"{SENT}","From_Account":"a","To_Account":"b","MsgKey":"shutdown-{i}"}}"#
        );
        assert_eq!(app.callback(SENT, &body).await.status, 200);
    }
    let topic = app.topic.clone();

    let report = app.shutdown().await;

    assert_eq!(report.delivered, 20);
    assert!(report.unconfirmed.is_empty());
    assert_eq!(read_records(&topic, 20).await.len(), 20);
}

fn signed_at(command: &str, at: u64) -> String {
    let t = at.to_string();
    let sign = tim_kafka_bridge::tencent::sign::sign_hex(TOKEN, &t);
    format!("/callback?SdkAppid={SIGNED_APP}&CallbackCommand={command}&RequestTime={t}&Sign={sign}")
}

#[tokio::test]
async fn a_replayed_signed_request_is_answered_ok_and_published_once() {
    let app = spawn_app().await;
    // One clock reading: a second ticking between two calls of now() would make the
    // "re-signed" query the same as the first.
    let at = now();
    let query = signed_at(SENT, at);

    let first = app.post(&query, Some("application/json"), SEED_000).await;
    let replay = app.post(&query, Some("application/json"), SEED_000).await;
    let resigned = app
        .post(&signed_at(SENT, at - 1), Some("application/json"), SEED_000)
        .await;

    assert_eq!(
        (
            first.status.as_u16(),
            replay.status.as_u16(),
            resigned.status.as_u16()
        ),
        (200, 200, 200)
    );
    assert_eq!(
        replay.body,
        json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0})
    );
    let records = read_records(&app.topic, 2).await;
    assert_eq!(
        records[0].value["id"], records[1].value["id"],
        "re-signed, it is published again, same id"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        record_count(&app.topic).await,
        2,
        "the replay itself was not published"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"tim_bridge_duplicates_dropped_total{kind="request"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_a_dedup_window_an_event_sent_again_is_published_once() {
    let app = spawn_app_with(|s| s.dedup_window_secs = 300).await;

    let t = now();
    for at in [t, t - 1, t - 2] {
        assert_eq!(
            app.post(&signed_at(SENT, at), Some("application/json"), SEED_000)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.post(
            &signed_at(WITHDRAWN, now()),
            Some("application/json"),
            SEED_003
        )
        .await
        .status,
        200
    );

    let records = read_records(&app.topic, 2).await;
    let types: Vec<_> = records
        .iter()
        .map(|r| r.value["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"tim.c2c.message.sent") && types.contains(&"tim.c2c.message.withdrawn")
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(record_count(&app.topic).await, 2);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"tim_bridge_duplicates_dropped_total{kind="event"} 2"#),
        "{metrics}"
    );
}

/// Posts SEED_000 once per query, all at once; each is answered 200. Then checks that
/// one event was published: a later event lands, and the topic holds two records.
async fn sent_at_once_and_published_once(app: TestApp, queries: Vec<String>) {
    let app = std::sync::Arc::new(app);
    let copies: Vec<_> = queries
        .into_iter()
        .map(|query| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                app.post(&query, Some("application/json"), SEED_000)
                    .await
                    .status
            })
        })
        .collect();
    for copy in copies {
        assert_eq!(copy.await.unwrap(), 200);
    }
    assert_eq!(app.callback(SENT, &sent_body("after")).await.status, 200);
    read_records(&app.topic, 2).await;
    assert_eq!(
        record_count(&app.topic).await,
        2,
        "one copy published, then the later event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_of_one_signed_request_sent_at_once_are_published_once() {
    let query = signed_at(SENT, now());
    sent_at_once_and_published_once(spawn_app().await, vec![query; 8]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_dedup_window_re_signed_copies_sent_at_once_are_published_once() {
    let app = spawn_app_with(|s| s.dedup_window_secs = 300).await;
    let t = now();
    let queries = (0..8).map(|i| signed_at(SENT, t - i)).collect();
    sent_at_once_and_published_once(app, queries).await;
}
