//! Bodies of the group lifecycle callbacks, and of the group-message callbacks that
//! are not sends or recalls (docs/tencent-protocol.md, "Groups").

use serde::Deserialize;

use super::family::Extension;
use super::lenient::field;

#[derive(Debug, Deserialize)]
pub struct Member {
    #[serde(rename = "Member_Account")]
    pub account: String,
}

#[derive(Debug, Deserialize)]
pub struct UserDefined {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default, deserialize_with = "field")]
    pub value: Option<String>,
}

/// Every field of a group lifecycle body. Which ones a command sends is in
/// docs/tencent-protocol.md; the parser requires those a command cannot do without.
#[derive(Debug, Deserialize)]
pub struct GroupChange {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "TopicId", default, deserialize_with = "field")]
    pub topic_id: Option<String>,
    #[serde(rename = "TopicIdList", default)]
    pub topic_id_list: Option<Vec<String>>,
    #[serde(rename = "Type", default, deserialize_with = "field")]
    pub group_type: Option<String>,
    #[serde(rename = "Operator_Account", default, deserialize_with = "field")]
    pub operator: Option<String>,
    #[serde(rename = "Owner_Account", default, deserialize_with = "field")]
    pub owner: Option<String>,
    #[serde(rename = "OldOwner_Account", default, deserialize_with = "field")]
    pub old_owner: Option<String>,
    #[serde(rename = "NewOwner_Account", default, deserialize_with = "field")]
    pub new_owner: Option<String>,
    #[serde(rename = "Name", default, deserialize_with = "field")]
    pub name: Option<String>,
    #[serde(rename = "Introduction", default, deserialize_with = "field")]
    pub introduction: Option<String>,
    #[serde(rename = "Notification", default, deserialize_with = "field")]
    pub notification: Option<String>,
    #[serde(rename = "FaceUrl", default, deserialize_with = "field")]
    pub face_url: Option<String>,
    #[serde(rename = "MemberList", default)]
    pub member_list: Option<Vec<Member>>,
    #[serde(rename = "NewMemberList", default)]
    pub new_member_list: Option<Vec<Member>>,
    #[serde(rename = "ExitMemberList", default)]
    pub exit_member_list: Option<Vec<Member>>,
    #[serde(rename = "JoinType", default, deserialize_with = "field")]
    pub join_type: Option<String>,
    #[serde(rename = "ExitType", default, deserialize_with = "field")]
    pub exit_type: Option<String>,
    #[serde(rename = "UserDefinedDataList", default)]
    pub user_defined_data: Option<Vec<UserDefined>>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Receipt {
    #[serde(rename = "MsgSeq", deserialize_with = "super::family::required_seq")]
    pub msg_seq: u64,
    #[serde(rename = "ReadNum", default, deserialize_with = "field")]
    pub read_num: Option<i64>,
    #[serde(rename = "UnreadNum", default, deserialize_with = "field")]
    pub unread_num: Option<i64>,
    #[serde(rename = "ReadReceiptMembers", default)]
    pub readers: Option<Vec<Member>>,
}

/// `Group.CallbackAfterReadReceipt`
#[derive(Debug, Deserialize)]
pub struct GroupReadReceipt {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "Type", default, deserialize_with = "field")]
    pub group_type: Option<String>,
    #[serde(rename = "GroupMsgReceiptList")]
    pub receipts: Vec<Receipt>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

/// `Group.CallbackAfterGroupMsgExtension`
#[derive(Debug, Deserialize)]
pub struct GroupMsgExtension {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "TopicId", default, deserialize_with = "field")]
    pub topic_id: Option<String>,
    #[serde(rename = "MsgSeq", deserialize_with = "super::family::required_seq")]
    pub msg_seq: u64,
    #[serde(rename = "OperateType", default, deserialize_with = "field")]
    pub operate_type: Option<i64>,
    #[serde(rename = "ExtensionList", default)]
    pub extension_list: Option<Vec<Extension>>,
    #[serde(rename = "Seq", default, deserialize_with = "field")]
    pub seq: Option<u64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}
