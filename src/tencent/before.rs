//! Before-callbacks: Tencent waits for the app's decision. The bridge makes none; it
//! answers each with the shape its page defines for "allow, unchanged", so switching
//! every callback on never blocks a user (docs/tencent-protocol.md, "Before-callbacks").

use serde::{Deserialize, Serialize};

pub const BEFORE: &[&str] = &[
    super::command::BEFORE_SEND_MSG,
    "Group.CallbackBeforeSendMsg",
    "Group.CallbackBeforeCreateGroup",
    "Group.CallbackBeforeApplyJoinGroup",
    "Group.CallbackBeforeInviteJoinGroup",
    "Group.CallbackBeforeCreateTopic",
    PREV_FRIEND_ADD,
    PREV_FRIEND_RESPONSE,
];

const PREV_FRIEND_ADD: &str = "Sns.CallbackPrevFriendAdd";
const PREV_FRIEND_RESPONSE: &str = "Sns.CallbackPrevFriendResponse";

pub fn is_before(command: &str) -> bool {
    BEFORE.contains(&command)
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "To_Account")]
    to: String,
}

#[derive(Deserialize)]
struct FriendRequest {
    #[serde(rename = "FriendItem", default)]
    friend_item: Vec<Target>,
    #[serde(rename = "ResponseFriendItem", default)]
    response_friend_item: Vec<Target>,
}

#[derive(Serialize)]
struct Allow<'a> {
    #[serde(rename = "ActionStatus")]
    action_status: &'static str,
    #[serde(rename = "ErrorCode")]
    error_code: u8,
    #[serde(rename = "ErrorInfo")]
    error_info: &'static str,
    #[serde(rename = "ResultItem")]
    result_item: Vec<Allowed<'a>>,
}

#[derive(Serialize)]
struct Allowed<'a> {
    #[serde(rename = "To_Account")]
    to: &'a str,
    #[serde(rename = "ResultCode")]
    result_code: u8,
    #[serde(rename = "ResultInfo")]
    result_info: &'static str,
}

/// The body that allows `command`, when it is more than the plain OK: the friend
/// pages decide per account, in `ResultItem`, so each account of the request is
/// allowed by name. A body that cannot be read gets the plain OK, which Tencent takes
/// as "the app did not decide" and lets through.
pub fn allow_body(command: &str, body: &[u8]) -> Option<Vec<u8>> {
    if command != PREV_FRIEND_ADD && command != PREV_FRIEND_RESPONSE {
        return None;
    }
    let request: FriendRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(command, reason = %e, "A friend before-callback cannot be read; it is answered with the plain OK.");
            return None;
        }
    };
    let targets = if command == PREV_FRIEND_ADD {
        &request.friend_item
    } else {
        &request.response_friend_item
    };
    let allow = Allow {
        action_status: "OK",
        error_code: 0,
        error_info: "",
        result_item: targets
            .iter()
            .map(|t| Allowed {
                to: &t.to,
                result_code: 0,
                result_info: "",
            })
            .collect(),
    };
    Some(serde_json::to_vec(&allow).expect("an answer always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_friend_request_is_allowed_for_each_account_by_name() {
        let body = br#"{"CallbackCommand":"Sns.CallbackPrevFriendAdd","From_Account":"id","FriendItem":[{"To_Account":"id1"},{"To_Account":"id2"}]}"#;
        let answer: Value =
            serde_json::from_slice(&allow_body(PREV_FRIEND_ADD, body).unwrap()).unwrap();
        assert_eq!(
            answer,
            json!({"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[
                {"To_Account":"id1","ResultCode":0,"ResultInfo":""},
                {"To_Account":"id2","ResultCode":0,"ResultInfo":""}]})
        );
    }

    #[test]
    fn other_before_callbacks_and_unreadable_bodies_get_the_plain_ok() {
        assert!(allow_body("Group.CallbackBeforeSendMsg", b"{}").is_none());
        assert!(allow_body(PREV_FRIEND_RESPONSE, b"not json").is_none());
    }
}
