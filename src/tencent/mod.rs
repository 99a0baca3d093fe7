//! The Tencent Cloud IM callback protocol: the query, the signature, and the bodies
//! as validated types.

pub mod before;
pub mod body;
pub mod element;
pub mod family;
pub mod groups;
mod invalid;
pub use tim_event::lenient;
pub mod query;
pub mod sign;
pub mod users;

pub use body::{AfterMsgWithdraw, AfterSendMsg, Callback, Family};

#[cfg(test)]
mod fuzz_tests;
pub use invalid::Invalid;
pub(crate) use invalid::{field_path, without_values};
pub use query::CallbackQuery;

pub mod command {
    pub const AFTER_SEND_MSG: &str = "C2C.CallbackAfterSendMsg";
    pub const AFTER_MSG_WITHDRAW: &str = "C2C.CallbackAfterMsgWithDraw";
    pub const BEFORE_SEND_MSG: &str = "C2C.CallbackBeforeSendMsg";
    pub const AFTER_MODIFY_MSG: &str = "C2C.CallbackAfterModifyMsg";
    pub const AFTER_MSG_READ_RECEIPT: &str = "C2C.CallbackAfterMsgReadReceipt";
    pub const AFTER_MSG_REPORT: &str = "C2C.CallbackAfterMsgReport";
    pub const AFTER_MSG_READ_ALL: &str = "C2C.CallbackAfterMsgReadAll";
    pub const AFTER_C2C_MSG_EXTENSION: &str = "C2C.CallbackAfterC2CMsgExtension";
    pub const GROUP_AFTER_SEND_MSG: &str = "Group.CallbackAfterSendMsg";
    pub const GROUP_AFTER_RECALL_MSG: &str = "Group.CallbackAfterRecallMsg";

    pub const GROUP_AFTER_READ_RECEIPT: &str = "Group.CallbackAfterReadReceipt";
    pub const GROUP_AFTER_MSG_EXTENSION: &str = "Group.CallbackAfterGroupMsgExtension";

    pub const STATE_CHANGE: &str = "State.StateChange";
    pub const PORTRAIT_SET: &str = "Profile.CallbackPortraitSet";
    pub const FRIEND_ADD: &str = "Sns.CallbackFriendAdd";
    pub const FRIEND_DELETE: &str = "Sns.CallbackFriendDelete";
    pub const BLACKLIST_ADD: &str = "Sns.CallbackBlackListAdd";
    pub const BLACKLIST_DELETE: &str = "Sns.CallbackBlackListDelete";

    pub const GROUP_CREATED: &str = "Group.CallbackAfterCreateGroup";
    pub const GROUP_MEMBER_JOIN: &str = "Group.CallbackAfterNewMemberJoin";
    pub const GROUP_MEMBER_EXIT: &str = "Group.CallbackAfterMemberExit";
    pub const GROUP_INFO_CHANGED: &str = "Group.CallbackAfterGroupInfoChanged";
    pub const GROUP_OWNER_CHANGED: &str = "Group.CallbackAfterChangeGroupOwner";
    pub const GROUP_DESTROYED: &str = "Group.CallbackAfterGroupDestroyed";
    pub const TOPIC_CREATED: &str = "Group.CallbackAfterCreateTopic";
    pub const TOPIC_INFO_CHANGED: &str = "Group.CallbackAfterTopicInfoChanged";
    pub const TOPIC_DESTROYED: &str = "Group.CallbackAfterTopicDestroyed";

    /// The commands the bridge types (`Callback`'s variants name the topic family of
    /// each; this list only names them in metrics).
    pub const TYPED: &[&str] = &[
        AFTER_SEND_MSG,
        AFTER_MSG_WITHDRAW,
        AFTER_MODIFY_MSG,
        AFTER_MSG_READ_RECEIPT,
        AFTER_MSG_REPORT,
        AFTER_MSG_READ_ALL,
        AFTER_C2C_MSG_EXTENSION,
        GROUP_AFTER_SEND_MSG,
        GROUP_AFTER_RECALL_MSG,
        GROUP_AFTER_READ_RECEIPT,
        GROUP_AFTER_MSG_EXTENSION,
        STATE_CHANGE,
        PORTRAIT_SET,
        FRIEND_ADD,
        FRIEND_DELETE,
        BLACKLIST_ADD,
        BLACKLIST_DELETE,
        GROUP_CREATED,
        GROUP_MEMBER_JOIN,
        GROUP_MEMBER_EXIT,
        GROUP_INFO_CHANGED,
        GROUP_OWNER_CHANGED,
        GROUP_DESTROYED,
        TOPIC_CREATED,
        TOPIC_INFO_CHANGED,
        TOPIC_DESTROYED,
    ];

    /// Commands Tencent documents besides the typed and the before-callbacks, so
    /// metrics can name them without letting a caller invent label values.
    const KNOWN_RAW: &[&str] = &[
        "Group.CallbackAfterGroupFull",
        "Group.CallbackAfterGroupAttrChanged",
        "Group.CallbackAfterMemberFieldChanged",
        "Group.CallbackOnMemberStateChange",
        "Group.CallbackSendMsgException",
        "C2C.CallbackAfterSendMsgException",
    ];

    /// The label a command gets in metrics: its own name when Tencent documents it.
    pub fn metric_label(command: Option<&str>) -> &'static str {
        match command {
            None => "none",
            Some(c) => [TYPED, super::before::BEFORE, KNOWN_RAW]
                .into_iter()
                .flatten()
                .find(|k| **k == c)
                .copied()
                .unwrap_or("other"),
        }
    }
}
