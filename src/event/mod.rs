//! Normalization: a Tencent callback into the events of the contract (the `tim-event`
//! crate, re-exported here), with deterministic ids, keys and times.

pub mod element;
mod family;
mod groups;
mod users;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

pub use tim_event::*;

use crate::tencent::element::TencentElement;
use crate::tencent::{AfterMsgWithdraw, AfterSendMsg, Callback, Invalid};

/// The CloudEvents `id` of a record's value, read without building the rest.
pub fn id_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<IdOnly>(payload)
        .ok()
        .map(|e| e.id.into_owned())
}

/// What the HTTP side knows about a callback besides its body.
pub struct Context<'a> {
    pub sdk_app_id: u64,
    pub command: &'a str,
    pub client_ip: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub received_at: SystemTime,
    /// None for a callback.
    pub origin: Option<Origin>,
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
) -> Result<Vec<Normalized>, Invalid> {
    Ok(match callback {
        Callback::Sent(sent) => vec![sent_event(ctx, sent, raw_body, EventType::MessageSent)?],
        Callback::Modified(sent) => {
            vec![sent_event(ctx, sent, raw_body, EventType::MessageModified)?]
        }
        Callback::PreSend(sent) => {
            vec![sent_event(ctx, sent, raw_body, EventType::MessagePreSend)?]
        }
        Callback::Withdrawn(withdrawn) => vec![withdrawn_event(ctx, withdrawn)],
        Callback::ReadReceipt(r) => family::read_receipts(ctx, r),
        Callback::ReadReport(r) => vec![family::read_report(ctx, r, raw_body)],
        Callback::ReadAll(r) => vec![family::read_all(ctx, r, raw_body)],
        Callback::Extension(e) => vec![family::extension(ctx, e, raw_body)],
        Callback::GroupSent(g) => vec![family::group_sent(ctx, g)?],
        Callback::GroupRecalled(g) => family::group_recalled(ctx, g),
        Callback::GroupRead(r) => groups::read_receipt(ctx, r, raw_body),
        Callback::GroupExtension(e) => vec![groups::extension(ctx, e, raw_body)],
        Callback::StateChanged(s) => vec![users::state_changed(ctx, s, raw_body)],
        Callback::ProfileChanged(p) => vec![users::profile_changed(ctx, p, raw_body)],
        Callback::Relation(relation, list) => {
            users::relation_changed(ctx, relation, list, raw_body)
        }
        Callback::Group(kind, change) => groups::lifecycle(ctx, kind, change, raw_body),
        Callback::Before(_) => Vec::new(),
        Callback::Other {
            command: _,
            msg_key,
        } => {
            // Kept byte for byte, but only once a full parse accepts it: the raw-value
            // reader alone lets through numbers no JSON reader can hold (the fuzzer
            // found `1e14123`), and consumers would choke on the event.
            serde_json::from_slice::<serde_json::Value>(raw_body).map_err(|e| {
                let why = crate::tencent::without_values(&e.to_string());
                Invalid::NotJson(format!("no JSON reader can hold it ({why})"))
            })?;
            let body = std::str::from_utf8(raw_body)
                .ok()
                .and_then(|s| RawValue::from_string(s.to_owned()).ok())
                .ok_or_else(|| Invalid::NotJson("it is not UTF-8 JSON".into()))?;
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
                EventType::Callback,
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
    event_type: EventType,
    time: Option<String>,
    key: Option<&str>,
    data: D,
) -> Normalized {
    let key = key.map(str::to_owned);
    let envelope = Envelope {
        specversion: "1.0".into(),
        id: event_id(ctx.sdk_app_id, ctx.command, identity),
        source: format!("/tim/{}", ctx.sdk_app_id),
        event_type: event_type.as_str().into(),
        time: time.unwrap_or_else(|| rfc3339_millis(ctx.received_at)),
        subject: key.clone(),
        datacontenttype: "application/json".into(),
        dataschema: DATA_SCHEMA.into(),
        timorigin: ctx.origin,
        data,
    };
    Normalized {
        id: envelope.id.clone(),
        key,
        payload: serde_json::to_vec(&envelope).expect("an event always serializes"),
        keyed_by_conversation: false,
    }
}

fn body(elements: &Option<Vec<TencentElement>>) -> Result<Option<Vec<Element>>, Invalid> {
    elements
        .as_ref()
        .map(|elements| {
            elements
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    element::normalize(e).map_err(|err| err.within(&format!("MsgBody[{i}]")))
                })
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
    event_type: EventType,
) -> Result<Normalized, Invalid> {
    let msg_key = sent.msg_key.clone().filter(|k| !k.is_empty());
    // An edit of a message happens more than once: its id comes from the whole body.
    let identity = match (&msg_key, event_type) {
        (Some(k), EventType::MessageSent | EventType::MessagePreSend) => k.as_bytes(),
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
        EventType::MessageWithdrawn,
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
mod lifecycle_tests;
#[cfg(test)]
mod tests;
