//! The spool's files: segment names, the spare segment, and what a start finds after
//! a crash. Recovery checks that the files agree with each other (names, ranges, the
//! watermark) and refuses to guess when they do not.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::progress::{self, Found};
use super::{frame, Segment};
use crate::metrics::Metrics;

/// An empty file kept ready to become the next segment by a rename, so that a roll
/// needs no new inode (a filesystem out of inodes still lets the spool roll).
pub(crate) const SPARE: &str = "spare-segment";

/// The first sequence of every segment in `dir`, in order.
pub(crate) fn segment_firsts(dir: &Path) -> io::Result<Vec<u64>> {
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

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
}

/// Makes the segment `seg-<first_seq>.log`, from the spare when there is one; never
/// over a file that exists.
pub(crate) fn new_segment(dir: &Path, first_seq: u64) -> io::Result<Segment> {
    let path = segment_path(dir, first_seq);
    if path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already", path.display()),
        ));
    }
    let spare = dir.join(SPARE);
    match fs::rename(&spare, &path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::private::options()
                .write(true)
                .create_new(true)
                .open(&path)?
                .sync_all()?;
        }
        Err(e) => return Err(e),
    }
    File::open(dir)?.sync_all()?;
    Ok(Segment {
        first_seq,
        path,
        len: 0,
        last_seq: None,
    })
}

/// Turns a segment Kafka confirmed wholly into the spare (when there is none) instead
/// of deleting it: its inode is kept for the next roll. Deletes it otherwise.
pub(crate) fn retire_segment(dir: &Path, path: &Path) -> io::Result<()> {
    let spare = dir.join(SPARE);
    if spare.exists() {
        return fs::remove_file(path);
    }
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    fs::rename(path, spare)
}

/// Makes the spare, if there is none and the filesystem has an inode for it.
pub(crate) fn make_spare(dir: &Path) -> io::Result<()> {
    let spare = dir.join(SPARE);
    if spare.exists() {
        return Ok(());
    }
    super::private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spare)?
        .sync_all()?;
    File::open(dir)?.sync_all()
}

/// The watermark a spool's files say, for those who only read them (`spool inspect`).
pub(crate) fn read_watermark(dir: &Path) -> u64 {
    match progress::read(dir) {
        Ok(Found::Watermark(watermark)) => watermark,
        _ => 0,
    }
}

/// Where the bytes that are not zeros end.
pub(crate) fn written_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

/// What a start found in the spool directory.
pub(crate) struct Recovered {
    pub(crate) segments: Vec<Segment>,
    /// Above every sequence used before, whatever the watermark says.
    pub(crate) next_seq: u64,
    /// Records not yet confirmed by Kafka.
    pub(crate) waiting: u64,
    pub(crate) watermark: u64,
}

fn inconsistent(dir: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the spool in {} is inconsistent: {what}. The bridge does not guess which \
             events to send: keep the directory aside for inspection (`spool inspect`) \
             and start with an empty one",
            dir.display()
        ),
    )
}

/// Reads every segment: zeroes a torn last record, counts corrupt ones, checks that
/// every segment's records lie between its name and the next segment's, deletes
/// segments wholly below the watermark.
pub(crate) fn recover(dir: &Path, metrics: &Metrics) -> io::Result<Recovered> {
    let watermark = match progress::read(dir)? {
        Found::Watermark(watermark) => watermark,
        Found::Nothing => 0,
        Found::Unreadable => {
            // Lower than the truth only sends again: duplicates, never a loss.
            tracing::warn!(dir = %dir.display(), "The spool's confirmed watermark cannot be read; everything in it is sent again.");
            0
        }
    };
    let firsts = segment_firsts(dir)?;
    let mut segments = Vec::new();
    let (mut waiting, mut last_seen) = (0u64, None::<(u64, u64)>);
    for (i, &first_seq) in firsts.iter().enumerate() {
        let path = segment_path(dir, first_seq);
        let bytes = fs::read(&path)?;
        let scan = frame::scan(&bytes);
        if scan.corrupt > 0 {
            metrics.spool_corrupt.inc_by(scan.corrupt);
            tracing::error!(records = scan.corrupt, path = %path.display(), "Corrupt records in the spool are skipped.");
        }
        let written_end = written_end(&bytes);
        if scan.valid_end < written_end {
            tracing::warn!(bytes = written_end - scan.valid_end, path = %path.display(), "Cut a record torn by a crash (never acknowledged).");
            // Zeros, not a shorter file: the space stays filled ahead for the writer.
            let file = OpenOptions::new().write(true).open(&path)?;
            file.write_all_at(
                &vec![0; written_end - scan.valid_end],
                scan.valid_end as u64,
            )?;
            file.sync_data()?;
        }
        let next_first = firsts.get(i + 1).copied();
        for spooled in &scan.records {
            let seq = spooled.seq;
            if seq < first_seq || next_first.is_some_and(|next| seq >= next) {
                return Err(inconsistent(
                    dir,
                    format!(
                        "{} holds record {seq}, outside its range {first_seq}..{}",
                        path.display(),
                        next_first.map_or("".into(), |n| n.to_string())
                    ),
                ));
            }
            if let Some((before, in_segment)) = last_seen.filter(|(before, _)| seq <= *before) {
                return Err(inconsistent(
                    dir,
                    format!(
                        "record {seq} in {} follows record {before} of segment {in_segment}",
                        path.display()
                    ),
                ));
            }
            last_seen = Some((seq, first_seq));
            if seq >= watermark {
                waiting += 1;
            }
        }
        segments.push(Segment {
            first_seq,
            path,
            len: scan.valid_end as u64,
            last_seq: scan.records.last().map(|r| r.seq),
        });
    }
    let next_seq = [
        Some(watermark),
        segments.last().map(|s| s.first_seq),
        last_seen.map(|(seq, _)| seq + 1),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    // Everything but the last segment may go once the watermark covers it.
    while segments.len() > 1 && segments[0].confirmed_below(watermark) {
        let gone = segments.remove(0);
        fs::remove_file(&gone.path)?;
    }
    Ok(Recovered {
        segments,
        next_seq,
        waiting,
        watermark,
    })
}
