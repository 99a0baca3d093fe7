//! Users and groups: every page example decodes into its typed data, and whatever
//! subset of the optional fields Tencent sends, the event has exactly their counterparts.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::*;
use crate::tencent::{command, Callback};

fn ctx(command: &'static str) -> Context<'static> {
    Context {
        sdk_app_id: 1400000000,
        command,
        client_ip: None,
        platform: None,
        received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        origin: None,
    }
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/commands/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn normalized(command: &'static str, body: &[u8]) -> Vec<Normalized> {
    let callback = Callback::parse(Some(command), body, false).unwrap();
    normalize(&ctx(command), callback, body).unwrap()
}

#[test]
fn every_page_example_decodes_into_its_typed_data_with_one_call() {
    let cases: &[(&str, &str, usize)] = &[
        (command::STATE_CHANGE, "state_change", 1),
        (command::PORTRAIT_SET, "portrait_set", 1),
        (command::FRIEND_ADD, "friend_add", 3),
        (command::FRIEND_DELETE, "friend_delete", 3),
        (command::BLACKLIST_ADD, "blacklist_add", 3),
        (command::BLACKLIST_DELETE, "blacklist_delete", 3),
        (command::GROUP_CREATED, "group_create", 1),
        (command::GROUP_MEMBER_JOIN, "group_member_join", 2),
        (command::GROUP_MEMBER_EXIT, "group_member_exit", 2),
        (command::GROUP_INFO_CHANGED, "group_info_changed", 1),
        (command::GROUP_OWNER_CHANGED, "group_owner_changed", 1),
        (command::GROUP_DESTROYED, "group_destroyed", 1),
        (command::TOPIC_CREATED, "topic_created", 1),
        (command::TOPIC_INFO_CHANGED, "topic_info_changed", 1),
        (command::TOPIC_DESTROYED, "topic_destroyed", 2),
        (command::GROUP_AFTER_READ_RECEIPT, "group_read_receipt", 2),
        (command::GROUP_AFTER_MSG_EXTENSION, "group_msg_extension", 1),
    ];
    for (command, name, count) in cases {
        let events = normalized(command, fixture(name).as_bytes());
        assert_eq!(events.len(), *count, "{command}");
        for n in events {
            let e = decode(&n.payload).unwrap();
            assert_eq!(e.subject, n.key, "{command}");
            let typed = match (&e.data, *command) {
                (Data::UserStateChanged(d), command::STATE_CHANGE) => d.account == "testuser316",
                (Data::UserProfileChanged(d), command::PORTRAIT_SET) => d.items.len() == 4,
                (Data::FriendAdded(d), command::FRIEND_ADD) => d.forced == Some(true),
                (Data::FriendDeleted(d), command::FRIEND_DELETE) => d.account == "id",
                (Data::BlocklistAdded(d), command::BLACKLIST_ADD) => d.peer.starts_with("id"),
                (Data::BlocklistRemoved(d), command::BLACKLIST_DELETE) => d.account == "id",
                (Data::GroupCreated(d), command::GROUP_CREATED) => {
                    d.members.as_ref().unwrap().len() == 2
                }
                (Data::MemberJoined(d), command::GROUP_MEMBER_JOIN) => {
                    d.join_type.as_deref() == Some("Apply")
                }
                (Data::MemberExited(d), command::GROUP_MEMBER_EXIT) => {
                    d.exit_type.as_deref() == Some("Kicked")
                }
                (Data::GroupInfoChanged(d), command::GROUP_INFO_CHANGED) => {
                    d.notification.is_some()
                }
                (Data::GroupOwnerChanged(d), command::GROUP_OWNER_CHANGED) => {
                    d.new_owner == "user2"
                }
                (Data::GroupDestroyed(d), command::GROUP_DESTROYED) => {
                    d.owner.as_deref() == Some("leckie")
                }
                (Data::TopicCreated(d), command::TOPIC_CREATED) => d.topic_id.is_some(),
                (Data::TopicInfoChanged(d), command::TOPIC_INFO_CHANGED) => d.face_url.is_some(),
                (Data::TopicDestroyed(d), command::TOPIC_DESTROYED) => d.topic_id.is_some(),
                (Data::GroupRead(d), command::GROUP_AFTER_READ_RECEIPT) => d.read_count == Some(1),
                (Data::GroupExtensionChanged(d), command::GROUP_AFTER_MSG_EXTENSION) => {
                    d.seq == Some(56)
                }
                (other, command) => panic!("{command} decoded as {other:?}"),
            };
            assert!(typed, "{command}: {:?}", e.data);
        }
    }
}

/// A body and its optional fields: where each sits (a path of object keys) and the
/// data fields it becomes.
struct Optional {
    command: &'static str,
    fixture: &'static str,
    fields: &'static [(&'static [&'static str], &'static [&'static str])],
}

const OPTIONALS: &[Optional] = &[
    Optional {
        command: command::STATE_CHANGE,
        fixture: "state_change",
        fields: &[
            (&["Info", "Reason"], &["reason"]),
            (&["KickedDevice"], &["kicked_platforms"]),
            (&["EventTime"], &["event_time", "event_time_rfc3339"]),
        ],
    },
    Optional {
        command: command::PORTRAIT_SET,
        fixture: "portrait_set",
        fields: &[
            (&["Operator_Account"], &["operator"]),
            (&["EventTime"], &["event_time", "event_time_rfc3339"]),
        ],
    },
    Optional {
        command: command::FRIEND_ADD,
        fixture: "friend_add",
        fields: &[
            (&["ClientCmd"], &["client_cmd"]),
            (&["Admin_Account"], &["admin_account"]),
            (&["ForceFlag"], &["forced"]),
        ],
    },
    Optional {
        command: command::GROUP_CREATED,
        fixture: "group_create",
        fields: &[
            (&["Type"], &["group_type"]),
            (&["Operator_Account"], &["operator"]),
            (&["Owner_Account"], &["owner"]),
            (&["Name"], &["name"]),
            (&["Introduction"], &["introduction"]),
            (&["Notification"], &["notification"]),
            (&["MemberList"], &["members"]),
            (&["UserDefinedDataList"], &["user_defined_data"]),
            (&["EventTime"], &["event_time", "event_time_rfc3339"]),
        ],
    },
    Optional {
        command: command::GROUP_MEMBER_JOIN,
        fixture: "group_member_join",
        fields: &[
            (&["Type"], &["group_type"]),
            (&["JoinType"], &["join_type"]),
            (&["Operator_Account"], &["operator"]),
        ],
    },
    Optional {
        command: command::GROUP_OWNER_CHANGED,
        fixture: "group_owner_changed",
        fields: &[
            (&["Type"], &["group_type"]),
            (&["Operator_Account"], &["operator"]),
            (&["OldOwner_Account"], &["old_owner"]),
            (&["EventTime"], &["event_time", "event_time_rfc3339"]),
        ],
    },
    Optional {
        command: command::TOPIC_INFO_CHANGED,
        fixture: "topic_info_changed",
        fields: &[
            (&["Type"], &["group_type"]),
            (&["Operator_Account"], &["operator"]),
            (&["Name"], &["name"]),
            (&["Introduction"], &["introduction"]),
            (&["Notification"], &["notification"]),
            (&["FaceUrl"], &["face_url"]),
        ],
    },
    Optional {
        command: command::GROUP_AFTER_READ_RECEIPT,
        fixture: "group_read_receipt",
        fields: &[
            (&["Type"], &["group_type"]),
            (&["EventTime"], &["event_time", "event_time_rfc3339"]),
        ],
    },
];

fn remove(body: &mut Map<String, Value>, path: &[&str]) {
    match path {
        [last] => {
            body.remove(*last);
        }
        [first, rest @ ..] => {
            if let Some(Value::Object(inner)) = body.get_mut(*first) {
                remove(inner, rest);
            }
        }
        [] => {}
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn user_and_group_events_neither_invent_nor_lose_fields(which in 0..OPTIONALS.len(), present in proptest::bits::u16::ANY) {
        let optional = &OPTIONALS[which];
        let mut body: Map<String, Value> = serde_json::from_str(&fixture(optional.fixture)).unwrap();
        for (i, (path, _)) in optional.fields.iter().enumerate() {
            if present & (1 << i) == 0 {
                remove(&mut body, path);
            }
        }
        let body = serde_json::to_vec(&body).unwrap();
        for n in normalized(optional.command, &body) {
            let e: Value = serde_json::from_slice(&n.payload).unwrap();
            for (i, (path, data_fields)) in optional.fields.iter().enumerate() {
                for data in *data_fields {
                    proptest::prop_assert_eq!(
                        e["data"].get(*data).is_some(),
                        present & (1 << i) != 0,
                        "{}: {:?} -> {}", optional.command, path, data
                    );
                }
            }
        }
    }
}
