//! Why a callback's query or body cannot be taken: one type for every check, so that
//! the HTTP side answers each the same way and the message names what is wrong.

use std::fmt;

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
            Invalid::CommandMismatch { query, body } => write!(
                f,
                "CallbackCommand in the body ({body}) differs from the query's ({query})"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::Invalid;
    use crate::tencent::{command, Callback, CallbackQuery};

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
}
