//! tim-kafka-bridge: Tencent Cloud IM callbacks in, one normalized event per callback
//! out on Kafka, keyed by MsgKey.
//!
//! - [`settings`]: the typed configuration, from a TOML file and `TIM_BRIDGE_*` variables.
//! - [`tencent`]: the callback protocol — query, signature, bodies as validated types.
//! - [`event`]: the event contract, a CloudEvents envelope, and normalization into it.

pub mod event;
pub mod settings;
pub mod tencent;
