//! `tim-kafka-bridge reconcile`: the messages Tencent archived that never reached the
//! topics (the bridge was unreachable, a callback was answered 503 or switched off),
//! published as the callback path would have published them.

pub mod archive;
pub mod events;
