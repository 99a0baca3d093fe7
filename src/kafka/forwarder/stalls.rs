//! Retries in key order. When Kafka refuses a record of a topic for a while (a missing
//! ACL, a topic not created yet), the topic stalls: the record, every record of the
//! topic that comes back failed after it, and every record of the topic dispatched
//! meanwhile wait here in dispatch order. Once the topic's backoff has passed and
//! librdkafka holds none of its records any more, they are sent again in that order,
//! before anything newer of the topic. So no newer record of a key can land before an
//! older one that failed, which per-record retries with their own jittered backoffs
//! did (a hung broker reversed about half of the pairs in flight).
//!
//! librdkafka itself never gives up on a record (`message.timeout.ms = 0`): a record
//! it timed out while newer ones of its partition stayed queued would let those land
//! first, whatever the bridge does afterwards.
//!
//! Lock order: the forwarder's `held`, then `gate`, then `stalled`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::tracking::InFlight;

pub(super) struct Stalls {
    /// Held (shared) around every hand-off to librdkafka, taken alone when a topic
    /// stalls: no record checked a topic as not stalled and is still being handed over.
    gate: RwLock<()>,
    stalled: Mutex<HashMap<String, Stall>>,
    any: AtomicBool,
    /// Records of each configured topic handed to librdkafka and not yet reported on.
    outstanding: HashMap<String, AtomicU64>,
    /// The same for every topic not configured, together.
    outstanding_other: AtomicU64,
    /// Woken when a topic stalls, and when a stalled topic's records come back.
    pub(super) wake: tokio::sync::Notify,
}

struct Stall {
    // Boxed as librdkafka hands them back (the delivery opaque).
    #[allow(clippy::vec_box)]
    records: Vec<Box<InFlight>>,
    due: Instant,
}

/// Records a stall has let go, in dispatch order, to hand to librdkafka again.
pub(super) type Due = Vec<Box<InFlight>>;

impl Stalls {
    pub(super) fn new(topics: &[String]) -> Self {
        Self {
            gate: RwLock::new(()),
            stalled: Mutex::default(),
            any: AtomicBool::new(false),
            outstanding: topics
                .iter()
                .map(|t| (t.clone(), AtomicU64::new(0)))
                .collect(),
            outstanding_other: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Held while a record is checked against the stalls and handed to librdkafka.
    pub(super) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn gate_alone(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stalled(&self) -> MutexGuard<'_, HashMap<String, Stall>> {
        self.stalled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn outstanding(&self, topic: &str) -> &AtomicU64 {
        self.outstanding
            .get(topic)
            .unwrap_or(&self.outstanding_other)
    }

    /// A record was reported on; `outstanding` is its topic's count.
    pub(super) fn reported(&self, outstanding: &AtomicU64) {
        // Only the last of a topic's records matters to a stall waiting for them.
        if outstanding.fetch_sub(1, Ordering::SeqCst) == 1 && self.any.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// With the gate held: keeps `in_flight` behind its topic's stalled records if
    /// the topic is stalled; gives it back otherwise.
    pub(super) fn join_if_stalled(&self, in_flight: Box<InFlight>) -> Option<Box<InFlight>> {
        if !self.any.load(Ordering::SeqCst) {
            return Some(in_flight);
        }
        let mut stalled = self.stalled();
        match stalled.get_mut(&in_flight.record.topic) {
            Some(stall) => {
                stall.records.push(in_flight);
                None
            }
            None => Some(in_flight),
        }
    }

    /// Kafka refused `in_flight` for a while: its topic stalls, and is due again after
    /// `backoff` (a stall already waiting keeps its time).
    pub(super) fn stall(&self, in_flight: Box<InFlight>, backoff: Duration) {
        let _alone = self.gate_alone();
        let mut stalled = self.stalled();
        let stall = stalled
            .entry(in_flight.record.topic.clone())
            .or_insert_with(|| Stall {
                records: Vec::new(),
                due: Instant::now() + backoff,
            });
        stall.records.push(in_flight);
        self.any.store(true, Ordering::SeqCst);
        drop(stalled);
        self.wake.notify_one();
    }

    /// When the earliest stall whose topic librdkafka holds nothing of is due, if
    /// any; the others are woken by their topic's last report.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.stalled()
            .iter()
            .filter(|(topic, _)| self.outstanding(topic).load(Ordering::SeqCst) == 0)
            .map(|(_, s)| s.due)
            .min()
    }

    /// Hands each stall that is due, and whose topic librdkafka holds nothing of, to
    /// `send` in dispatch order, with every stall locked, so that nothing newer of
    /// its topic goes first. `send` gives back the records it could not hand over
    /// (with the wait before the next try): they stall again, in order.
    pub(super) fn resend_due(&self, mut send: impl FnMut(Due) -> Option<(Due, Duration)>) {
        let _gate = self.gate();
        let mut stalled = self.stalled();
        let now = Instant::now();
        let due: Vec<String> = stalled
            .iter()
            .filter(|(topic, stall)| {
                stall.due <= now && self.outstanding(topic).load(Ordering::SeqCst) == 0
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in due {
            let Some(mut stall) = stalled.remove(&topic) else {
                continue;
            };
            stall.records.sort_by_key(|r| r.order);
            if let Some((left, wait)) = send(stall.records) {
                stalled.insert(
                    topic,
                    Stall {
                        records: left,
                        due: Instant::now() + wait,
                    },
                );
            }
        }
        self.any.store(!stalled.is_empty(), Ordering::SeqCst);
    }

    /// At shutdown: every record still waiting.
    pub(super) fn take_all(&self) -> Due {
        let _alone = self.gate_alone();
        let mut stalled = self.stalled();
        self.any.store(false, Ordering::SeqCst);
        stalled.drain().flat_map(|(_, s)| s.records).collect()
    }
}
