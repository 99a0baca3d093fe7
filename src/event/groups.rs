//! Normalization of the group lifecycle (keyed `group:<GroupId>`, a topic's own events
//! `group:<TopicId>`) and of group read receipts and extensions (keyed like the message).

use super::{common, event, group_message_key, occurred, Context, EventType, Normalized};
use crate::tencent::body::GroupKind;
use crate::tencent::groups::{GroupChange, GroupMsgExtension, GroupReadReceipt, Member};
use tim_event::{
    group_key, ExtensionEntry, GroupCreated, GroupDestroyed, GroupInfoChanged, GroupMemberChanged,
    GroupMessageExtensionChanged, GroupMessageRead, GroupOwnerChanged, UserDefinedData,
};

fn accounts(list: Option<Vec<Member>>) -> Option<Vec<String>> {
    list.map(|members| members.into_iter().map(|m| m.account).collect())
}

pub(super) fn lifecycle(
    ctx: &Context,
    kind: GroupKind,
    g: GroupChange,
    raw_body: &[u8],
) -> Vec<Normalized> {
    let time = occurred(g.event_time, None);
    let group = group_key(&g.group_id);
    match kind {
        GroupKind::Created | GroupKind::TopicCreated => {
            let (event_type, key) = match (&kind, &g.topic_id) {
                (GroupKind::TopicCreated, Some(topic)) => {
                    (EventType::GroupTopicCreated, group_key(topic))
                }
                _ => (EventType::GroupCreated, group.clone()),
            };
            let data = GroupCreated {
                sdk_app_id: ctx.sdk_app_id,
                group_id: g.group_id,
                topic_id: g.topic_id,
                group_type: g.group_type,
                operator: g.operator,
                owner: g.owner,
                name: g.name,
                introduction: g.introduction,
                notification: g.notification,
                face_url: g.face_url,
                members: accounts(g.member_list),
                user_defined_data: g.user_defined_data.map(|list| {
                    list.into_iter()
                        .map(|d| UserDefinedData {
                            key: d.key,
                            value: d.value,
                        })
                        .collect()
                }),
                common: common(ctx, g.event_time),
            };
            vec![event(ctx, raw_body, event_type, time, Some(&key), data)]
        }
        GroupKind::MembersJoined | GroupKind::MembersExited => {
            let (event_type, members) = if kind == GroupKind::MembersJoined {
                (EventType::GroupMemberJoined, g.new_member_list)
            } else {
                (EventType::GroupMemberExited, g.exit_member_list)
            };
            members
                .unwrap_or_default()
                .into_iter()
                .map(|m| {
                    let identity = [raw_body, &[0x1f], m.account.as_bytes()].concat();
                    let data = GroupMemberChanged {
                        sdk_app_id: ctx.sdk_app_id,
                        group_id: g.group_id.clone(),
                        member: m.account,
                        group_type: g.group_type.clone(),
                        operator: g.operator.clone(),
                        join_type: g.join_type.clone(),
                        exit_type: g.exit_type.clone(),
                        common: common(ctx, g.event_time),
                    };
                    event(ctx, &identity, event_type, time.clone(), Some(&group), data)
                })
                .collect()
        }
        GroupKind::InfoChanged | GroupKind::TopicInfoChanged => {
            let (event_type, key) = match (&kind, &g.topic_id) {
                (GroupKind::TopicInfoChanged, Some(topic)) => {
                    (EventType::GroupTopicInfoChanged, group_key(topic))
                }
                (GroupKind::TopicInfoChanged, None) => {
                    (EventType::GroupTopicInfoChanged, group.clone())
                }
                _ => (EventType::GroupInfoChanged, group.clone()),
            };
            let data = GroupInfoChanged {
                sdk_app_id: ctx.sdk_app_id,
                group_id: g.group_id,
                topic_id: g.topic_id,
                group_type: g.group_type,
                operator: g.operator,
                name: g.name,
                introduction: g.introduction,
                notification: g.notification,
                face_url: g.face_url,
                common: common(ctx, g.event_time),
            };
            vec![event(ctx, raw_body, event_type, time, Some(&key), data)]
        }
        GroupKind::OwnerChanged => {
            let data = GroupOwnerChanged {
                sdk_app_id: ctx.sdk_app_id,
                group_id: g.group_id,
                new_owner: g.new_owner.unwrap_or_default(),
                old_owner: g.old_owner,
                group_type: g.group_type,
                operator: g.operator,
                common: common(ctx, g.event_time),
            };
            vec![event(
                ctx,
                raw_body,
                EventType::GroupOwnerChanged,
                time,
                Some(&group),
                data,
            )]
        }
        GroupKind::Destroyed => {
            let data = GroupDestroyed {
                sdk_app_id: ctx.sdk_app_id,
                group_id: g.group_id,
                topic_id: None,
                group_type: g.group_type,
                owner: g.owner,
                name: g.name,
                members: accounts(g.member_list),
                common: common(ctx, g.event_time),
            };
            vec![event(
                ctx,
                raw_body,
                EventType::GroupDestroyed,
                time,
                Some(&group),
                data,
            )]
        }
        GroupKind::TopicsDestroyed => g
            .topic_id_list
            .unwrap_or_default()
            .into_iter()
            .map(|topic| {
                let key = group_key(&topic);
                let identity = [raw_body, &[0x1f], topic.as_bytes()].concat();
                let data = GroupDestroyed {
                    sdk_app_id: ctx.sdk_app_id,
                    group_id: g.group_id.clone(),
                    topic_id: Some(topic),
                    group_type: g.group_type.clone(),
                    owner: None,
                    name: None,
                    members: None,
                    common: common(ctx, g.event_time),
                };
                event(
                    ctx,
                    &identity,
                    EventType::GroupTopicDestroyed,
                    time.clone(),
                    Some(&key),
                    data,
                )
            })
            .collect(),
    }
}

/// One event per message of the receipt, on that message's key.
pub(super) fn read_receipt(ctx: &Context, r: GroupReadReceipt, raw_body: &[u8]) -> Vec<Normalized> {
    let time = occurred(r.event_time, None);
    r.receipts
        .into_iter()
        .map(|receipt| {
            let key = group_message_key(&r.group_id, None, receipt.msg_seq);
            let identity = [raw_body, &[0x1f], key.as_bytes()].concat();
            let data = GroupMessageRead {
                sdk_app_id: ctx.sdk_app_id,
                msg_key: key.clone(),
                group_id: r.group_id.clone(),
                msg_seq: receipt.msg_seq,
                group_type: r.group_type.clone(),
                read_count: receipt.read_num,
                unread_count: receipt.unread_num,
                readers: accounts(receipt.readers),
                common: common(ctx, r.event_time),
            };
            event(
                ctx,
                &identity,
                EventType::GroupMessageRead,
                time.clone(),
                Some(&key),
                data,
            )
        })
        .collect()
}

pub(super) fn extension(ctx: &Context, e: GroupMsgExtension, raw_body: &[u8]) -> Normalized {
    let key = group_message_key(&e.group_id, e.topic_id.as_deref(), e.msg_seq);
    let data = GroupMessageExtensionChanged {
        sdk_app_id: ctx.sdk_app_id,
        msg_key: key.clone(),
        group_id: e.group_id,
        msg_seq: e.msg_seq,
        topic_id: e.topic_id,
        operate_type: e.operate_type,
        extensions: e.extension_list.map(|list| {
            list.into_iter()
                .map(|x| ExtensionEntry {
                    key: x.key,
                    value: x.value,
                    seq: x.seq,
                })
                .collect()
        }),
        seq: e.seq,
        common: common(ctx, e.event_time),
    };
    let time = occurred(e.event_time, None);
    event(
        ctx,
        raw_body,
        EventType::GroupMessageExtensionChanged,
        time,
        Some(&key),
        data,
    )
}
