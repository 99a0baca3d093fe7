//! The rest of the message family: edits, read receipts and reports, extensions, and
//! group messages. Fields each command cannot do without are required; the rest,
//! absent from some page version, are optional.

use serde::Deserialize;

use super::element::TencentElement;
use super::lenient::field;

#[derive(Debug, Deserialize)]
pub struct ReceiptInfo {
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    #[serde(rename = "MsgId", default, deserialize_with = "field")]
    pub msg_id: Option<String>,
}

/// `C2C.CallbackAfterMsgReadReceipt`
#[derive(Debug, Deserialize)]
pub struct AfterMsgReadReceipt {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "C2CMsgInfo")]
    pub infos: Vec<ReceiptInfo>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

/// `C2C.CallbackAfterMsgReport`: a read report on a conversation.
#[derive(Debug, Deserialize)]
pub struct AfterMsgReport {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "Report_Account")]
    pub reporter: String,
    #[serde(rename = "Peer_Account")]
    pub peer: String,
    /// Unix seconds.
    #[serde(rename = "LastReadTime", default, deserialize_with = "field")]
    pub last_read_time: Option<u64>,
    #[serde(rename = "UnreadMsgNum", default, deserialize_with = "field")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct GroupRead {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "MsgSeq", default, deserialize_with = "field")]
    pub msg_seq: Option<u64>,
}

/// `C2C.CallbackAfterMsgReadAll`: every unread message cleared, one-to-one and group.
#[derive(Debug, Deserialize)]
pub struct AfterMsgReadAll {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "Report_Account")]
    pub reporter: String,
    #[serde(rename = "GroupReadInfo", default)]
    pub group_read_info: Option<Vec<GroupRead>>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Extension {
    #[serde(rename = "Key", default, deserialize_with = "field")]
    pub key: Option<String>,
    #[serde(rename = "Value", default, deserialize_with = "field")]
    pub value: Option<String>,
    #[serde(rename = "Seq", default, deserialize_with = "field")]
    pub seq: Option<u64>,
}

/// `C2C.CallbackAfterC2CMsgExtension`
#[derive(Debug, Deserialize)]
pub struct AfterC2CMsgExtension {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    /// 1 set, 2 delete, 3 clear.
    #[serde(rename = "OperateType", default, deserialize_with = "field")]
    pub operate_type: Option<i64>,
    #[serde(rename = "ExtensionList", default)]
    pub extension_list: Option<Vec<Extension>>,
    #[serde(rename = "Seq", default, deserialize_with = "field")]
    pub seq: Option<u64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

/// `Group.CallbackAfterSendMsg`
#[derive(Debug, Deserialize)]
pub struct GroupAfterSendMsg {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default, deserialize_with = "field")]
    pub group_type: Option<String>,
    #[serde(rename = "TopicId", default, deserialize_with = "field")]
    pub topic_id: Option<String>,
    #[serde(rename = "From_Account", default, deserialize_with = "field")]
    pub from: Option<String>,
    #[serde(rename = "Operator_Account", default, deserialize_with = "field")]
    pub operator: Option<String>,
    #[serde(rename = "MsgSeq", deserialize_with = "required_seq")]
    pub msg_seq: u64,
    #[serde(rename = "Random", default, deserialize_with = "field")]
    pub random: Option<u32>,
    #[serde(rename = "MsgTime", default, deserialize_with = "field")]
    pub msg_time: Option<u64>,
    #[serde(rename = "MsgId", default, deserialize_with = "field")]
    pub msg_id: Option<String>,
    #[serde(rename = "OnlineOnlyFlag", default, deserialize_with = "field")]
    pub online_only_flag: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Option<Vec<TencentElement>>,
    #[serde(rename = "CloudCustomData", default, deserialize_with = "field")]
    pub cloud_custom_data: Option<String>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RecalledSeq {
    #[serde(rename = "MsgSeq", deserialize_with = "required_seq")]
    pub msg_seq: u64,
}

/// `Group.CallbackAfterRecallMsg`: one or several messages of a group recalled.
#[derive(Debug, Deserialize)]
pub struct GroupAfterRecallMsg {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default, deserialize_with = "field")]
    pub group_type: Option<String>,
    #[serde(rename = "TopicId", default, deserialize_with = "field")]
    pub topic_id: Option<String>,
    #[serde(rename = "Operator_Account", default, deserialize_with = "field")]
    pub operator: Option<String>,
    #[serde(rename = "MsgSeqList")]
    pub msg_seq_list: Vec<RecalledSeq>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

pub(super) fn required_seq<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    field(d)?.ok_or_else(|| serde::de::Error::custom("MsgSeq is null"))
}
