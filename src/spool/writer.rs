//! The spool's files as written: a commit round writes a group of records and shares
//! one `fdatasync` among them (`commit.rs`); every 100 ms the housekeeping thread
//! records the watermark and deletes segments wholly confirmed.
//!
//! Segments are filled with zeros ahead of the writes (`FILL_AHEAD` at a time, between
//! groups) and written in place: an `fdatasync` of bytes written over zeros already
//! on disk has no file size or extent to journal, and costs on ext4 about 0.18 ms
//! against 0.46 ms for an append (this machine's disk). A scan ends at the zeros.
//! The housekeeping writes and fsyncs its zeros without the writer's lock: groups go
//! on meanwhile, below where the zeros begin; only a group that would reach them
//! waits for the fill to end ([`FillGate`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use super::frame::Spooled;
use super::progress::Progress;
use super::recovery::{make_spare, new_segment, retire_segment, segment_path};
use super::{
    Bookkeeping, Fresh, Segment, Shared, Unpoisoned, FRESH_BYTES, HOUSEKEEPING, ROLL_WHEN_DRAINED,
};
use crate::delivery::Rejected;

/// How far ahead of the records a segment is filled with zeros. 1 MiB of zeros and
/// their fsync take 1.3 ms (at most 4.7 in 20 tries) on this machine's disk: done by
/// the housekeeping outside the writer's lock, not in front of the groups.
const FILL_AHEAD: u64 = 1024 * 1024;

pub(super) struct Writer {
    shared: Arc<Shared>,
    file: File,
    next_seq: u64,
    max_bytes: u64,
    segment_bytes: u64,
    /// The `confirmed` file, and the watermark it holds for sure: nothing above it is
    /// deleted, whatever Kafka confirmed since.
    progress: Progress,
    written_watermark: u64,
    /// How far the active segment's file is filled (zeros past its records).
    filled: u64,
    /// Something was written since the last fill ahead.
    wrote: bool,
    /// The last write or fsync failed: the next write goes to a new segment, never
    /// over bytes whose fsync failed (the kernel may have dropped those pages).
    failing: bool,
    /// Which segment `file` is (one more at each roll): a fill of an older one counts
    /// for nothing.
    generation: u64,
    gate: Arc<FillGate>,
}

/// Whether the housekeeping is writing zeros past `filled` without the writer's lock.
/// A group whose records would reach past `filled` waits for it to end: the zeros,
/// written after them, would erase them.
#[derive(Default)]
pub(super) struct FillGate {
    filling: Mutex<bool>,
    ended: Condvar,
}

impl FillGate {
    fn filling(&self) -> std::sync::MutexGuard<'_, bool> {
        self.filling.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_until_idle(&self) {
        let mut filling = self.filling();
        while *filling {
            filling = self
                .ended
                .wait(filling)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn end(&self) {
        *self.filling() = false;
        self.ended.notify_all();
    }
}

/// Zeros to write into a segment outside the writer's lock.
struct Fill {
    file: File,
    from: u64,
    to: u64,
    generation: u64,
}

impl Fill {
    /// Writes the zeros and fsyncs them; how far the file is filled for sure.
    fn run(&self) -> u64 {
        match write_zeros(&self.file, self.from, self.to).and_then(|()| self.file.sync_data()) {
            Ok(()) => self.to,
            Err(_) => self.from,
        }
    }
}

fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = [0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        next_seq: u64,
        max_bytes: u64,
        segment_bytes: u64,
        watermark: u64,
    ) -> io::Result<Self> {
        let progress = Progress::open(&shared.dir, watermark)?;
        let path = shared
            .log
            .locked()
            .segments
            .last()
            .expect("a segment")
            .path
            .clone();
        let file = OpenOptions::new().write(true).open(path)?;
        let filled = file.metadata()?.len();
        Ok(Self {
            filled,
            wrote: false,
            progress,
            written_watermark: watermark,
            shared,
            file,
            next_seq,
            max_bytes,
            segment_bytes,
            failing: false,
            generation: 0,
            gate: Arc::default(),
        })
    }

    /// Every 100 ms until the spool is finished: zeros ahead, the watermark, deletions.
    pub(super) fn keep_house(writer: &Mutex<Self>, shared: &Shared) {
        let gate = Arc::clone(&writer.locked().gate);
        loop {
            let last = shared.finished.load(Ordering::Relaxed);
            if !last {
                std::thread::sleep(HOUSEKEEPING);
            }
            let fill = writer.locked().start_fill();
            if let Some(fill) = fill {
                let reached = fill.run();
                gate.end();
                writer.locked().end_fill(&fill, reached);
            }
            writer.locked().housekeeping();
            if last {
                return;
            }
        }
    }

    /// Ahead of the next writes, so that their fsyncs have no size to journal: the
    /// zeros to write, when the records come within half of `FILL_AHEAD` of them.
    fn start_fill(&mut self) -> Option<Fill> {
        let due =
            self.wrote && !self.failing && self.shared.active_len() + FILL_AHEAD / 2 > self.filled;
        self.wrote = false;
        if !due {
            return None;
        }
        let to = (self.shared.active_len() + FILL_AHEAD).min(self.segment_bytes);
        if to <= self.filled {
            return None;
        }
        let file = self.file.try_clone().ok()?;
        *self.gate.filling() = true;
        Some(Fill {
            file,
            from: self.filled,
            to,
            generation: self.generation,
        })
    }

    fn end_fill(&mut self, fill: &Fill, reached: u64) {
        if fill.generation == self.generation && !self.failing {
            self.filled = self.filled.max(reached);
        }
    }

    /// Writes one group's frames (of `records`, from `first_seq` on) and fsyncs them.
    pub(super) fn write(
        &mut self,
        buf: &[u8],
        records: Vec<Spooled>,
        first_seq: u64,
    ) -> Result<(), Rejected> {
        let count = records.len() as u64;
        // A new segment (after a failed write) is named after the group's first record.
        self.next_seq = first_seq;
        let outcome = self.write_group(buf, first_seq, records);
        // Sequences of a group that failed are not used again: the next group's are
        // framed already. A gap is harmless: a segment's name is at most its first.
        self.next_seq = first_seq + count;
        if outcome.is_ok() && self.shared.active_len() >= self.segment_bytes {
            self.roll();
        }
        outcome
    }

    fn write_group(
        &mut self,
        buf: &[u8],
        first_seq: u64,
        records: Vec<Spooled>,
    ) -> Result<(), Rejected> {
        let count = records.len() as u64;
        if let Err(error) = self.leave_failed_segment() {
            self.shared.metrics.spool_write_failures.inc();
            tracing::debug!(error = %error, "Still cannot start a new spool segment.");
            return Err(Rejected::SpoolFailed);
        }
        let started = Instant::now();
        let at = self.shared.active_len();
        if at + buf.len() as u64 > self.filled {
            self.gate.wait_until_idle();
            self.fill_ahead(at + buf.len() as u64);
        }
        let result = self
            .file
            .write_all_at(buf, at)
            .and_then(|()| self.file.sync_data());
        self.wrote = true;
        self.shared
            .metrics
            .spool_fsync
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = result {
            self.shared.metrics.spool_write_failures.inc();
            self.shared.metrics.spool_write_failing.set(1);
            if !self.failing {
                tracing::error!(error = %error, "Cannot store events in the spool; answering 503 until it can.");
            }
            self.failing = true;
            // Those bytes were never acknowledged: cut them, so that a restart does not
            // send them, and write nothing more to this segment.
            let committed = self.shared.active_len();
            let _ = self.file.set_len(committed);
            self.filled = committed;
            return Err(Rejected::SpoolFailed);
        }
        if self.failing {
            self.failing = false;
            self.shared.metrics.spool_write_failing.set(0);
            tracing::info!("The spool stores events again.");
        }
        let written = buf.len() as u64;
        {
            let mut log = self.shared.log.locked();
            let active = log.segments.last_mut().expect("a segment");
            let (segment, from) = (active.first_seq, active.len);
            active.len += written;
            active.last_seq = Some(first_seq + count - 1);
            log.bytes += written;
            if log.fresh_bytes + written <= FRESH_BYTES {
                log.fresh_bytes += written;
                log.fresh.push_back(Fresh {
                    segment,
                    from,
                    to: from + written,
                    records,
                });
            }
        }
        self.shared.waiting.fetch_add(count, Ordering::Relaxed);
        self.shared.appended.notify_all();
        Ok(())
    }

    /// Fills the active segment with zeros to at least `needed` bytes, and up to
    /// `FILL_AHEAD` past its records while the segment has room. Best effort: where
    /// the disk has no room for zeros, the records are appended as they come.
    fn fill_ahead(&mut self, needed: u64) {
        let target = (self.shared.active_len() + FILL_AHEAD)
            .min(self.segment_bytes)
            .max(needed);
        if target <= self.filled {
            return;
        }
        self.filled = match write_zeros(&self.file, self.filled, target) {
            Ok(()) => target,
            Err(_) => self.file.metadata().map_or(self.filled, |m| m.len()),
        };
    }

    fn housekeeping(&mut self) {
        let watermark = self.shared.tracker.locked().watermark();
        if watermark != self.written_watermark {
            match self.progress.record(watermark) {
                Ok(()) => {
                    self.written_watermark = watermark;
                    self.shared.bookkeeping_ok(Bookkeeping::Progress);
                }
                Err(error) => self
                    .shared
                    .bookkeeping_failed(Bookkeeping::Progress, &error),
            }
        }
        let durable = self.written_watermark;
        if let Err(error) = self.shared.settled.forget_below(durable) {
            tracing::warn!(error = %error, "Cannot empty the spool's settled list; it is tried again.");
        }
        let drained = self
            .shared
            .log
            .locked()
            .segments
            .last()
            .expect("a segment")
            .confirmed_below(durable);
        let rolling_failed = self.shared.trouble.locked().roll.is_some();
        if drained && (self.shared.active_len() >= ROLL_WHEN_DRAINED || rolling_failed) {
            self.roll();
        }
        let mut log = self.shared.log.locked();
        while log.segments.len() > 1 && log.segments[0].confirmed_below(durable) {
            let gone = log.segments.remove(0);
            match retire_segment(&self.shared.dir, &gone.path) {
                Ok(()) => log.bytes -= gone.len,
                Err(error) => {
                    tracing::warn!(error = %error, path = %gone.path.display(), "Cannot delete a spool segment.");
                    log.segments.insert(0, gone);
                    break;
                }
            }
        }
        if log.bytes < self.max_bytes * 9 / 10 {
            self.shared.full.store(false, Ordering::Relaxed);
        }
        drop(log);
        // Best effort: without a spare, the next roll makes its file.
        let _ = make_spare(&self.shared.dir);
        self.shared.publish_gauges();
    }

    /// After a failed write, a new segment before anything else is written.
    fn leave_failed_segment(&mut self) -> io::Result<()> {
        if self.failing && self.shared.active_len() > 0 {
            self.try_roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) {
        match self.try_roll() {
            Ok(()) => self.shared.bookkeeping_ok(Bookkeeping::Roll),
            Err(error) => self.shared.bookkeeping_failed(Bookkeeping::Roll, &error),
        }
    }

    /// Starts the segment named after the next record: from the spare, or a new file,
    /// or — where neither can be had and Kafka confirmed the active one wholly — the
    /// active one renamed and emptied. Never over a file that exists; a roll with no
    /// record written since the last one is not needed.
    pub(super) fn try_roll(&mut self) -> io::Result<()> {
        let (active_first, active_len) = {
            let log = self.shared.log.locked();
            let active = log.segments.last().expect("a segment");
            (active.first_seq, active.len)
        };
        if active_first == self.next_seq && active_len == 0 {
            return Ok(());
        }
        let segment = match new_segment(&self.shared.dir, self.next_seq) {
            Ok(segment) => segment,
            Err(error) => return self.reuse_drained_active(error),
        };
        let file = OpenOptions::new().write(true).open(&segment.path)?;
        self.file = file;
        self.filled = 0;
        self.generation += 1;
        self.shared.log.locked().segments.push(segment);
        self.shared.appended.notify_all();
        Ok(())
    }

    /// The active segment, wholly confirmed (and recorded so), renamed after the next
    /// record and emptied: a roll that needs no inode. `error` otherwise.
    fn reuse_drained_active(&mut self, error: io::Error) -> io::Result<()> {
        let mut log = self.shared.log.locked();
        let active = log.segments.last().expect("a segment");
        if !active.confirmed_below(self.written_watermark) {
            return Err(error);
        }
        let path = segment_path(&self.shared.dir, self.next_seq);
        if path.exists() {
            return Err(error);
        }
        fs::rename(&active.path, &path)?;
        self.file.set_len(0)?;
        File::open(&self.shared.dir)?.sync_all()?;
        let gone = log.segments.pop().expect("a segment");
        log.bytes -= gone.len;
        log.segments.push(Segment {
            first_seq: self.next_seq,
            path,
            len: 0,
            last_seq: None,
        });
        drop(log);
        self.filled = 0;
        self.generation += 1;
        self.shared.appended.notify_all();
        tracing::info!(error = %error, "No new spool segment could be made; the drained one was renamed and emptied instead.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{open, record, Kafka};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_that_would_reach_zeros_being_written_waits_for_them_and_is_not_erased() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(dir.path(), 1 << 26, &Kafka::away());
        spool.append(vec![record("a", 100)]).await.unwrap();
        let writer = Arc::clone(spool.commit.writer());
        let gate = Arc::clone(&writer.locked().gate);
        // The housekeeping's next fill, begun right where the records end.
        let fill = {
            let mut writer = writer.locked();
            writer.filled = writer.shared.active_len();
            writer.wrote = true;
            writer.start_fill().expect("a fill is due")
        };
        let next = tokio::spawn({
            let spool = Arc::clone(&spool);
            async move { spool.append(vec![record("b", 100)]).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !next.is_finished(),
            "the group waits while the zeros are written"
        );
        let reached = fill.run();
        gate.end();
        writer.locked().end_fill(&fill, reached);
        next.await.unwrap().unwrap();
        assert_eq!(spool.finish().await, 2);
        drop(spool);

        let kafka = Kafka::default();
        let spool = open(dir.path(), 1 << 26, &kafka);
        super::super::tests::eventually("both sent again", || kafka.keys().len() == 2).await;
        assert_eq!(kafka.keys(), ["a", "b"], "the zeros erased nothing");
        spool.finish().await;
    }
}
