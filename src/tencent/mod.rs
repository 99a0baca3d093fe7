//! The Tencent Cloud IM callback protocol: the query, the signature, and the bodies
//! as validated types.

pub mod before;
pub mod body;
pub mod command;
pub mod element;
pub mod family;
pub mod groups;
mod invalid;
pub use tim_event::lenient;
pub mod query;
pub mod sign;
pub mod users;

pub use body::{AfterMsgWithdraw, AfterSendMsg, Callback, Family};

#[cfg(test)]
mod fuzz_tests;
pub use invalid::Invalid;
pub(crate) use invalid::{field_path, without_values};
pub use query::CallbackQuery;
