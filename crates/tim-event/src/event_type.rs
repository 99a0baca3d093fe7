//! Every event type, in one list: the enum, its names and [`EventType::ALL`] are made
//! from it, so none can be left out of one of them. `EventType::parse` gives `None`
//! for a type newer than this library.

/// An enum whose variants each have a name, with `ALL` and `as_str` made from one list,
/// so that no variant can be left out of either. Used for the event types here and for
/// the commands the bridge types.
#[doc(hidden)]
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $enum:ident { $($variant:ident = $name:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $enum {
            $($variant,)*
        }

        impl $enum {
            /// Every variant, in the order of the list.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];

            /// The variant's name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)*
                }
            }

            /// The variant named `name`, if any.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }
    };
}

named_enum! {
    /// An event's `type`.
    pub enum EventType {
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
