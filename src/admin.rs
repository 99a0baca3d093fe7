//! `tim-kafka-bridge spool inspect | drain`: what an operator needs for a spool that has
//! no bridge (a replica scaled in, a host retired) or a dead-letter log to replay.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;

use crate::delivery::gate::Gate;
use crate::delivery::{now_ms, Outcome};
use crate::kafka::Forwarder;
use crate::metrics::Metrics;
use crate::ownership::{self, Claimed};
use crate::settings::{BufferConfig, KafkaConfig};
use crate::spool::{frame, read_watermark, segment_firsts, segment_path, DeadLetters};
use crate::startup;

/// What `spool inspect` reports. Read-only: safe while a bridge runs on the directory.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub dir: String,
    pub waiting: u64,
    pub bytes: u64,
    pub segments: usize,
    pub oldest_waiting_age_secs: Option<u64>,
    pub corrupt: u64,
    pub dead_letters: u64,
    /// Dead letters by topic, then reason.
    pub dead_by_topic: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dead: Vec<DeadLine>,
}

#[derive(Debug, Serialize)]
pub struct DeadLine {
    pub topic: String,
    pub key: Option<String>,
    pub command: String,
    pub reason: String,
    pub time: String,
}

pub fn inspect(dir: &Path, list_dead: bool) -> std::io::Result<Inspection> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a spool directory", dir.display()),
        ));
    }
    let watermark = read_watermark(dir);
    let firsts = segment_firsts(dir)?;
    let mut report = Inspection {
        dir: dir.display().to_string(),
        waiting: 0,
        bytes: 0,
        segments: firsts.len(),
        oldest_waiting_age_secs: None,
        corrupt: 0,
        dead_letters: 0,
        dead_by_topic: BTreeMap::new(),
        dead: Vec::new(),
    };
    let settled = crate::spool::settled::read(dir)?;
    let mut oldest: Option<u64> = None;
    for first in firsts {
        let bytes = match std::fs::read(segment_path(dir, first)) {
            Ok(bytes) => bytes,
            // Deleted by a running bridge between the listing and the read: all confirmed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        report.bytes += bytes.len() as u64;
        let scan = frame::scan(&bytes);
        report.corrupt += scan.corrupt;
        for spooled in scan
            .records
            .iter()
            .filter(|s| s.seq >= watermark && !settled.contains(&s.seq))
        {
            report.waiting += 1;
            let at = spooled.record.accepted_at_ms;
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    report.oldest_waiting_age_secs = oldest.map(|at| now_ms().saturating_sub(at) / 1000);
    let found = crate::spool::read_dead_letters(&dir.join("dead"))?;
    report.corrupt += found.corrupt;
    report.dead_letters = found.letters.len() as u64;
    for letter in &found.letters {
        *report
            .dead_by_topic
            .entry(letter.record.topic.clone())
            .or_default()
            .entry(letter.reason.clone())
            .or_default() += 1;
        if list_dead {
            report.dead.push(DeadLine {
                topic: letter.record.topic.clone(),
                key: letter.record.key.clone(),
                command: letter.record.command.clone(),
                reason: letter.reason.clone(),
                time: humantime::format_rfc3339_millis(
                    UNIX_EPOCH + Duration::from_millis(letter.dead_at_ms),
                )
                .to_string(),
            });
        }
    }
    Ok(report)
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spool {}: {} records waiting for Kafka, {} bytes in {} segments",
            self.dir, self.waiting, self.bytes, self.segments
        )?;
        if let Some(age) = self.oldest_waiting_age_secs {
            write!(f, ", the oldest waiting {age} s")?;
        }
        writeln!(f, "; {} corrupt records", self.corrupt)?;
        writeln!(f, "dead letters: {}", self.dead_letters)?;
        for (topic, reasons) in &self.dead_by_topic {
            for (reason, n) in reasons {
                writeln!(f, "  {topic} {reason}: {n}")?;
            }
        }
        for d in &self.dead {
            writeln!(
                f,
                "  {} {} {} {} {}",
                d.time,
                d.topic,
                d.key.as_deref().unwrap_or("-"),
                d.command,
                d.reason
            )?;
        }
        Ok(())
    }
}

/// What `spool drain` did.
#[derive(Debug, Default)]
pub struct Drained {
    pub sent: u64,
    pub left: u64,
    pub dead_sent: u64,
    pub dead_refused_again: u64,
    pub dead_left: u64,
    /// Dead letters in the log when the drain ended (refused again, left, or not
    /// asked for without `--dead`).
    pub dead_waiting: u64,
}

impl Drained {
    /// Nothing is left behind: no record in the spool, no dead letter.
    pub fn complete(&self) -> bool {
        self.left == 0 && self.dead_waiting == 0
    }
}

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spool drain: sent {} records, {} left; dead letters: sent {}, refused again {}, left {}; {} dead letters wait",
            self.sent, self.left, self.dead_sent, self.dead_refused_again, self.dead_left, self.dead_waiting
        )?;
        if self.left > 0 {
            write!(f, "\nspool drain: {} records are still in the spool: Kafka did not confirm them within --patience (the ERROR and WARN lines above say why); run it again", self.left)?;
        }
        if self.dead_waiting > 0 {
            write!(f, "\nspool drain: {} dead letters wait in the dead-letter log: fix what Kafka refused (`spool inspect --dead` lists the reasons), then `spool drain --dead`", self.dead_waiting)?;
        }
        Ok(())
    }
}

/// Sends every record waiting in the spool at `buffer.spool_dir` to Kafka in order
/// (the spool's own reader, under its lock), then, with `dead`, every dead letter.
/// Gives up once `patience` passes with no confirmation.
pub async fn drain(
    kafka: &KafkaConfig,
    buffer: &BufferConfig,
    dead: bool,
    patience: Duration,
) -> anyhow::Result<Drained> {
    let metrics = Arc::new(Metrics::default());
    let forwarder = startup::start_forwarder(kafka, &buffer.spool_dir, &metrics)?;
    let gate = Gate::closed(Arc::clone(&forwarder) as _);
    let spool = startup::open_spool(
        &buffer.spool_dir,
        buffer.spool_max_bytes,
        buffer.capacity.get(),
        Arc::clone(&gate) as _,
        &metrics,
    )?;
    spool.close_appends();
    let holding = ownership::holding(&buffer.spool_dir, spool.waiting());
    let wait = patience.min(Duration::from_secs(30));
    match ownership::claim(
        &buffer.spool_dir,
        &kafka.brokers,
        forwarder.producer(),
        holding,
        buffer.adopt_spool,
        wait,
    )
    .await?
    {
        Claimed::Yes => gate.open(),
        Claimed::Unknown => anyhow::bail!(
            "the Kafka cluster at {} did not say who it is within {} s, so the spool's cluster cannot be checked; nothing was sent (check kafka.brokers)",
            kafka.brokers,
            wait.as_secs()
        ),
    }
    let total = spool.waiting();
    eprintln!(
        "spool drain: {total} records waiting in {}",
        buffer.spool_dir.display()
    );
    let mut last = (total, Instant::now());
    while spool.waiting() > 0 && last.1.elapsed() < patience {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = spool.waiting();
        if now != last.0 {
            last = (now, Instant::now());
        }
        eprintln!("spool drain: {} of {total} confirmed", total - now);
    }
    spool.stop_reading();
    forwarder.shutdown(Duration::from_secs(5)).await;
    let left = spool.finish().await;
    let mut drained = Drained {
        sent: total - left,
        left,
        ..Drained::default()
    };
    if dead && left == 0 {
        drain_dead(&forwarder, forwarder.dead_letters(), patience, &mut drained).await?;
    }
    drained.dead_waiting = crate::spool::read_dead_letters(forwarder.dead_letters().dir())?
        .letters
        .len() as u64;
    Ok(drained)
}

async fn drain_dead(
    forwarder: &Arc<Forwarder>,
    dead_letters: &DeadLetters,
    patience: Duration,
    drained: &mut Drained,
) -> anyhow::Result<()> {
    // New refusals (these letters refused again) go to a new file: they stay dead letters.
    dead_letters.set_aside()?;
    let found = crate::spool::read_dead_letters(dead_letters.dir())?;
    let draining: Vec<_> = found
        .files
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("draining-"))
        })
        .cloned()
        .collect();
    let letters = found.letters;
    let total = letters.len() as u64;
    eprintln!("spool drain: {total} dead letters to send");
    const DELIVERED: u8 = 1;
    const REFUSED: u8 = 2;
    let pending = Arc::new(AtomicU64::new(total));
    let fates: Arc<Vec<AtomicU8>> = Arc::new(letters.iter().map(|_| AtomicU8::new(0)).collect());
    for (i, letter) in letters.iter().enumerate() {
        let (fates, pending) = (Arc::clone(&fates), Arc::clone(&pending));
        forwarder.dispatch(
            letter.record.clone(),
            Box::new(move |outcome, _| {
                match outcome {
                    Outcome::Delivered => fates[i].store(DELIVERED, Ordering::SeqCst),
                    Outcome::DeadLettered => fates[i].store(REFUSED, Ordering::SeqCst),
                    Outcome::Abandoned => {}
                };
                pending.fetch_sub(1, Ordering::Relaxed);
            }),
        );
    }
    let mut last = (total, Instant::now());
    while pending.load(Ordering::Relaxed) > 0 && last.1.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = pending.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    forwarder.shutdown(Duration::from_secs(5)).await;
    let fates: Vec<u8> = fates.iter().map(|f| f.load(Ordering::SeqCst)).collect();
    let count = |fate| fates.iter().filter(|f| **f == fate).count() as u64;
    drained.dead_sent = count(DELIVERED);
    drained.dead_refused_again = count(REFUSED);
    drained.dead_left = count(0);
    // Those refused again are letters again, in the new file; those delivered go, each
    // once; those Kafka did not answer in time stay set aside for the next drain.
    let unanswered: Vec<_> = letters
        .into_iter()
        .zip(&fates)
        .filter(|(_, fate)| **fate == 0)
        .map(|(letter, _)| letter)
        .collect();
    dead_letters.replace_draining(&draining, &unanswered)?;
    Ok(())
}
