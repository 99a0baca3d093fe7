//! Hostile input never panics: any bytes as a query or a body, for any command, give a
//! typed callback and events, or a reason.

use std::time::SystemTime;

use proptest::prelude::*;

use super::{command, Callback, CallbackQuery};
use crate::event::{normalize, Context};

const COMMANDS: &[&str] = &[
    command::AFTER_SEND_MSG,
    command::AFTER_MSG_WITHDRAW,
    command::AFTER_MODIFY_MSG,
    command::AFTER_MSG_READ_RECEIPT,
    command::AFTER_MSG_REPORT,
    command::AFTER_MSG_READ_ALL,
    command::AFTER_C2C_MSG_EXTENSION,
    command::GROUP_AFTER_SEND_MSG,
    command::GROUP_AFTER_RECALL_MSG,
    command::BEFORE_SEND_MSG,
    command::GROUP_AFTER_READ_RECEIPT,
    command::GROUP_AFTER_MSG_EXTENSION,
    command::STATE_CHANGE,
    command::PORTRAIT_SET,
    command::FRIEND_ADD,
    command::BLACKLIST_DELETE,
    command::GROUP_CREATED,
    command::GROUP_MEMBER_JOIN,
    command::GROUP_MEMBER_EXIT,
    command::GROUP_OWNER_CHANGED,
    command::TOPIC_DESTROYED,
    "Sns.CallbackPrevFriendAdd",
];

const SEEDS: &[&str] = &[
    include_str!("../../tests/fixtures/seed_000_send.json"),
    include_str!("../../tests/fixtures/seed_001_send_oldest.json"),
    include_str!("../../tests/fixtures/seed_003_withdraw.json"),
    include_str!("../../tests/fixtures/seed_004_send_newer.json"),
    include_str!("../../tests/fixtures/commands/state_change.json"),
    include_str!("../../tests/fixtures/commands/portrait_set.json"),
    include_str!("../../tests/fixtures/commands/friend_add.json"),
    include_str!("../../tests/fixtures/commands/group_create.json"),
    include_str!("../../tests/fixtures/commands/group_member_join.json"),
    include_str!("../../tests/fixtures/commands/topic_destroyed.json"),
    include_str!("../../tests/fixtures/commands/group_read_receipt.json"),
    include_str!("../../tests/fixtures/commands/prev_friend_add.json"),
    r#"{"CallbackCommand":"Group.CallbackAfterRecallMsg","GroupId":"g","MsgSeqList":[{"MsgSeq":1},{"MsgSeq":"2"}]}"#,
    r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","C2CMsgInfo":[{"From_Account":"a","To_Account":"b","MsgKey":"k"}]}"#,
];

fn process(command: &'static str, body: &[u8], publish_before_callbacks: bool) {
    let _ = super::before::allow_body(command, body);
    if let Ok(callback) = Callback::parse(Some(command), body, publish_before_callbacks) {
        let ctx = Context {
            sdk_app_id: 1,
            command,
            client_ip: None,
            platform: None,
            received_at: SystemTime::now(),
            origin: None,
        };
        if let Ok(events) = normalize(&ctx, callback, body) {
            for event in events {
                serde_json::from_slice::<serde_json::Value>(&event.payload)
                    .expect("every event is JSON");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_bytes_as_a_body_for_any_command_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), c in 0..COMMANDS.len(), p in any::<bool>()) {
        process(COMMANDS[c], &body, p);
    }

    #[test]
    fn mutated_tencent_bodies_never_panic(seed in 0..SEEDS.len(), at in any::<prop::sample::Index>(), byte in any::<u8>(), c in 0..COMMANDS.len()) {
        let mut body = SEEDS[seed].as_bytes().to_vec();
        let i = at.index(body.len());
        body[i] = byte;
        process(COMMANDS[c], &body, true);
    }

    #[test]
    fn any_query_string_never_panics(query in ".{0,300}") {
        let _ = CallbackQuery::parse(&query);
    }

    #[test]
    fn numbers_of_any_size_or_shape_are_taken_or_refused(n in ".{0,40}") {
        let body = format!(r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgSeq":{n},"MsgTime":"{n}"}}"#);
        process(command::AFTER_SEND_MSG, body.as_bytes(), false);
    }
}
