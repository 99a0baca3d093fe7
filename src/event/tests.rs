use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;
use crate::tencent::{command, Callback};

const SEED_000: &str = include_str!("../../tests/fixtures/seed_000_send.json");
const SEED_001: &str = include_str!("../../tests/fixtures/seed_001_send_oldest.json");
const SEED_002: &str = include_str!("../../tests/fixtures/seed_002_send_en.json");
const SEED_003: &str = include_str!("../../tests/fixtures/seed_003_withdraw.json");
const SEED_004: &str = include_str!("../../tests/fixtures/seed_004_send_newer.json");

fn ctx(command: &'static str) -> Context<'static> {
    Context {
        sdk_app_id: 1400000000,
        command,
        client_ip: Some("10.0.0.1"),
        platform: Some("iOS"),
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        origin: None,
    }
}

fn events(command: &'static str, body: &str) -> Vec<(Option<String>, Value)> {
    let callback = Callback::parse(Some(command), body.as_bytes(), true).unwrap();
    normalize(&ctx(command), callback, body.as_bytes())
        .unwrap()
        .into_iter()
        .map(|n| (n.key, serde_json::from_slice(&n.payload).unwrap()))
        .collect()
}

fn event(command: &'static str, body: &str) -> (Option<String>, Value) {
    let mut all = events(command, body);
    assert_eq!(all.len(), 1, "one event");
    all.remove(0)
}

#[test]
fn the_current_send_page_example_becomes_a_sent_event() {
    let (key, e) = event(command::AFTER_SEND_MSG, SEED_000);
    assert_eq!(key.as_deref(), Some("48374_2837546_1557481126"));
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["type"], "tim.c2c.message.sent");
    assert_eq!(e["source"], "/tim/1400000000");
    assert_eq!(e["subject"], "48374_2837546_1557481126");
    assert_eq!(e["time"], "2019-05-10T09:38:46Z");
    assert_eq!(
        e["data"],
        json!({
            "sdk_app_id": 1400000000u64, "msg_key": "48374_2837546_1557481126",
            "from": "jared", "to": "Jonh", "msg_seq": 48374, "msg_random": 2837546,
            "msg_time": 1557481126, "msg_time_rfc3339": "2019-05-10T09:38:46Z",
            "online_only": true, "send_result": 0, "error_info": "send msg succeed",
            "unread_count": 7, "body": [{"type": "text", "text": "red packet"}],
            "cloud_custom_data": "your cloud custom data",
            "client_ip": "10.0.0.1", "platform": "iOS", "received_at": "2023-11-14T22:13:20.123Z"
        })
    );
}

#[test]
fn the_english_page_example_gives_the_same_data_as_the_chinese_one() {
    assert_eq!(
        event(command::AFTER_SEND_MSG, SEED_002),
        event(command::AFTER_SEND_MSG, SEED_000)
    );
}

#[test]
fn the_oldest_minimal_body_is_keyed_by_its_conversation() {
    let callback =
        Callback::parse(Some(command::AFTER_SEND_MSG), SEED_001.as_bytes(), false).unwrap();
    let n = normalize(&ctx(command::AFTER_SEND_MSG), callback, SEED_001.as_bytes())
        .unwrap()
        .remove(0);
    assert!(n.keyed_by_conversation);
    assert_eq!(n.key.as_deref(), Some("c2c:Jonh:jared"));
    let e: Value = serde_json::from_slice(&n.payload).unwrap();
    assert!(e.get("subject").is_none());
    assert!(e["data"].get("msg_key").is_none());
    assert!(
        e["data"].get("msg_seq").is_none(),
        "absent fields are not invented"
    );
    assert_eq!(
        e["time"], "2023-11-14T22:13:20.123Z",
        "falls back to the receipt time"
    );
}

#[test]
fn the_withdraw_page_example_becomes_a_withdrawn_event() {
    let (key, e) = event(command::AFTER_MSG_WITHDRAW, SEED_003);
    assert_eq!(key.as_deref(), Some("48374_2837546_1557481126"));
    assert_eq!(e["type"], "tim.c2c.message.withdrawn");
    assert_eq!(e["data"]["msg_key"], "48374_2837546_1557481126");
    assert_eq!(e["data"]["unread_count"], 7);
}

#[test]
fn the_newer_page_fields_arrive_with_event_time_as_a_string() {
    let (_, e) = event(command::AFTER_SEND_MSG, SEED_004);
    assert_eq!(
        e["data"]["msg_id"],
        "144115233406643804-1727163813-22740283"
    );
    assert_eq!(e["data"]["event_time"], 1670574414123u64);
    assert_eq!(e["data"]["event_time_rfc3339"], "2022-12-09T08:26:54.123Z");
    assert_eq!(e["time"], "2022-12-09T08:26:54.123Z");
}

#[test]
fn numbers_as_strings_and_u32_above_two_to_the_31_are_taken() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b",
        "MsgSeq":"3998651049","MsgRandom":4294967295,"MsgTime":"1557481126","UnreadMsgNum":"-1",
        "SendMsgResult":"20016","MsgKey":"k"}"#;
    let (_, e) = event(command::AFTER_SEND_MSG, body);
    assert_eq!(e["data"]["msg_seq"], 3998651049u64);
    assert_eq!(e["data"]["msg_random"], 4294967295u64);
    assert_eq!(e["data"]["unread_count"], -1);
    assert_eq!(e["data"]["send_result"], 20016);
}

#[test]
fn unknown_fields_are_ignored_and_unknown_elements_kept() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b",
        "MsgKey":"k","SomethingNew":{"x":1},
        "MsgBody":[{"MsgType":"TIMStreamElem","MsgContent":{"Chunks":["你好","👋"]}}]}"#;
    let (_, e) = event(command::AFTER_SEND_MSG, body);
    assert!(e["data"].get("SomethingNew").is_none());
    assert_eq!(
        e["data"]["body"],
        json!([{"type":"unknown","msg_type":"TIMStreamElem","content":{"Chunks":["你好","👋"]}}])
    );
}

#[test]
fn the_id_depends_on_app_command_and_msg_key_only() {
    let (_, first) = event(command::AFTER_SEND_MSG, SEED_000);
    let (_, again) = event(command::AFTER_SEND_MSG, SEED_004);
    let (_, recall) = event(command::AFTER_MSG_WITHDRAW, SEED_003);
    assert_eq!(first["id"], again["id"]);
    assert_ne!(first["id"], recall["id"]);
    assert_eq!(first["id"].as_str().unwrap().len(), 32);
}

#[test]
fn another_command_is_forwarded_with_its_raw_body() {
    let body = r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"g","Text":"原样"}"#;
    let (key, e) = event("Group.CallbackAfterGroupFull", body);
    assert_eq!(key, None);
    assert_eq!(e["type"], "tim.callback");
    assert_eq!(e["data"]["command"], "Group.CallbackAfterGroupFull");
    assert_eq!(
        e["data"]["body"],
        serde_json::from_str::<Value>(body).unwrap()
    );
}

#[test]
fn another_command_with_a_msg_key_is_keyed_by_it() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterModifyMsg","From_Account":"a","To_Account":"b","MsgKey":"m1"}"#;
    let (key, e) = event("C2C.CallbackAfterModifyMsg", body);
    assert_eq!(key.as_deref(), Some("m1"));
    assert_eq!(e["subject"], "m1");
}

#[test]
fn a_before_send_callback_is_not_forwarded() {
    let body =
        r#"{"CallbackCommand":"C2C.CallbackBeforeSendMsg","From_Account":"a","To_Account":"b"}"#;
    let callback = Callback::parse(Some(command::BEFORE_SEND_MSG), body.as_bytes(), false).unwrap();
    assert!(
        normalize(&ctx(command::BEFORE_SEND_MSG), callback, body.as_bytes())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bodies_missing_what_a_command_needs_say_which_field() {
    let cases = [
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","To_Account":"b"}"#,
            "From_Account",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"","To_Account":"b"}"#,
            "From_Account",
        ),
        (
            command::AFTER_MSG_WITHDRAW,
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b"}"#,
            "MsgKey",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgSeq":-3}"#,
            "MsgSeq",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgWithDraw","From_Account":"a","To_Account":"b"}"#,
            "CallbackCommand",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"From_Account":"a","To_Account":"b"}"#,
            "CallbackCommand",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg""#,
            "not JSON",
        ),
        (
            command::AFTER_SEND_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b"} x"#,
            "not JSON",
        ),
    ];
    for (command, body, needle) in cases {
        let err = Callback::parse(Some(command), body.as_bytes(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{body}: {err}");
    }
}

#[test]
fn a_malformed_element_is_refused_with_its_position() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b",
        "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"ok"}},{"MsgType":"TIMTextElem","MsgContent":{"Text":7}}]}"#;
    let callback = Callback::parse(Some(command::AFTER_SEND_MSG), body.as_bytes(), false).unwrap();
    let err = normalize(&ctx(command::AFTER_SEND_MSG), callback, body.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("MsgBody[1].MsgContent.Text"), "{err}");
}

#[test]
fn an_absurd_timestamp_is_kept_as_a_number_without_a_date() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b",
        "MsgTime":18446744073709551615,"EventTime":18446744073709551615}"#;
    let (_, e) = event(command::AFTER_SEND_MSG, body);
    assert_eq!(e["data"]["msg_time"], u64::MAX);
    assert!(e["data"].get("msg_time_rfc3339").is_none());
    assert_eq!(e["time"], "2023-11-14T22:13:20.123Z");
}

#[test]
fn an_edit_is_keyed_by_its_msg_key_and_names_its_operator() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterModifyMsg","From_Account":"a","To_Account":"b","Operator_Account":"admin",
        "MsgSeq":1,"MsgRandom":2,"MsgTime":1557481126,"MsgKey":"1_2_1557481126","EventTime":1670574414123,
        "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"改过的 ✏️"}}]}"#;
    let (key, e) = event(command::AFTER_MODIFY_MSG, body);
    assert_eq!(key.as_deref(), Some("1_2_1557481126"));
    assert_eq!(e["type"], "tim.c2c.message.modified");
    assert_eq!(e["data"]["operator"], "admin");
    assert_eq!(e["data"]["body"][0]["text"], "改过的 ✏️");
    let (_, sent) = event(command::AFTER_SEND_MSG, SEED_000);
    assert_ne!(e["id"], sent["id"]);
}

#[test]
fn a_read_receipt_gives_one_event_per_message_keyed_by_its_msg_key() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","EventTime":"1670574414123","C2CMsgInfo":[
        {"From_Account":"a","To_Account":"b","MsgKey":"k1","MsgId":"m1"},
        {"From_Account":"a","To_Account":"b","MsgKey":"k2"}],"Peer_Account":"b"}"#;
    let all = events(command::AFTER_MSG_READ_RECEIPT, body);
    assert_eq!(
        all.iter()
            .map(|(k, _)| k.clone().unwrap())
            .collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert!(all.iter().all(|(_, e)| e["type"] == "tim.c2c.message.read"));
    assert_eq!(all[0].1["data"]["msg_id"], "m1");
    assert!(all[1].1["data"].get("msg_id").is_none());
    assert_ne!(all[0].1["id"], all[1].1["id"]);
}

#[test]
fn a_read_report_is_keyed_by_its_conversation() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"jared","Peer_Account":"Jonh",
        "LastReadTime":1614754606,"UnreadMsgNum":7}"#;
    let (key, e) = event(command::AFTER_MSG_REPORT, body);
    assert_eq!(key.as_deref(), Some("c2c:Jonh:jared"));
    assert_eq!(e["type"], "tim.c2c.conversation.read");
    assert_eq!(e["data"]["reader"], "jared");
    assert_eq!(e["data"]["last_read_time_rfc3339"], "2021-03-03T06:56:46Z");
    assert_eq!(e["time"], "2021-03-03T06:56:46Z");
}

#[test]
fn a_read_all_is_keyed_by_its_reader() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadAll","Report_Account":"Jonh","EventTime":1769773302575,
        "GroupReadInfo":[{"GroupId":"groupid","MsgSeq":100}]}"#;
    let (key, e) = event(command::AFTER_MSG_READ_ALL, body);
    assert_eq!(key.as_deref(), Some("user:Jonh"));
    assert_eq!(e["type"], "tim.conversations.all_read");
    assert_eq!(
        e["data"]["groups"],
        json!([{"group_id":"groupid","msg_seq":100}])
    );
}

#[test]
fn an_extension_change_is_keyed_by_its_msg_key() {
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterC2CMsgExtension","From_Account":"user1","To_Account":"user2",
        "MsgKey":"93847636_1287657_1764688415","OperateType":1,"ExtensionList":[{"Key":"k1","Value":"v1","Seq":1}],
        "Seq":1,"EventTime":1764688540182}"#;
    let (key, e) = event(command::AFTER_C2C_MSG_EXTENSION, body);
    assert_eq!(key.as_deref(), Some("93847636_1287657_1764688415"));
    assert_eq!(e["type"], "tim.c2c.message.extension_changed");
    assert_eq!(
        e["data"]["extensions"],
        json!([{"key":"k1","value":"v1","seq":1}])
    );
    assert_eq!(e["data"]["operate_type"], 1);
}

#[test]
fn a_group_message_is_keyed_by_its_group_and_seq() {
    let body = r#"{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
        "From_Account":"jared","Operator_Account":"admin","Random":2946326331,"MsgSeq":"123","MsgTime":1490686222,
        "OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"大家好"}},
        {"MsgType":"TIMGroupNewElem","MsgContent":{"x":1}}],"CloudCustomData":"c","SomethingNew":true}"#;
    let (key, e) = event(command::GROUP_AFTER_SEND_MSG, body);
    assert_eq!(key.as_deref(), Some("group:@TGS#2J4SZEAEL:123"));
    assert_eq!(e["type"], "tim.group.message.sent");
    assert_eq!(e["data"]["msg_seq"], 123);
    assert_eq!(e["data"]["msg_random"], 2946326331u64);
    assert_eq!(e["data"]["group_type"], "Public");
    assert_eq!(
        e["data"]["body"][1],
        json!({"type":"unknown","msg_type":"TIMGroupNewElem","content":{"x":1}})
    );
    assert!(e["data"].get("SomethingNew").is_none());
}

#[test]
fn a_group_recall_of_three_messages_gives_three_events_keyed_like_their_sends() {
    let body = r#"{"CallbackCommand":"Group.CallbackAfterRecallMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public",
        "Operator_Account":"admin","MsgSeqList":[{"MsgSeq":123},{"MsgSeq":"124"},{"MsgSeq":125}],"EventTime":1670574414123}"#;
    let all = events(command::GROUP_AFTER_RECALL_MSG, body);
    let keys: Vec<_> = all.iter().map(|(k, _)| k.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "group:@TGS#2J4SZEAEL:123",
            "group:@TGS#2J4SZEAEL:124",
            "group:@TGS#2J4SZEAEL:125"
        ]
    );
    assert!(all
        .iter()
        .all(|(_, e)| e["type"] == "tim.group.message.recalled"));
    assert_eq!(all[1].1["data"]["msg_seq"], 124);
}

#[test]
fn a_community_topic_message_is_keyed_by_its_topic() {
    let body = r#"{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@GGS#_abc","TopicId":"@GGS#_abc@TOPIC#_t1","MsgSeq":7}"#;
    let (key, _) = event(command::GROUP_AFTER_SEND_MSG, body);
    assert_eq!(key.as_deref(), Some("group:@GGS#_abc@TOPIC#_t1:7"));
}

#[test]
fn a_before_send_callback_is_published_as_pre_send_when_asked() {
    let body = r#"{"CallbackCommand":"C2C.CallbackBeforeSendMsg","From_Account":"a","To_Account":"b","MsgKey":"k",
        "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}"#;
    let (key, e) = event(command::BEFORE_SEND_MSG, body);
    assert_eq!(key.as_deref(), Some("k"));
    assert_eq!(e["type"], "tim.c2c.message.pre_send");
}

#[test]
fn the_family_refuses_what_it_cannot_do_without() {
    let cases = [
        (
            command::AFTER_MSG_READ_RECEIPT,
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","C2CMsgInfo":[]}"#,
            "C2CMsgInfo",
        ),
        (
            command::AFTER_MSG_READ_RECEIPT,
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","C2CMsgInfo":[{"From_Account":"a","To_Account":"b","MsgKey":""}]}"#,
            "C2CMsgInfo[0].MsgKey",
        ),
        (
            command::GROUP_AFTER_SEND_MSG,
            r#"{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g"}"#,
            "MsgSeq",
        ),
        (
            command::GROUP_AFTER_RECALL_MSG,
            r#"{"CallbackCommand":"Group.CallbackAfterRecallMsg","GroupId":"g","MsgSeqList":[]}"#,
            "MsgSeqList",
        ),
        (
            command::AFTER_MODIFY_MSG,
            r#"{"CallbackCommand":"C2C.CallbackAfterModifyMsg","From_Account":"a","To_Account":"b"}"#,
            "MsgKey",
        ),
        (
            command::AFTER_MSG_REPORT,
            r#"{"CallbackCommand":"C2C.CallbackAfterMsgReport","Report_Account":"a"}"#,
            "Peer_Account",
        ),
    ];
    for (command, body, needle) in cases {
        let err = Callback::parse(Some(command), body.as_bytes(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{body}: {err}");
    }
}

#[test]
fn every_event_type_decodes_with_one_call_into_its_typed_data() {
    let bodies = [
        (command::AFTER_SEND_MSG, SEED_000),
        (command::AFTER_MSG_WITHDRAW, SEED_003),
        (
            command::GROUP_AFTER_SEND_MSG,
            r#"{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g","MsgSeq":1,"MsgBody":[{"MsgType":"TIMFaceElem","MsgContent":{"Index":1}}]}"#,
        ),
        (
            "Group.CallbackAfterGroupFull",
            r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"g"}"#,
        ),
    ];
    for (command, body) in bodies {
        let callback = Callback::parse(Some(command), body.as_bytes(), false).unwrap();
        let n = normalize(&ctx(command), callback, body.as_bytes())
            .unwrap()
            .remove(0);
        let event = decode(&n.payload).unwrap();
        match (&event.data, command) {
            (Data::Sent(d), command::AFTER_SEND_MSG) => assert_eq!(
                d.body.as_ref().unwrap()[0],
                Element::Text(element::Text {
                    text: Some("red packet".into())
                })
            ),
            (Data::Withdrawn(d), command::AFTER_MSG_WITHDRAW) => {
                assert_eq!(d.msg_key, "48374_2837546_1557481126")
            }
            (Data::GroupSent(d), command::GROUP_AFTER_SEND_MSG) => {
                assert_eq!(d.msg_key, "group:g:1")
            }
            (Data::Callback(d), "Group.CallbackAfterGroupFull") => assert_eq!(d.body.get(), body),
            (other, command) => panic!("{command} decoded as {other:?}"),
        }
        assert_eq!(event.source, "/tim/1400000000");
    }
}

/// Tencent's optional fields of a sent message, and the data fields each becomes.
const OPTIONAL: &[(&str, &[&str])] = &[
    ("MsgKey", &["msg_key"]),
    ("MsgSeq", &["msg_seq"]),
    ("MsgRandom", &["msg_random"]),
    ("MsgTime", &["msg_time", "msg_time_rfc3339"]),
    ("MsgId", &["msg_id"]),
    ("OnlineOnlyFlag", &["online_only"]),
    ("SendMsgResult", &["send_result"]),
    ("ErrorInfo", &["error_info"]),
    ("UnreadMsgNum", &["unread_count"]),
    ("CloudCustomData", &["cloud_custom_data"]),
    ("EventTime", &["event_time", "event_time_rfc3339"]),
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever subset of the optional fields Tencent sends, the event has exactly
    /// their counterparts: none invented, none lost.
    #[test]
    fn normalization_neither_invents_nor_loses_fields(present in proptest::bits::u16::masked((1 << OPTIONAL.len()) - 1)) {
        let mut body: serde_json::Map<String, Value> = serde_json::from_str(SEED_004).unwrap();
        for (i, (field, _)) in OPTIONAL.iter().enumerate() {
            if present & (1 << i) == 0 {
                body.remove(*field);
            }
        }
        let body = serde_json::to_vec(&body).unwrap();
        let callback = Callback::parse(Some(command::AFTER_SEND_MSG), &body, false).unwrap();
        let n = normalize(&ctx(command::AFTER_SEND_MSG), callback, &body).unwrap().remove(0);
        let e: Value = serde_json::from_slice(&n.payload).unwrap();
        for (i, (field, data_fields)) in OPTIONAL.iter().enumerate() {
            for data in *data_fields {
                proptest::prop_assert_eq!(
                    e["data"].get(*data).is_some(),
                    present & (1 << i) != 0,
                    "{} -> {}", field, data
                );
            }
        }
    }
}
