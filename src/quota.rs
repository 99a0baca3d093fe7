//! Lines about what repeats are limited per kind: whoever reaches the port must not
//! be able to grow the log, nor one refusal repeated per event. The metrics count
//! every occurrence.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One line per kind per interval, saying how many went unlogged since the last. The
/// one limiter of the bridge's repeated lines: rejections, dead letters, Kafka's
/// per-topic failures and client errors.
pub struct LineQuota {
    interval: Duration,
    /// Few kinds (a reason, a topic, a kind of client error): a list is enough.
    kinds: Mutex<Vec<(String, Option<Instant>, u64)>>,
}

/// The before-callbacks whose body cannot be read (allowed all the same).
pub static BEFORE_CALLBACK_LINES: LineQuota = LineQuota::new(Duration::from_secs(10));

impl LineQuota {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// `Some(n)` when a line about `kind` may be written now, `n` being how many
    /// were not written since the last one; `None` otherwise.
    pub fn take(&self, kind: &str) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let index = match kinds.iter().position(|(k, ..)| k == kind) {
            Some(index) => index,
            None => {
                kinds.push((kind.to_owned(), None, 0));
                kinds.len() - 1
            }
        };
        let (_, last, skipped) = &mut kinds[index];
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            *skipped += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_counting_the_rest() {
        let quota = LineQuota::new(Duration::from_millis(200));
        assert_eq!(quota.take("bad_body"), Some(0));
        assert_eq!(quota.take("bad_body"), None);
        assert_eq!(quota.take("bad_body"), None);
        assert_eq!(quota.take("signature_mismatch"), Some(0));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(quota.take("bad_body"), Some(2));
    }
}
