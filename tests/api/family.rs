//! The rest of the message family, typed, keyed and routed so that each message's
//! story stays in order on one partition.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::*;

fn c2c(command: &str, key: &str, extra: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"{command}","From_Account":"a","To_Account":"b","MsgKey":"{key}"{extra}}}"#
    )
}

#[tokio::test]
async fn an_edit_lands_between_the_send_and_the_recall_of_one_message() {
    let app = spawn_app().await;
    let key = "48374_2837546_1557481126";

    for (command, extra) in [
        ("C2C.CallbackAfterSendMsg", ""),
        (
            "C2C.CallbackAfterModifyMsg",
            r#","Operator_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"edited"}}]"#,
        ),
        ("C2C.CallbackAfterMsgWithDraw", ""),
    ] {
        assert_eq!(
            app.callback(command, &c2c(command, key, extra))
                .await
                .status,
            200,
            "{command}"
        );
    }

    let mut records = read_records(&app.topic, 3).await;
    records.sort_by_key(|r| r.offset);
    let types: Vec<_> = records
        .iter()
        .map(|r| r.value["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "tim.c2c.message.sent",
            "tim.c2c.message.modified",
            "tim.c2c.message.withdrawn"
        ]
    );
    assert!(records
        .iter()
        .all(|r| r.partition == records[0].partition && r.key.as_deref() == Some(key)));
    assert_eq!(records[1].value["data"]["body"][0]["text"], "edited");
    assert_eq!(
        records[1].headers["tim-command"],
        "C2C.CallbackAfterModifyMsg"
    );
}

#[tokio::test]
async fn a_recall_of_three_group_messages_gives_three_events_after_their_sends_on_their_partitions()
{
    let app = spawn_app().await;
    let group = "@TGS#2J4SZEAEL";
    for seq in [9001u64, 9002, 9003, 9004] {
        let body = format!(
            r#"{{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"{group}","Type":"Public","From_Account":"jared",
            "MsgSeq":{seq},"Random":2946326331,"MsgTime":1490686222,"MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"群消息 {seq}"}}}}]}}"#
        );
        assert_eq!(
            app.callback("Group.CallbackAfterSendMsg", &body)
                .await
                .status,
            200
        );
    }
    let recall = format!(
        r#"{{"CallbackCommand":"Group.CallbackAfterRecallMsg","GroupId":"{group}","Type":"Public","Operator_Account":"admin",
        "MsgSeqList":[{{"MsgSeq":9001}},{{"MsgSeq":9002}},{{"MsgSeq":9003}}],"EventTime":1670574414123}}"#
    );

    assert_eq!(
        app.callback("Group.CallbackAfterRecallMsg", &recall)
            .await
            .status,
        200
    );

    let records = read_records(&app.group_topic, 7).await;
    let mut by_key: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in &records {
        by_key.entry(r.key.clone().unwrap()).or_default().push(r);
    }
    for seq in [9001, 9002, 9003] {
        let key = format!("group:{group}:{seq}");
        let mut story = by_key.remove(&key).unwrap_or_else(|| panic!("{key}"));
        story.sort_by_key(|r| r.offset);
        assert_eq!(story.len(), 2, "{key}");
        assert_eq!(story[0].partition, story[1].partition, "{key}");
        assert_eq!(story[0].value["type"], "tim.group.message.sent");
        assert_eq!(story[1].value["type"], "tim.group.message.recalled");
        assert_eq!(story[1].value["data"]["msg_seq"], seq);
        assert_eq!(story[1].value["data"]["operator"], "admin");
    }
    let last = &by_key[&format!("group:{group}:9004")];
    assert_eq!(last.len(), 1, "the fourth message was not recalled");
    assert_eq!(record_count(&app.group_topic).await, 7);
}

#[tokio::test]
async fn a_read_receipt_lands_one_event_per_message_with_its_send() {
    let app = spawn_app().await;
    for key in ["r1", "r2"] {
        let sent = c2c("C2C.CallbackAfterSendMsg", key, "");
        assert_eq!(
            app.callback("C2C.CallbackAfterSendMsg", &sent).await.status,
            200
        );
    }
    let receipt = r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","EventTime":1670574414123,"C2CMsgInfo":[
        {"From_Account":"a","To_Account":"b","MsgKey":"r1","MsgId":"id-1"},{"From_Account":"a","To_Account":"b","MsgKey":"r2"}]}"#;

    assert_eq!(
        app.callback("C2C.CallbackAfterMsgReadReceipt", receipt)
            .await
            .status,
        200
    );

    let records = read_records(&app.topic, 4).await;
    for key in ["r1", "r2"] {
        let mut story: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .collect();
        story.sort_by_key(|r| r.offset);
        assert_eq!(story.len(), 2);
        assert_eq!(story[1].value["type"], "tim.c2c.message.read");
        assert_eq!(story[0].partition, story[1].partition);
    }
}

#[tokio::test]
async fn read_reports_read_alls_and_extensions_are_typed_and_keyed() {
    let app = spawn_app().await;
    let cases = [
        (
            "C2C.CallbackAfterMsgReport",
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"jared","Peer_Account":"Jonh","LastReadTime":1614754606,"UnreadMsgNum":7}"#,
            "c2c:Jonh:jared",
            "tim.c2c.conversation.read",
        ),
        (
            "C2C.CallbackAfterMsgReadAll",
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadAll","Report_Account":"Jonh","EventTime":1769773302575,"GroupReadInfo":[{"GroupId":"g","MsgSeq":100}]}"#,
            "user:Jonh",
            "tim.conversations.all_read",
        ),
        (
            "C2C.CallbackAfterC2CMsgExtension",
            r#"{"CallbackCommand":"C2C.CallbackAfterC2CMsgExtension","From_Account":"user1","To_Account":"user2","MsgKey":"93847636_1287657_1764688415","OperateType":1,"ExtensionList":[{"Key":"k1","Value":"v1","Seq":1}],"Seq":1,"EventTime":1764688540182}"#,
            "93847636_1287657_1764688415",
            "tim.c2c.message.extension_changed",
        ),
    ];

    for (command, body, _, _) in cases {
        assert_eq!(app.callback(command, body).await.status, 200, "{command}");
    }

    let records = read_records(&app.topic, cases.len()).await;
    for (command, _, key, event_type) in cases {
        let r = records
            .iter()
            .find(|r| r.headers["tim-command"] == command)
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(key), "{command}");
        assert_eq!(r.value["type"], event_type, "{command}");
    }
    let ext = records
        .iter()
        .find(|r| r.value["type"] == "tim.c2c.message.extension_changed")
        .unwrap();
    assert_eq!(
        ext.value["data"]["extensions"],
        json!([{"key":"k1","value":"v1","seq":1}])
    );
    assert_eq!(record_count(&app.other_topic).await, 0);
}

#[tokio::test]
async fn a_before_send_callback_is_published_for_audit_when_asked_and_always_allowed() {
    let app = spawn_app_with(|s| s.publish_before_callbacks = true).await;
    let body = c2c(
        "C2C.CallbackBeforeSendMsg",
        "pre-1",
        r#","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"审计"}}]"#,
    );
    let unreadable = r#"{"CallbackCommand":"C2C.CallbackBeforeSendMsg","From_Account":7}"#;

    let answer = app.callback("C2C.CallbackBeforeSendMsg", &body).await;
    let allowed_anyway = app.callback("C2C.CallbackBeforeSendMsg", unreadable).await;

    assert_eq!(
        answer.body,
        json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0})
    );
    assert_eq!(
        allowed_anyway.status, 200,
        "a before-send callback never blocks a message"
    );
    assert_eq!(allowed_anyway.body["ErrorCode"], 0);
    let records = read_records(&app.other_topic, 1).await;
    assert_eq!(records[0].value["type"], "tim.c2c.message.pre_send");
    assert_eq!(records[0].value["data"]["body"][0]["text"], "审计");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(record_count(&app.other_topic).await, 1);
}
