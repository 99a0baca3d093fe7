//! The producer's lifecycle. A producer in librdkafka's fatal state (a fenced or
//! out-of-sequence idempotent producer) takes nothing ever again: it is replaced by a
//! new one with the same settings. The old one's records come back purged, into the
//! held queue; once every one of them has (its generation's count reaches 0, which
//! wakes the replacement), what is held is sent on the new producer in dispatch
//! order, ahead of anything dispatched meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use rdkafka::producer::{Producer, PurgeConfig};
use tokio::sync::Notify;

use super::{Deliveries, Forwarder, KafkaProducer, Shared};

/// The producer in use, and which one it is (0, then 1 after a replacement, ...).
pub(super) struct Current {
    pub(super) producer: KafkaProducer,
    pub(super) generation: u64,
}

/// Records handed to each of the last two producer generations whose report has not
/// been handled yet.
#[derive(Default)]
pub(super) struct Generations {
    outstanding: [AtomicU64; 2],
    /// Woken when a generation's count reaches 0.
    drained: Notify,
}

impl Generations {
    /// A record was handed to a producer of `generation`.
    pub(super) fn handed(&self, generation: u64) {
        self.of(generation).fetch_add(1, Ordering::SeqCst);
    }

    /// A record of `generation` was reported on, or refused at once.
    pub(super) fn reported(&self, generation: u64) {
        if self.of(generation).fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drained.notify_waiters();
        }
    }

    /// Waits up to `timeout` until every record handed to `generation` was reported.
    pub(super) async fn drained(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.of(generation).load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.of(generation).load(Ordering::SeqCst) == 0;
            }
        }
    }

    fn of(&self, generation: u64) -> &AtomicU64 {
        &self.outstanding[(generation % 2) as usize]
    }
}

/// Replaces the producer each time librdkafka reports it fatal, until the forwarder goes.
pub(super) async fn replace_when_fatal(shared: Arc<Shared>, forwarder: Weak<Forwarder>) {
    loop {
        shared.fatal.notified().await;
        let Some(this) = forwarder.upgrade() else {
            return;
        };
        this.replace().await;
    }
}

impl Forwarder {
    /// Makes a new producer if the current one is fatal, lets go of the fatal one
    /// once all its records came back, then sends what is held.
    async fn replace(self: Arc<Self>) {
        let fatal = self.current().producer.client().fatal_error();
        if let Some((code, reason)) = fatal {
            let shared = &self.shared;
            shared.producer_id.store(false, Ordering::Relaxed);
            let this = Arc::clone(&self);
            let made = tokio::task::spawn_blocking(move || {
                this.config.create_with_context(Deliveries {
                    shared: Arc::clone(&this.shared),
                })
            })
            .await
            .map_err(|panicked| panicked.to_string())
            .and_then(|made| made.map_err(|error| error.to_string()));
            let fresh = match made {
                Ok(fresh) => fresh,
                Err(error) => {
                    tracing::error!(
                        error,
                        "Cannot make a new Kafka producer; trying again in a second."
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    shared.fatal.notify_one();
                    return;
                }
            };
            let old = {
                let mut current = self
                    .producer
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let generation = current.generation + 1;
                std::mem::replace(
                    &mut *current,
                    Current {
                        producer: fresh,
                        generation,
                    },
                )
            };
            let generation = old.generation;
            // Its records come back as purged, into the held queue; wait until every one has.
            let old = tokio::task::spawn_blocking(move || {
                old.producer
                    .purge(PurgeConfig::default().queue().inflight());
                old
            })
            .await;
            shared
                .generations
                .drained(generation, Duration::from_secs(30))
                .await;
            if let Ok(old) = old {
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            shared.tracking.metrics().producer_restarts.inc();
            tracing::warn!(fatal_error = %code, reason, "Replaced the fatal Kafka producer; what it had not confirmed is sent again, in order.");
        }
        self.resume_after_replacement();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_replacement_is_woken_when_the_old_generations_last_record_comes_back() {
        let generations = Arc::new(Generations::default());
        generations.handed(0);
        generations.handed(0);
        generations.handed(1);
        let reporter = Arc::clone(&generations);
        tokio::spawn(async move {
            reporter.reported(0);
            tokio::time::sleep(Duration::from_millis(20)).await;
            reporter.reported(0);
        });
        assert!(generations.drained(0, Duration::from_secs(30)).await);
        assert!(
            !generations.drained(1, Duration::from_millis(20)).await,
            "the new generation's record is still out"
        );
    }

    #[tokio::test]
    async fn generation_two_reuses_generation_zeros_count() {
        let generations = Generations::default();
        generations.handed(2);
        assert!(!generations.drained(0, Duration::from_millis(10)).await);
        generations.reported(2);
        assert!(generations.drained(0, Duration::from_millis(10)).await);
    }
}
