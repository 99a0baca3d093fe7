//! The data of the rest of the message family: read receipts and reports,
//! extensions, and group messages.

use serde::{Deserialize, Serialize};

use super::{Common, Element};

/// `tim.c2c.message.read`: one per message in a read receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct MessageRead {
    pub sdk_app_id: u64,
    pub msg_key: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.c2c.conversation.read`: `reader` has read `peer`'s messages up to `last_read_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct ConversationRead {
    pub sdk_app_id: u64,
    pub reader: String,
    pub peer: String,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_time_rfc3339: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.conversations.all_read`: `reader` cleared every unread message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct AllRead {
    pub sdk_app_id: u64,
    pub reader: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupReadUpTo>>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupReadUpTo {
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_seq: Option<u64>,
}

/// `tim.c2c.message.extension_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct MessageExtensionChanged {
    pub sdk_app_id: u64,
    pub msg_key: String,
    pub from: String,
    pub to: String,
    /// 1 set, 2 delete, 3 clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operate_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<ExtensionEntry>>,
    /// The message's extension version after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct ExtensionEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `tim.group.message.sent`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupMessageSent {
    pub sdk_app_id: u64,
    /// `group:<GroupId or TopicId>:<MsgSeq>`, built by the bridge: see [`group_message_key`].
    #[cfg_attr(test, schemars(pattern(r"^group:.+:[0-9]+$")))]
    pub msg_key: String,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub msg_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_random: Option<u32>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_time_rfc3339: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Vec<Element>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.message.recalled`: one per recalled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupMessageRecalled {
    pub sdk_app_id: u64,
    /// `group:<GroupId or TopicId>:<MsgSeq>`, built by the bridge: see [`group_message_key`].
    #[cfg_attr(test, schemars(pattern(r"^group:.+:[0-9]+$")))]
    pub msg_key: String,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub msg_seq: u64,
    #[serde(flatten)]
    pub common: Common,
}

/// Group messages have no MsgKey; a message is its group (or community topic, whose
/// sequence numbers are its own) and its MsgSeq: `group:<GroupId or TopicId>:<MsgSeq>`.
pub fn group_message_key(group_id: &str, topic_id: Option<&str>, msg_seq: u64) -> String {
    let scope = topic_id.filter(|t| !t.is_empty()).unwrap_or(group_id);
    format!("group:{scope}:{msg_seq}")
}
