//! The Tencent Cloud IM callback protocol: the query, the signature, and the bodies
//! as validated types.

pub mod body;
pub mod lenient;
pub mod query;
pub mod sign;

pub use body::{AfterMsgWithdraw, AfterSendMsg, Callback};
pub use query::CallbackQuery;

pub mod command {
    pub const AFTER_SEND_MSG: &str = "C2C.CallbackAfterSendMsg";
    pub const AFTER_MSG_WITHDRAW: &str = "C2C.CallbackAfterMsgWithDraw";
    pub const BEFORE_SEND_MSG: &str = "C2C.CallbackBeforeSendMsg";

    /// Commands Tencent documents, so metrics can name them without letting a caller
    /// invent label values.
    const KNOWN: &[&str] = &[
        AFTER_SEND_MSG,
        AFTER_MSG_WITHDRAW,
        BEFORE_SEND_MSG,
        "C2C.CallbackAfterMsgReport",
        "C2C.CallbackAfterMsgReadReceipt",
        "C2C.CallbackAfterModifyMsg",
        "C2C.CallbackAfterMsgReadAll",
        "C2C.CallbackAfterC2CMsgExtension",
        "Group.CallbackBeforeSendMsg",
        "Group.CallbackAfterSendMsg",
        "Group.CallbackAfterRecallMsg",
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
