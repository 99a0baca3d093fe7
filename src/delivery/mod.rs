//! The delivery core, below everything that decides what to publish: the record, its
//! fate, where records wait between the answer and Kafka ([`Buffer`]), and where they
//! go from there ([`Sink`]). Mechanism only: which topic a callback's events go to is
//! decided above, in [`crate::route`].

pub mod gate;
pub mod memory;
pub mod trace;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use memory::MemoryBuffer;

/// One event, ready for Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub command: String,
    pub sdk_app_id: u64,
    /// When the callback was accepted, unix milliseconds.
    pub accepted_at_ms: u64,
    /// The producer span's context, when tracing is on: written as `traceparent`.
    pub trace: Option<trace::RecordTrace>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Kafka refused it for good (too large, invalid): kept in the dead-letter log.
    DeadLettered,
    /// The bridge shut down before Kafka confirmed it.
    Abandoned,
}

/// Called once with a dispatched record's fate, on whichever thread learns it.
pub type Done = Box<dyn FnOnce(Outcome, &Record) + Send + Sync>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a callback's events were not taken; the callback is answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    QueueFull,
    SpoolFull,
    SpoolFailed,
    ShuttingDown,
}

#[derive(Debug, Default)]
pub struct ShutdownReport {
    pub delivered: u64,
    /// `ack = memory`: keys of the events lost because Kafka had not confirmed them.
    pub unconfirmed: Vec<String>,
    /// `ack = durable`: events left in the spool for the next start.
    pub left_in_spool: u64,
    /// Why the bridge stopped by itself (a spool thread died, Kafka never worked
    /// within `kafka.startup_deadline_ms`), if it did.
    pub broken: Option<String>,
}

/// Where records go once a buffer lets them out: the Kafka forwarder, or a test's
/// stand-in.
pub trait Sink: Send + Sync + 'static {
    /// Takes `record` now, and calls `done` once its fate is known. Records
    /// dispatched in order from one thread keep that order.
    fn dispatch(&self, record: Record, done: Done);
    /// Waits up to `bound` for every dispatched record's fate, then abandons the rest.
    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ()>;
    /// Records confirmed so far.
    fn delivered(&self) -> u64;
}

/// Where an accepted callback's events wait for Kafka: in memory (`ack = memory`) or
/// in the on-disk spool (`ack = durable`). Either way the callback is answered as soon
/// as `accept` returns.
pub trait Buffer: Send + Sync + 'static {
    /// Takes every event of one callback, or none of them.
    fn accept(&self, records: Vec<Record>) -> BoxFuture<'_, Result<(), Rejected>>;
    /// Events accepted and not yet confirmed by Kafka.
    fn depth(&self) -> u64;
    fn is_full(&self) -> bool;
    /// Whether accepted events survive a crash.
    fn is_durable(&self) -> bool;
    /// Takes nothing more: every later `accept` is refused with `ShuttingDown`.
    fn close(&self);
    /// Why the buffer can never take or send events again (a thread of it died),
    /// or `None`.
    fn broken(&self) -> Option<String>;
    /// Why the buffer's storage is in trouble now while it still takes events (the
    /// spool cannot record progress or start a segment), or `None`.
    fn trouble(&self) -> Option<String> {
        None
    }
    /// Closes, then waits up to `bound` for Kafka's confirmations; call once no more
    /// callbacks can arrive.
    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ShutdownReport>;
}
