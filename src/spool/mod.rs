//! The durable spool: an append-only log on disk between the answer and Kafka.
//!
//! Written here rather than taken from a crate because the workload is narrow —
//! append, read in order, confirm out of order, delete whole files — and the
//! guarantees must be exact: a record is fsynced before its callback is answered,
//! and let go only after Kafka confirmed it. Candidates (sled, a WAL crate, an
//! embedded database) bring compaction or transactions this does not need.
//!
//! - Segment files `seg-<first seq>.log` hold frames (`frame.rs`). Callbacks frame
//!   their records into a group; one commit round writes the group and shares one
//!   `fdatasync` among them (`commit.rs`), in segments filled with zeros ahead.
//! - A reader thread follows the log in sequence order and dispatches each record to
//!   Kafka, at most `queue_capacity` at once; on start it begins at the watermark,
//!   so unconfirmed records go out again before anything newer.
//! - The watermark — the lowest sequence Kafka has not confirmed — is written over
//!   the file `confirmed` in place and fsynced every 100 ms (`progress.rs`); segments
//!   wholly below the watermark so written are deleted, or kept as the spare. After a
//!   crash, records between the written watermark and what Kafka had really
//!   confirmed are sent again: at-least-once, with the same event `id`.
//!
//! Invariants, each with the test that holds it (`invariants.rs` unless named):
//! 1. Sequence numbers never go backwards across restarts, whatever `confirmed`
//!    says: the next is above the watermark, the last segment's name and every
//!    record found (`sequences_never_go_backwards_whatever_the_watermark_says`).
//! 2. A segment's name is at most its first record's sequence and above the last
//!    record of the segment before it, so name order is sequence order; the reader
//!    follows segments in that order. Recovery checks it and refuses a spool that
//!    breaks it, saying what it found, rather than guess
//!    (`a_spool_whose_files_disagree_is_refused_saying_what_was_found`).
//! 3. Nothing is deleted that the fsynced watermark does not cover; a failed
//!    watermark write is counted, logged once, retried every 100 ms and shown in
//!    `/readyz` (`nothing_is_deleted_that_the_recorded_watermark_does_not_cover`).
//! 4. A segment is never named after a file that exists, and a roll with nothing
//!    written since the last one keeps the segment it has
//!    (`a_segment_is_never_named_after_a_file_that_exists`).
//! 5. Recording progress and rolling need no new inode: `confirmed` is overwritten
//!    in place, a roll renames the spare, a drained segment becomes the next spare,
//!    and without a spare a drained active segment is renamed and emptied
//!    (`a_roll_takes_the_spare_and_a_drained_segment_becomes_the_next_spare`;
//!    `tests/api/spool_edges.rs` on a tmpfs out of inodes). A roll that fails is
//!    counted, logged once and shown in `/readyz`.
//! 6. A record is fsynced before its callback is answered, and bytes whose write
//!    or fsync failed are never written over (`writer.rs`; the full-disk tests).

mod buffer;
pub mod cluster;
mod commit;
mod dead;
pub(crate) mod frame;
mod private;
mod progress;
mod reader;
mod recovery;
pub(crate) mod settled;
mod writer;

pub use dead::{read as read_dead_letters, DeadLetters, Found as DeadLettersFound};
pub use frame::DeadLetter;
pub(crate) use recovery::{read_watermark, segment_firsts, segment_path};

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::delivery::{now_ms, Record, Rejected, Sink};
use crate::metrics::Metrics;
use commit::Commit;
use reader::Reader;
use recovery::{make_spare, new_segment, recover, Recovered};
use writer::Writer;

const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// A drained active segment larger than this is closed so that it can be deleted.
const ROLL_WHEN_DRAINED: u64 = 64 * 1024;
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;
const READ_WINDOW: u64 = 1024 * 1024;
struct Segment {
    /// At most the sequence of its first record (a failed write leaves a gap).
    first_seq: u64,
    path: PathBuf,
    len: u64,
    /// The sequence of its last record; `None` while it holds none.
    last_seq: Option<u64>,
}

impl Segment {
    /// Kafka confirmed every record in it.
    fn confirmed_below(&self, watermark: u64) -> bool {
        self.last_seq.is_none_or(|last| last < watermark)
    }
}

/// The log as the writer left it: every byte up to `segments.last().len` is durable.
struct Log {
    segments: Vec<Segment>,
    bytes: u64,
    /// Groups just written, as records: a reader that has caught up takes them from
    /// here instead of reading back and decoding what was written a moment ago.
    fresh: VecDeque<Fresh>,
    fresh_bytes: u64,
}

/// One written group: the bytes `from..to` of the segment named `segment`.
struct Fresh {
    segment: u64,
    from: u64,
    to: u64,
    records: Vec<frame::Spooled>,
}

/// Frame bytes held in `Log::fresh` at most; a reader further behind reads the file.
const FRESH_BYTES: u64 = 4 * 1024 * 1024;

impl Log {
    /// The records of the group that starts at `offset` of segment `segment`, if it
    /// is still held; drops those the reader has passed.
    fn take_fresh(&mut self, segment: u64, offset: u64) -> Option<Fresh> {
        while let Some(front) = self.fresh.front() {
            if (front.segment, front.from) >= (segment, offset) {
                break;
            }
            self.fresh_bytes -= front.to - front.from;
            self.fresh.pop_front();
        }
        let front = self.fresh.front()?;
        if (front.segment, front.from) != (segment, offset) {
            return None;
        }
        self.fresh_bytes -= front.to - front.from;
        self.fresh.pop_front()
    }
}

#[derive(Default)]
struct Tracker {
    /// Dispatched and not yet confirmed: sequence → accepted time (ms).
    in_flight: BTreeMap<u64, u64>,
    /// The next sequence the reader will look at.
    next_to_dispatch: u64,
}

impl Tracker {
    fn watermark(&self) -> u64 {
        self.in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_to_dispatch)
    }
}

struct Shared {
    dir: PathBuf,
    log: Mutex<Log>,
    appended: Condvar,
    tracker: Mutex<Tracker>,
    waiting: AtomicU64,
    full: AtomicBool,
    /// The reader stops.
    closed: AtomicBool,
    /// Every confirmation is in: the writer records the last watermark and stops.
    finished: AtomicBool,
    /// Set when a spool thread panicked: the spool can no longer keep its promise.
    broken: Mutex<Option<String>>,
    trouble: Mutex<Trouble>,
    /// Records settled out of order (dead letters) that are never sent again.
    settled: settled::Settled,
    metrics: Arc<Metrics>,
}

/// The spool's bookkeeping, beside the appends themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bookkeeping {
    /// Writing the `confirmed` watermark.
    Progress,
    /// Starting a new segment.
    Roll,
}

/// Why the spool's bookkeeping fails now, if it does.
#[derive(Default)]
struct Trouble {
    progress: Option<String>,
    roll: Option<String>,
}

/// Locks that survive a panic elsewhere: the data they guard is updated in steps
/// that leave it consistent, so a later caller goes on rather than panicking too.
trait Unpoisoned<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Unpoisoned<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Spool {
    shared: Arc<Shared>,
    commit: Arc<Commit>,
    permits: Arc<Semaphore>,
    sink: Arc<dyn Sink>,
    runtime: tokio::runtime::Handle,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Held until `finish`: one bridge per spool directory.
    lock: Mutex<Option<File>>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovers what a previous run left, and
    /// starts sending it. Fails when another bridge holds the directory.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        in_flight: usize,
        sink: Arc<dyn Sink>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Arc<Self>> {
        private::create_dir(dir)?;
        private::tighten_and_log(dir);
        let lock = private::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another bridge", dir.display()),
            )
        })?;
        let Recovered {
            mut segments,
            next_seq,
            waiting,
            watermark,
        } = recover(dir, &metrics)?;
        let settled = settled::Settled::open(dir)?;
        let waiting = waiting.saturating_sub(settled.count_from(watermark));
        if segments.is_empty() {
            segments.push(new_segment(dir, next_seq)?);
        }
        let _ = make_spare(dir);
        let bytes = segments.iter().map(|s| s.len).sum();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            log: Mutex::new(Log {
                segments,
                bytes,
                fresh: VecDeque::new(),
                fresh_bytes: 0,
            }),
            appended: Condvar::new(),
            tracker: Mutex::new(Tracker {
                in_flight: BTreeMap::new(),
                next_to_dispatch: watermark,
            }),
            waiting: AtomicU64::new(waiting),
            full: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            broken: Mutex::new(None),
            trouble: Mutex::default(),
            settled,
            metrics,
        });
        if waiting > 0 {
            tracing::info!(
                records = waiting,
                "Sending what the spool kept from the last run."
            );
        }
        let segment_bytes = (max_bytes / 4).clamp(4096, MAX_SEGMENT);
        let writer = Arc::new(Mutex::new(Writer::new(
            Arc::clone(&shared),
            next_seq,
            max_bytes,
            segment_bytes,
            watermark,
        )?));
        let commit = Commit::new(
            Arc::clone(&writer),
            Arc::clone(&shared),
            next_seq,
            max_bytes,
        );
        let spool = Arc::new(Spool {
            shared: Arc::clone(&shared),
            commit: Arc::new(commit),
            permits: Arc::new(Semaphore::new(in_flight)),
            sink,
            runtime: tokio::runtime::Handle::current(),
            threads: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
        });
        let reader = Reader::new(Arc::clone(&spool), watermark);
        let mut threads = spool.threads.locked();
        let housekeeping = Arc::clone(&shared);
        threads.push(spawn_watched("spool-housekeeping", &shared, move || {
            Writer::keep_house(&writer, &housekeeping)
        })?);
        threads.push(spawn_watched("spool-reader", &shared, move || {
            reader.run()
        })?);
        drop(threads);
        shared.publish_gauges();
        Ok(spool)
    }

    /// Returns once the records are on disk and fsynced.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), Rejected> {
        if self.shared.full.load(Ordering::Relaxed) {
            return Err(Rejected::SpoolFull);
        }
        if records.is_empty() {
            return Ok(());
        }
        self.commit.append(records).await
    }

    pub fn waiting(&self) -> u64 {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    pub fn is_full(&self) -> bool {
        self.shared.full.load(Ordering::Relaxed)
    }

    /// Why the spool cannot record progress or start a segment now, if it cannot.
    pub fn trouble(&self) -> Option<String> {
        let trouble = self.shared.trouble.locked();
        match (&trouble.progress, &trouble.roll) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }

    /// Takes no more appends; everything appended is already durable.
    pub fn close_appends(&self) {
        self.commit.close();
    }

    /// Stops dispatching; records not yet confirmed stay for the next start.
    pub fn stop_reading(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.permits.close();
        self.shared.appended.notify_all();
    }

    /// Once every dispatched record's fate is known: records the watermark, deletes what
    /// is confirmed, and stops the threads. Returns how many records are left.
    pub async fn finish(&self) -> u64 {
        self.close_appends();
        // A group being written when the appends closed is written before the
        // directory is let go, so that no other bridge opens it mid-write.
        self.commit.settled(Duration::from_secs(5)).await;
        self.stop_reading();
        self.shared.finished.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.locked());
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
            .await
            .ok();
        self.lock.locked().take();
        self.waiting()
    }

    fn confirm(&self, seq: u64) {
        self.shared.tracker.locked().in_flight.remove(&seq);
        self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a spool thread; if it panics, the spool is marked broken (so `/readyz` fails
/// and `serve` exits non-zero for a supervisor to restart it) instead of answering
/// callbacks it will never send.
fn spawn_watched(
    name: &'static str,
    shared: &Arc<Shared>,
    run: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(run)) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let reason = format!("the {name} thread died ({what})");
                tracing::error!(thread = name, panic = %what, "A spool thread died; the bridge cannot keep its promise and stops.");
                shared.metrics.spool_thread_deaths.inc();
                *shared.broken.locked() = Some(reason);
                // Wake whoever waits on the log, so that nothing waits for this thread.
                shared.appended.notify_all();
            }
        })
}

impl Shared {
    /// Counts a failure of `what`; logs it once, when it begins.
    fn bookkeeping_failed(&self, what: Bookkeeping, error: &io::Error) {
        let (kind, gauge, reason) = match what {
            Bookkeeping::Progress => (
                "progress",
                &self.metrics.spool_progress_failing,
                format!("the spool cannot record what Kafka confirmed ({error}); nothing is deleted until it can"),
            ),
            Bookkeeping::Roll => (
                "roll",
                &self.metrics.spool_roll_failing,
                format!("the spool cannot start a new segment ({error})"),
            ),
        };
        self.metrics
            .spool_bookkeeping_failures
            .get_or_create(&crate::metrics::KindLabels { kind })
            .inc();
        gauge.set(1);
        let mut trouble = self.trouble.locked();
        let slot = match what {
            Bookkeeping::Progress => &mut trouble.progress,
            Bookkeeping::Roll => &mut trouble.roll,
        };
        if slot.is_none() {
            tracing::error!(%reason, "The spool's bookkeeping fails; retrying every 100 ms.");
        }
        *slot = Some(reason);
    }

    fn bookkeeping_ok(&self, what: Bookkeeping) {
        let mut trouble = self.trouble.locked();
        let (slot, gauge) = match what {
            Bookkeeping::Progress => (&mut trouble.progress, &self.metrics.spool_progress_failing),
            Bookkeeping::Roll => (&mut trouble.roll, &self.metrics.spool_roll_failing),
        };
        if slot.take().is_some() {
            gauge.set(0);
            tracing::info!(kind = ?what, "The spool's bookkeeping works again.");
        }
    }

    /// Durable bytes in the segment being written.
    fn active_len(&self) -> u64 {
        self.log.locked().segments.last().expect("a segment").len
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.spool_bytes.set(self.log.locked().bytes as i64);
        m.queue_depth
            .set(self.waiting.load(Ordering::Relaxed) as i64);
        let oldest = self.tracker.locked().in_flight.values().next().copied();
        let age_ms = oldest.map_or(0, |t| now_ms().saturating_sub(t));
        m.spool_oldest_age.set(age_ms as f64 / 1000.0);
    }
}

#[cfg(test)]
mod invariants;
#[cfg(test)]
mod tests;
