//! Records held back, in dispatch order. A full librdkafka queue is backpressure, not a
//! failure: the record, and every one dispatched after it, waits here until there is
//! room again, so that a newer record of the same key never overtakes it. Records
//! also wait here while a fatal producer is being replaced.
//!
//! Room appears when librdkafka lets go of a record, just after its delivery report;
//! each report handled while the queue is full wakes the sender, and a short timer
//! covers the gap between the report and the release.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use super::tracking::InFlight;
use super::{Forwarder, Shared};

/// The longest a full queue waits without a delivery report before it is tried again.
const ROOM_RECHECK: Duration = Duration::from_millis(5);

// Boxed as librdkafka hands them back (the delivery opaque): no re-boxing per record.
#[allow(clippy::vec_box)]
pub(super) type Queue = Vec<Box<InFlight>>;

#[derive(Default)]
pub(super) struct Held {
    records: Mutex<Queue>,
    /// The producer is fatal and being replaced.
    pub(super) replacing: AtomicBool,
    /// librdkafka's queue was full.
    queue_full: AtomicBool,
    /// Woken when records begin to wait for room, and by delivery reports while they do.
    room: Notify,
}

/// Records refused at once while being handed over, with why.
pub(super) type Refused = Vec<(Box<InFlight>, KafkaError)>;

impl Held {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn paused(&self) -> bool {
        self.replacing.load(Ordering::SeqCst) || self.queue_full.load(Ordering::SeqCst)
    }

    /// Keeps `in_flight` behind the records held before it while a replacement
    /// producer is being made or librdkafka's queue is full; gives it back otherwise.
    pub(super) fn hold_while_paused(&self, in_flight: Box<InFlight>) -> Option<Box<InFlight>> {
        if !self.paused() {
            return Some(in_flight);
        }
        let mut held = self.lock();
        if self.paused() {
            held.push(in_flight);
            return None;
        }
        Some(in_flight)
    }

    /// librdkafka has no room for `in_flight`: it waits, and so does every record
    /// dispatched after it, until there is room. True when the queue just became full.
    pub(super) fn hold_for_room(&self, in_flight: Box<InFlight>) -> bool {
        let mut held = self.lock();
        let became_full = !self.queue_full.swap(true, Ordering::SeqCst);
        held.push(in_flight);
        drop(held);
        self.room.notify_one();
        became_full
    }

    /// A delivery report was handled: room may follow.
    pub(super) fn report_handled(&self) {
        if self.queue_full.load(Ordering::Relaxed) {
            self.room.notify_one();
        }
    }

    /// Hands what is held to `hand_over` in dispatch order until librdkafka's queue is
    /// full again; whatever is left stays held (and the queue marked full) for the
    /// next try. Called with the queue locked, so nothing dispatched meanwhile goes first.
    pub(super) fn send_in_order(
        &self,
        held: &mut Queue,
        mut hand_over: impl FnMut(Box<InFlight>) -> Result<(), (KafkaError, Box<InFlight>)>,
    ) -> Refused {
        held.sort_by_key(|in_flight| in_flight.order);
        let mut waiting: VecDeque<_> = held.drain(..).collect();
        let mut refused = Vec::new();
        while let Some(in_flight) = waiting.pop_front() {
            match hand_over(in_flight) {
                Ok(()) => {}
                Err((error, in_flight)) if queue_full(&error) => {
                    waiting.push_front(in_flight);
                    break;
                }
                Err((error, in_flight)) => refused.push((in_flight, error)),
            }
        }
        self.queue_full.store(!waiting.is_empty(), Ordering::SeqCst);
        held.extend(waiting);
        refused
    }

    /// At shutdown: what still waits for room will not get it.
    pub(super) fn take_all(&self) -> Queue {
        let held = std::mem::take(&mut *self.lock());
        self.queue_full.store(false, Ordering::SeqCst);
        held
    }

    pub(super) fn wake(&self) {
        self.room.notify_one();
    }
}

pub(super) fn queue_full(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

impl Forwarder {
    /// Sends what is held, in dispatch order, each record joining its topic's stall
    /// if it has one.
    pub(super) fn send_held(&self, held: &mut Queue) -> Refused {
        let _gate = self.shared.stalls.gate();
        let current = self.current();
        self.shared.held.send_in_order(held, |in_flight| {
            match self.shared.stalls.join_if_stalled(in_flight) {
                None => Ok(()),
                Some(in_flight) => self.shared.produce(&current, in_flight),
            }
        })
    }
}

/// While librdkafka's queue is full, sends what is held each time room may have come.
pub(super) async fn send_held_when_room(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        shared.held.room.notified().await;
        while shared.held.queue_full.load(Ordering::SeqCst) {
            tokio::select! {
                _ = shared.held.room.notified() => {}
                _ = tokio::time::sleep(ROOM_RECHECK) => {}
            }
            let Some(this) = forwarder.upgrade() else {
                return;
            };
            if this.shared.abandon.is_cancelled() {
                this.shared.abandon_held();
                break;
            }
            // A replacement sends what is held itself.
            if this.shared.held.replacing.load(Ordering::SeqCst) {
                continue;
            }
            let refused = {
                let mut held = this.shared.held.lock();
                this.send_held(&mut held)
            };
            for (in_flight, error) in refused {
                this.shared.failed(in_flight, error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;

    use super::super::tracking::tests::{noting, record};
    use super::*;

    fn in_flight(order: u64) -> Box<InFlight> {
        Box::new(InFlight {
            generation: 0,
            record: Arc::new(record("t")),
            done: noting(&Arc::default()),
            attempt: 0,
            order,
            notes: Vec::new(),
        })
    }

    fn full() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    }

    #[test]
    fn held_records_go_out_in_dispatch_order_whatever_order_they_came_back_in() {
        let held = Held::default();
        let mut queue: Queue = vec![in_flight(3), in_flight(1), in_flight(2)];
        let mut sent = Vec::new();
        let refused = held.send_in_order(&mut queue, |r| {
            sent.push(r.order);
            Ok(())
        });
        assert!(refused.is_empty());
        assert_eq!(sent, [1, 2, 3]);
        assert!(queue.is_empty());
        assert!(!held.paused());
    }

    #[test]
    fn a_full_queue_keeps_the_record_and_everything_after_it_held_in_order() {
        let held = Held::default();
        assert!(held.hold_for_room(in_flight(0)));
        assert!(!held.hold_for_room(in_flight(1)), "already full");
        assert!(
            held.hold_while_paused(in_flight(2)).is_none(),
            "a newer record waits behind them"
        );
        let mut room = 1;
        let refused = {
            let mut queue = held.lock();
            held.send_in_order(&mut queue, |r| {
                if room == 0 {
                    return Err((full(), r));
                }
                room -= 1;
                Ok(())
            })
        };
        assert!(refused.is_empty());
        let left: Vec<u64> = held.lock().iter().map(|r| r.order).collect();
        assert_eq!(left, [1, 2]);
        assert!(held.paused(), "still full");
    }

    #[test]
    fn a_record_refused_for_another_reason_is_given_back_and_the_rest_still_go() {
        let held = Held::default();
        let mut queue: Queue = vec![in_flight(0), in_flight(1)];
        let refused = held.send_in_order(&mut queue, |r| {
            if r.order == 0 {
                return Err((
                    KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic),
                    r,
                ));
            }
            Ok(())
        });
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0.order, 0);
        assert!(queue.is_empty());
        assert!(!held.paused());
    }
}
