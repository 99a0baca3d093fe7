//! Normalization of presence, profile and relationship callbacks: keyed by the user
//! whose state or list changed.

use super::{common, event, occurred, Context, EventType, Normalized};
use crate::tencent::body::Relation;
use crate::tencent::users::{PairList, PortraitSet, StateChange};
use tim_event::{user_key, ProfileItem, UserProfileChanged, UserRelationChanged, UserStateChanged};

pub(super) fn state_changed(ctx: &Context, s: StateChange, raw_body: &[u8]) -> Normalized {
    let key = user_key(&s.info.account);
    let data = UserStateChanged {
        sdk_app_id: ctx.sdk_app_id,
        account: s.info.account,
        action: s.info.action,
        reason: s.info.reason,
        custom_status: s.info.custom_status,
        kicked_platforms: s
            .kicked_device
            .map(|devices| devices.into_iter().filter_map(|d| d.platform).collect()),
        common: common(ctx, s.event_time),
    };
    let time = occurred(s.event_time, None);
    event(
        ctx,
        raw_body,
        EventType::UserStateChanged,
        time,
        Some(&key),
        data,
    )
}

pub(super) fn profile_changed(ctx: &Context, p: PortraitSet, raw_body: &[u8]) -> Normalized {
    let key = user_key(&p.from);
    let data = UserProfileChanged {
        sdk_app_id: ctx.sdk_app_id,
        account: p.from,
        operator: p.operator,
        items: p
            .items
            .into_iter()
            .map(|i| ProfileItem {
                tag: i.tag,
                value: i.value,
            })
            .collect(),
        common: common(ctx, p.event_time),
    };
    let time = occurred(p.event_time, None);
    event(
        ctx,
        raw_body,
        EventType::UserProfileChanged,
        time,
        Some(&key),
        data,
    )
}

/// One event per pair, keyed by the account whose list changed.
pub(super) fn relation_changed(
    ctx: &Context,
    relation: Relation,
    list: PairList,
    raw_body: &[u8],
) -> Vec<Normalized> {
    let event_type = match relation {
        Relation::FriendAdded => EventType::UserFriendAdded,
        Relation::FriendDeleted => EventType::UserFriendDeleted,
        Relation::BlocklistAdded => EventType::UserBlocklistAdded,
        Relation::BlocklistRemoved => EventType::UserBlocklistRemoved,
    };
    let time = occurred(list.event_time, None);
    list.pairs
        .into_iter()
        .map(|pair| {
            let key = user_key(&pair.from);
            let identity = [raw_body, &[0x1f], pair.to.as_bytes()].concat();
            let data = UserRelationChanged {
                sdk_app_id: ctx.sdk_app_id,
                account: pair.from,
                peer: pair.to,
                initiator: pair.initiator,
                client_cmd: list.client_cmd.clone(),
                admin_account: list.admin_account.clone(),
                forced: list.force_flag.map(|f| f == 1),
                common: common(ctx, list.event_time),
            };
            event(ctx, &identity, event_type, time.clone(), Some(&key), data)
        })
        .collect()
}
