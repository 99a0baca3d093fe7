//! The data of group lifecycle events, keyed `group:<GroupId>` (a topic's own events
//! `group:<TopicId>`) so that a group's story reads in order; and of the group-message
//! events that join a message's story (read receipts, extensions).

use serde::{Deserialize, Serialize};

use super::{Common, ExtensionEntry};

/// `tim.group.created`, and `tim.group.topic_created` with `topic_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupCreated {
    pub sdk_app_id: u64,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// The initial members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined_data: Option<Vec<UserDefinedData>>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct UserDefinedData {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `tim.group.member_joined` and `tim.group.member_exited`: one event per member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupMemberChanged {
    pub sdk_app_id: u64,
    pub group_id: String,
    pub member: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// `Apply` or `Invited` (`member_joined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_type: Option<String>,
    /// `Kicked` or `Quit` (`member_exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_type: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.destroyed`, and `tim.group.topic_destroyed` (one per topic) with `topic_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupDestroyed {
    pub sdk_app_id: u64,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The members at the end (absent for communities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.info_changed`, and `tim.group.topic_info_changed`: the fields that
/// changed, with their new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupInfoChanged {
    pub sdk_app_id: u64,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.owner_changed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupOwnerChanged {
    pub sdk_app_id: u64,
    pub group_id: String,
    pub new_owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.message.read`: one per message of a group read receipt, keyed like the
/// message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupMessageRead {
    pub sdk_app_id: u64,
    /// `group:<GroupId or TopicId>:<MsgSeq>`, built by the bridge: see [`group_message_key`].
    #[cfg_attr(test, schemars(pattern(r"^group:.+:[0-9]+$")))]
    pub msg_key: String,
    pub group_id: String,
    pub msg_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// Who has read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readers: Option<Vec<String>>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.group.message.extension_changed`, keyed like the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct GroupMessageExtensionChanged {
    pub sdk_app_id: u64,
    /// `group:<GroupId or TopicId>:<MsgSeq>`, built by the bridge: see [`group_message_key`].
    #[cfg_attr(test, schemars(pattern(r"^group:.+:[0-9]+$")))]
    pub msg_key: String,
    pub group_id: String,
    pub msg_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// 1 set, 2 delete, 3 clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operate_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<ExtensionEntry>>,
    /// The version of the message's whole extension after this change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub common: Common,
}

/// The key of a group's lifecycle events: `group:<GroupId>`, or `group:<TopicId>` for
/// a community topic's own events.
pub fn group_key(group_or_topic_id: &str) -> String {
    format!("group:{group_or_topic_id}")
}
