//! Tencent's callback commands. The commands the bridge types are one list: the enum,
//! their names and [`Typed::ALL`] come from it, and `Callback::parse` matches the enum
//! with no wildcard, so a command added here does not compile until it is parsed.

tim_event::named_enum! {
    /// A command the bridge parses into its own type.
    pub enum Typed {
        AfterSendMsg = "C2C.CallbackAfterSendMsg",
        AfterMsgWithdraw = "C2C.CallbackAfterMsgWithDraw",
        AfterModifyMsg = "C2C.CallbackAfterModifyMsg",
        AfterMsgReadReceipt = "C2C.CallbackAfterMsgReadReceipt",
        AfterMsgReport = "C2C.CallbackAfterMsgReport",
        AfterMsgReadAll = "C2C.CallbackAfterMsgReadAll",
        AfterC2cMsgExtension = "C2C.CallbackAfterC2CMsgExtension",
        GroupAfterSendMsg = "Group.CallbackAfterSendMsg",
        GroupAfterRecallMsg = "Group.CallbackAfterRecallMsg",
        GroupAfterReadReceipt = "Group.CallbackAfterReadReceipt",
        GroupAfterMsgExtension = "Group.CallbackAfterGroupMsgExtension",
        StateChange = "State.StateChange",
        PortraitSet = "Profile.CallbackPortraitSet",
        FriendAdd = "Sns.CallbackFriendAdd",
        FriendDelete = "Sns.CallbackFriendDelete",
        BlacklistAdd = "Sns.CallbackBlackListAdd",
        BlacklistDelete = "Sns.CallbackBlackListDelete",
        GroupCreated = "Group.CallbackAfterCreateGroup",
        GroupMemberJoin = "Group.CallbackAfterNewMemberJoin",
        GroupMemberExit = "Group.CallbackAfterMemberExit",
        GroupInfoChanged = "Group.CallbackAfterGroupInfoChanged",
        GroupOwnerChanged = "Group.CallbackAfterChangeGroupOwner",
        GroupDestroyed = "Group.CallbackAfterGroupDestroyed",
        TopicCreated = "Group.CallbackAfterCreateTopic",
        TopicInfoChanged = "Group.CallbackAfterTopicInfoChanged",
        TopicDestroyed = "Group.CallbackAfterTopicDestroyed",
    }
}

pub const AFTER_SEND_MSG: &str = Typed::AfterSendMsg.as_str();
pub const AFTER_MSG_WITHDRAW: &str = Typed::AfterMsgWithdraw.as_str();
pub const AFTER_MODIFY_MSG: &str = Typed::AfterModifyMsg.as_str();
pub const AFTER_MSG_READ_RECEIPT: &str = Typed::AfterMsgReadReceipt.as_str();
pub const AFTER_MSG_REPORT: &str = Typed::AfterMsgReport.as_str();
pub const AFTER_MSG_READ_ALL: &str = Typed::AfterMsgReadAll.as_str();
pub const AFTER_C2C_MSG_EXTENSION: &str = Typed::AfterC2cMsgExtension.as_str();
pub const GROUP_AFTER_SEND_MSG: &str = Typed::GroupAfterSendMsg.as_str();
pub const GROUP_AFTER_RECALL_MSG: &str = Typed::GroupAfterRecallMsg.as_str();
pub const GROUP_AFTER_READ_RECEIPT: &str = Typed::GroupAfterReadReceipt.as_str();
pub const GROUP_AFTER_MSG_EXTENSION: &str = Typed::GroupAfterMsgExtension.as_str();
pub const STATE_CHANGE: &str = Typed::StateChange.as_str();
pub const PORTRAIT_SET: &str = Typed::PortraitSet.as_str();
pub const FRIEND_ADD: &str = Typed::FriendAdd.as_str();
pub const FRIEND_DELETE: &str = Typed::FriendDelete.as_str();
pub const BLACKLIST_ADD: &str = Typed::BlacklistAdd.as_str();
pub const BLACKLIST_DELETE: &str = Typed::BlacklistDelete.as_str();
pub const GROUP_CREATED: &str = Typed::GroupCreated.as_str();
pub const GROUP_MEMBER_JOIN: &str = Typed::GroupMemberJoin.as_str();
pub const GROUP_MEMBER_EXIT: &str = Typed::GroupMemberExit.as_str();
pub const GROUP_INFO_CHANGED: &str = Typed::GroupInfoChanged.as_str();
pub const GROUP_OWNER_CHANGED: &str = Typed::GroupOwnerChanged.as_str();
pub const GROUP_DESTROYED: &str = Typed::GroupDestroyed.as_str();
pub const TOPIC_CREATED: &str = Typed::TopicCreated.as_str();
pub const TOPIC_INFO_CHANGED: &str = Typed::TopicInfoChanged.as_str();
pub const TOPIC_DESTROYED: &str = Typed::TopicDestroyed.as_str();
/// Published only with `publish_before_callbacks`, as `tim.c2c.message.pre_send`.
pub const BEFORE_SEND_MSG: &str = "C2C.CallbackBeforeSendMsg";

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
        Some(c) => match Typed::parse(c) {
            Some(typed) => typed.as_str(),
            None => [super::before::BEFORE, KNOWN_RAW]
                .into_iter()
                .flatten()
                .find(|k| **k == c)
                .copied()
                .unwrap_or("other"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_every_typed_command_and_no_invented_one() {
        let labels: Vec<&str> = Typed::ALL
            .iter()
            .map(|typed| metric_label(Some(typed.as_str())))
            .collect();
        let names: Vec<&str> = Typed::ALL.iter().map(|typed| typed.as_str()).collect();
        assert_eq!(labels, names);
        assert_eq!(metric_label(Some("Made.Up")), "other");
    }
}
