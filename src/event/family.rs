//! Normalization of the rest of the message family: read receipts and reports,
//! extensions, and group messages.

use super::{
    body, common, conversation_key, event, group_message_key, occurred, seconds_rfc3339, AllRead,
    Context, ConversationRead, EventType, ExtensionEntry, GroupMessageRecalled, GroupMessageSent,
    GroupReadUpTo, MessageExtensionChanged, MessageRead, Normalized,
};
use crate::tencent::family::*;
use crate::tencent::Invalid;

pub(super) fn read_receipts(ctx: &Context, receipt: AfterMsgReadReceipt) -> Vec<Normalized> {
    let time = occurred(receipt.event_time, None);
    receipt
        .infos
        .into_iter()
        .map(|info| {
            let key = info.msg_key.clone();
            let data = MessageRead {
                sdk_app_id: ctx.sdk_app_id,
                msg_key: info.msg_key,
                from: info.from,
                to: info.to,
                msg_id: info.msg_id,
                common: common(ctx, receipt.event_time),
            };
            event(
                ctx,
                key.as_bytes(),
                EventType::MessageRead,
                time.clone(),
                Some(&key),
                data,
            )
        })
        .collect()
}

pub(super) fn read_report(ctx: &Context, report: AfterMsgReport, raw_body: &[u8]) -> Normalized {
    let key = conversation_key(&report.reporter, &report.peer);
    let data = ConversationRead {
        sdk_app_id: ctx.sdk_app_id,
        last_read_time: report.last_read_time,
        last_read_time_rfc3339: report.last_read_time.and_then(seconds_rfc3339),
        unread_count: report.unread_msg_num,
        reader: report.reporter,
        peer: report.peer,
        common: common(ctx, report.event_time),
    };
    let time = occurred(report.event_time, report.last_read_time);
    event(
        ctx,
        raw_body,
        EventType::ConversationRead,
        time,
        Some(&key),
        data,
    )
}

pub(super) fn read_all(ctx: &Context, all: AfterMsgReadAll, raw_body: &[u8]) -> Normalized {
    let key = format!("user:{}", all.reporter);
    let data = AllRead {
        sdk_app_id: ctx.sdk_app_id,
        reader: all.reporter,
        groups: all.group_read_info.map(|groups| {
            groups
                .into_iter()
                .map(|g| GroupReadUpTo {
                    group_id: g.group_id,
                    msg_seq: g.msg_seq,
                })
                .collect()
        }),
        common: common(ctx, all.event_time),
    };
    event(
        ctx,
        raw_body,
        EventType::AllRead,
        occurred(all.event_time, None),
        Some(&key),
        data,
    )
}

pub(super) fn extension(ctx: &Context, ext: AfterC2CMsgExtension, raw_body: &[u8]) -> Normalized {
    let key = ext.msg_key.clone();
    let data = MessageExtensionChanged {
        sdk_app_id: ctx.sdk_app_id,
        msg_key: ext.msg_key,
        from: ext.from,
        to: ext.to,
        operate_type: ext.operate_type,
        extensions: ext.extension_list.map(|list| {
            list.into_iter()
                .map(|e| ExtensionEntry {
                    key: e.key,
                    value: e.value,
                    seq: e.seq,
                })
                .collect()
        }),
        seq: ext.seq,
        common: common(ctx, ext.event_time),
    };
    let time = occurred(ext.event_time, None);
    event(
        ctx,
        raw_body,
        EventType::MessageExtensionChanged,
        time,
        Some(&key),
        data,
    )
}

pub(super) fn group_sent(ctx: &Context, g: GroupAfterSendMsg) -> Result<Normalized, Invalid> {
    let key = group_message_key(&g.group_id, g.topic_id.as_deref(), g.msg_seq);
    let data = GroupMessageSent {
        sdk_app_id: ctx.sdk_app_id,
        msg_key: key.clone(),
        body: body(&g.msg_body)?,
        group_id: g.group_id,
        group_type: g.group_type,
        topic_id: g.topic_id,
        from: g.from,
        operator: g.operator,
        msg_seq: g.msg_seq,
        msg_random: g.random,
        msg_time: g.msg_time,
        msg_time_rfc3339: g.msg_time.and_then(seconds_rfc3339),
        msg_id: g.msg_id,
        online_only: g.online_only_flag.map(|f| f == 1),
        cloud_custom_data: g.cloud_custom_data,
        common: common(ctx, g.event_time),
    };
    let time = occurred(g.event_time, g.msg_time);
    Ok(event(
        ctx,
        key.as_bytes(),
        EventType::GroupMessageSent,
        time,
        Some(&key),
        data,
    ))
}

pub(super) fn group_recalled(ctx: &Context, g: GroupAfterRecallMsg) -> Vec<Normalized> {
    let time = occurred(g.event_time, None);
    g.msg_seq_list
        .iter()
        .map(|recalled| {
            let key = group_message_key(&g.group_id, g.topic_id.as_deref(), recalled.msg_seq);
            let data = GroupMessageRecalled {
                sdk_app_id: ctx.sdk_app_id,
                msg_key: key.clone(),
                group_id: g.group_id.clone(),
                group_type: g.group_type.clone(),
                topic_id: g.topic_id.clone(),
                operator: g.operator.clone(),
                msg_seq: recalled.msg_seq,
                common: common(ctx, g.event_time),
            };
            event(
                ctx,
                key.as_bytes(),
                EventType::GroupMessageRecalled,
                time.clone(),
                Some(&key),
                data,
            )
        })
        .collect()
}
