//! Callback bodies. Everything but the command and the accounts may be absent (the
//! oldest page's example has neither MsgKey nor MsgSeq); unknown fields are ignored.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::command;
use super::lenient::field;
use crate::event::element::TencentElement;

#[derive(Debug, Deserialize)]
pub struct AfterSendMsg {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgSeq", default, deserialize_with = "field")]
    pub msg_seq: Option<u32>,
    #[serde(rename = "MsgRandom", default, deserialize_with = "field")]
    pub msg_random: Option<u32>,
    #[serde(rename = "MsgTime", default, deserialize_with = "field")]
    pub msg_time: Option<u64>,
    #[serde(rename = "MsgKey", default, deserialize_with = "field")]
    pub msg_key: Option<String>,
    #[serde(rename = "MsgId", default, deserialize_with = "field")]
    pub msg_id: Option<String>,
    #[serde(rename = "OnlineOnlyFlag", default, deserialize_with = "field")]
    pub online_only_flag: Option<i64>,
    #[serde(rename = "SendMsgResult", default, deserialize_with = "field")]
    pub send_msg_result: Option<i64>,
    #[serde(rename = "ErrorInfo", default, deserialize_with = "field")]
    pub error_info: Option<String>,
    #[serde(rename = "UnreadMsgNum", default, deserialize_with = "field")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Option<Vec<TencentElement>>,
    #[serde(rename = "CloudCustomData", default, deserialize_with = "field")]
    pub cloud_custom_data: Option<String>,
    /// Milliseconds.
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AfterMsgWithdraw {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    #[serde(rename = "UnreadMsgNum", default, deserialize_with = "field")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

/// What every command's body shares.
#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "CallbackCommand")]
    command: String,
    #[serde(rename = "MsgKey", default)]
    msg_key: Option<Value>,
}

#[derive(Debug)]
pub enum Callback {
    Sent(AfterSendMsg),
    Withdrawn(AfterMsgWithdraw),
    /// Answered "allow" and not forwarded.
    BeforeSend,
    Other {
        command: String,
        msg_key: Option<String>,
    },
}

impl Callback {
    /// Parses a body for the query's command (or the body's own, when the query has none).
    /// The error names the field at fault.
    pub fn parse(query_command: Option<&str>, body: &[u8]) -> Result<Self, String> {
        let command = match query_command {
            Some(c) => c.to_owned(),
            None => parse::<Head>(body)?.command,
        };
        let callback = match command.as_str() {
            command::AFTER_SEND_MSG => {
                let sent: AfterSendMsg = parse(body)?;
                agree(&command, &sent.command)?;
                accounts(&sent.from, &sent.to)?;
                Callback::Sent(sent)
            }
            command::AFTER_MSG_WITHDRAW => {
                let withdrawn: AfterMsgWithdraw = parse(body)?;
                agree(&command, &withdrawn.command)?;
                accounts(&withdrawn.from, &withdrawn.to)?;
                if withdrawn.msg_key.is_empty() {
                    return Err("MsgKey is empty".into());
                }
                Callback::Withdrawn(withdrawn)
            }
            _ => {
                let head: Head = parse(body)?;
                agree(&command, &head.command)?;
                if command == command::BEFORE_SEND_MSG {
                    Callback::BeforeSend
                } else {
                    let msg_key = match head.msg_key {
                        Some(Value::String(k)) if !k.is_empty() => Some(k),
                        _ => None,
                    };
                    Callback::Other { command, msg_key }
                }
            }
        };
        Ok(callback)
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("the body is not JSON: {inner}")
        } else if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("the body is not JSON: {e}"))?;
    Ok(value)
}

fn agree(query: &str, body: &str) -> Result<(), String> {
    if query == body {
        Ok(())
    } else {
        Err(format!(
            "CallbackCommand in the body ({body}) differs from the query's ({query})"
        ))
    }
}

fn accounts(from: &str, to: &str) -> Result<(), String> {
    if from.is_empty() {
        return Err("From_Account is empty".into());
    }
    if to.is_empty() {
        return Err("To_Account is empty".into());
    }
    Ok(())
}
