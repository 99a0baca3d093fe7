//! The spool's files: segment names, the `confirmed` watermark, and what a start
//! finds after a crash.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{frame, Segment};
use crate::metrics::Metrics;

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

pub(crate) fn new_segment(dir: &Path, first_seq: u64) -> io::Result<Segment> {
    let path = segment_path(dir, first_seq);
    File::create(&path)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(Segment {
        first_seq,
        path,
        len: 0,
        last_seq: None,
    })
}

pub(crate) fn read_watermark(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("confirmed"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) fn write_watermark(dir: &Path, watermark: u64) -> io::Result<()> {
    let tmp = dir.join("confirmed.tmp");
    fs::write(&tmp, watermark.to_string())?;
    fs::rename(tmp, dir.join("confirmed"))
}

/// Where the bytes that are not zeros end.
pub(crate) fn written_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

/// Reads every segment: zeroes a torn last record, counts corrupt ones, deletes segments
/// wholly confirmed. Returns the segments left, the next sequence, and how many
/// records wait for Kafka.
pub(crate) fn recover(
    dir: &Path,
    watermark: u64,
    metrics: &Metrics,
) -> io::Result<(Vec<Segment>, u64, u64)> {
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
            last_seq: scan.records.iter().map(|r| r.seq).max(),
        });
    }
    Ok((segments, next_seq, waiting))
}
