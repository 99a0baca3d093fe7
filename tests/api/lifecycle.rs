//! Users and groups: presence, profiles, relationships and the group lifecycle, typed
//! from Tencent's own example bodies (tests/fixtures/commands/), each keyed so that one
//! user's or one group's story reads in order; and the before-callbacks, each answered
//! with its page's "allow" shape.

use serde_json::{json, Value};

use crate::helpers::*;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/commands/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn by_type<'a>(records: &'a [Record], event_type: &str) -> Vec<&'a Record> {
    let mut found: Vec<_> = records
        .iter()
        .filter(|r| r.value["type"] == event_type)
        .collect();
    found.sort_by_key(|r| r.value["data"].to_string());
    found
}

#[tokio::test]
async fn each_user_command_from_its_page_lands_on_the_user_topic_keyed_by_the_user_whose_list_changed(
) {
    let app = spawn_app().await;
    let commands = [
        ("State.StateChange", "state_change"),
        ("Profile.CallbackPortraitSet", "portrait_set"),
        ("Sns.CallbackFriendAdd", "friend_add"),
        ("Sns.CallbackFriendDelete", "friend_delete"),
        ("Sns.CallbackBlackListAdd", "blacklist_add"),
        ("Sns.CallbackBlackListDelete", "blacklist_delete"),
    ];
    for (command, name) in commands {
        assert_eq!(
            app.callback(command, &fixture(name)).await.status,
            200,
            "{command}"
        );
    }

    // One state change, one profile change, three pairs in each of the four lists.
    let records = read_records(&app.user_topic, 2 + 4 * 3).await;
    let state = by_type(&records, "tim.user.state_changed");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].key.as_deref(), Some("user:testuser316"));
    assert_eq!(state[0].headers["tim-command"], "State.StateChange");
    let data = &state[0].value["data"];
    assert_eq!(data["account"], "testuser316");
    assert_eq!(data["action"], "Login");
    assert_eq!(data["reason"], "Register");
    assert_eq!(data["kicked_platforms"], json!(["Windows", "Android"]));
    assert_eq!(data["event_time"], 1629883332497u64);
    assert_eq!(data["platform"], "iOS");
    assert_eq!(state[0].value["time"], "2021-08-25T09:22:12.497Z");

    let profile = by_type(&records, "tim.user.profile_changed");
    assert_eq!(profile[0].key.as_deref(), Some("user:id1"));
    assert_eq!(profile[0].value["data"]["operator"], "id1");
    assert_eq!(
        profile[0].value["data"]["items"][0],
        json!({"tag": "Tag_Profile_IM_Nick", "value": "nick1"})
    );
    assert_eq!(
        profile[0].value["data"]["items"].as_array().unwrap().len(),
        4
    );

    for event_type in [
        "tim.user.friend_added",
        "tim.user.friend_deleted",
        "tim.user.blocklist_added",
        "tim.user.blocklist_removed",
    ] {
        let pairs = by_type(&records, event_type);
        let peers: Vec<_> = pairs
            .iter()
            .map(|r| r.value["data"]["peer"].clone())
            .collect();
        assert_eq!(
            peers,
            [json!("id1"), json!("id2"), json!("id3")],
            "{event_type}"
        );
        assert!(
            pairs.iter().all(|r| r.key.as_deref() == Some("user:id")
                && r.value["data"]["account"] == "id"
                && r.partition == pairs[0].partition),
            "{event_type}: keyed by the account whose list changed"
        );
    }
    let added = &by_type(&records, "tim.user.friend_added")[0].value["data"];
    assert_eq!(added["initiator"], "id");
    assert_eq!(added["client_cmd"], "friend_add");
    assert_eq!(added["admin_account"], "");
    assert_eq!(added["forced"], true);
    let deleted = &by_type(&records, "tim.user.friend_deleted")[0].value["data"];
    assert!(deleted.get("initiator").is_none() && deleted.get("forced").is_none());
    assert_eq!(
        record_count(&app.other_topic).await,
        0,
        "nothing went out raw"
    );
}

#[tokio::test]
async fn each_group_lifecycle_command_from_its_page_lands_on_the_group_events_topic_keyed_by_its_group(
) {
    let app = spawn_app().await;
    let commands = [
        ("Group.CallbackAfterCreateGroup", "group_create"),
        ("Group.CallbackAfterNewMemberJoin", "group_member_join"),
        ("Group.CallbackAfterMemberExit", "group_member_exit"),
        ("Group.CallbackAfterGroupInfoChanged", "group_info_changed"),
        ("Group.CallbackAfterChangeGroupOwner", "group_owner_changed"),
        ("Group.CallbackAfterGroupDestroyed", "group_destroyed"),
        ("Group.CallbackAfterCreateTopic", "topic_created"),
        ("Group.CallbackAfterTopicInfoChanged", "topic_info_changed"),
        ("Group.CallbackAfterTopicDestroyed", "topic_destroyed"),
    ];
    for (command, name) in commands {
        assert_eq!(
            app.callback(command, &fixture(name)).await.status,
            200,
            "{command}"
        );
    }

    // Joins and exits of two members each, and two topics destroyed: two events each.
    let records = read_records(&app.group_events_topic, 12).await;
    let created = &by_type(&records, "tim.group.created")[0];
    assert_eq!(created.key.as_deref(), Some("group:@TGS#2J4SZEAEL"));
    assert_eq!(
        created.value["data"],
        json!({
            "sdk_app_id": SIGNED_APP, "group_id": "@TGS#2J4SZEAEL", "group_type": "Public",
            "operator": "group_root", "owner": "leckie", "name": "MyFirstGroup",
            "introduction": "introduction", "notification": "notification",
            "members": ["bob", "peter"],
            "user_defined_data": [{"key": "UserDefined1", "value": "hello"}, {"key": "UserDefined2", "value": "world"}],
            "event_time": 1670574414123u64, "event_time_rfc3339": "2022-12-09T08:26:54.123Z",
            "client_ip": "10.1.2.3", "platform": "iOS",
            "received_at": created.value["data"]["received_at"],
        })
    );
    let joined = by_type(&records, "tim.group.member_joined");
    let members: Vec<_> = joined
        .iter()
        .map(|r| r.value["data"]["member"].clone())
        .collect();
    assert_eq!(members, [json!("jared"), json!("tommy")]);
    assert!(joined.iter().all(
        |r| r.value["data"]["join_type"] == "Apply" && r.value["data"]["operator"] == "leckie"
    ));
    let exited = by_type(&records, "tim.group.member_exited");
    assert_eq!(exited.len(), 2);
    assert!(exited
        .iter()
        .all(|r| r.value["data"]["exit_type"] == "Kicked"));
    assert_eq!(
        by_type(&records, "tim.group.info_changed")[0].value["data"]["notification"],
        "NewNotification"
    );
    let owner = &by_type(&records, "tim.group.owner_changed")[0];
    assert_eq!(owner.key.as_deref(), Some("group:@TGS#2TTV7VSII"));
    assert_eq!(owner.value["data"]["old_owner"], "user1");
    assert_eq!(owner.value["data"]["new_owner"], "user2");
    let destroyed = &by_type(&records, "tim.group.destroyed")[0];
    assert_eq!(
        destroyed.value["data"]["members"],
        json!(["leckie", "peter", "bob"])
    );
    let topic = &by_type(&records, "tim.group.topic_created")[0];
    assert_eq!(
        topic.key.as_deref(),
        Some("group:@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_@TOPIC#cRTE3HIM62C5")
    );
    assert_eq!(topic.value["data"]["name"], "MyFirstTopic");
    // The page's example names no TopicId: the change is keyed by its group.
    let topic_info = &by_type(&records, "tim.group.topic_info_changed")[0];
    assert_eq!(topic_info.key.as_deref(), Some("group:@TGS#2J4SZEAEL"));
    assert_eq!(
        topic_info.value["data"]["face_url"],
        "http://this.is.face.url"
    );
    let topics: Vec<_> = by_type(&records, "tim.group.topic_destroyed")
        .iter()
        .map(|r| r.key.clone().unwrap())
        .collect();
    assert_eq!(
        topics,
        [
            "group:@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic",
            "group:@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic_1"
        ]
    );
}

#[tokio::test]
async fn group_read_receipts_and_extensions_join_their_messages_story_on_the_group_message_topic() {
    let app = spawn_app().await;
    for (command, name) in [
        ("Group.CallbackAfterReadReceipt", "group_read_receipt"),
        (
            "Group.CallbackAfterGroupMsgExtension",
            "group_msg_extension",
        ),
    ] {
        assert_eq!(
            app.callback(command, &fixture(name)).await.status,
            200,
            "{command}"
        );
    }
    let records = read_records(&app.group_topic, 3).await;
    let reads = by_type(&records, "tim.group.message.read");
    let keys: Vec<_> = reads.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(keys, ["group:@TGS#2TTV7VSII:1", "group:@TGS#2TTV7VSII:2"]);
    assert_eq!(reads[0].value["data"]["readers"], json!(["user0"]));
    assert_eq!(reads[0].value["data"]["unread_count"], 6);
    let extension = &by_type(&records, "tim.group.message.extension_changed")[0];
    assert_eq!(extension.key.as_deref(), Some("group:test:10"));
    assert_eq!(extension.value["data"]["extensions"][1]["value"], "12122");
    assert_eq!(extension.value["data"]["seq"], 56);
}

fn state(account: &str, action: &str, reason: &str, at_ms: u64) -> String {
    json!({"CallbackCommand": "State.StateChange", "EventTime": at_ms,
        "Info": {"Action": action, "To_Account": account, "Reason": reason}})
    .to_string()
}

#[tokio::test]
async fn a_users_login_logout_and_login_again_land_in_that_order_on_one_partition() {
    let app = spawn_app().await;
    let t = now() * 1000;
    let story = [
        ("Login", "Register"),
        ("Logout", "Unregister"),
        ("Login", "Register"),
    ];
    for (i, (action, reason)) in story.iter().enumerate() {
        let body = state("leckie", action, reason, t + i as u64);
        assert_eq!(app.callback("State.StateChange", &body).await.status, 200);
        // Someone else's presence in between, on any partition.
        let other = state(
            &format!("other-{i}"),
            "Disconnect",
            "LinkClose",
            t + i as u64,
        );
        assert_eq!(app.callback("State.StateChange", &other).await.status, 200);
    }
    let records = read_records(&app.user_topic, 6).await;
    let mut leckie: Vec<_> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some("user:leckie"))
        .collect();
    leckie.sort_by_key(|r| r.offset);
    let actions: Vec<_> = leckie
        .iter()
        .map(|r| r.value["data"]["action"].clone())
        .collect();
    assert_eq!(actions, [json!("Login"), json!("Logout"), json!("Login")]);
    assert!(leckie.iter().all(|r| r.partition == leckie[0].partition));
}

#[tokio::test]
async fn a_groups_creation_three_joins_an_exit_and_its_destruction_land_in_that_order() {
    let app = spawn_app().await;
    let g = "@TGS#story";
    let member = |m: &str| json!({"Member_Account": m});
    let steps = [
        (
            "Group.CallbackAfterCreateGroup",
            json!({"CallbackCommand": "Group.CallbackAfterCreateGroup", "GroupId": g, "Owner_Account": "leckie", "Type": "Public"}),
        ),
        (
            "Group.CallbackAfterNewMemberJoin",
            json!({"CallbackCommand": "Group.CallbackAfterNewMemberJoin", "GroupId": g, "JoinType": "Invited",
                "Operator_Account": "leckie", "NewMemberList": [member("a"), member("b"), member("c")]}),
        ),
        (
            "Group.CallbackAfterMemberExit",
            json!({"CallbackCommand": "Group.CallbackAfterMemberExit", "GroupId": g, "ExitType": "Quit",
                "Operator_Account": "b", "ExitMemberList": [member("b")]}),
        ),
        (
            "Group.CallbackAfterGroupDestroyed",
            json!({"CallbackCommand": "Group.CallbackAfterGroupDestroyed", "GroupId": g, "Owner_Account": "leckie",
                "MemberList": [member("leckie"), member("a"), member("c")]}),
        ),
    ];
    for (command, body) in &steps {
        assert_eq!(
            app.callback(command, &body.to_string()).await.status,
            200,
            "{command}"
        );
    }
    let mut records = read_records(&app.group_events_topic, 6).await;
    records.sort_by_key(|r| r.offset);
    let story: Vec<String> = records
        .iter()
        .map(|r| {
            let data = &r.value["data"];
            match data.get("member") {
                Some(m) => format!(
                    "{} {}",
                    r.value["type"].as_str().unwrap(),
                    m.as_str().unwrap()
                ),
                None => r.value["type"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    assert_eq!(
        story,
        [
            "tim.group.created",
            "tim.group.member_joined a",
            "tim.group.member_joined b",
            "tim.group.member_joined c",
            "tim.group.member_exited b",
            "tim.group.destroyed",
        ]
    );
    assert!(records.iter().all(
        |r| r.partition == records[0].partition && r.key.as_deref() == Some("group:@TGS#story")
    ));
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r.value["id"].clone()).collect();
    assert_eq!(ids.len(), 6, "each member's event has its own id");
}

const BEFORE: &[(&str, &str)] = &[
    ("C2C.CallbackBeforeSendMsg", ""),
    ("Group.CallbackBeforeSendMsg", "before_send_group_msg"),
    ("Group.CallbackBeforeCreateGroup", "before_create_group"),
    (
        "Group.CallbackBeforeApplyJoinGroup",
        "before_apply_join_group",
    ),
    (
        "Group.CallbackBeforeInviteJoinGroup",
        "before_invite_join_group",
    ),
    ("Group.CallbackBeforeCreateTopic", "before_create_topic"),
    ("Sns.CallbackPrevFriendAdd", "prev_friend_add"),
    ("Sns.CallbackPrevFriendResponse", "prev_friend_response"),
];

fn before_body(command: &str, name: &str) -> String {
    if name.is_empty() {
        let mut body: Value = serde_json::from_str(&text_message("before-1", "hi")).unwrap();
        body["CallbackCommand"] = command.into();
        body.to_string()
    } else {
        fixture(name)
    }
}

fn allowed(command: &str) -> Value {
    let plain = json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0});
    let each = |accounts: &[&str]| {
        json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "ResultItem":
            accounts.iter().map(|a| json!({"To_Account": a, "ResultCode": 0, "ResultInfo": ""})).collect::<Vec<_>>()})
    };
    match command {
        "Sns.CallbackPrevFriendAdd" | "Sns.CallbackPrevFriendResponse" => each(&["id1", "id2"]),
        _ => plain,
    }
}

#[tokio::test]
async fn every_before_callback_gets_its_pages_allow_shape_and_none_is_published() {
    let app = spawn_app().await;
    for (command, name) in BEFORE {
        let answer = app.callback(command, &before_body(command, name)).await;
        assert_eq!(answer.status, 200, "{command}");
        assert_eq!(answer.body, allowed(command), "{command}");
    }
    // Even a before-callback the bridge cannot read is allowed.
    let unreadable = app.callback("Sns.CallbackPrevFriendAdd", "{not json").await;
    assert_eq!(
        (
            unreadable.status.as_u16(),
            unreadable.body["ErrorCode"].clone()
        ),
        (200, json!(0))
    );

    // A raw callback after them all, read back: nothing before it went out.
    let marker = r#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"@TGS#full"}"#;
    assert_eq!(
        app.callback("Group.CallbackAfterGroupFull", marker)
            .await
            .status,
        200
    );
    let records = read_records(&app.other_topic, 1).await;
    assert_eq!(
        records[0].value["data"]["command"],
        "Group.CallbackAfterGroupFull"
    );
    for topic in [
        &app.topic,
        &app.group_topic,
        &app.user_topic,
        &app.group_events_topic,
    ] {
        assert_eq!(record_count(topic).await, 0, "{topic}");
    }
    assert_eq!(record_count(&app.other_topic).await, 1);
}

#[tokio::test]
async fn with_publish_before_callbacks_each_is_published_for_audit_and_still_allowed() {
    let app = spawn_app_with(|s| s.publish_before_callbacks = true).await;
    for (command, name) in BEFORE {
        let answer = app.callback(command, &before_body(command, name)).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.clone()),
            (200, allowed(command)),
            "{command}"
        );
    }
    let records = read_records(&app.other_topic, BEFORE.len()).await;
    let mut published: Vec<_> = records
        .iter()
        .map(|r| r.headers["tim-command"].clone())
        .collect();
    published.sort();
    let mut expected: Vec<_> = BEFORE.iter().map(|(c, _)| c.to_string()).collect();
    expected.sort();
    assert_eq!(published, expected);
    let pre_send = records
        .iter()
        .find(|r| r.headers["tim-command"] == "C2C.CallbackBeforeSendMsg")
        .unwrap();
    assert_eq!(pre_send.value["type"], "tim.c2c.message.pre_send");
    assert!(records
        .iter()
        .filter(|r| r.headers["tim-command"] != "C2C.CallbackBeforeSendMsg")
        .all(|r| r.value["type"] == "tim.callback"));
}

#[tokio::test]
async fn a_user_or_group_body_missing_what_its_command_needs_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            "Sns.CallbackFriendAdd",
            r#"{"CallbackCommand":"Sns.CallbackFriendAdd","PairList":[]}"#,
            "PairList is empty",
        ),
        (
            "Group.CallbackAfterNewMemberJoin",
            r#"{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"g","NewMemberList":[{"Member_Account":""}]}"#,
            "NewMemberList[0].Member_Account is empty",
        ),
        (
            "State.StateChange",
            r#"{"CallbackCommand":"State.StateChange","Info":{"Action":"Login"}}"#,
            "To_Account",
        ),
        (
            "Group.CallbackAfterChangeGroupOwner",
            r#"{"CallbackCommand":"Group.CallbackAfterChangeGroupOwner","GroupId":"g"}"#,
            "NewOwner_Account is empty",
        ),
    ];
    for (command, body, reason) in cases {
        let answer = app.callback(command, body).await;
        assert_eq!(answer.status, 400, "{command}");
        assert_eq!(answer.body["ActionStatus"], "FAIL");
        let info = answer.body["ErrorInfo"].as_str().unwrap();
        assert!(info.contains(reason), "{command}: {info}");
    }
    for topic in [&app.user_topic, &app.group_events_topic, &app.other_topic] {
        assert_eq!(record_count(topic).await, 0, "{topic}");
    }
}
