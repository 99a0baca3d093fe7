//! Bodies of the presence, profile and relationship callbacks
//! (docs/tencent-protocol.md, "Users").

use serde::Deserialize;
use serde_json::Value;

use super::lenient::field;

#[derive(Debug, Deserialize)]
pub struct StateInfo {
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "To_Account")]
    pub account: String,
    #[serde(rename = "Reason", default, deserialize_with = "field")]
    pub reason: Option<String>,
    #[serde(rename = "CustomStatus", default, deserialize_with = "field")]
    pub custom_status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KickedDevice {
    #[serde(rename = "Platform", default, deserialize_with = "field")]
    pub platform: Option<String>,
}

/// `State.StateChange`
#[derive(Debug, Deserialize)]
pub struct StateChange {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "Info")]
    pub info: StateInfo,
    #[serde(rename = "KickedDevice", default)]
    pub kicked_device: Option<Vec<KickedDevice>>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ProfileEntry {
    #[serde(rename = "Tag")]
    pub tag: String,
    /// `uint32/string` on Tencent's page: kept as sent.
    #[serde(rename = "Value", default)]
    pub value: Value,
}

/// `Profile.CallbackPortraitSet`
#[derive(Debug, Deserialize)]
pub struct PortraitSet {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "Operator_Account", default, deserialize_with = "field")]
    pub operator: Option<String>,
    #[serde(rename = "ProfileItem")]
    pub items: Vec<ProfileEntry>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Pair {
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "Initiator_Account", default, deserialize_with = "field")]
    pub initiator: Option<String>,
}

/// `Sns.CallbackFriendAdd`, `Sns.CallbackFriendDelete`, `Sns.CallbackBlackListAdd`,
/// `Sns.CallbackBlackListDelete`: pairs whose first account's list changed.
#[derive(Debug, Deserialize)]
pub struct PairList {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "PairList")]
    pub pairs: Vec<Pair>,
    #[serde(rename = "ClientCmd", default, deserialize_with = "field")]
    pub client_cmd: Option<String>,
    #[serde(rename = "Admin_Account", default, deserialize_with = "field")]
    pub admin_account: Option<String>,
    #[serde(rename = "ForceFlag", default, deserialize_with = "field")]
    pub force_flag: Option<i64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}
