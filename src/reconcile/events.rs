//! An archived message as the event the callback path would have made of it: the
//! callback body Tencent would have sent, as far as the archive knows it, through the
//! same parser and normalizer, so that the id, the key and therefore the topic and the
//! partition are the callback's own.
//!
//! The archive has no MsgKey for a one-to-one message. Every MsgKey Tencent documents
//! is `{MsgSeq}_{MsgRandom}_{MsgTime}` (the after-send callback page's
//! `48374_2837546_1557481126`), so it is rebuilt that way; the id of a sent event comes
//! from the MsgKey. A group message is keyed `group:<GroupId>:<MsgSeq>` either way.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::archive::Archived;
use crate::event::{self, Context, Normalized};
use crate::tencent::command::{AFTER_SEND_MSG, GROUP_AFTER_SEND_MSG};
use crate::tencent::{Callback, Family, Invalid};

/// `C2C` or `Group`, as `get_history` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatType {
    #[serde(rename = "C2C")]
    C2c,
    Group,
}

impl ChatType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::C2c => "C2C",
            ChatType::Group => "Group",
        }
    }

    /// The family of its events, which names their topic.
    pub fn family(self) -> Family {
        match self {
            ChatType::C2c => Family::C2c,
            ChatType::Group => Family::Group,
        }
    }

    /// The after-send callback the archived message would have come with.
    pub fn command(self) -> &'static str {
        match self {
            ChatType::C2c => AFTER_SEND_MSG,
            ChatType::Group => GROUP_AFTER_SEND_MSG,
        }
    }
}

/// `{MsgSeq}_{MsgRandom}_{MsgTime}`.
pub fn c2c_msg_key(seq: u64, random: u64, time: u64) -> String {
    format!("{seq}_{random}_{time}")
}

/// The callback body for `message`: the fields the archive has, named as the callback
/// names them (`MsgTimestamp` → `MsgTime`), the others left out.
pub fn callback_body(chat: ChatType, message: &Archived) -> Value {
    let mut body = json!({
        "CallbackCommand": chat.command(),
        "From_Account": message.from,
        "MsgSeq": message.seq,
        "MsgTime": message.time,
    });
    match chat {
        ChatType::C2c => {
            body["To_Account"] = json!(message.to);
            if let Some(random) = message.random {
                body["MsgRandom"] = json!(random);
                body["MsgKey"] = json!(c2c_msg_key(message.seq, random, message.time));
            }
        }
        ChatType::Group => body["GroupId"] = json!(message.group_id),
    }
    if let Some(elements) = &message.body {
        body["MsgBody"] = serde_json::from_str(elements.get()).unwrap_or(Value::Null);
    }
    if let Some(data) = &message.cloud_custom_data {
        body["CloudCustomData"] = json!(data);
    }
    body
}

/// The events the callback path would have made of `message`, and their family (which
/// topic).
pub fn normalize(
    sdk_app_id: u64,
    chat: ChatType,
    message: &Archived,
    now: SystemTime,
) -> Result<(Family, Vec<Normalized>), Invalid> {
    let body = serde_json::to_vec(&callback_body(chat, message)).expect("JSON serializes");
    let command = chat.command();
    let callback = Callback::parse(Some(command), &body, false)?;
    let family = callback.family();
    let ctx = Context {
        sdk_app_id,
        command,
        client_ip: None,
        platform: None,
        received_at: now,
        origin: Some(event::Origin::History),
    };
    Ok((family, event::normalize(&ctx, callback, &body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(line: &str) -> Archived {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn the_rebuilt_msg_key_is_the_after_send_pages_own() {
        let seed = include_str!("../../tests/fixtures/seed_000_send.json");
        let page: Value = serde_json::from_str(seed).unwrap();
        let rebuilt = c2c_msg_key(
            page["MsgSeq"].as_u64().unwrap(),
            page["MsgRandom"].as_u64().unwrap(),
            page["MsgTime"].as_u64().unwrap(),
        );
        assert_eq!(rebuilt, "48374_2837546_1557481126");
        assert_eq!(page["MsgKey"], rebuilt.as_str());
    }

    #[test]
    fn an_archived_message_gets_the_id_and_key_its_callback_got() {
        let now = SystemTime::now();
        let seed = include_str!("../../tests/fixtures/seed_000_send.json");
        let by_callback = {
            let callback = Callback::parse(Some(AFTER_SEND_MSG), seed.as_bytes(), false).unwrap();
            let ctx = Context {
                sdk_app_id: 1400000000,
                command: AFTER_SEND_MSG,
                client_ip: Some("1.2.3.4"),
                platform: Some("iOS"),
                received_at: now,
                origin: None,
            };
            event::normalize(&ctx, callback, seed.as_bytes())
                .unwrap()
                .remove(0)
        };
        let message = archived(
            r#"{"From_Account":"jared","To_Account":"Jonh","MsgTimestamp":1557481126,"MsgSeq":48374,"MsgRandom":2837546,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}]}"#,
        );
        let (_, mut events) = normalize(1400000000, ChatType::C2c, &message, now).unwrap();
        let by_archive = events.remove(0);
        assert_eq!(by_archive.id, by_callback.id);
        assert_eq!(by_archive.key, by_callback.key);
        assert_eq!(by_archive.key.as_deref(), Some("48374_2837546_1557481126"));
        let decoded = tim_event::decode(&by_archive.payload).unwrap();
        assert_eq!(decoded.timorigin, Some(tim_event::Origin::History));
        assert_eq!(
            tim_event::decode(&by_callback.payload).unwrap().timorigin,
            None
        );
    }

    #[test]
    fn an_archived_group_message_is_keyed_by_its_group_and_sequence() {
        let message = archived(
            r#"{"From_Account":"Test_1","GroupId":"@TGS#1FDFVPAE2","MsgTimestamp":1448975384,"MsgSeq":1,"MsgBody":[]}"#,
        );
        let (_, events) = normalize(1, ChatType::Group, &message, SystemTime::now()).unwrap();
        assert_eq!(events[0].key.as_deref(), Some("group:@TGS#1FDFVPAE2:1"));
    }
}
