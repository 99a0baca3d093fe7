//! Why a callback's query or body cannot be taken: one type for every check, so that
//! the HTTP side answers each the same way and the message names what is wrong.

use std::fmt;

use crate::settings::printable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A query parameter given more than once (refused rather than guessed at).
    RepeatedParameter(&'static str),
    /// The body is not JSON, or not JSON a consumer can read.
    NotJson(String),
    /// A field is missing or of the wrong type: where (`MsgBody[0].MsgContent.Text`),
    /// and serde's words for what is wrong.
    Field { path: String, reason: String },
    /// A field that must name something is an empty string.
    Empty(String),
    /// A list that must hold at least one item holds none.
    EmptyList(&'static str),
    /// The body's `CallbackCommand` is not the query's.
    CommandMismatch { query: String, body: String },
}

impl Invalid {
    /// The same error, one level deeper: `MsgKey is empty` → `C2CMsgInfo[2].MsgKey is empty`.
    pub fn within(self, parent: &str) -> Self {
        match self {
            Invalid::Field { path, reason } => Invalid::Field {
                path: format!("{parent}.{path}"),
                reason,
            },
            Invalid::Empty(field) => Invalid::Empty(format!("{parent}.{field}")),
            other => other,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::RepeatedParameter(name) => {
                write!(f, "query parameter {name} is given more than once")
            }
            Invalid::NotJson(reason) => write!(f, "the body is not JSON: {reason}"),
            Invalid::Field { path, reason } if path.is_empty() || path == "." => {
                f.write_str(reason)
            }
            Invalid::Field { path, reason } => write!(f, "{path}: {reason}"),
            Invalid::Empty(field) => write!(f, "{field} is empty"),
            Invalid::EmptyList(field) => write!(f, "{field} is empty"),
            // Neither value is echoed: both are the caller's text.
            Invalid::CommandMismatch { .. } => {
                f.write_str("CallbackCommand in the body differs from the query's")
            }
        }
    }
}

/// serde's words for what is wrong, without the value they quote (a message text, an
/// account id): `invalid type: string "hi", expected u64` → `invalid type: a string,
/// expected u64`. Whatever else quotes something is replaced whole.
pub(crate) fn without_values(message: &str) -> String {
    let expected = |rest: &str| {
        rest.rfind(", expected ")
            .or_else(|| rest.rfind(", there are no"))
            .map_or("", |at| &rest[at..])
            .to_owned()
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return format!("{prefix}{}{}", kind(rest), expected(rest));
        }
    }
    for prefix in ["unknown variant ", "unknown field "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return format!("{}{}", prefix.trim_end(), expected(rest));
        }
    }
    let ours = ["missing field `", "duplicate field `", "invalid length "]
        .iter()
        .any(|p| message.starts_with(p));
    if ours || !message.contains(['"', '`', '\'', '\\']) {
        printable(message, 200)
    } else {
        "is not of the expected shape".into()
    }
}

/// What serde found, as a kind: `string "…"` → `a string`.
fn kind(unexpected: &str) -> &'static str {
    [
        ("string", "a string"),
        ("integer", "an integer"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("character", "a character"),
        ("byte array", "bytes"),
        ("null", "null"),
        ("map", "an object"),
        ("sequence", "an array"),
        ("unit", "null"),
    ]
    .iter()
    .find(|(word, _)| unexpected.starts_with(word))
    .map_or("a value", |(_, kind)| kind)
}

/// A field's path as serde names it, kept only while it looks like one.
pub(crate) fn field_path(path: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.[]-?".contains(c);
    match path.find(|c: char| !plain(c)) {
        None => printable(path, 128),
        Some(at) => format!("{}…", printable(&path[..at], 128)),
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::{without_values, Invalid};
    use crate::tencent::{command, Callback, CallbackQuery};

    #[test]
    fn a_reason_names_the_field_and_the_kind_of_problem_never_the_value() {
        for body in [
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgBody":"SECRET_TEXT"}"#,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":987654321,"MsgBody":[]}"#,
            r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":["SECRET_TEXT"]}}]}"#,
        ] {
            let error = Callback::parse(Some(command::AFTER_SEND_MSG), body.as_bytes(), false)
                .and_then(|c| {
                    let ctx = crate::event::Context {
                        sdk_app_id: 1,
                        command: command::AFTER_SEND_MSG,
                        client_ip: None,
                        platform: None,
                        received_at: std::time::SystemTime::now(),
                        origin: None,
                    };
                    crate::event::normalize(&ctx, c, body.as_bytes()).map(|_| ())
                })
                .unwrap_err()
                .to_string();
            assert!(
                !error.contains("SECRET") && !error.contains("987654321"),
                "{error}"
            );
            assert!(error.contains("invalid type: "), "{error}");
        }
        assert_eq!(
            without_values(r#"invalid type: string "x, expected y", expected a sequence"#),
            "invalid type: a string, expected a sequence"
        );
        assert_eq!(
            without_values("unknown variant `SECRET`, expected `a` or `b`"),
            "unknown variant, expected `a` or `b`"
        );
        assert_eq!(
            without_values("custom \"SECRET\""),
            "is not of the expected shape"
        );
    }

    #[test]
    fn each_check_says_what_it_found_as_a_value_not_only_as_words() {
        assert_eq!(
            CallbackQuery::parse("Sign=a&sign=b").unwrap_err(),
            Invalid::RepeatedParameter("Sign")
        );
        let receipt = r#"{"CallbackCommand":"C2C.CallbackAfterMsgReadReceipt","C2CMsgInfo":[{"MsgKey":"","From_Account":"a","To_Account":"b"}]}"#;
        let error = Callback::parse(
            Some(command::AFTER_MSG_READ_RECEIPT),
            receipt.as_bytes(),
            false,
        )
        .unwrap_err();
        assert_eq!(error, Invalid::Empty("C2CMsgInfo[0].MsgKey".into()));
        assert_eq!(error.to_string(), "C2CMsgInfo[0].MsgKey is empty");
        let other = Callback::parse(
            Some(command::AFTER_SEND_MSG),
            b"{\"CallbackCommand\":\"C2C.X\",\"From_Account\":\"a\",\"To_Account\":\"b\"}",
            false,
        )
        .unwrap_err();
        assert!(
            matches!(other, Invalid::CommandMismatch { .. }),
            "{other:?}"
        );
    }

    #[test]
    fn a_body_of_another_command_says_so_rather_than_naming_a_missing_field() {
        let c2c_body = br#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgBody":[]}"#;
        let error =
            Callback::parse(Some("Group.CallbackAfterSendMsg"), c2c_body, false).unwrap_err();
        assert!(
            matches!(error, Invalid::CommandMismatch { .. }),
            "{error:?}"
        );
    }
}
