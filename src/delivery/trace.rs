//! W3C Trace Context: the `traceparent` header (w3.org/TR/trace-context/#traceparent-header),
//! parsed from a callback and written on every record.

use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// One span's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

/// A producer span's context as a record carries it (through the spool too): its own,
/// its parent's span id (the callback's server span), and the caller's `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTrace {
    pub context: TraceContext,
    pub parent_span_id: u64,
    pub state: Option<std::sync::Arc<str>>,
}

/// A caller's `tracestate` worth passing on (w3.org/TR/trace-context/#tracestate-header):
/// printable ASCII, at most 512 characters (the length the specification asks vendors
/// to propagate at least); None for anything else, or an empty one.
pub fn trace_state(header: &str) -> Option<std::sync::Arc<str>> {
    let header = header.trim();
    let fine = !header.is_empty()
        && header.len() <= 512
        && header.bytes().all(|b| (0x20..0x7f).contains(&b));
    fine.then(|| header.into())
}

impl TraceContext {
    /// `00-<32 hex>-<16 hex>-<2 hex>`; a later version's header is read by its first
    /// four fields, as the recommendation says. None for anything else.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next().filter(|v| v.len() == 2)?;
        let trace = parts.next().filter(|t| t.len() == 32)?;
        let span = parts.next().filter(|s| s.len() == 16)?;
        let flags = parts.next().filter(|f| f.len() == 2)?;
        if version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if ![version, trace, span, flags].iter().all(|s| lower_hex(s)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    pub fn traceparent(&self) -> String {
        let header = self.traceparent_bytes();
        String::from_utf8_lossy(&header).into_owned()
    }

    /// The header as written on every record: on the stack, without `format!` (it is
    /// paid per record, sampled or not).
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        for (i, byte) in self.trace_id.to_be_bytes().iter().enumerate() {
            out[3 + 2 * i] = HEX[(byte >> 4) as usize];
            out[4 + 2 * i] = HEX[(byte & 15) as usize];
        }
        for (i, byte) in self.span_id.to_be_bytes().iter().enumerate() {
            out[36 + 2 * i] = HEX[(byte >> 4) as usize];
            out[37 + 2 * i] = HEX[(byte & 15) as usize];
        }
        out[54] = b'0' + self.sampled as u8;
        out
    }

    /// A new trace's first span.
    pub fn root(sampled: impl FnOnce(u128) -> bool) -> Self {
        let trace_id = u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes());
        Self {
            trace_id,
            span_id: new_span_id(),
            sampled: sampled(trace_id),
        }
    }

    /// A span of the same trace below this one.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }
}

fn new_span_id() -> u64 {
    u64::from_be_bytes(RandomIdGenerator::default().new_span_id().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_reads_and_writes_back_the_same() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert!(context.sampled);
        assert_eq!(context.traceparent(), header);
        let unsampled = TraceContext {
            sampled: false,
            trace_id: 1,
            span_id: u64::MAX,
        };
        assert_eq!(
            unsampled.traceparent(),
            format!("00-{:032x}-{:016x}-00", 1, u64::MAX)
        );
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn a_tracestate_is_passed_on_when_printable_and_at_most_512_characters() {
        assert_eq!(
            trace_state(" rojo=00f067aa0ba902b7,congo=t61rcWkgMzE ").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        for bad in ["", "  ", "a=\u{7}", &"a".repeat(513)] {
            assert_eq!(trace_state(bad), None, "{bad}");
        }
        assert!(trace_state(&format!("a={}", "b".repeat(510))).is_some());
    }

    #[test]
    fn invalid_headers_start_a_new_trace_instead() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        assert!(TraceContext::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
        )
        .is_some());
    }
}
