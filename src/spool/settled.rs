//! Records settled out of order that must stay settled across a restart: events Kafka
//! refused for good, whose dead letter is kept in `<spool_dir>/dead/`. The watermark
//! cannot pass them while an event before them waits, so without this a restart, a
//! `spool drain` or a producer's replacement sent them again, and each refusal wrote
//! one more dead letter (and, once the cause was fixed, one more copy in Kafka).
//!
//! The file `settled` holds one entry per such record, `seq | CRC32(seq)`, appended and
//! fsynced after its dead letter; a torn or damaged entry is skipped. Once the recorded
//! watermark is past every entry, the file is emptied in place (no new inode).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::Unpoisoned;

const FILE: &str = "settled";
const ENTRY: usize = 12;

pub(crate) struct Settled {
    file: Mutex<Option<File>>,
    dir: std::path::PathBuf,
    seqs: Mutex<BTreeSet<u64>>,
    /// Whether `seqs` holds any: the reader asks per record, almost always of none.
    any: AtomicBool,
}

/// The sequences the `settled` file of the spool in `dir` holds.
pub(crate) fn read(dir: &Path) -> io::Result<BTreeSet<u64>> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    Ok(bytes
        .chunks_exact(ENTRY)
        .filter_map(|entry| {
            let seq: [u8; 8] = entry[..8].try_into().expect("8 bytes");
            (crc32fast::hash(&seq).to_le_bytes() == entry[8..]).then(|| u64::from_le_bytes(seq))
        })
        .collect())
}

impl Settled {
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        // A write torn by a crash leaves a partial entry: cut it, so that the next
        // appends stay aligned.
        match std::fs::OpenOptions::new().write(true).open(dir.join(FILE)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                if len % ENTRY as u64 != 0 {
                    f.set_len(len - len % ENTRY as u64)?;
                    f.sync_all()?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let seqs = read(dir)?;
        Ok(Self {
            file: Mutex::new(None),
            dir: dir.to_owned(),
            any: AtomicBool::new(!seqs.is_empty()),
            seqs: Mutex::new(seqs),
        })
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.any.load(Ordering::Acquire) && self.seqs.locked().contains(&seq)
    }

    /// How many of the held sequences are at or above `watermark`.
    pub(crate) fn count_from(&self, watermark: u64) -> u64 {
        self.seqs.locked().range(watermark..).count() as u64
    }

    /// Records `seq` as settled, durably.
    pub(crate) fn mark(&self, seq: u64) -> io::Result<()> {
        let mut entry = [0u8; ENTRY];
        entry[..8].copy_from_slice(&seq.to_le_bytes());
        entry[8..].copy_from_slice(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes());
        let mut file = self.file.locked();
        if file.is_none() {
            *file = Some(
                super::private::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(FILE))?,
            );
            File::open(&self.dir)?.sync_all()?;
        }
        let f = file.as_mut().expect("just opened");
        if let Err(error) = f.write_all(&entry).and_then(|()| f.sync_data()) {
            *file = None;
            return Err(error);
        }
        self.seqs.locked().insert(seq);
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    /// Forgets every entry once the durable `watermark` is past them all.
    pub(crate) fn forget_below(&self, watermark: u64) -> io::Result<()> {
        let mut seqs = self.seqs.locked();
        if seqs.is_empty() || seqs.last().is_some_and(|last| *last >= watermark) {
            return Ok(());
        }
        let file = self.file.locked();
        match file.as_ref() {
            Some(f) => f.set_len(0)?,
            None => match std::fs::OpenOptions::new()
                .write(true)
                .open(self.dir.join(FILE))
            {
                Ok(f) => f.set_len(0)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        seqs.clear();
        self.any.store(false, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_reopen_and_are_forgotten_once_the_watermark_passes_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let settled = Settled::open(dir.path()).unwrap();
        settled.mark(7).unwrap();
        settled.mark(9).unwrap();
        let again = Settled::open(dir.path()).unwrap();
        assert!(again.contains(7) && again.contains(9) && !again.contains(8));
        assert_eq!(again.count_from(8), 1);

        again.forget_below(9).unwrap();
        assert!(again.contains(9), "9 is not below the watermark yet");
        again.forget_below(10).unwrap();
        assert!(!again.contains(9));
        assert!(read(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_torn_entry_is_cut_and_the_next_marks_read_back() {
        let dir = tempfile::tempdir().unwrap();
        Settled::open(dir.path()).unwrap().mark(3).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(&[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), BTreeSet::from([3]));
        Settled::open(dir.path()).unwrap().mark(4).unwrap();
        assert_eq!(read(dir.path()).unwrap(), BTreeSet::from([3, 4]));
    }
}
