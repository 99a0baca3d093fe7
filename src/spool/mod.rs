//! The durable spool: an append-only log on disk between the answer and Kafka.
//!
//! Written here rather than taken from a crate because the workload is narrow —
//! append, read in order, confirm out of order, delete whole files — and the
//! guarantees must be exact: a record is fsynced before its callback is answered,
//! and let go only after Kafka confirmed it. Candidates (sled, a WAL crate, an
//! embedded database) bring compaction or transactions this does not need.
//!
//! - Segment files `seg-<first seq>.log` hold frames (`frame.rs`). A writer thread
//!   takes every append waiting, writes them and shares one `fdatasync` among them.
//! - A reader thread follows the log in sequence order and dispatches each record to
//!   Kafka, at most `queue_capacity` at once; on start it begins at the watermark,
//!   so unconfirmed records go out again before anything newer.
//! - The watermark — the lowest sequence Kafka has not confirmed — is written to the
//!   file `confirmed` (write and rename) every 100 ms; segments wholly below it are
//!   deleted. After a crash, records between the written watermark and what Kafka
//!   had really confirmed are sent again: at-least-once, with the same event `id`.

pub mod admin;
mod dead;
mod frame;

pub use dead::{read as read_dead_letters, DeadLetters, Found as DeadLettersFound};
pub use frame::DeadLetter;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::kafka::{now_ms, Done, Outcome, Record};
use crate::metrics::Metrics;
use crate::queue::Rejected;

/// Where the reader sends records: the Kafka forwarder, or a test's stand-in.
pub trait Sink: Send + Sync + 'static {
    fn dispatch(&self, record: Record, done: Done);
}

impl Sink for Arc<crate::kafka::Forwarder> {
    fn dispatch(&self, record: Record, done: Done) {
        crate::kafka::Forwarder::dispatch(self, record, done);
    }
}

const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// A drained active segment larger than this is closed so that it can be deleted.
const ROLL_WHEN_DRAINED: u64 = 64 * 1024;
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;
const READ_WINDOW: u64 = 1024 * 1024;

/// One callback's events: written together, or refused together.
struct Append {
    records: Vec<Record>,
    done: oneshot::Sender<Result<(), Rejected>>,
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
    len: u64,
}

/// The log as the writer left it: every byte up to `segments.last().len` is durable.
struct Log {
    segments: Vec<Segment>,
    bytes: u64,
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
    metrics: Arc<Metrics>,
}

pub struct Spool {
    shared: Arc<Shared>,
    appends: Mutex<Option<mpsc::Sender<Append>>>,
    permits: Arc<Semaphore>,
    sink: Box<dyn Sink>,
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
        sink: impl Sink,
        metrics: Arc<Metrics>,
    ) -> io::Result<Arc<Self>> {
        fs::create_dir_all(dir)?;
        let lock = File::create(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another bridge", dir.display()),
            )
        })?;
        let watermark = read_watermark(dir);
        let (mut segments, next_seq, waiting) = recover(dir, watermark, &metrics)?;
        if segments.is_empty() {
            segments.push(new_segment(dir, next_seq)?);
        }
        let bytes = segments.iter().map(|s| s.len).sum();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            log: Mutex::new(Log { segments, bytes }),
            appended: Condvar::new(),
            tracker: Mutex::new(Tracker {
                in_flight: BTreeMap::new(),
                next_to_dispatch: watermark,
            }),
            waiting: AtomicU64::new(waiting),
            full: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            metrics,
        });
        if waiting > 0 {
            tracing::info!(
                records = waiting,
                "Sending what the spool kept from the last run."
            );
        }
        let segment_bytes = (max_bytes / 4).clamp(4096, MAX_SEGMENT);
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), next_seq, max_bytes, segment_bytes)?;
        let spool = Arc::new(Spool {
            shared: Arc::clone(&shared),
            appends: Mutex::new(Some(tx)),
            permits: Arc::new(Semaphore::new(in_flight)),
            sink: Box::new(sink),
            runtime: tokio::runtime::Handle::current(),
            threads: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(lock)),
        });
        let reader = Reader::new(Arc::clone(&spool), watermark);
        let mut threads = spool.threads.lock().expect("threads lock");
        threads.push(
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || writer.run(rx))?,
        );
        threads.push(
            std::thread::Builder::new()
                .name("spool-reader".into())
                .spawn(move || reader.run())?,
        );
        drop(threads);
        shared.publish_gauges();
        Ok(spool)
    }

    /// Returns once the records are on disk and fsynced.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), Rejected> {
        if self.shared.full.load(Ordering::Relaxed) {
            return Err(Rejected::SpoolFull);
        }
        let (done, wait) = oneshot::channel();
        let sent = match &*self.appends.lock().expect("appends lock") {
            Some(tx) => tx.send(Append { records, done }).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Rejected::SpoolFailed);
        }
        wait.await.unwrap_or(Err(Rejected::SpoolFailed))
    }

    pub fn waiting(&self) -> u64 {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    pub fn is_full(&self) -> bool {
        self.shared.full.load(Ordering::Relaxed)
    }

    /// Takes no more appends; everything appended is already durable.
    pub fn close_appends(&self) {
        self.appends.lock().expect("appends lock").take();
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
        self.stop_reading();
        self.shared.finished.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
            .await
            .ok();
        self.lock.lock().expect("lock lock").take();
        self.waiting()
    }

    fn confirm(&self, seq: u64) {
        self.shared
            .tracker
            .lock()
            .expect("tracker lock")
            .in_flight
            .remove(&seq);
        self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Durable bytes in the segment being written.
    fn active_len(&self) -> u64 {
        self.log
            .lock()
            .expect("log lock")
            .segments
            .last()
            .expect("a segment")
            .len
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.spool_bytes
            .set(self.log.lock().expect("log lock").bytes as i64);
        m.queue_depth
            .set(self.waiting.load(Ordering::Relaxed) as i64);
        let oldest = self
            .tracker
            .lock()
            .expect("tracker lock")
            .in_flight
            .values()
            .next()
            .copied();
        let age_ms = oldest.map_or(0, |t| now_ms().saturating_sub(t));
        m.spool_oldest_age.set(age_ms as f64 / 1000.0);
    }
}

struct Writer {
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
    fn new(
        shared: Arc<Shared>,
        next_seq: u64,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> io::Result<Self> {
        let path = shared
            .log
            .lock()
            .expect("log lock")
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

    fn run(mut self, appends: mpsc::Receiver<Append>) {
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
        let on_disk = self.shared.log.lock().expect("log lock").bytes;
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
            let mut log = self.shared.log.lock().expect("log lock");
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
        let watermark = self
            .shared
            .tracker
            .lock()
            .expect("tracker lock")
            .watermark();
        if watermark != self.written_watermark
            && write_watermark(&self.shared.dir, watermark).is_ok()
        {
            self.written_watermark = watermark;
        }
        if watermark >= self.next_seq && self.shared.active_len() >= ROLL_WHEN_DRAINED {
            self.roll();
        }
        let mut log = self.shared.log.lock().expect("log lock");
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
        self.shared
            .log
            .lock()
            .expect("log lock")
            .segments
            .push(segment);
        self.shared.appended.notify_all();
        Ok(())
    }
}

struct Reader {
    spool: Arc<Spool>,
    start: u64,
}

impl Reader {
    fn new(spool: Arc<Spool>, start: u64) -> Self {
        Self { spool, start }
    }

    fn run(self) {
        let shared = Arc::clone(&self.spool.shared);
        let runtime = self.spool.runtime.clone();
        let (mut first_seq, mut offset) = (
            shared.log.lock().expect("log lock").segments[0].first_seq,
            0u64,
        );
        let mut file: Option<(u64, File)> = None;
        loop {
            let (path, end) = {
                let mut log = shared.log.lock().expect("log lock");
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
                        break (segment.path.clone(), segment.len);
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
                        .expect("log lock")
                        .0;
                }
            };
            let scan = match read_next(&mut file, first_seq, &path, offset, end) {
                Ok((scan, read_to)) => {
                    offset = read_to;
                    scan
                }
                Err(error) => {
                    tracing::error!(error = %error, path = %path.display(), "Cannot read the spool; retrying.");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if scan.corrupt > 0 {
                shared.metrics.spool_corrupt.inc_by(scan.corrupt);
                tracing::error!(
                    records = scan.corrupt,
                    "Corrupt records in the spool were skipped."
                );
            }
            for spooled in scan.records {
                if spooled.seq < self.start {
                    continue;
                }
                let Ok(permit) = runtime.block_on(Arc::clone(&self.spool.permits).acquire_owned())
                else {
                    return;
                };
                let seq = spooled.seq;
                {
                    let mut tracker = shared.tracker.lock().expect("tracker lock");
                    tracker.in_flight.insert(seq, spooled.record.accepted_at_ms);
                    tracker.next_to_dispatch = seq + 1;
                }
                let spool = Arc::clone(&self.spool);
                self.spool.sink.dispatch(
                    spooled.record,
                    Box::new(move |outcome, _| {
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

/// The first sequence of every segment in `dir`, in order.
fn segment_firsts(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    firsts.sort_unstable();
    Ok(firsts)
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
}

fn new_segment(dir: &Path, first_seq: u64) -> io::Result<Segment> {
    let path = segment_path(dir, first_seq);
    File::create(&path)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(Segment {
        first_seq,
        path,
        len: 0,
    })
}

fn read_watermark(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("confirmed"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_watermark(dir: &Path, watermark: u64) -> io::Result<()> {
    let tmp = dir.join("confirmed.tmp");
    fs::write(&tmp, watermark.to_string())?;
    fs::rename(tmp, dir.join("confirmed"))
}

/// Reads every segment: cuts a torn last record, counts corrupt ones, deletes segments
/// wholly confirmed. Returns the segments left, the next sequence, and how many
/// records wait for Kafka.
fn recover(dir: &Path, watermark: u64, metrics: &Metrics) -> io::Result<(Vec<Segment>, u64, u64)> {
    let firsts = segment_firsts(dir)?;
    let mut segments = Vec::new();
    let (mut next_seq, mut waiting) = (watermark, 0u64);
    for (i, &first_seq) in firsts.iter().enumerate() {
        let path = segment_path(dir, first_seq);
        if firsts.get(i + 1).is_some_and(|next| *next <= watermark) {
            fs::remove_file(&path)?;
            continue;
        }
        let bytes = fs::read(&path)?;
        let scan = frame::scan(&bytes);
        if scan.corrupt > 0 {
            metrics.spool_corrupt.inc_by(scan.corrupt);
            tracing::error!(records = scan.corrupt, path = %path.display(), "Corrupt records in the spool are skipped.");
        }
        if scan.valid_end < bytes.len() {
            tracing::warn!(bytes = bytes.len() - scan.valid_end, path = %path.display(), "Cut a record torn by a crash (never acknowledged).");
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(scan.valid_end as u64)?;
        }
        for spooled in &scan.records {
            next_seq = next_seq.max(spooled.seq + 1);
            if spooled.seq >= watermark {
                waiting += 1;
            }
        }
        segments.push(Segment {
            first_seq,
            path,
            len: scan.valid_end as u64,
        });
    }
    Ok((segments, next_seq, waiting))
}

#[cfg(test)]
mod tests;
