#![doc = include_str!("../README.md")]

pub mod element;
mod family;
mod groups;
pub mod lenient;
mod users;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use element::Element;
pub use family::*;
pub use groups::*;
pub use users::*;

/// The JSON Schema (2020-12) of every event; `docs/events.md` describes the same.
pub const SCHEMA: &str = include_str!("../schema/event.schema.json");

pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// Raised whenever an existing field changes meaning or shape.
pub const DATA_SCHEMA: &str = "urn:tim-kafka-bridge:event:1";

pub mod types {
    pub const MESSAGE_SENT: &str = "tim.c2c.message.sent";
    pub const MESSAGE_WITHDRAWN: &str = "tim.c2c.message.withdrawn";
    pub const MESSAGE_MODIFIED: &str = "tim.c2c.message.modified";
    pub const MESSAGE_PRE_SEND: &str = "tim.c2c.message.pre_send";
    pub const MESSAGE_READ: &str = "tim.c2c.message.read";
    pub const MESSAGE_EXTENSION: &str = "tim.c2c.message.extension_changed";
    pub const CONVERSATION_READ: &str = "tim.c2c.conversation.read";
    pub const ALL_READ: &str = "tim.conversations.all_read";
    pub const GROUP_MESSAGE_SENT: &str = "tim.group.message.sent";
    pub const GROUP_MESSAGE_RECALLED: &str = "tim.group.message.recalled";
    pub const GROUP_MESSAGE_READ: &str = "tim.group.message.read";
    pub const GROUP_MESSAGE_EXTENSION: &str = "tim.group.message.extension_changed";
    pub const USER_STATE_CHANGED: &str = "tim.user.state_changed";
    pub const USER_PROFILE_CHANGED: &str = "tim.user.profile_changed";
    pub const USER_FRIEND_ADDED: &str = "tim.user.friend_added";
    pub const USER_FRIEND_DELETED: &str = "tim.user.friend_deleted";
    pub const USER_BLOCKLIST_ADDED: &str = "tim.user.blocklist_added";
    pub const USER_BLOCKLIST_REMOVED: &str = "tim.user.blocklist_removed";
    pub const GROUP_CREATED: &str = "tim.group.created";
    pub const GROUP_MEMBER_JOINED: &str = "tim.group.member_joined";
    pub const GROUP_MEMBER_EXITED: &str = "tim.group.member_exited";
    pub const GROUP_INFO_CHANGED: &str = "tim.group.info_changed";
    pub const GROUP_OWNER_CHANGED: &str = "tim.group.owner_changed";
    pub const GROUP_DESTROYED: &str = "tim.group.destroyed";
    pub const GROUP_TOPIC_CREATED: &str = "tim.group.topic_created";
    pub const GROUP_TOPIC_INFO_CHANGED: &str = "tim.group.topic_info_changed";
    pub const GROUP_TOPIC_DESTROYED: &str = "tim.group.topic_destroyed";
    pub const CALLBACK: &str = "tim.callback";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub datacontenttype: String,
    pub dataschema: String,
    pub data: D,
}

/// `tim.c2c.message.sent`, and with `operator` `tim.c2c.message.modified`; also
/// `tim.c2c.message.pre_send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub sdk_app_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_seq: Option<u32>,
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
    pub send_result: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Vec<Element>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_custom_data: Option<String>,
    /// Who edited the message (`tim.c2c.message.modified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.c2c.message.withdrawn`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageWithdrawn {
    pub sdk_app_id: u64,
    pub msg_key: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.callback`: any other command, its body kept as Tencent sent it. (Its fields are
/// not flattened from `Common`: serde cannot read a raw JSON value through `flatten`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackReceived {
    pub sdk_app_id: u64,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    pub body: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub received_at: String,
}

/// Fields every event's data carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Tencent's `EventTime`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_rfc3339: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// When the bridge received the callback.
    pub received_at: String,
}

/// Any event's data, by its type.
#[derive(Debug, Clone)]
pub enum Data {
    Sent(MessageSent),
    Modified(MessageSent),
    PreSend(MessageSent),
    Withdrawn(MessageWithdrawn),
    Read(MessageRead),
    ConversationRead(ConversationRead),
    AllRead(AllRead),
    ExtensionChanged(MessageExtensionChanged),
    GroupSent(GroupMessageSent),
    GroupRecalled(GroupMessageRecalled),
    GroupRead(GroupMessageRead),
    GroupExtensionChanged(GroupMessageExtensionChanged),
    UserStateChanged(UserStateChanged),
    UserProfileChanged(UserProfileChanged),
    FriendAdded(UserRelationChanged),
    FriendDeleted(UserRelationChanged),
    BlocklistAdded(UserRelationChanged),
    BlocklistRemoved(UserRelationChanged),
    GroupCreated(GroupCreated),
    MemberJoined(GroupMemberChanged),
    MemberExited(GroupMemberChanged),
    GroupInfoChanged(GroupInfoChanged),
    GroupOwnerChanged(GroupOwnerChanged),
    GroupDestroyed(GroupDestroyed),
    TopicCreated(GroupCreated),
    TopicInfoChanged(GroupInfoChanged),
    TopicDestroyed(GroupDestroyed),
    Callback(CallbackReceived),
    /// A type newer than this library.
    Other(serde_json::Value),
}

/// Decodes a record's value: `let event = tim_event::decode(payload)?;`
pub fn decode(payload: &[u8]) -> Result<Envelope<Data>, serde_json::Error> {
    let raw: Envelope<Box<RawValue>> = serde_json::from_slice(payload)?;
    let json = raw.data.get();
    let data = match raw.event_type.as_str() {
        types::MESSAGE_SENT => Data::Sent(serde_json::from_str(json)?),
        types::MESSAGE_MODIFIED => Data::Modified(serde_json::from_str(json)?),
        types::MESSAGE_PRE_SEND => Data::PreSend(serde_json::from_str(json)?),
        types::MESSAGE_WITHDRAWN => Data::Withdrawn(serde_json::from_str(json)?),
        types::MESSAGE_READ => Data::Read(serde_json::from_str(json)?),
        types::CONVERSATION_READ => Data::ConversationRead(serde_json::from_str(json)?),
        types::ALL_READ => Data::AllRead(serde_json::from_str(json)?),
        types::MESSAGE_EXTENSION => Data::ExtensionChanged(serde_json::from_str(json)?),
        types::GROUP_MESSAGE_SENT => Data::GroupSent(serde_json::from_str(json)?),
        types::GROUP_MESSAGE_RECALLED => Data::GroupRecalled(serde_json::from_str(json)?),
        types::GROUP_MESSAGE_READ => Data::GroupRead(serde_json::from_str(json)?),
        types::GROUP_MESSAGE_EXTENSION => Data::GroupExtensionChanged(serde_json::from_str(json)?),
        types::USER_STATE_CHANGED => Data::UserStateChanged(serde_json::from_str(json)?),
        types::USER_PROFILE_CHANGED => Data::UserProfileChanged(serde_json::from_str(json)?),
        types::USER_FRIEND_ADDED => Data::FriendAdded(serde_json::from_str(json)?),
        types::USER_FRIEND_DELETED => Data::FriendDeleted(serde_json::from_str(json)?),
        types::USER_BLOCKLIST_ADDED => Data::BlocklistAdded(serde_json::from_str(json)?),
        types::USER_BLOCKLIST_REMOVED => Data::BlocklistRemoved(serde_json::from_str(json)?),
        types::GROUP_CREATED => Data::GroupCreated(serde_json::from_str(json)?),
        types::GROUP_MEMBER_JOINED => Data::MemberJoined(serde_json::from_str(json)?),
        types::GROUP_MEMBER_EXITED => Data::MemberExited(serde_json::from_str(json)?),
        types::GROUP_INFO_CHANGED => Data::GroupInfoChanged(serde_json::from_str(json)?),
        types::GROUP_OWNER_CHANGED => Data::GroupOwnerChanged(serde_json::from_str(json)?),
        types::GROUP_DESTROYED => Data::GroupDestroyed(serde_json::from_str(json)?),
        types::GROUP_TOPIC_CREATED => Data::TopicCreated(serde_json::from_str(json)?),
        types::GROUP_TOPIC_INFO_CHANGED => Data::TopicInfoChanged(serde_json::from_str(json)?),
        types::GROUP_TOPIC_DESTROYED => Data::TopicDestroyed(serde_json::from_str(json)?),
        types::CALLBACK => Data::Callback(serde_json::from_str(json)?),
        _ => Data::Other(serde_json::from_str(json)?),
    };
    Ok(Envelope {
        specversion: raw.specversion,
        id: raw.id,
        source: raw.source,
        event_type: raw.event_type,
        time: raw.time,
        subject: raw.subject,
        datacontenttype: raw.datacontenttype,
        dataschema: raw.dataschema,
        data,
    })
}

/// The key of a one-to-one conversation: both accounts, sorted, so either direction
/// of the conversation lands on one partition.
pub fn conversation_key(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("c2c:{lo}:{hi}")
}
