//! The filter and the plan of a replay.

use super::*;
use serde_json::json;

fn sent(from: &str, to: &str) -> Value {
    json!({"type": "tim.c2c.message.sent", "data": {"from": from, "to": to}})
}

#[test]
fn filters_select_by_type_user_and_conversation() {
    let by_user = Filter {
        user: Some("a".into()),
        ..Default::default()
    };
    assert!(by_user.admits(&sent("a", "b")) && by_user.admits(&sent("c", "a")));
    assert!(!by_user.admits(&sent("b", "c")));
    let by_pair = Filter {
        conversation: Some(("a".into(), "b".into())),
        ..Default::default()
    };
    assert!(by_pair.admits(&sent("b", "a")) && !by_pair.admits(&sent("a", "c")));
    let by_type = Filter {
        types: vec!["tim.c2c.message.withdrawn".into()],
        ..Default::default()
    };
    assert!(!by_type.admits(&sent("a", "b")));
    assert!(Filter::default().admits(&sent("a", "b")));
}

#[test]
fn filters_select_user_and_group_events_by_user_and_by_im_group() {
    let login = json!({"type": "tim.user.state_changed", "data": {"account": "a"}});
    let friend = json!({"type": "tim.user.friend_added", "data": {"account": "b", "peer": "a"}});
    let joined =
        json!({"type": "tim.group.member_joined", "data": {"group_id": "g1", "member": "a"}});
    let topic =
        json!({"type": "tim.group.topic_created", "data": {"group_id": "g1", "topic_id": "t1"}});
    let by_user = Filter {
        user: Some("a".into()),
        ..Default::default()
    };
    assert!([&login, &friend, &joined].iter().all(|e| by_user.admits(e)));
    assert!(!by_user.admits(&topic));
    let by_group = |g: &str| Filter {
        im_group: Some(g.into()),
        ..Default::default()
    };
    assert!(by_group("g1").admits(&joined) && by_group("g1").admits(&topic));
    assert!(by_group("t1").admits(&topic) && !by_group("t1").admits(&joined));
    assert!(!by_group("g1").admits(&login));
}
