//! A sink that holds what is dispatched to it until it is opened, then lets it through
//! in dispatch order: the spool's records wait here until the bridge knows the Kafka
//! cluster is the one they were written for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{BoxFuture, Done, Outcome, Record, Sink};

pub struct Gate {
    sink: Arc<dyn Sink>,
    /// `Some` while closed: what waits, in dispatch order.
    held: Mutex<Option<Vec<(Record, Done)>>>,
    /// Set once what was held has gone: from then on a record passes without the lock.
    open: AtomicBool,
}

impl Gate {
    pub fn closed(sink: Arc<dyn Sink>) -> Arc<Self> {
        Arc::new(Self {
            sink,
            held: Mutex::new(Some(Vec::new())),
            open: AtomicBool::new(false),
        })
    }

    /// Sends what waits, in order, and everything dispatched from now on.
    pub fn open(&self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock, so that nothing dispatched meanwhile overtakes them.
        for (record, done) in held.take().unwrap_or_default() {
            self.sink.dispatch(record, done);
        }
        self.open.store(true, Ordering::Release);
    }
}

impl Sink for Gate {
    fn dispatch(&self, record: Record, done: Done) {
        if self.open.load(Ordering::Acquire) {
            return self.sink.dispatch(record, done);
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(waiting) => waiting.push((record, done)),
            None => {
                drop(held);
                self.sink.dispatch(record, done);
            }
        }
    }

    /// What still waits here is abandoned: it stays in the spool.
    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ()> {
        let waiting = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for (record, done) in waiting {
            done(Outcome::Abandoned, &record);
        }
        self.sink.shutdown(bound)
    }

    fn delivered(&self) -> u64 {
        self.sink.delivered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A sink that delivers at once and notes the order.
    #[derive(Default)]
    struct Noting(Mutex<Vec<String>>, AtomicU64);

    impl Sink for Noting {
        fn dispatch(&self, record: Record, done: Done) {
            self.0.lock().unwrap().push(record.key.clone().unwrap());
            self.1.fetch_add(1, Ordering::Relaxed);
            done(Outcome::Delivered, &record);
        }
        fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
        fn delivered(&self) -> u64 {
            self.1.load(Ordering::Relaxed)
        }
    }

    fn record(key: &str) -> Record {
        Record {
            topic: "t".into(),
            key: Some(key.into()),
            payload: Vec::new(),
            command: "C2C.CallbackAfterSendMsg".into(),
            sdk_app_id: 1,
            accepted_at_ms: 0,
            trace: None,
        }
    }

    #[tokio::test]
    async fn nothing_passes_until_opened_then_everything_in_order_and_abandoned_if_never() {
        let noting = Arc::new(Noting::default());
        let gate = Gate::closed(Arc::clone(&noting) as _);
        gate.dispatch(record("a"), Box::new(|_, _| {}));
        gate.dispatch(record("b"), Box::new(|_, _| {}));
        assert!(noting.0.lock().unwrap().is_empty());
        gate.open();
        gate.dispatch(record("c"), Box::new(|_, _| {}));
        assert_eq!(*noting.0.lock().unwrap(), ["a", "b", "c"]);

        let never = Gate::closed(Arc::clone(&noting) as _);
        let abandoned = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&abandoned);
        never.dispatch(
            record("d"),
            Box::new(move |outcome, _| {
                assert_eq!(outcome, Outcome::Abandoned);
                counted.fetch_add(1, Ordering::Relaxed);
            }),
        );
        never.shutdown(Duration::ZERO).await;
        assert_eq!(abandoned.load(Ordering::Relaxed), 1);
        assert_eq!(noting.0.lock().unwrap().len(), 3);
    }
}
