//! Callback bodies. Everything but the command and the accounts may be absent (the
//! oldest page's example has neither MsgKey nor MsgSeq); unknown fields are ignored.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::before;
use super::command::{self, Typed};
use super::element::TencentElement;
use super::family::*;
use super::groups::{GroupChange, GroupMsgExtension, GroupReadReceipt};
use super::invalid::{field_path, without_values, Invalid};
use super::lenient::field;
use super::users::{PairList, PortraitSet, StateChange};

/// `C2C.CallbackAfterSendMsg`, and the same shape for `C2C.CallbackAfterModifyMsg`
/// (with `Operator_Account`) and `C2C.CallbackBeforeSendMsg`.
#[derive(Debug, Deserialize)]
pub struct AfterSendMsg {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgSeq", default, deserialize_with = "field")]
    pub msg_seq: Option<u32>,
    #[serde(rename = "MsgRandom", default, deserialize_with = "field")]
    pub msg_random: Option<u32>,
    #[serde(rename = "MsgTime", default, deserialize_with = "field")]
    pub msg_time: Option<u64>,
    #[serde(rename = "MsgKey", default, deserialize_with = "field")]
    pub msg_key: Option<String>,
    #[serde(rename = "MsgId", default, deserialize_with = "field")]
    pub msg_id: Option<String>,
    #[serde(rename = "OnlineOnlyFlag", default, deserialize_with = "field")]
    pub online_only_flag: Option<i64>,
    #[serde(rename = "SendMsgResult", default, deserialize_with = "field")]
    pub send_msg_result: Option<i64>,
    #[serde(rename = "ErrorInfo", default, deserialize_with = "field")]
    pub error_info: Option<String>,
    #[serde(rename = "UnreadMsgNum", default, deserialize_with = "field")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Option<Vec<TencentElement>>,
    #[serde(rename = "CloudCustomData", default, deserialize_with = "field")]
    pub cloud_custom_data: Option<String>,
    /// Milliseconds.
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
    /// Who edited the message (`C2C.CallbackAfterModifyMsg` only).
    #[serde(rename = "Operator_Account", default, deserialize_with = "field")]
    pub operator: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AfterMsgWithdraw {
    #[serde(rename = "CallbackCommand")]
    pub command: String,
    #[serde(rename = "From_Account")]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: String,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    #[serde(rename = "UnreadMsgNum", default, deserialize_with = "field")]
    pub unread_msg_num: Option<i64>,
    #[serde(rename = "EventTime", default, deserialize_with = "field")]
    pub event_time: Option<u64>,
}

/// What every command's body shares.
#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "CallbackCommand")]
    command: String,
    #[serde(rename = "MsgKey", default)]
    msg_key: Option<Value>,
}

#[derive(Debug)]
pub enum Callback {
    Sent(AfterSendMsg),
    Modified(AfterSendMsg),
    /// A before-send callback the settings ask to publish; it is answered "allow" either way.
    PreSend(AfterSendMsg),
    Withdrawn(AfterMsgWithdraw),
    ReadReceipt(AfterMsgReadReceipt),
    ReadReport(AfterMsgReport),
    ReadAll(AfterMsgReadAll),
    Extension(AfterC2CMsgExtension),
    GroupSent(GroupAfterSendMsg),
    GroupRecalled(GroupAfterRecallMsg),
    GroupRead(GroupReadReceipt),
    GroupExtension(GroupMsgExtension),
    StateChanged(StateChange),
    ProfileChanged(PortraitSet),
    Relation(Relation, PairList),
    Group(GroupKind, GroupChange),
    /// A before-callback: answered "allow" and not forwarded.
    Before(String),
    Other {
        command: String,
        msg_key: Option<String>,
    },
}

/// Which topic family a callback's events belong to (`kafka.topic`, `group_topic`,
/// `user_topic`, `group_events_topic`, `other_topic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// One-to-one messages, keyed so that a message's story shares a partition.
    C2c,
    Group,
    /// Keyed `user:<account>`.
    Users,
    /// The group lifecycle, keyed `group:<id>`.
    GroupEvents,
    /// Published raw: other commands and before-callbacks.
    Other,
}

impl Callback {
    /// No wildcard: a new variant does not compile until its family is chosen.
    pub fn family(&self) -> Family {
        match self {
            Callback::Sent(_)
            | Callback::Modified(_)
            | Callback::Withdrawn(_)
            | Callback::ReadReceipt(_)
            | Callback::ReadReport(_)
            | Callback::ReadAll(_)
            | Callback::Extension(_) => Family::C2c,
            Callback::GroupSent(_)
            | Callback::GroupRecalled(_)
            | Callback::GroupRead(_)
            | Callback::GroupExtension(_) => Family::Group,
            Callback::StateChanged(_) | Callback::ProfileChanged(_) | Callback::Relation(..) => {
                Family::Users
            }
            Callback::Group(..) => Family::GroupEvents,
            Callback::PreSend(_) | Callback::Before(_) | Callback::Other { .. } => Family::Other,
        }
    }

    pub fn command(&self) -> &str {
        match self {
            Callback::Sent(_) => command::AFTER_SEND_MSG,
            Callback::Modified(_) => command::AFTER_MODIFY_MSG,
            Callback::PreSend(_) => command::BEFORE_SEND_MSG,
            Callback::Withdrawn(_) => command::AFTER_MSG_WITHDRAW,
            Callback::ReadReceipt(_) => command::AFTER_MSG_READ_RECEIPT,
            Callback::ReadReport(_) => command::AFTER_MSG_REPORT,
            Callback::ReadAll(_) => command::AFTER_MSG_READ_ALL,
            Callback::Extension(_) => command::AFTER_C2C_MSG_EXTENSION,
            Callback::GroupSent(_) => command::GROUP_AFTER_SEND_MSG,
            Callback::GroupRecalled(_) => command::GROUP_AFTER_RECALL_MSG,
            Callback::GroupRead(r) => &r.command,
            Callback::GroupExtension(e) => &e.command,
            Callback::StateChanged(s) => &s.command,
            Callback::ProfileChanged(p) => &p.command,
            Callback::Relation(_, p) => &p.command,
            Callback::Group(_, g) => &g.command,
            Callback::Before(command) | Callback::Other { command, .. } => command,
        }
    }

    /// Parses a body for the query's command (or the body's own, when the query has none).
    /// The error names the field at fault.
    pub fn parse(
        query_command: Option<&str>,
        body: &[u8],
        publish_before_callbacks: bool,
    ) -> Result<Self, Invalid> {
        let command = match query_command {
            Some(c) => c.to_owned(),
            None => {
                serde_json::from_slice::<Head>(body)
                    .map_err(|_| explain::<Head>(body))?
                    .command
            }
        };
        let c = command.as_str();
        if c == command::BEFORE_SEND_MSG && publish_before_callbacks {
            let sent: AfterSendMsg = parse(c, body)?;
            agree(c, &sent.command)?;
            present(&[("From_Account", &sent.from), ("To_Account", &sent.to)])?;
            return Ok(Callback::PreSend(sent));
        }
        if let Some(typed) = Typed::parse(c) {
            return Self::parse_typed(typed, body);
        }
        let head: Head = parse(c, body)?;
        agree(c, &head.command)?;
        if before::is_before(c) && !publish_before_callbacks {
            return Ok(Callback::Before(command));
        }
        let msg_key = match head.msg_key {
            Some(Value::String(k)) if !k.is_empty() => Some(k),
            _ => None,
        };
        Ok(Callback::Other { command, msg_key })
    }

    /// One branch per typed command, no wildcard.
    fn parse_typed(typed: Typed, body: &[u8]) -> Result<Self, Invalid> {
        use Typed as T;
        let c = typed.as_str();
        Ok(match typed {
            T::AfterSendMsg | T::AfterModifyMsg => {
                let sent: AfterSendMsg = parse(c, body)?;
                agree(c, &sent.command)?;
                present(&[("From_Account", &sent.from), ("To_Account", &sent.to)])?;
                if typed == T::AfterSendMsg {
                    Callback::Sent(sent)
                } else {
                    present(&[("MsgKey", sent.msg_key.as_deref().unwrap_or(""))])?;
                    Callback::Modified(sent)
                }
            }
            T::AfterMsgWithdraw => {
                let w: AfterMsgWithdraw = parse(c, body)?;
                agree(c, &w.command)?;
                present(&[
                    ("From_Account", &w.from),
                    ("To_Account", &w.to),
                    ("MsgKey", &w.msg_key),
                ])?;
                Callback::Withdrawn(w)
            }
            T::AfterMsgReadReceipt => {
                let r: AfterMsgReadReceipt = parse(c, body)?;
                agree(c, &r.command)?;
                if r.infos.is_empty() {
                    return Err(Invalid::EmptyList("C2CMsgInfo"));
                }
                for (i, info) in r.infos.iter().enumerate() {
                    present(&[("MsgKey", &info.msg_key)])
                        .map_err(|e| e.within(&format!("C2CMsgInfo[{i}]")))?;
                }
                Callback::ReadReceipt(r)
            }
            T::AfterMsgReport => {
                let r: AfterMsgReport = parse(c, body)?;
                agree(c, &r.command)?;
                present(&[("Report_Account", &r.reporter), ("Peer_Account", &r.peer)])?;
                Callback::ReadReport(r)
            }
            T::AfterMsgReadAll => {
                let r: AfterMsgReadAll = parse(c, body)?;
                agree(c, &r.command)?;
                present(&[("Report_Account", &r.reporter)])?;
                Callback::ReadAll(r)
            }
            T::AfterC2cMsgExtension => {
                let e: AfterC2CMsgExtension = parse(c, body)?;
                agree(c, &e.command)?;
                present(&[
                    ("From_Account", &e.from),
                    ("To_Account", &e.to),
                    ("MsgKey", &e.msg_key),
                ])?;
                Callback::Extension(e)
            }
            T::GroupAfterSendMsg => {
                let g: GroupAfterSendMsg = parse(c, body)?;
                agree(c, &g.command)?;
                present(&[("GroupId", &g.group_id)])?;
                Callback::GroupSent(g)
            }
            T::GroupAfterRecallMsg => {
                let g: GroupAfterRecallMsg = parse(c, body)?;
                agree(c, &g.command)?;
                present(&[("GroupId", &g.group_id)])?;
                if g.msg_seq_list.is_empty() {
                    return Err(Invalid::EmptyList("MsgSeqList"));
                }
                Callback::GroupRecalled(g)
            }
            T::GroupAfterReadReceipt => {
                let r: GroupReadReceipt = parse(c, body)?;
                agree(c, &r.command)?;
                present(&[("GroupId", &r.group_id)])?;
                if r.receipts.is_empty() {
                    return Err(Invalid::EmptyList("GroupMsgReceiptList"));
                }
                Callback::GroupRead(r)
            }
            T::GroupAfterMsgExtension => {
                let e: GroupMsgExtension = parse(c, body)?;
                agree(c, &e.command)?;
                present(&[("GroupId", &e.group_id)])?;
                Callback::GroupExtension(e)
            }
            T::StateChange => {
                let s: StateChange = parse(c, body)?;
                agree(c, &s.command)?;
                present(&[
                    ("Info.To_Account", &s.info.account),
                    ("Info.Action", &s.info.action),
                ])?;
                Callback::StateChanged(s)
            }
            T::PortraitSet => {
                let p: PortraitSet = parse(c, body)?;
                agree(c, &p.command)?;
                present(&[("From_Account", &p.from)])?;
                Callback::ProfileChanged(p)
            }
            T::FriendAdd => Self::relation(Relation::FriendAdded, c, body)?,
            T::FriendDelete => Self::relation(Relation::FriendDeleted, c, body)?,
            T::BlacklistAdd => Self::relation(Relation::BlocklistAdded, c, body)?,
            T::BlacklistDelete => Self::relation(Relation::BlocklistRemoved, c, body)?,
            T::GroupCreated => Self::group(GroupKind::Created, c, body)?,
            T::GroupMemberJoin => Self::group(GroupKind::MembersJoined, c, body)?,
            T::GroupMemberExit => Self::group(GroupKind::MembersExited, c, body)?,
            T::GroupInfoChanged => Self::group(GroupKind::InfoChanged, c, body)?,
            T::GroupOwnerChanged => Self::group(GroupKind::OwnerChanged, c, body)?,
            T::GroupDestroyed => Self::group(GroupKind::Destroyed, c, body)?,
            T::TopicCreated => Self::group(GroupKind::TopicCreated, c, body)?,
            T::TopicInfoChanged => Self::group(GroupKind::TopicInfoChanged, c, body)?,
            T::TopicDestroyed => Self::group(GroupKind::TopicsDestroyed, c, body)?,
        })
    }

    fn relation(relation: Relation, c: &str, body: &[u8]) -> Result<Self, Invalid> {
        let p: PairList = parse(c, body)?;
        agree(c, &p.command)?;
        if p.pairs.is_empty() {
            return Err(Invalid::EmptyList("PairList"));
        }
        for (i, pair) in p.pairs.iter().enumerate() {
            present(&[("From_Account", &pair.from), ("To_Account", &pair.to)])
                .map_err(|e| e.within(&format!("PairList[{i}]")))?;
        }
        Ok(Callback::Relation(relation, p))
    }

    fn group(kind: GroupKind, c: &str, body: &[u8]) -> Result<Self, Invalid> {
        let g: GroupChange = parse(c, body)?;
        agree(c, &g.command)?;
        present(&[("GroupId", &g.group_id)])?;
        kind.check(&g)?;
        Ok(Callback::Group(kind, g))
    }
}

/// Parses plainly; only a body that fails is parsed again, tracking the path, so the
/// error names the field (a third of the parse time, spent only on bad input).
/// A body of another command than `command` says so, rather than which of
/// `command`'s fields it lacks.
fn parse<T: DeserializeOwned>(command: &str, body: &[u8]) -> Result<T, Invalid> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) => {
            if let Ok(head) = serde_json::from_slice::<Head>(body) {
                agree(command, &head.command)?;
            }
            Err(explain::<T>(body))
        }
    }
}

fn explain<T: DeserializeOwned>(body: &[u8]) -> Invalid {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Invalid::NotJson(without_values(&inner.to_string()))
            } else {
                Invalid::Field {
                    path: field_path(&path),
                    reason: without_values(&inner.to_string()),
                }
            }
        }
        Ok(_) => match de.end() {
            Err(e) => Invalid::NotJson(without_values(&e.to_string())),
            Ok(()) => Invalid::NotJson("the body cannot be read".into()),
        },
    }
}

fn agree(query: &str, body: &str) -> Result<(), Invalid> {
    if query == body {
        Ok(())
    } else {
        Err(Invalid::CommandMismatch {
            query: query.to_owned(),
            body: body.to_owned(),
        })
    }
}

/// Fields that must not be empty strings.
fn present(fields: &[(&str, &str)]) -> Result<(), Invalid> {
    match fields.iter().find(|(_, value)| value.is_empty()) {
        Some((name, _)) => Err(Invalid::Empty((*name).to_owned())),
        None => Ok(()),
    }
}

/// The relationship callbacks, one event per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    FriendAdded,
    FriendDeleted,
    BlocklistAdded,
    BlocklistRemoved,
}

/// The group lifecycle callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Created,
    MembersJoined,
    MembersExited,
    InfoChanged,
    OwnerChanged,
    Destroyed,
    TopicCreated,
    TopicInfoChanged,
    TopicsDestroyed,
}

impl GroupKind {
    /// The fields this command cannot do without.
    fn check(self, g: &GroupChange) -> Result<(), Invalid> {
        let members = |list: &Option<Vec<super::groups::Member>>, name: &'static str| {
            let list = list.as_deref().unwrap_or_default();
            if list.is_empty() {
                return Err(Invalid::EmptyList(name));
            }
            for (i, m) in list.iter().enumerate() {
                present(&[("Member_Account", &m.account)])
                    .map_err(|e| e.within(&format!("{name}[{i}]")))?;
            }
            Ok(())
        };
        match self {
            GroupKind::MembersJoined => members(&g.new_member_list, "NewMemberList"),
            GroupKind::MembersExited => members(&g.exit_member_list, "ExitMemberList"),
            GroupKind::OwnerChanged => {
                present(&[("NewOwner_Account", g.new_owner.as_deref().unwrap_or(""))])
            }
            GroupKind::TopicCreated => present(&[("TopicId", g.topic_id.as_deref().unwrap_or(""))]),
            GroupKind::TopicsDestroyed => {
                let list = g.topic_id_list.as_deref().unwrap_or_default();
                if list.is_empty() {
                    return Err(Invalid::EmptyList("TopicIdList"));
                }
                match list.iter().position(|t| t.is_empty()) {
                    Some(i) => Err(Invalid::Empty(format!("TopicIdList[{i}]"))),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
