//! The data of user events: presence, profiles and relationships, each keyed
//! `user:<account>` so that one user's story reads in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Common;

/// `tim.user.state_changed`: a login, logout, disconnection or custom status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct UserStateChanged {
    pub sdk_app_id: u64,
    pub account: String,
    /// Tencent's `Action`: `Login`, `Logout`, `Disconnect`, `CustomStatusChange`.
    pub action: String,
    /// Tencent's `Reason`: `Register`, `Unregister`, `LinkClose`, `TimeOut`, `SetCustomStatus`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
    /// Platforms of the devices this login forced off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kicked_platforms: Option<Vec<String>>,
    #[serde(flatten)]
    pub common: Common,
}

/// `tim.user.profile_changed`: the profile fields set, with their new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct UserProfileChanged {
    pub sdk_app_id: u64,
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub items: Vec<ProfileItem>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct ProfileItem {
    /// `Tag_Profile_IM_Nick`, `Tag_Profile_Custom_...`
    pub tag: String,
    /// A string or a number, as Tencent sent it.
    #[cfg_attr(test, schemars(extend("type" = ["string", "number"])))]
    pub value: Value,
}

/// `tim.user.friend_added`, `tim.user.friend_deleted`, `tim.user.blocklist_added`,
/// `tim.user.blocklist_removed`: `account`'s list gained or lost `peer`. One event per
/// pair of the callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct UserRelationChanged {
    pub sdk_app_id: u64,
    /// Whose list changed.
    pub account: String,
    /// Who was added to or removed from it.
    pub peer: String,
    /// Who asked for the friendship (`friend_added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// `friend_add` or `friend_response` (`friend_added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cmd: Option<String>,
    /// The admin account, when the app's backend added the friend (`friend_added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_account: Option<String>,
    /// An admin forced the friendship (`friend_added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<bool>,
    #[serde(flatten)]
    pub common: Common,
}

/// The key of every user event: `user:<account>`.
pub fn user_key(account: &str) -> String {
    format!("user:{account}")
}
