//! tim-kafka-bridge: Tencent Cloud IM callbacks in, one normalized event per callback
//! out on Kafka, keyed by MsgKey.
//!
//! - [`settings`]: the typed configuration, from a TOML file and `TIM_BRIDGE_*` variables.
//! - [`tencent`]: the callback protocol — query, signature, bodies as validated types.
//! - [`event`]: the event contract, a CloudEvents envelope, and normalization into it.
//! - [`http`]: the server; validation in the documented order, one error type.
//! - [`route`]: which topic an admitted callback's events go to.
//! - [`delivery`]: the core below them all: the record, its fate, the [`delivery::Buffer`]
//!   an answered callback's events wait in (memory, or the [`spool`] on disk) and the
//!   [`delivery::Sink`] they leave by.
//! - [`kafka`]: the producer, topics, readiness, and the forwarder that delivers in order.
//! - [`replay`]: reads the topics back from an offset or a time, for consumers.
//! - [`startup`]: wires them together; [`cli`], [`admin`] and [`dev`] are the command line.
//!
//! No module uses one that uses it back (tests/api/layout.rs checks it).

pub mod admin;
pub mod cli;
pub mod dedup;
pub mod delivery;
pub mod dev;
pub mod event;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod outbound;
pub mod ownership;
pub mod quota;
pub mod reconcile;
pub mod relay;
pub mod replay;
pub mod rest;
pub mod route;
pub mod settings;
pub mod spool;
pub mod startup;
pub mod telemetry;
pub mod tencent;
