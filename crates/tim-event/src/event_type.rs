//! Every event type, in one list: the enum, its names and [`EventType::ALL`] are made
//! from it, so none can be left out of one of them.

macro_rules! event_types {
    ($($variant:ident = $name:literal,)*) => {
        /// An event's `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            /// Every type this library knows.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The CloudEvents `type`, for example `tim.c2c.message.sent`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    MessageSent = "tim.c2c.message.sent",
    MessageModified = "tim.c2c.message.modified",
    MessagePreSend = "tim.c2c.message.pre_send",
    MessageWithdrawn = "tim.c2c.message.withdrawn",
    MessageRead = "tim.c2c.message.read",
    ConversationRead = "tim.c2c.conversation.read",
    AllRead = "tim.conversations.all_read",
    MessageExtensionChanged = "tim.c2c.message.extension_changed",
    GroupMessageSent = "tim.group.message.sent",
    GroupMessageRecalled = "tim.group.message.recalled",
    GroupMessageRead = "tim.group.message.read",
    GroupMessageExtensionChanged = "tim.group.message.extension_changed",
    UserStateChanged = "tim.user.state_changed",
    UserProfileChanged = "tim.user.profile_changed",
    UserFriendAdded = "tim.user.friend_added",
    UserFriendDeleted = "tim.user.friend_deleted",
    UserBlocklistAdded = "tim.user.blocklist_added",
    UserBlocklistRemoved = "tim.user.blocklist_removed",
    GroupCreated = "tim.group.created",
    GroupMemberJoined = "tim.group.member_joined",
    GroupMemberExited = "tim.group.member_exited",
    GroupInfoChanged = "tim.group.info_changed",
    GroupOwnerChanged = "tim.group.owner_changed",
    GroupDestroyed = "tim.group.destroyed",
    GroupTopicCreated = "tim.group.topic_created",
    GroupTopicInfoChanged = "tim.group.topic_info_changed",
    GroupTopicDestroyed = "tim.group.topic_destroyed",
    Callback = "tim.callback",
}

impl EventType {
    /// The type named `name`; `None` for one newer than this library.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_found_by_its_name_and_no_two_share_one() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        let names: std::collections::BTreeSet<_> =
            EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(EventType::parse("tim.something.newer"), None);
    }
}
