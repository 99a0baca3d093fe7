//! The reader thread: follows the log in sequence order and dispatches each record
//! to the sink, at most `queue_capacity` at once. Caught up, it takes a group just
//! written as the records themselves (`Log::fresh`); behind, it reads the file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::{frame, Fresh, Spool, Unpoisoned, HOUSEKEEPING, READ_WINDOW};
use crate::delivery::Outcome;

/// Where the reader's next records come from.
enum Next {
    /// The group that starts where the reader is, still held in memory.
    Fresh(Fresh),
    /// The segment's file, from the reader's offset to its durable end.
    File(PathBuf, u64),
}

pub(super) struct Reader {
    spool: Arc<Spool>,
    start: u64,
}

impl Reader {
    pub(super) fn new(spool: Arc<Spool>, start: u64) -> Self {
        Self { spool, start }
    }

    pub(super) fn run(self) {
        let shared = Arc::clone(&self.spool.shared);
        let runtime = self.spool.runtime.clone();
        let (mut first_seq, mut offset) = (shared.log.locked().segments[0].first_seq, 0u64);
        let mut file: Option<(u64, File)> = None;
        loop {
            let next = {
                let mut log = shared.log.locked();
                loop {
                    if shared.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(i) = log.segments.iter().position(|s| s.first_seq == first_seq) else {
                        // Deleted under us: everything in it was confirmed; go to the oldest left.
                        first_seq = log.segments[0].first_seq;
                        offset = 0;
                        // A deleted segment's space returns only once no handle is open on it.
                        file = None;
                        continue;
                    };
                    let segment = &log.segments[i];
                    if offset < segment.len {
                        break match log.take_fresh(first_seq, offset) {
                            Some(fresh) => Next::Fresh(fresh),
                            None => {
                                let segment = &log.segments[i];
                                Next::File(segment.path.clone(), segment.len)
                            }
                        };
                    }
                    if i + 1 < log.segments.len() {
                        first_seq = log.segments[i + 1].first_seq;
                        offset = 0;
                        file = None;
                        continue;
                    }
                    log = shared
                        .appended
                        .wait_timeout(log, HOUSEKEEPING)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            };
            let records = match next {
                Next::Fresh(fresh) => {
                    offset = fresh.to;
                    fresh.records
                }
                Next::File(path, end) => {
                    match read_next(&mut file, first_seq, &path, offset, end) {
                        Ok((scan, read_to)) => {
                            offset = read_to;
                            if scan.corrupt > 0 {
                                shared.metrics.spool_corrupt.inc_by(scan.corrupt);
                                tracing::error!(
                                    records = scan.corrupt,
                                    "Corrupt records in the spool were skipped."
                                );
                            }
                            scan.records
                        }
                        Err(error) => {
                            tracing::error!(error = %error, path = %path.display(), "Cannot read the spool; retrying.");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
            };
            for spooled in records {
                if spooled.seq < self.start {
                    continue;
                }
                if shared.settled.contains(spooled.seq) {
                    // A dead letter already: never sent again.
                    shared.tracker.locked().next_to_dispatch = spooled.seq + 1;
                    continue;
                }
                let Ok(permit) = runtime.block_on(Arc::clone(&self.spool.permits).acquire_owned())
                else {
                    return;
                };
                let seq = spooled.seq;
                {
                    let mut tracker = shared.tracker.locked();
                    tracker.in_flight.insert(seq, spooled.record.accepted_at_ms);
                    tracker.next_to_dispatch = seq + 1;
                }
                let spool = Arc::clone(&self.spool);
                self.spool.sink.dispatch(
                    spooled.record,
                    Box::new(move |outcome, _| {
                        if outcome == Outcome::DeadLettered {
                            if let Err(error) = spool.shared.settled.mark(seq) {
                                tracing::error!(error = %error, "Cannot record a dead letter as settled in the spool; a restart will send it again, and it is not kept twice.");
                            }
                        }
                        if outcome != Outcome::Abandoned {
                            spool.confirm(seq);
                        }
                        drop(permit);
                    }),
                );
            }
        }
    }
}

/// Scans what follows `from` in a segment whose durable bytes end at `to`, at most
/// `READ_WINDOW` of it at a time so that a reader catching up after an outage does
/// not hold a whole segment in memory. A window ends inside a record: the scan stops
/// before it and the next read starts there. Where a window holds a damaged record,
/// or no whole one, the rest of the segment is scanned at once, as resynchronising
/// after damage needs. Returns the scan and where the next read starts.
fn read_next(
    file: &mut Option<(u64, File)>,
    first_seq: u64,
    path: &Path,
    from: u64,
    to: u64,
) -> io::Result<(frame::Scan, u64)> {
    let window_end = to.min(from + READ_WINDOW);
    if window_end < to {
        let scan = frame::scan(&read_range(file, first_seq, path, from, window_end)?);
        if scan.corrupt == 0 && scan.valid_end > 0 {
            let next = from + scan.valid_end as u64;
            return Ok((scan, next));
        }
    }
    Ok((
        frame::scan(&read_range(file, first_seq, path, from, to)?),
        to,
    ))
}

fn read_range(
    file: &mut Option<(u64, File)>,
    first_seq: u64,
    path: &Path,
    from: u64,
    to: u64,
) -> io::Result<Vec<u8>> {
    if file.as_ref().is_none_or(|(seq, _)| *seq != first_seq) {
        *file = Some((first_seq, File::open(path)?));
    }
    let (_, f) = file.as_mut().expect("just opened");
    f.seek(SeekFrom::Start(from))?;
    let mut chunk = vec![0; (to - from) as usize];
    f.read_exact(&mut chunk)?;
    Ok(chunk)
}
