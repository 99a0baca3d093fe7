//! The event contract: a CloudEvents 1.0 structured-mode JSON envelope per callback.
//! `docs/events.md` and `schemas/event.schema.json` describe it; keep the three in step.

pub mod element;
mod family;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::tencent::{AfterMsgWithdraw, AfterSendMsg, Callback};
pub use element::Element;
use element::TencentElement;
pub use family::*;

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
    Callback(CallbackReceived),
    /// A type newer than this library.
    Other(serde_json::Value),
}

/// Decodes a record's value: `let event = tim_kafka_bridge::event::decode(payload)?;`
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

/// What the HTTP side knows about a callback besides its body.
pub struct Context<'a> {
    pub sdk_app_id: u64,
    pub command: &'a str,
    pub client_ip: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub received_at: SystemTime,
}

/// An event ready for Kafka.
#[derive(Debug)]
pub struct Normalized {
    /// The CloudEvents `id`.
    pub id: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// A sent message without MsgKey, keyed by its conversation instead.
    pub keyed_by_conversation: bool,
}

/// The events for a callback: none for one that is answered but not forwarded, several
/// for one that reports on several messages. Fails only on a known element with
/// malformed content.
pub fn normalize(
    ctx: &Context,
    callback: Callback,
    raw_body: &[u8],
) -> Result<Vec<Normalized>, String> {
    Ok(match callback {
        Callback::Sent(sent) => vec![sent_event(ctx, sent, raw_body, types::MESSAGE_SENT)?],
        Callback::Modified(sent) => vec![sent_event(ctx, sent, raw_body, types::MESSAGE_MODIFIED)?],
        Callback::PreSend(sent) => vec![sent_event(ctx, sent, raw_body, types::MESSAGE_PRE_SEND)?],
        Callback::Withdrawn(withdrawn) => vec![withdrawn_event(ctx, withdrawn)],
        Callback::ReadReceipt(r) => family::read_receipts(ctx, r),
        Callback::ReadReport(r) => vec![family::read_report(ctx, r, raw_body)],
        Callback::ReadAll(r) => vec![family::read_all(ctx, r, raw_body)],
        Callback::Extension(e) => vec![family::extension(ctx, e, raw_body)],
        Callback::GroupSent(g) => vec![family::group_sent(ctx, g)?],
        Callback::GroupRecalled(g) => family::group_recalled(ctx, g),
        Callback::BeforeSend => Vec::new(),
        Callback::Other {
            command: _,
            msg_key,
        } => {
            // Kept byte for byte, but only once a full parse accepts it: the raw-value
            // reader alone lets through numbers no JSON reader can hold (the fuzzer
            // found `1e14123`), and consumers would choke on the event.
            serde_json::from_slice::<serde_json::Value>(raw_body)
                .map_err(|e| format!("the body is not JSON a consumer can read: {e}"))?;
            let body = std::str::from_utf8(raw_body)
                .ok()
                .and_then(|s| RawValue::from_string(s.to_owned()).ok())
                .ok_or("the body is not JSON")?;
            let identity = msg_key.as_deref().map_or(raw_body, str::as_bytes);
            let data = CallbackReceived {
                sdk_app_id: ctx.sdk_app_id,
                command: ctx.command.to_owned(),
                msg_key: msg_key.clone(),
                body,
                client_ip: ctx.client_ip.map(str::to_owned),
                platform: ctx.platform.map(str::to_owned),
                received_at: rfc3339_millis(ctx.received_at),
            };
            vec![event(
                ctx,
                identity,
                types::CALLBACK,
                None,
                msg_key.as_deref(),
                data,
            )]
        }
    })
}

/// Builds one event: its id from the app, the command and `identity`; its key and
/// subject from `key`; its time from `time`, else the moment of receipt.
fn event<D: Serialize>(
    ctx: &Context,
    identity: &[u8],
    event_type: &str,
    time: Option<String>,
    key: Option<&str>,
    data: D,
) -> Normalized {
    let key = key.map(str::to_owned);
    let envelope = Envelope {
        specversion: "1.0".into(),
        id: event_id(ctx.sdk_app_id, ctx.command, identity),
        source: format!("/tim/{}", ctx.sdk_app_id),
        event_type: event_type.into(),
        time: time.unwrap_or_else(|| rfc3339_millis(ctx.received_at)),
        subject: key.clone(),
        datacontenttype: "application/json".into(),
        dataschema: DATA_SCHEMA.into(),
        data,
    };
    Normalized {
        id: envelope.id.clone(),
        key,
        payload: serde_json::to_vec(&envelope).expect("an event always serializes"),
        keyed_by_conversation: false,
    }
}

fn body(elements: &Option<Vec<TencentElement>>) -> Result<Option<Vec<Element>>, String> {
    elements
        .as_ref()
        .map(|elements| {
            elements
                .iter()
                .enumerate()
                .map(|(i, e)| e.normalize().map_err(|err| format!("MsgBody[{i}].{err}")))
                .collect()
        })
        .transpose()
}

/// When it happened: Tencent's `EventTime` (ms), else a time in seconds (`MsgTime`).
fn occurred(event_time_ms: Option<u64>, fallback_secs: Option<u64>) -> Option<String> {
    event_time_ms
        .and_then(millis_rfc3339)
        .or_else(|| fallback_secs.and_then(seconds_rfc3339))
}

fn sent_event(
    ctx: &Context,
    sent: AfterSendMsg,
    raw_body: &[u8],
    event_type: &str,
) -> Result<Normalized, String> {
    let msg_key = sent.msg_key.clone().filter(|k| !k.is_empty());
    // An edit of a message happens more than once: its id comes from the whole body.
    let identity = match (&msg_key, event_type) {
        (Some(k), types::MESSAGE_SENT | types::MESSAGE_PRE_SEND) => k.as_bytes(),
        _ => raw_body,
    };
    let data = MessageSent {
        sdk_app_id: ctx.sdk_app_id,
        msg_key: msg_key.clone(),
        from: sent.from.clone(),
        to: sent.to.clone(),
        msg_seq: sent.msg_seq,
        msg_random: sent.msg_random,
        msg_time: sent.msg_time,
        msg_time_rfc3339: sent.msg_time.and_then(seconds_rfc3339),
        msg_id: sent.msg_id,
        online_only: sent.online_only_flag.map(|f| f == 1),
        send_result: sent.send_msg_result,
        error_info: sent.error_info,
        unread_count: sent.unread_msg_num,
        body: body(&sent.msg_body)?,
        cloud_custom_data: sent.cloud_custom_data,
        operator: sent.operator,
        common: common(ctx, sent.event_time),
    };
    let time = occurred(sent.event_time, sent.msg_time);
    let mut normalized = event(ctx, identity, event_type, time, msg_key.as_deref(), data);
    if msg_key.is_none() {
        normalized.key = Some(conversation_key(&sent.from, &sent.to));
        normalized.keyed_by_conversation = true;
    }
    Ok(normalized)
}

fn withdrawn_event(ctx: &Context, withdrawn: AfterMsgWithdraw) -> Normalized {
    let key = withdrawn.msg_key.clone();
    let data = MessageWithdrawn {
        sdk_app_id: ctx.sdk_app_id,
        msg_key: withdrawn.msg_key,
        from: withdrawn.from,
        to: withdrawn.to,
        unread_count: withdrawn.unread_msg_num,
        common: common(ctx, withdrawn.event_time),
    };
    let time = occurred(withdrawn.event_time, None);
    event(
        ctx,
        key.as_bytes(),
        types::MESSAGE_WITHDRAWN,
        time,
        Some(&key),
        data,
    )
}

fn common(ctx: &Context, event_time: Option<u64>) -> Common {
    Common {
        event_time,
        event_time_rfc3339: event_time.and_then(millis_rfc3339),
        client_ip: ctx.client_ip.map(str::to_owned),
        platform: ctx.platform.map(str::to_owned),
        received_at: rfc3339_millis(ctx.received_at),
    }
}

/// The key of a one-to-one conversation: both accounts, sorted, so either direction
/// of the conversation lands on one partition.
pub fn conversation_key(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("c2c:{lo}:{hi}")
}

/// Deterministic: the same callback always gets the same id, so consumers can drop duplicates.
pub fn event_id(sdk_app_id: u64, command: &str, identity: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(sdk_app_id.to_string().as_bytes());
    hasher.update([0x1f]);
    hasher.update(command.as_bytes());
    hasher.update([0x1f]);
    hasher.update(identity);
    hex::encode(&hasher.finalize()[..16])
}

/// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

fn seconds_rfc3339(secs: u64) -> Option<String> {
    (secs <= MAX_RFC3339_SECS).then(|| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
    })
}

fn millis_rfc3339(millis: u64) -> Option<String> {
    (millis / 1000 <= MAX_RFC3339_SECS)
        .then(|| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(millis)))
}

fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests;
