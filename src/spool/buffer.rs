//! The spool as the delivery core's buffer (`ack = durable`).

use std::time::Duration;

use super::{Spool, Unpoisoned};
use crate::delivery::{BoxFuture, Buffer, Record, Rejected, ShutdownReport};

impl Buffer for Spool {
    fn accept(&self, records: Vec<Record>) -> BoxFuture<'_, Result<(), Rejected>> {
        Box::pin(self.append(records))
    }

    fn depth(&self) -> u64 {
        self.waiting()
    }

    fn is_full(&self) -> bool {
        Spool::is_full(self)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn close(&self) {
        self.close_appends();
    }

    fn broken(&self) -> Option<String> {
        self.shared.broken.locked().clone()
    }

    fn trouble(&self) -> Option<String> {
        Spool::trouble(self)
    }

    /// Everything appended is already durable: waits up to `bound` for Kafka to
    /// confirm it, and leaves the rest for the next start.
    fn shutdown(&self, bound: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async move {
            self.close_appends();
            let deadline = tokio::time::Instant::now() + bound;
            while self.waiting() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.stop_reading();
            self.sink
                .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
            let left = self.finish().await;
            if left > 0 {
                tracing::warn!(
                    records = left,
                    "Events left in the spool; they are sent at the next start."
                );
            }
            ShutdownReport {
                delivered: self.sink.delivered(),
                unconfirmed: Vec::new(),
                left_in_spool: left,
                broken: None,
            }
        })
    }
}
