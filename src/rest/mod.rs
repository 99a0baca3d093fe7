//! Tencent's REST API: the client the reconciler pulls message history with.

pub mod client;
pub mod history;
pub mod usersig;
