//! Recently seen requests and events, bounded in time and in entries: a signed request
//! replayed inside its freshness window, or an event Tencent sent again, is answered
//! OK and not published twice.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub type Fingerprint = [u8; 16];

pub fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16].try_into().expect("16 bytes")
}

pub struct Seen {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

/// A fingerprint is already the first bytes of a SHA-256: its first eight are its
/// hash, with no second hash over it (SipHash was most of a lookup's cost).
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
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

#[derive(Default)]
struct Inner {
    at: HashMap<Fingerprint, Instant, BuildHasherDefault<FingerprintHasher>>,
    order: VecDeque<(Fingerprint, Instant)>,
}

impl Seen {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn contains(&self, key: &Fingerprint) -> bool {
        let inner = self.inner();
        inner.at.get(key).is_some_and(|t| t.elapsed() < self.window)
    }

    /// Records `key` unless it was seen inside the window, in one step: of two
    /// concurrent copies exactly one gets `true`. [`Seen::release`] undoes it when
    /// what it guarded did not happen.
    pub fn reserve(&self, key: Fingerprint) -> bool {
        let mut inner = self.inner();
        if inner
            .at
            .get(&key)
            .is_some_and(|t| t.elapsed() < self.window)
        {
            return false;
        }
        self.insert_locked(&mut inner, key);
        true
    }

    pub fn release(&self, key: &Fingerprint) {
        self.inner().at.remove(key);
    }

    /// Records `key`; forgets what is older than the window, and the oldest beyond capacity.
    pub fn insert(&self, key: Fingerprint) {
        let mut inner = self.inner();
        self.insert_locked(&mut inner, key);
    }

    fn insert_locked(&self, inner: &mut Inner, key: Fingerprint) {
        let now = Instant::now();
        while let Some(&(old, t)) = inner.order.front() {
            if now.duration_since(t) < self.window && inner.order.len() < self.capacity {
                break;
            }
            inner.order.pop_front();
            if inner.at.get(&old) == Some(&t) {
                inner.at.remove(&old);
            }
        }
        inner.at.insert(key, now);
        inner.order.push_back((key, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_seen_until_the_window_passes() {
        let seen = Seen::new(Duration::from_millis(50), 10);
        let k = fingerprint(&[b"a"]);
        assert!(!seen.contains(&k));
        seen.insert(k);
        assert!(seen.contains(&k));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!seen.contains(&k));
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let seen = Seen::new(Duration::from_secs(60), 3);
        for i in 0..10u8 {
            seen.insert(fingerprint(&[&[i]]));
        }
        assert!(!seen.contains(&fingerprint(&[&[0]])));
        assert!(seen.contains(&fingerprint(&[&[9]])));
        assert!(seen.inner.lock().unwrap().at.len() <= 3);
    }

    #[test]
    fn parts_are_delimited() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
