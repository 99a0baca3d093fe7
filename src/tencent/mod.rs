//! The Tencent Cloud IM callback protocol: the query, the signature, and the bodies
//! as validated types.

pub mod body;
pub mod element;
pub mod family;
mod invalid;
pub use tim_event::lenient;
pub mod query;
pub mod sign;

pub use body::{AfterMsgWithdraw, AfterSendMsg, Callback};

#[cfg(test)]
mod fuzz_tests;
pub use invalid::Invalid;
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

    /// Commands whose events go to `kafka.topic`, keyed so that a message's story
    /// shares a partition.
    pub const C2C_TYPED: &[&str] = &[
        AFTER_SEND_MSG,
        AFTER_MSG_WITHDRAW,
        AFTER_MODIFY_MSG,
        AFTER_MSG_READ_RECEIPT,
        AFTER_MSG_REPORT,
        AFTER_MSG_READ_ALL,
        AFTER_C2C_MSG_EXTENSION,
    ];
    /// Commands whose events go to `kafka.group_topic`.
    pub const GROUP_TYPED: &[&str] = &[GROUP_AFTER_SEND_MSG, GROUP_AFTER_RECALL_MSG];

    /// Commands Tencent documents, so metrics can name them without letting a caller
    /// invent label values.
    const KNOWN: &[&str] = &[
        AFTER_SEND_MSG,
        AFTER_MSG_WITHDRAW,
        BEFORE_SEND_MSG,
        AFTER_MSG_REPORT,
        AFTER_MSG_READ_RECEIPT,
        AFTER_MODIFY_MSG,
        AFTER_MSG_READ_ALL,
        AFTER_C2C_MSG_EXTENSION,
        "Group.CallbackBeforeSendMsg",
        GROUP_AFTER_SEND_MSG,
        GROUP_AFTER_RECALL_MSG,
        "Group.CallbackAfterCreateGroup",
        "Group.CallbackAfterNewMemberJoin",
        "Group.CallbackAfterMemberExit",
        "Group.CallbackAfterGroupDestroyed",
        "Group.CallbackAfterGroupInfoChanged",
        "State.StateChange",
        "Sns.CallbackFriendAdd",
        "Sns.CallbackFriendDelete",
        "Sns.CallbackBlackListAdd",
        "Sns.CallbackBlackListDelete",
        "Profile.CallbackPortraitSet",
    ];

    /// The label a command gets in metrics: its own name when Tencent documents it.
    pub fn metric_label(command: Option<&str>) -> &'static str {
        match command {
            None => "none",
            Some(c) => KNOWN.iter().find(|k| **k == c).copied().unwrap_or("other"),
        }
    }
}
