//! Group commit. A callback frames its records on its own thread into the open group
//! and waits on that group. The first appender to find no write in progress starts a
//! commit round (a task, so that a callback whose client goes away cannot leave a
//! write half done): it takes the whole open group, writes and fsyncs it on a
//! blocking thread, wakes every member of the group at once, and goes on with the
//! group that filled meanwhile until none did. No record crosses a channel and no
//! callback waits on a reply of its own: one wake-up per group from the runtime's
//! own threads, where the writer thread before woke each callback from outside.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use super::frame::Spooled;
use super::writer::Writer;
use super::{frame, Shared, Unpoisoned};
use crate::delivery::{Record, Rejected};

/// Records framed and not yet written, at most: beyond, callbacks get 503 (the disk
/// is that slow) rather than a queue without end.
const OPEN_RECORDS: u64 = 64 * 1024;

pub(super) struct Commit {
    open: Mutex<Open>,
    writer: Arc<Mutex<Writer>>,
    shared: Arc<Shared>,
    max_bytes: u64,
}

struct Open {
    buf: Vec<u8>,
    /// The framed records themselves, handed to the reader once written.
    pending: Vec<Spooled>,
    first_seq: u64,
    next_seq: u64,
    group: Arc<Group>,
    /// A commit round is running; it takes this group when its write is done.
    writing: bool,
    /// Bytes of the group being written, not yet counted in the log.
    writing_bytes: u64,
    closed: bool,
}

/// One write and fsync, shared by every callback whose records it holds.
#[derive(Default)]
struct Group {
    outcome: OnceLock<Result<(), Rejected>>,
    done: Notify,
}

impl Commit {
    #[cfg(test)]
    pub(super) fn writer(&self) -> &Arc<Mutex<Writer>> {
        &self.writer
    }

    pub(super) fn new(
        writer: Arc<Mutex<Writer>>,
        shared: Arc<Shared>,
        next_seq: u64,
        max_bytes: u64,
    ) -> Self {
        Self {
            open: Mutex::new(Open {
                buf: Vec::new(),
                pending: Vec::new(),
                first_seq: next_seq,
                next_seq,
                group: Arc::default(),
                writing: false,
                writing_bytes: 0,
                closed: false,
            }),
            writer,
            shared,
            max_bytes,
        }
    }

    /// Returns once `records` are written and fsynced, or why they were not.
    pub(super) async fn append(self: &Arc<Self>, records: Vec<Record>) -> Result<(), Rejected> {
        let (group, lead) = self.join(records)?;
        if lead {
            tokio::spawn(Arc::clone(self).rounds());
        }
        loop {
            let done = group.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if let Some(outcome) = group.outcome.get() {
                return *outcome;
            }
            done.await;
        }
    }

    /// Frames `records` into the open group; says whether to start a commit round.
    fn join(&self, records: Vec<Record>) -> Result<(Arc<Group>, bool), Rejected> {
        let mut open = self.open.locked();
        if open.closed {
            return Err(Rejected::ShuttingDown);
        }
        let n = records.len() as u64;
        if open.pending.len() as u64 + n > OPEN_RECORDS {
            return Err(Rejected::QueueFull);
        }
        let before = open.buf.len();
        let first = open.next_seq;
        for (i, record) in records.iter().enumerate() {
            frame::encode(first + i as u64, record, &mut open.buf);
        }
        let on_disk = self.shared.log.locked().bytes;
        if on_disk + open.writing_bytes + open.buf.len() as u64 > self.max_bytes {
            open.buf.truncate(before);
            self.shared
                .full
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(Rejected::SpoolFull);
        }
        open.next_seq += n;
        let spooled = records.into_iter().enumerate();
        open.pending.extend(spooled.map(|(i, record)| Spooled {
            seq: first + i as u64,
            record,
        }));
        let lead = !std::mem::replace(&mut open.writing, true);
        Ok((Arc::clone(&open.group), lead))
    }

    /// Writes groups until one round finds the open group empty.
    async fn rounds(self: Arc<Self>) {
        let mut spare = Vec::new();
        loop {
            let (buf, pending, first_seq, group) = {
                let mut open = self.open.locked();
                if open.pending.is_empty() {
                    open.writing = false;
                    return;
                }
                let next_seq = open.next_seq;
                let buf = std::mem::replace(&mut open.buf, std::mem::take(&mut spare));
                open.writing_bytes = buf.len() as u64;
                (
                    buf,
                    std::mem::take(&mut open.pending),
                    std::mem::replace(&mut open.first_seq, next_seq),
                    std::mem::take(&mut open.group),
                )
            };
            let writer = Arc::clone(&self.writer);
            let written = tokio::task::spawn_blocking(move || {
                let outcome = writer.locked().write(&buf, pending, first_seq);
                (outcome, buf)
            })
            .await;
            let outcome = match written {
                Ok((outcome, mut buf)) => {
                    buf.clear();
                    spare = buf;
                    outcome
                }
                Err(panic) => {
                    let reason = format!("the spool's write panicked ({panic})");
                    tracing::error!(%reason, "The spool cannot keep its promise; the bridge stops.");
                    self.shared.metrics.spool_thread_deaths.inc();
                    *self.shared.broken.locked() = Some(reason);
                    Err(Rejected::SpoolFailed)
                }
            };
            self.open.locked().writing_bytes = 0;
            let _ = group.outcome.set(outcome);
            group.done.notify_waiters();
        }
    }

    /// Takes no more appends; a round under way still finishes its group.
    pub(super) fn close(&self) {
        self.open.locked().closed = true;
    }

    /// Waits (at most `bound`) until no commit round is writing.
    pub(super) async fn settled(&self, bound: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        while self.open.locked().writing && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}
