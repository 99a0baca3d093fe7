//! The dead-letter log: events Kafka refused for good (larger than the topic allows,
//! an invalid record or topic), kept on disk under `<spool_dir>/dead/` in both ack
//! modes instead of being let go of. Same frames and CRC as the spool, each with the
//! refusal's reason and time. `tim-kafka-bridge spool drain --dead` sends them again.

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::frame::{self, DeadLetter};
use crate::delivery::{now_ms, Record};
use crate::metrics::Metrics;

/// The file new dead letters are appended to; `spool drain --dead` renames it to
/// `draining-<ms>.log` while it sends them.
const CURRENT: &str = "letters.log";

pub struct DeadLetters {
    dir: PathBuf,
    file: Mutex<Option<File>>,
    /// Each letter not being sent by this process's drain, by [`identity`]: a record refused again
    /// (sent again after a crash, before the spool recorded it settled) is not kept twice.
    kept: Mutex<HashSet<Identity>>,
    next_seq: AtomicU64,
    metrics: Arc<Metrics>,
    /// One ERROR line per refusal reason per 10 s; the metrics count every letter.
    lines: crate::quota::LineQuota,
}

/// Every dead letter in a directory, and how many frames were damaged.
pub struct Found {
    pub letters: Vec<DeadLetter>,
    pub corrupt: u64,
    pub files: Vec<PathBuf>,
}

impl DeadLetters {
    /// Opens `<spool_dir>/dead/`, creating it, and counts what it holds.
    pub fn open(spool_dir: &Path, metrics: Arc<Metrics>) -> io::Result<Arc<Self>> {
        let dir = spool_dir.join("dead");
        super::private::create_dir(&dir)?;
        super::private::tighten_and_log(&dir);
        let found = read(&dir)?;
        let next_seq = found.letters.iter().map(|d| d.seq + 1).max().unwrap_or(0);
        metrics.dead_letters.set(found.letters.len() as i64);
        let kept = found.letters.iter().map(|d| identity(&d.record)).collect();
        Ok(Arc::new(Self {
            dir,
            file: Mutex::new(None),
            kept: Mutex::new(kept),
            next_seq: AtomicU64::new(next_seq),
            metrics,
            lines: crate::quota::LineQuota::new(std::time::Duration::from_secs(10)),
        }))
    }

    /// Appends `record`, refused for `reason` (Kafka's words: `cause`), and fsyncs it;
    /// `Ok(false)` when the same record is kept already. The one place a dead letter
    /// is logged and counted; the caller logs only a failure to keep it.
    pub fn keep(
        &self,
        record: &Record,
        reason: &'static str,
        cause: &dyn std::fmt::Display,
    ) -> io::Result<bool> {
        let identity = identity(record);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.contains(&identity) {
            drop(kept);
            if let Some(unlogged) = self.lines.take(reason) {
                tracing::warn!(topic = %record.topic, error = %cause, reason, unlogged_since_last_line = unlogged,
                    "Kafka refused an event for good again; the dead-letter log has it already.");
            }
            return Ok(false);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::new();
        frame::encode_dead(seq, record, reason, now_ms(), &mut buf);
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if file.is_none() {
            *file = Some(
                super::private::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(CURRENT))?,
            );
            File::open(&self.dir)?.sync_all()?;
        }
        let f = file.as_mut().expect("just opened");
        if let Err(error) = f.write_all(&buf).and_then(|()| f.sync_data()) {
            // Never append after a failed write: the next letter opens the file again.
            *file = None;
            return Err(error);
        }
        self.metrics.dead_letters.inc();
        self.metrics
            .events_dead_lettered
            .get_or_create(&crate::metrics::DeadLabels {
                topic: record.topic.clone(),
                reason: reason.to_owned(),
            })
            .inc();
        kept.insert(identity);
        drop(kept);
        // Keys name accounts (`user:<account>`): at debug only.
        tracing::debug!(topic = %record.topic, msg_key = record.key.as_deref().unwrap_or(""), "The dead letter's key.");
        if let Some(unlogged) = self.lines.take(reason) {
            tracing::error!(topic = %record.topic, error = %cause, reason, unlogged_since_last_line = unlogged,
                "Kafka refused an event for good; it is kept in the dead-letter log (`spool inspect --dead` lists it).");
        }
        Ok(true)
    }

    /// Moves the letters kept so far aside for a drain: new refusals go to a new file.
    pub fn set_aside(&self) -> io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        *file = None;
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let current = self.dir.join(CURRENT);
        if current.exists() {
            fs::rename(
                &current,
                self.dir.join(format!("draining-{}.log", now_ms())),
            )?;
        }
        Ok(())
    }

    /// Ends a drain: the letters in `draining` files are replaced by `left` (those
    /// Kafka did not answer in time), written to a new set-aside file first, so that
    /// a crash in between sends some twice rather than losing any.
    pub fn replace_draining(&self, draining: &[PathBuf], left: &[DeadLetter]) -> io::Result<()> {
        if !left.is_empty() {
            let mut buf = Vec::new();
            for letter in left {
                frame::encode_dead(
                    letter.seq,
                    &letter.record,
                    &letter.reason,
                    letter.dead_at_ms,
                    &mut buf,
                );
            }
            let path = self.dir.join(format!("draining-{}.log", now_ms() + 1));
            let mut file = super::private::options()
                .write(true)
                .create_new(true)
                .open(&path)?;
            file.write_all(&buf)?;
            file.sync_all()?;
            File::open(&self.dir)?.sync_all()?;
            self.kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(left.iter().map(|l| identity(&l.record)));
        }
        for path in draining {
            fs::remove_file(path)?;
        }
        File::open(&self.dir)?.sync_all()?;
        let waiting = read(&self.dir)?.letters.len();
        self.metrics.dead_letters.set(waiting as i64);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What makes two dead letters the same event: its topic, key and exact bytes.
type Identity = (String, Option<String>, usize, u64);

fn identity(record: &Record) -> Identity {
    let mut hasher = std::hash::DefaultHasher::new();
    record.payload.hash(&mut hasher);
    (
        record.topic.clone(),
        record.key.clone(),
        record.payload.len(),
        hasher.finish(),
    )
}

/// Reads every dead-letter file in `dir` (`<spool_dir>/dead`), oldest first.
pub fn read(dir: &Path) -> io::Result<Found> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    // draining-<ms>.log sort before letters.log, and among themselves by time.
    files.sort();
    let mut found = Found {
        letters: Vec::new(),
        corrupt: 0,
        files: Vec::new(),
    };
    for path in files {
        let scan = frame::scan_dead(&fs::read(&path)?);
        found.letters.extend(scan.records);
        found.corrupt += scan.corrupt;
        found.files.push(path);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> Record {
        Record {
            topic: "tim.c2c.messages".into(),
            key: Some(key.into()),
            payload: b"{}".to_vec(),
            command: "C2C.CallbackAfterSendMsg".into(),
            sdk_app_id: 1400000000,
            accepted_at_ms: 1,
            trace: None,
        }
    }

    #[test]
    fn kept_letters_survive_a_reopen_and_a_set_aside_file_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let dead = DeadLetters::open(dir.path(), Arc::clone(&metrics)).unwrap();
        dead.keep(&record("a"), "message_too_large", &"test")
            .unwrap();
        dead.set_aside().unwrap();
        dead.keep(&record("b"), "invalid_record", &"test").unwrap();
        drop(dead);

        let again = DeadLetters::open(dir.path(), Arc::clone(&metrics)).unwrap();
        let found = read(again.dir()).unwrap();
        let keys: Vec<_> = found
            .letters
            .iter()
            .map(|d| d.record.key.clone().unwrap())
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(found.letters[0].reason, "message_too_large");
        assert_eq!(found.files.len(), 2);
        assert_eq!(metrics.dead_letters.get(), 2);
        again.keep(&record("c"), "invalid_topic", &"test").unwrap();
        assert_eq!(read(again.dir()).unwrap().letters[2].seq, 2);
    }
}
