//! The spool's on-disk record: `MAGIC | length | CRC32 | body`, all little-endian.
//! The magic lets a scan find the next record after a corrupted one, whose length
//! field cannot be trusted. A dead letter is the same frame with the refusal's
//! reason and time after the record.

use crate::delivery::Record;

pub const MAGIC: u32 = 0x5449_4d31; // "TIM1"
/// A record carrying its producer span's context after the payload (tracing on).
pub const MAGIC_TRACED: u32 = 0x5449_4d32; // "TIM2"
/// As `TIM2`, then the caller's `tracestate` (length-prefixed).
pub const MAGIC_TRACE_STATE: u32 = 0x5449_4d33; // "TIM3"
pub const HEADER: usize = 12;
/// Far above the largest body a callback can carry; a longer length is corruption.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A record as spooled: its sequence number and the event.
#[derive(Debug)]
pub struct Spooled {
    pub seq: u64,
    pub record: Record,
}

/// A record Kafka refused for good, as the dead-letter log keeps it.
#[derive(Debug)]
pub struct DeadLetter {
    pub seq: u64,
    pub record: Record,
    pub reason: String,
    pub dead_at_ms: u64,
}

pub fn encode(seq: u64, record: &Record, out: &mut Vec<u8>) {
    encode_with(seq, record, out, |_| {});
}

pub fn encode_dead(seq: u64, record: &Record, reason: &str, dead_at_ms: u64, out: &mut Vec<u8>) {
    encode_with(seq, record, out, |out| {
        put_bytes(out, reason.as_bytes());
        out.extend_from_slice(&dead_at_ms.to_le_bytes());
    });
}

fn encode_with(seq: u64, record: &Record, out: &mut Vec<u8>, trailer: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    let magic = match &record.trace {
        None => MAGIC,
        Some(trace) if trace.state.is_none() => MAGIC_TRACED,
        Some(_) => MAGIC_TRACE_STATE,
    };
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    let body = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&record.accepted_at_ms.to_le_bytes());
    out.extend_from_slice(&record.sdk_app_id.to_le_bytes());
    put_bytes(out, record.topic.as_bytes());
    put_bytes(out, record.command.as_bytes());
    match &record.key {
        Some(key) => put_bytes(out, key.as_bytes()),
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
    put_bytes(out, &record.payload);
    if let Some(trace) = &record.trace {
        out.extend_from_slice(&trace.context.trace_id.to_le_bytes());
        out.extend_from_slice(&trace.context.span_id.to_le_bytes());
        out.extend_from_slice(&trace.parent_span_id.to_le_bytes());
        out.push(trace.context.sampled as u8);
        if let Some(state) = &trace.state {
            put_bytes(out, state.as_bytes());
        }
    }
    trailer(out);
    let len = (out.len() - body) as u32;
    let crc = crc32fast::hash(&out[body..]);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// What a scan of a buffer found.
#[derive(Debug)]
pub struct Frames<T> {
    pub records: Vec<T>,
    /// Records whose checksum or shape was wrong, skipped.
    pub corrupt: u64,
    /// Where the last whole record ends; bytes after it are a torn write, or zeros
    /// a segment was filled with ahead of its writes.
    pub valid_end: usize,
}

pub type Scan = Frames<Spooled>;

/// Decodes every intact record in `buf`. A damaged record is skipped by searching for
/// the next magic that starts an intact record; an incomplete record at the end is
/// reported through `valid_end`.
pub fn scan(buf: &[u8]) -> Scan {
    scan_with(buf, decode)
}

/// [`scan`] for the dead-letter log.
pub fn scan_dead(buf: &[u8]) -> Frames<DeadLetter> {
    scan_with(buf, decode_dead)
}

/// What a frame carries after its payload, as its magic says.
#[derive(Clone, Copy, PartialEq)]
enum Carries {
    Nothing,
    Trace,
    TraceAndState,
}

/// Decodes a frame's body.
type Decode<T> = fn(&[u8], Carries) -> Option<T>;

fn scan_with<T>(buf: &[u8], decode: Decode<T>) -> Frames<T> {
    let mut scan = Frames {
        records: Vec::new(),
        corrupt: 0,
        valid_end: 0,
    };
    let mut pos = 0;
    while pos < buf.len() {
        match read_at(buf, pos, decode) {
            Read::Record(spooled, next) => {
                scan.records.push(spooled);
                pos = next;
                scan.valid_end = pos;
            }
            Read::Incomplete => {
                // A torn tail, unless an intact record follows: then this one is corrupt.
                match next_intact(buf, pos + 1, decode) {
                    Some(next) => {
                        scan.corrupt += 1;
                        pos = next;
                    }
                    None => break,
                }
            }
            Read::Damaged => match next_intact(buf, pos + 1, decode) {
                Some(next) => {
                    scan.corrupt += 1;
                    pos = next;
                }
                // The end of what was written, in space filled with zeros ahead of
                // the writes: nothing more, or a write torn there by a crash.
                None if buf.last() == Some(&0) => break,
                None => {
                    scan.corrupt += 1;
                    scan.valid_end = buf.len();
                    break;
                }
            },
        }
    }
    scan
}

enum Read<T> {
    Record(T, usize),
    Incomplete,
    Damaged,
}

fn read_at<T>(buf: &[u8], pos: usize, decode: Decode<T>) -> Read<T> {
    let Some(header) = buf.get(pos..pos + HEADER) else {
        return Read::Incomplete;
    };
    let traced = match u32_at(header, 0) {
        MAGIC => Carries::Nothing,
        MAGIC_TRACED => Carries::Trace,
        MAGIC_TRACE_STATE => Carries::TraceAndState,
        _ => return Read::Damaged,
    };
    let len = u32_at(header, 4) as usize;
    if len > MAX_BODY {
        return Read::Damaged;
    }
    let Some(body) = buf.get(pos + HEADER..pos + HEADER + len) else {
        return Read::Incomplete;
    };
    if crc32fast::hash(body) != u32_at(header, 8) {
        return Read::Damaged;
    }
    match decode(body, traced) {
        Some(spooled) => Read::Record(spooled, pos + HEADER + len),
        None => Read::Damaged,
    }
}

fn next_intact<T>(buf: &[u8], from: usize, decode: Decode<T>) -> Option<usize> {
    let magics = [MAGIC, MAGIC_TRACED, MAGIC_TRACE_STATE].map(u32::to_le_bytes);
    (from..buf.len().saturating_sub(HEADER - 1))
        .filter(|&p| magics.iter().any(|m| buf[p..p + 4] == *m))
        .find(|&p| matches!(read_at(buf, p, decode), Read::Record(..)))
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("four bytes"))
}

fn decode(body: &[u8], traced: Carries) -> Option<Spooled> {
    let mut r = Reader { buf: body, pos: 0 };
    let spooled = decode_record(&mut r, traced)?;
    (r.pos == body.len()).then_some(spooled)
}

fn decode_dead(body: &[u8], traced: Carries) -> Option<DeadLetter> {
    let mut r = Reader { buf: body, pos: 0 };
    let Spooled { seq, record } = decode_record(&mut r, traced)?;
    let reason = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let dead_at_ms = r.u64()?;
    (r.pos == body.len()).then_some(DeadLetter {
        seq,
        record,
        reason,
        dead_at_ms,
    })
}

fn decode_record(r: &mut Reader<'_>, traced: Carries) -> Option<Spooled> {
    let seq = r.u64()?;
    let accepted_at_ms = r.u64()?;
    let sdk_app_id = r.u64()?;
    let topic = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let command = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let key = match r.u32_peek()? {
        u32::MAX => {
            r.pos += 4;
            None
        }
        _ => Some(String::from_utf8(r.bytes()?.to_vec()).ok()?),
    };
    let payload = r.bytes()?.to_vec();
    let trace = if traced != Carries::Nothing {
        let trace_id = u128::from_le_bytes(r.take(16)?.try_into().ok()?);
        let span_id = r.u64()?;
        let parent_span_id = r.u64()?;
        let sampled = r.take(1)?[0] == 1;
        let state = match traced {
            Carries::TraceAndState => Some(std::str::from_utf8(r.bytes()?).ok()?.into()),
            _ => None,
        };
        Some(crate::delivery::trace::RecordTrace {
            context: crate::delivery::trace::TraceContext {
                trace_id,
                span_id,
                sampled,
            },
            parent_span_id,
            state,
        })
    } else {
        None
    };
    Some(Spooled {
        seq,
        record: Record {
            topic,
            key,
            payload,
            command,
            sdk_app_id,
            accepted_at_ms,
            trace,
        },
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32_peek(&self) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.buf.get(self.pos..self.pos + 4)?.try_into().ok()?,
        ))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(key: &str) -> Record {
        Record {
            topic: "t".into(),
            key: Some(key.into()),
            payload: format!("{{\"k\":\"{key}\",\"text\":\"红包 🧧\"}}").into_bytes(),
            command: "C2C.CallbackAfterSendMsg".into(),
            sdk_app_id: 1400000000,
            accepted_at_ms: 1_700_000_000_000,
            trace: None,
        }
    }

    fn three() -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for (seq, key) in ["a", "b", "c"].into_iter().enumerate() {
            starts.push(buf.len());
            encode(seq as u64, &record(key), &mut buf);
        }
        (buf, starts)
    }

    fn keys(scan: &Scan) -> Vec<String> {
        scan.records
            .iter()
            .map(|s| s.record.key.clone().unwrap())
            .collect()
    }

    #[test]
    fn records_read_back_as_written() {
        let (buf, _) = three();
        let scan = scan(&buf);
        assert_eq!(keys(&scan), ["a", "b", "c"]);
        assert_eq!(scan.records[2].seq, 2);
        assert_eq!(scan.records[0].record.payload, record("a").payload);
        assert_eq!((scan.corrupt, scan.valid_end), (0, buf.len()));
    }

    #[test]
    fn a_records_trace_context_reads_back_and_untraced_records_beside_it_keep_none() {
        let traced = Record {
            trace: Some(crate::delivery::trace::RecordTrace {
                context: crate::delivery::trace::TraceContext {
                    trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                    span_id: 0x00f067aa0ba902b7,
                    sampled: true,
                },
                parent_span_id: 7,
                state: None,
            }),
            ..record("t")
        };
        let mut with_state = traced.clone();
        if let Some(trace) = &mut with_state.trace {
            trace.state = Some("rojo=00f067aa0ba902b7".into());
        }
        let mut buf = Vec::new();
        encode(0, &record("a"), &mut buf);
        encode(1, &traced, &mut buf);
        encode(2, &with_state, &mut buf);
        assert_eq!(buf[..4], MAGIC.to_le_bytes());
        let scan = scan(&buf);
        assert_eq!((scan.records.len(), scan.corrupt), (3, 0));
        assert_eq!(scan.records[0].record, record("a"));
        assert_eq!(scan.records[1].record, traced);
        assert_eq!(scan.records[2].record, with_state);
        let mut dead = Vec::new();
        encode_dead(3, &traced, "message_too_large", 42, &mut dead);
        encode_dead(4, &with_state, "message_too_large", 42, &mut dead);
        let dead = scan_dead(&dead);
        assert_eq!(dead.records[0].record, traced);
        assert_eq!(dead.records[1].record, with_state);
        // A damaged traced record is skipped like any other, and the scan goes on.
        let mut damaged = Vec::new();
        encode(0, &traced, &mut damaged);
        damaged[HEADER + 2] ^= 0xff;
        encode(1, &traced, &mut damaged);
        let scan = super::scan(&damaged);
        assert_eq!((scan.records.len(), scan.corrupt), (1, 1));
        assert_eq!(scan.records[0].seq, 1);
    }

    #[test]
    fn a_dead_letter_reads_back_with_its_reason_and_time_and_is_not_a_spool_record() {
        let mut buf = Vec::new();
        encode_dead(3, &record("d"), "message_too_large", 42, &mut buf);
        let dead = scan_dead(&buf);
        assert_eq!(dead.records.len(), 1);
        assert_eq!(dead.records[0].record, record("d"));
        assert_eq!(
            (dead.records[0].reason.as_str(), dead.records[0].dead_at_ms),
            ("message_too_large", 42)
        );
        assert!(scan(&buf).records.is_empty());
    }

    #[test]
    fn a_record_without_a_key_reads_back_without_one() {
        let mut r = record("x");
        r.key = None;
        let mut buf = Vec::new();
        encode(7, &r, &mut buf);
        assert_eq!(scan(&buf).records[0].record.key, None);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_the_rest_kept() {
        let (buf, starts) = three();
        let torn = &buf[..buf.len() - 5];
        let scan = scan(torn);
        assert_eq!(keys(&scan), ["a", "b"]);
        assert_eq!(scan.valid_end, starts[2]);
        assert_eq!(scan.corrupt, 0);
    }

    #[test]
    fn a_corrupted_middle_record_is_skipped_and_counted() {
        let (mut buf, starts) = three();
        buf[starts[1] + HEADER + 3] ^= 0xff;
        let scan = scan(&buf);
        assert_eq!(keys(&scan), ["a", "c"]);
        assert_eq!(scan.corrupt, 1);
        assert_eq!(scan.valid_end, buf.len());
    }

    #[test]
    fn a_corrupted_length_does_not_hide_the_records_after_it() {
        let (mut buf, starts) = three();
        buf[starts[1] + 4..starts[1] + 8].copy_from_slice(&9_999u32.to_le_bytes());
        let scan = scan(&buf);
        assert_eq!(keys(&scan), ["a", "c"]);
        assert_eq!(scan.corrupt, 1);
    }
}
