//! Recently seen requests and events: a signed request replayed inside its freshness
//! window, or an event Tencent sent again, is answered OK and not published twice.
//!
//! Kept in generations, each holding the keys first seen during one eighth of the
//! window: a key is remembered for at least the window and at most 9/8 of it, and a
//! whole generation is dropped at once when it is past the window. So no entry can be
//! forgotten before its window ends for want of room — unless the memory bound
//! (`dedup_max_bytes`) is reached, which only a rate above the one it is sized for
//! does: then the oldest generation goes early, counted in
//! `tim_bridge_dedup_evictions_total` and logged once a minute.
//!
//! A key is 12 bytes of a SHA-256 (a false match, which would drop a real callback,
//! needs about 2^48 keys in one window), in a `HashSet` of 13 bytes a slot whose load
//! runs from 7/16 to 7/8: 15-30 bytes per key, [`BYTES_PER_KEY`] as sized.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

pub type Fingerprint = [u8; 16];
type Key = [u8; 12];

/// Generations a window is cut into.
const SPANS: u32 = 8;
/// What one key costs at worst (a table just grown: 13-byte slots at 7/16 load), for
/// the rate a memory bound holds; measured in `the_memory_bound_holds_the_stated_rate`.
pub const BYTES_PER_KEY: u64 = 30;

pub fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16].try_into().expect("16 bytes")
}

fn key(fingerprint: &Fingerprint) -> Key {
    fingerprint[..12].try_into().expect("12 bytes")
}

/// The callbacks per second that `max_bytes` remembers for the whole of `window`.
pub fn rate_held(max_bytes: u64, window: Duration) -> u64 {
    let lifetime = window.as_secs_f64() * f64::from(SPANS + 1) / f64::from(SPANS);
    (max_bytes as f64 / (BYTES_PER_KEY as f64 * lifetime.max(0.001))) as u64
}

/// A key is already the first bytes of a SHA-256: its first eight are its hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
    fn write_usize(&mut self, _length: usize) {}
}

type Keys = HashSet<Key, BuildHasherDefault<KeyHasher>>;

struct Generation {
    started: Instant,
    keys: Keys,
}

impl Generation {
    fn bytes(&self) -> u64 {
        // hashbrown's slots: capacity * 8/7 rounded to a power of two, 13 bytes each.
        let slots = (self.keys.capacity() as u64 * 8 / 7).next_power_of_two();
        slots * (std::mem::size_of::<Key>() as u64 + 1)
    }
}

pub struct Seen {
    window: Duration,
    span: Duration,
    max_bytes: u64,
    evictions: Counter,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Oldest first; the last takes new keys.
    generations: VecDeque<Generation>,
    /// Bytes of every generation but the last, counted when it closed.
    closed_bytes: u64,
    last_warning: Option<Instant>,
}

impl Seen {
    pub fn new(window: Duration, max_bytes: u64, evictions: Counter) -> Self {
        Self {
            window,
            span: window / SPANS,
            max_bytes,
            evictions,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `key` unless it was seen inside the window, in one step: of two
    /// concurrent copies exactly one gets `true`. [`Seen::release`] undoes it when
    /// what it guarded did not happen.
    pub fn reserve(&self, fingerprint: Fingerprint) -> bool {
        let key = key(&fingerprint);
        let now = Instant::now();
        let mut inner = self.inner();
        self.expire(&mut inner, now);
        if inner.generations.iter().any(|g| g.keys.contains(&key)) {
            return false;
        }
        let open_new = inner
            .generations
            .back()
            .is_none_or(|g| now.duration_since(g.started) >= self.span);
        if open_new {
            let closed = inner.generations.back().map_or(0, Generation::bytes);
            inner.closed_bytes += closed;
            inner.generations.push_back(Generation {
                started: now,
                keys: Keys::default(),
            });
        }
        inner
            .generations
            .back_mut()
            .expect("a generation")
            .keys
            .insert(key);
        self.bound(&mut inner, now);
        true
    }

    pub fn release(&self, fingerprint: &Fingerprint) {
        let key = key(fingerprint);
        for generation in self.inner().generations.iter_mut().rev() {
            if generation.keys.remove(&key) {
                return;
            }
        }
    }

    /// Drops the generations whose every key is past the window.
    fn expire(&self, inner: &mut Inner, now: Instant) {
        while inner.generations.len() > 1 {
            let oldest = &inner.generations[0];
            // Its newest key was seen before `started + span`.
            if now.duration_since(oldest.started) < self.window + self.span {
                break;
            }
            let gone = inner.generations.pop_front().expect("a generation");
            inner.closed_bytes -= gone.bytes();
        }
    }

    /// Past `max_bytes`, the oldest generation goes before its time: counted and logged.
    fn bound(&self, inner: &mut Inner, now: Instant) {
        let open = inner.generations.back().map_or(0, Generation::bytes);
        while inner.closed_bytes + open > self.max_bytes && inner.generations.len() > 1 {
            let gone = inner.generations.pop_front().expect("a generation");
            inner.closed_bytes -= gone.bytes();
            self.evictions.inc_by(gone.keys.len() as u64);
            if inner
                .last_warning
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
            {
                inner.last_warning = Some(now);
                tracing::warn!(
                    forgotten = gone.keys.len(),
                    max_bytes = self.max_bytes,
                    rate_held = rate_held(self.max_bytes, self.window),
                    "The duplicate filter is full: keys forgotten before their window ended, so a replay of them would be published again; raise dedup_max_bytes."
                );
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> u64 {
        let inner = self.inner();
        inner.closed_bytes + inner.generations.back().map_or(0, Generation::bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(window: Duration, max_bytes: u64) -> Seen {
        Seen::new(window, max_bytes, Counter::default())
    }

    fn fp(i: u64) -> Fingerprint {
        fingerprint(&[&i.to_le_bytes()])
    }

    #[test]
    fn a_key_is_seen_for_at_least_the_window_then_forgotten() {
        let seen = seen(Duration::from_millis(80), 1 << 20);
        assert!(seen.reserve(fp(1)));
        assert!(!seen.reserve(fp(1)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!seen.reserve(fp(1)), "still inside the window");
        std::thread::sleep(Duration::from_millis(60));
        assert!(seen.reserve(fp(2)));
        assert!(seen.reserve(fp(1)), "past 9/8 of the window");
    }

    #[test]
    fn a_released_key_can_be_reserved_again() {
        let seen = seen(Duration::from_secs(60), 1 << 20);
        assert!(seen.reserve(fp(1)));
        seen.release(&fp(1));
        assert!(seen.reserve(fp(1)));
    }

    #[test]
    fn no_key_is_forgotten_inside_its_window_however_many_come_within_the_bound() {
        // 200,000 keys, twice the old entry cap, all remembered.
        let seen = seen(Duration::from_secs(60), 64 << 20);
        for i in 0..200_000 {
            assert!(seen.reserve(fp(i)));
        }
        assert!((0..200_000).all(|i| !seen.reserve(fp(i))));
        assert_eq!(seen.evictions.get(), 0);
    }

    #[test]
    fn past_the_memory_bound_the_oldest_generation_goes_and_is_counted() {
        let seen = seen(Duration::from_millis(800), 1 << 20);
        let mut i = 0;
        for _ in 0..9 {
            for _ in 0..30_000 {
                seen.reserve(fp(i));
                i += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(seen.evictions.get() > 0);
        assert!(seen.bytes() <= 1 << 20, "{} bytes", seen.bytes());
        assert!(!seen.reserve(fp(i - 1)), "the newest are kept");
    }

    #[test]
    fn the_memory_bound_holds_the_stated_rate() {
        // The bytes a key costs, measured after every insert: at worst just after the
        // table grew.
        let seen = seen(Duration::from_secs(60), u64::MAX);
        let mut most = 0f64;
        for i in 0..300_000u64 {
            seen.reserve(fp(i));
            if i >= 1_000 {
                most = most.max(seen.bytes() as f64 / (i + 1) as f64);
            }
        }
        println!("{most:.1} bytes per key at most");
        assert!(most <= BYTES_PER_KEY as f64, "{most:.1} bytes per key");
        assert_eq!(rate_held(64 << 20, Duration::from_secs(121)), 16_433);
    }

    #[test]
    fn parts_are_delimited() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
