#![doc = include_str!("../README.md")]

pub mod element;
mod event_type;
mod family;
mod groups;
pub mod lenient;
mod users;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use element::Element;
pub use event_type::EventType;
pub use family::*;
pub use groups::*;
pub use users::*;

/// The JSON Schema (2020-12) of every event; `docs/events.md` describes the same.
pub const SCHEMA: &str = include_str!("../schema/event.schema.json");

pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// Raised whenever an existing field changes meaning or shape.
pub const DATA_SCHEMA: &str = "urn:tim-kafka-bridge:event:1";

/// The event types' names, as constants (the same as [`EventType::as_str`]).
pub mod types {
    use super::EventType;

    pub const MESSAGE_SENT: &str = EventType::MessageSent.as_str();
    pub const MESSAGE_WITHDRAWN: &str = EventType::MessageWithdrawn.as_str();
    pub const MESSAGE_MODIFIED: &str = EventType::MessageModified.as_str();
    pub const MESSAGE_PRE_SEND: &str = EventType::MessagePreSend.as_str();
    pub const MESSAGE_READ: &str = EventType::MessageRead.as_str();
    pub const MESSAGE_EXTENSION: &str = EventType::MessageExtensionChanged.as_str();
    pub const CONVERSATION_READ: &str = EventType::ConversationRead.as_str();
    pub const ALL_READ: &str = EventType::AllRead.as_str();
    pub const GROUP_MESSAGE_SENT: &str = EventType::GroupMessageSent.as_str();
    pub const GROUP_MESSAGE_RECALLED: &str = EventType::GroupMessageRecalled.as_str();
    pub const GROUP_MESSAGE_READ: &str = EventType::GroupMessageRead.as_str();
    pub const GROUP_MESSAGE_EXTENSION: &str = EventType::GroupMessageExtensionChanged.as_str();
    pub const USER_STATE_CHANGED: &str = EventType::UserStateChanged.as_str();
    pub const USER_PROFILE_CHANGED: &str = EventType::UserProfileChanged.as_str();
    pub const USER_FRIEND_ADDED: &str = EventType::UserFriendAdded.as_str();
    pub const USER_FRIEND_DELETED: &str = EventType::UserFriendDeleted.as_str();
    pub const USER_BLOCKLIST_ADDED: &str = EventType::UserBlocklistAdded.as_str();
    pub const USER_BLOCKLIST_REMOVED: &str = EventType::UserBlocklistRemoved.as_str();
    pub const GROUP_CREATED: &str = EventType::GroupCreated.as_str();
    pub const GROUP_MEMBER_JOINED: &str = EventType::GroupMemberJoined.as_str();
    pub const GROUP_MEMBER_EXITED: &str = EventType::GroupMemberExited.as_str();
    pub const GROUP_INFO_CHANGED: &str = EventType::GroupInfoChanged.as_str();
    pub const GROUP_OWNER_CHANGED: &str = EventType::GroupOwnerChanged.as_str();
    pub const GROUP_DESTROYED: &str = EventType::GroupDestroyed.as_str();
    pub const GROUP_TOPIC_CREATED: &str = EventType::GroupTopicCreated.as_str();
    pub const GROUP_TOPIC_INFO_CHANGED: &str = EventType::GroupTopicInfoChanged.as_str();
    pub const GROUP_TOPIC_DESTROYED: &str = EventType::GroupTopicDestroyed.as_str();
    pub const CALLBACK: &str = EventType::Callback.as_str();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
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
    /// A CloudEvents extension attribute: where the event was made from when not from
    /// a callback. Absent on an event made from Tencent's callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timorigin: Option<Origin>,
    pub data: D,
}

/// What an event was made from, when not from a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Tencent's hourly message archive, by `tim-kafka-bridge reconcile`: the
    /// callback never reached the bridge; fields the archive lacks are absent.
    History,
}

/// `tim.c2c.message.sent`, and with `operator` `tim.c2c.message.modified`; also
/// `tim.c2c.message.pre_send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
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
    /// 0: delivered; otherwise an IM error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_result: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    /// -1 when delivery failed.
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
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
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
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct CallbackReceived {
    pub sdk_app_id: u64,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    /// The callback body exactly as Tencent sent it.
    #[cfg_attr(test, schemars(with = "serde_json::Map<String, serde_json::Value>"))]
    pub body: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub received_at: String,
}

/// Fields every event's data carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Common {
    /// Tencent's `EventTime`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_rfc3339: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Tencent's `OptPlatform`: RESTAPI, Web, Android, iOS, Windows, Mac, macOS, iPad, Unknown...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// When the bridge received the callback.
    pub received_at: String,
}

/// Any event's data, by its type: each variant is one type's data, so an event's
/// `type` and `data` cannot disagree.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
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
    /// A type newer than this library: [`decode`] gives it only for a name that is
    /// not in [`EventType::ALL`].
    Other(serde_json::Value),
}

impl Data {
    /// The event type this data is the data of; `None` for [`Data::Other`].
    pub fn event_type(&self) -> Option<EventType> {
        use EventType as T;
        Some(match self {
            Data::Sent(_) => T::MessageSent,
            Data::Modified(_) => T::MessageModified,
            Data::PreSend(_) => T::MessagePreSend,
            Data::Withdrawn(_) => T::MessageWithdrawn,
            Data::Read(_) => T::MessageRead,
            Data::ConversationRead(_) => T::ConversationRead,
            Data::AllRead(_) => T::AllRead,
            Data::ExtensionChanged(_) => T::MessageExtensionChanged,
            Data::GroupSent(_) => T::GroupMessageSent,
            Data::GroupRecalled(_) => T::GroupMessageRecalled,
            Data::GroupRead(_) => T::GroupMessageRead,
            Data::GroupExtensionChanged(_) => T::GroupMessageExtensionChanged,
            Data::UserStateChanged(_) => T::UserStateChanged,
            Data::UserProfileChanged(_) => T::UserProfileChanged,
            Data::FriendAdded(_) => T::UserFriendAdded,
            Data::FriendDeleted(_) => T::UserFriendDeleted,
            Data::BlocklistAdded(_) => T::UserBlocklistAdded,
            Data::BlocklistRemoved(_) => T::UserBlocklistRemoved,
            Data::GroupCreated(_) => T::GroupCreated,
            Data::MemberJoined(_) => T::GroupMemberJoined,
            Data::MemberExited(_) => T::GroupMemberExited,
            Data::GroupInfoChanged(_) => T::GroupInfoChanged,
            Data::GroupOwnerChanged(_) => T::GroupOwnerChanged,
            Data::GroupDestroyed(_) => T::GroupDestroyed,
            Data::TopicCreated(_) => T::GroupTopicCreated,
            Data::TopicInfoChanged(_) => T::GroupTopicInfoChanged,
            Data::TopicDestroyed(_) => T::GroupTopicDestroyed,
            Data::Callback(_) => T::Callback,
            Data::Other(_) => return None,
        })
    }
}

/// Decodes a record's value: `let event = tim_event::decode(payload)?;`
pub fn decode(payload: &[u8]) -> Result<Envelope<Data>, serde_json::Error> {
    let raw: Envelope<Box<RawValue>> = serde_json::from_slice(payload)?;
    let json = raw.data.get();
    let data = match EventType::parse(&raw.event_type) {
        Some(known) => decode_data(known, json)?,
        None => Data::Other(serde_json::from_str(json)?),
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
        timorigin: raw.timorigin,
        data,
    })
}

/// The data of a known type: one branch per type, no wildcard, so a new type does not
/// compile until its data is chosen here.
fn decode_data(event_type: EventType, json: &str) -> Result<Data, serde_json::Error> {
    use EventType as T;
    Ok(match event_type {
        T::MessageSent => Data::Sent(serde_json::from_str(json)?),
        T::MessageModified => Data::Modified(serde_json::from_str(json)?),
        T::MessagePreSend => Data::PreSend(serde_json::from_str(json)?),
        T::MessageWithdrawn => Data::Withdrawn(serde_json::from_str(json)?),
        T::MessageRead => Data::Read(serde_json::from_str(json)?),
        T::ConversationRead => Data::ConversationRead(serde_json::from_str(json)?),
        T::AllRead => Data::AllRead(serde_json::from_str(json)?),
        T::MessageExtensionChanged => Data::ExtensionChanged(serde_json::from_str(json)?),
        T::GroupMessageSent => Data::GroupSent(serde_json::from_str(json)?),
        T::GroupMessageRecalled => Data::GroupRecalled(serde_json::from_str(json)?),
        T::GroupMessageRead => Data::GroupRead(serde_json::from_str(json)?),
        T::GroupMessageExtensionChanged => Data::GroupExtensionChanged(serde_json::from_str(json)?),
        T::UserStateChanged => Data::UserStateChanged(serde_json::from_str(json)?),
        T::UserProfileChanged => Data::UserProfileChanged(serde_json::from_str(json)?),
        T::UserFriendAdded => Data::FriendAdded(serde_json::from_str(json)?),
        T::UserFriendDeleted => Data::FriendDeleted(serde_json::from_str(json)?),
        T::UserBlocklistAdded => Data::BlocklistAdded(serde_json::from_str(json)?),
        T::UserBlocklistRemoved => Data::BlocklistRemoved(serde_json::from_str(json)?),
        T::GroupCreated => Data::GroupCreated(serde_json::from_str(json)?),
        T::GroupMemberJoined => Data::MemberJoined(serde_json::from_str(json)?),
        T::GroupMemberExited => Data::MemberExited(serde_json::from_str(json)?),
        T::GroupInfoChanged => Data::GroupInfoChanged(serde_json::from_str(json)?),
        T::GroupOwnerChanged => Data::GroupOwnerChanged(serde_json::from_str(json)?),
        T::GroupDestroyed => Data::GroupDestroyed(serde_json::from_str(json)?),
        T::GroupTopicCreated => Data::TopicCreated(serde_json::from_str(json)?),
        T::GroupTopicInfoChanged => Data::TopicInfoChanged(serde_json::from_str(json)?),
        T::GroupTopicDestroyed => Data::TopicDestroyed(serde_json::from_str(json)?),
        T::Callback => Data::Callback(serde_json::from_str(json)?),
    })
}

/// The key of a one-to-one conversation: both accounts, sorted, so either direction
/// of the conversation lands on one partition.
pub fn conversation_key(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("c2c:{lo}:{hi}")
}

#[cfg(test)]
mod schema_tests;
