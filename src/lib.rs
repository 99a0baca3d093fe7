//! tim-kafka-bridge: Tencent Cloud IM callbacks in, one normalized event per callback
//! out on Kafka, keyed by MsgKey.
//!
//! - [`settings`]: the typed configuration, from a TOML file and `TIM_BRIDGE_*` variables.
//! - [`tencent`]: the callback protocol — query, signature, bodies as validated types.
//! - [`event`]: the event contract, a CloudEvents envelope, and normalization into it.
//! - [`http`]: the server; validation in the documented order, one error type.
//! - [`kafka`]: the producer, topics, readiness, and the forwarder that delivers in order.
//! - [`queue`]: where an answered callback's event waits: memory, or the [`spool`] on disk.
//! - [`replay`]: reads the topics back from an offset or a time, for consumers.
//! - [`startup`]: wires them together; [`cli`] and [`dev`] are the command line.

pub mod cli;
pub mod dedup;
pub mod dev;
pub mod event;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod queue;
pub mod replay;
pub mod settings;
pub mod spool;
pub mod startup;
pub mod tencent;
