//! The `confirmed` file: the durable watermark (the lowest sequence Kafka has not
//! confirmed), overwritten in place rather than written beside and renamed, so that
//! recording progress needs no new inode and no new block: a filesystem out of
//! inodes or space still lets the spool record what Kafka confirmed.
//!
//! Two slots of `SLOT_BYTES`, in different sectors, written in turn and fsynced,
//! each `MAGIC | generation | watermark | CRC32`: a write torn by a crash spoils at
//! most the slot being written, and a start reads the valid slot of the highest
//! generation. The text format of earlier versions (the watermark in decimal) is
//! still read, and rewritten as slots when the spool opens.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"TIMWMK01";
const SLOT_BYTES: u64 = 512;
const RECORD: usize = 28;

/// What the `confirmed` file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file: a new spool.
    Nothing,
    Watermark(u64),
    /// A file that holds no valid watermark (both slots torn or damaged).
    Unreadable,
}

pub(crate) struct Progress {
    file: File,
    generation: u64,
}

fn encode(generation: u64, watermark: u64) -> [u8; RECORD] {
    let mut out = [0u8; RECORD];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    out[16..24].copy_from_slice(&watermark.to_le_bytes());
    let crc = crc32fast::hash(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(slot: &[u8]) -> Option<(u64, u64)> {
    let slot = slot.get(..RECORD)?;
    if &slot[..8] != MAGIC || crc32fast::hash(&slot[..24]).to_le_bytes() != slot[24..] {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().expect("8 bytes"));
    Some((word(8), word(16)))
}

/// The slot of the highest generation, or the text of an earlier version.
fn parse(bytes: &[u8]) -> Option<(u64, u64)> {
    if let Some(watermark) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return Some((0, watermark));
    }
    let first = decode(bytes);
    let second = bytes.get(SLOT_BYTES as usize..).and_then(decode);
    first.into_iter().chain(second).max()
}

pub(crate) fn read(dir: &Path) -> io::Result<Found> {
    match std::fs::read(dir.join("confirmed")) {
        Ok(bytes) => Ok(parse(&bytes).map_or(Found::Unreadable, |(_, w)| Found::Watermark(w))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(e),
    }
}

impl Progress {
    /// Opens (or creates) the file and makes both slots hold `watermark`, so that
    /// every later write overwrites bytes that already exist.
    pub(crate) fn open(dir: &Path, watermark: u64) -> io::Result<Self> {
        let file = super::private::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("confirmed"))?;
        let mut progress = Progress {
            file,
            generation: 0,
        };
        progress.write_slot(0, watermark)?;
        progress.write_slot(1, watermark)?;
        progress.file.set_len(2 * SLOT_BYTES)?;
        progress.file.sync_all()?;
        File::open(dir)?.sync_all()?;
        progress.generation = 1;
        Ok(progress)
    }

    fn write_slot(&self, generation: u64, watermark: u64) -> io::Result<()> {
        let at = (generation % 2) * SLOT_BYTES;
        self.file.write_all_at(&encode(generation, watermark), at)
    }

    /// Writes `watermark` over the older slot and fsyncs it; once this returns Ok,
    /// a start after any crash reads at least `watermark`.
    pub(crate) fn record(&mut self, watermark: u64) -> io::Result<()> {
        let generation = self.generation + 1;
        self.write_slot(generation, watermark)?;
        self.file.sync_data()?;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_one_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut progress = Progress::open(dir.path(), 7).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Watermark(7));
        progress.record(10).unwrap();
        progress.record(12).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Watermark(12));
        // A crash in the middle of the next write: that slot is torn.
        let slot = (progress.generation + 1) % 2 * SLOT_BYTES;
        progress
            .file
            .write_all_at(b"TIMWMK01\xff\xff", slot)
            .unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Watermark(12));
        progress.file.write_all_at(&[0xff; 4], 16).unwrap();
        progress
            .file
            .write_all_at(&[0xff; 4], SLOT_BYTES + 16)
            .unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Unreadable);
    }

    #[test]
    fn the_text_of_earlier_versions_is_read_and_rewritten_as_slots() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Nothing);
        std::fs::write(dir.path().join("confirmed"), "4242").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Watermark(4242));
        let mut progress = Progress::open(dir.path(), 4242).unwrap();
        progress.record(4300).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Found::Watermark(4300));
    }
}
