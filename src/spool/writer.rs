//! The writer thread: takes every append waiting, writes them, and shares one
//! `fdatasync` among them; every 100 ms it records the watermark and deletes
//! segments wholly confirmed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use super::recovery::{new_segment, write_watermark};
use super::{frame, Append, Shared, Unpoisoned, HOUSEKEEPING, ROLL_WHEN_DRAINED};
use crate::delivery::Rejected;

pub(super) struct Writer {
    shared: Arc<Shared>,
    file: File,
    next_seq: u64,
    max_bytes: u64,
    segment_bytes: u64,
    written_watermark: u64,
    buf: Vec<u8>,
    /// The last write or fsync failed: the next write goes to a new segment, never
    /// over bytes whose fsync failed (the kernel may have dropped those pages).
    failing: bool,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        next_seq: u64,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> io::Result<Self> {
        let path = shared
            .log
            .locked()
            .segments
            .last()
            .expect("a segment")
            .path
            .clone();
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            written_watermark: u64::MAX,
            shared,
            file,
            next_seq,
            max_bytes,
            segment_bytes,
            buf: Vec::new(),
            failing: false,
        })
    }

    pub(super) fn run(mut self, appends: mpsc::Receiver<Append>) {
        let mut last_housekeeping = Instant::now();
        loop {
            match appends.recv_timeout(HOUSEKEEPING) {
                Ok(first) => {
                    let mut batch = vec![first];
                    batch.extend(appends.try_iter().take(8191));
                    self.write(batch);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                self.housekeeping();
                last_housekeeping = Instant::now();
            }
        }
        while !self.shared.finished.load(Ordering::Relaxed) {
            self.housekeeping();
            std::thread::sleep(HOUSEKEEPING);
        }
        self.housekeeping();
    }

    fn write(&mut self, batch: Vec<Append>) {
        if let Err(error) = self.leave_failed_segment() {
            self.shared.metrics.spool_write_failures.inc();
            tracing::debug!(error = %error, "Still cannot start a new spool segment.");
            for append in batch {
                let _ = append.done.send(Err(Rejected::SpoolFailed));
            }
            return;
        }
        self.buf.clear();
        let on_disk = self.shared.log.locked().bytes;
        let mut taken = Vec::with_capacity(batch.len());
        let mut records = 0;
        for append in batch {
            let before = self.buf.len();
            for (i, record) in append.records.iter().enumerate() {
                frame::encode(self.next_seq + i as u64, record, &mut self.buf);
            }
            if on_disk + self.buf.len() as u64 > self.max_bytes {
                self.buf.truncate(before);
                self.shared.full.store(true, Ordering::Relaxed);
                let _ = append.done.send(Err(Rejected::SpoolFull));
            } else {
                self.next_seq += append.records.len() as u64;
                records += append.records.len() as u64;
                taken.push(append.done);
            }
        }
        if taken.is_empty() {
            return;
        }
        let started = Instant::now();
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
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
            self.next_seq -= records;
            for done in taken {
                let _ = done.send(Err(Rejected::SpoolFailed));
            }
            return;
        }
        if self.failing {
            self.failing = false;
            self.shared.metrics.spool_write_failing.set(0);
            tracing::info!("The spool stores events again.");
        }
        let written = self.buf.len() as u64;
        {
            let mut log = self.shared.log.locked();
            log.segments.last_mut().expect("a segment").len += written;
            log.bytes += written;
        }
        self.shared.waiting.fetch_add(records, Ordering::Relaxed);
        self.shared.appended.notify_all();
        for done in taken {
            let _ = done.send(Ok(()));
        }
        if self.shared.active_len() >= self.segment_bytes {
            self.roll();
        }
    }

    fn housekeeping(&mut self) {
        let watermark = self.shared.tracker.locked().watermark();
        if watermark != self.written_watermark
            && write_watermark(&self.shared.dir, watermark).is_ok()
        {
            self.written_watermark = watermark;
        }
        if watermark >= self.next_seq && self.shared.active_len() >= ROLL_WHEN_DRAINED {
            self.roll();
        }
        let mut log = self.shared.log.locked();
        while log.segments.len() > 1 && log.segments[1].first_seq <= watermark {
            let gone = log.segments.remove(0);
            match fs::remove_file(&gone.path) {
                Ok(()) => log.bytes -= gone.len,
                Err(error) => {
                    tracing::warn!(error = %error, path = %gone.path.display(), "Cannot delete a spool segment.")
                }
            }
        }
        if log.bytes < self.max_bytes * 9 / 10 {
            self.shared.full.store(false, Ordering::Relaxed);
        }
        drop(log);
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
        if let Err(error) = self.try_roll() {
            if !self.failing {
                tracing::error!(error = %error, "Cannot start a new spool segment; appending to the old one.")
            }
        }
    }

    fn try_roll(&mut self) -> io::Result<()> {
        let segment = new_segment(&self.shared.dir, self.next_seq)?;
        let file = OpenOptions::new().append(true).open(&segment.path)?;
        self.file = file;
        self.shared.log.locked().segments.push(segment);
        self.shared.appended.notify_all();
        Ok(())
    }
}
