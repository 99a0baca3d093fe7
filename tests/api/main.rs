//! Integration tests: the real server on port 0 against a real Kafka-protocol broker,
//! every produced record read back and checked.

mod broker;
mod callbacks;
mod chaos;
mod cluster;
mod command_line;
mod contract;
mod deploy;
mod durability;
mod endpoints;
mod family;
mod faults;
mod helpers;
mod https;
mod kafka_security;
mod layout;
mod lifecycle;
mod limits;
mod load;
mod ordering;
mod queue;
mod readiness;
mod reconcile;
mod refusals;
mod rejections;
mod relay;
mod relay_tls;
mod replay;
mod second_reader;
mod secure;
mod spool_cluster;
mod spool_edges;
mod spool_tool;
mod tls_support;
mod traces;
