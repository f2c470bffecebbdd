//! The append log: a chunked vector of versions in strictly increasing internal-key
//! order, and the byte arena their keys and values live in.

use std::cmp::Ordering;

use bytes::{Bytes, BytesMut};
use strata_core::{SeqNo, ValueKind, compare_internal};

/// Versions per chunk. Every chunk but the last holds exactly this many, so position
/// `i` of the log is `chunks[i / CHUNK][i % CHUNK]` and a push never moves an existing
/// version (a growing `Vec` would copy the whole table on every doubling).
pub(crate) const CHUNK: usize = 4096;

/// An out-of-order version is still placed in the log when its position is at most this
/// many versions before the end of the last chunk: a short `memmove` is cheaper than a
/// tree insert, and near-sorted input (several writer threads taking turns) stays in the
/// log instead of filling the out-of-order map.
pub(crate) const MAX_SHIFT: usize = 64;

/// Bytes per arena block. Keys and values up to a quarter of a block are copied into
/// the current block; larger ones get an allocation of their own.
const ARENA_BLOCK: usize = 64 * 1024;

/// The first 8 bytes of a key, zero padded, as a big-endian number.
///
/// When two heads differ they order their keys exactly as the bytes do (the first
/// differing padded byte is either a real byte of both keys, or a padding zero of the
/// shorter key against a non-zero byte of a key it is a prefix of); equal heads decide
/// nothing. Sequential ids of up to 8 bytes are then compared without reading the key
/// bytes, which live elsewhere (the arena) and would cost a cache miss per step of a
/// binary search.
pub(crate) fn head_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    if let (Some(dst), Some(src)) = (bytes.get_mut(..n), key.get(..n)) {
        dst.copy_from_slice(src);
    }
    u64::from_be_bytes(bytes)
}

/// One version as stored.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// [`head_of`] the key.
    pub(crate) head: u64,
    pub(crate) key: Bytes,
    pub(crate) value: Bytes,
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
}

impl Slot {
    /// Internal-key order of this slot against `(key, seq)`.
    pub(crate) fn cmp_to(&self, key: &[u8], seq: SeqNo) -> Ordering {
        match self.head.cmp(&head_of(key)) {
            Ordering::Equal => compare_internal(&self.key, self.seq, key, seq),
            decided => decided,
        }
    }
}

/// Copies keys and values into shared blocks, so an insert does not call the allocator.
///
/// Each stored buffer is a [`Bytes`] view of a block; a block is freed once no view of
/// it is left (the table dropped and every value a reader cloned released).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    block: BytesMut,
}

impl Arena {
    pub(crate) fn store(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::new();
        }
        if bytes.len() > ARENA_BLOCK / 4 {
            return Bytes::copy_from_slice(bytes);
        }
        if self.block.capacity() - self.block.len() < bytes.len() {
            // NOTE: replace rather than `reserve`: the views already handed out keep the
            // old block alive, and `reserve` on a shared block would copy it.
            self.block = BytesMut::with_capacity(ARENA_BLOCK);
        }
        self.block.extend_from_slice(bytes);
        self.block.split_to(bytes.len()).freeze()
    }
}

/// The sorted log. Not synchronised: the table guards it with its lock.
#[derive(Debug, Default)]
pub(crate) struct Log {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

/// Where a version goes relative to the log.
pub(crate) enum Placement {
    /// It sorts after every version: push it.
    Append,
    /// It belongs at this position of the last chunk (a short shift).
    Shift(usize),
    /// The same `(key, seq)` is already among the log's last `MAX_SHIFT + 1` versions.
    Duplicate,
    /// Too far back: it goes to the out-of-order map.
    Elsewhere,
}

impl Log {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The last (greatest) version.
    pub(crate) fn last(&self) -> Option<&Slot> {
        self.chunks.last()?.last()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Slot> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Decides where `(key, seq)` goes; O(1) for in-order keys.
    pub(crate) fn place(&self, key: &[u8], seq: SeqNo) -> Placement {
        let Some(tail) = self.chunks.last() else { return Placement::Append };
        let Some(last) = tail.last() else { return Placement::Append };
        match last.cmp_to(key, seq) {
            Ordering::Less => return Placement::Append,
            Ordering::Equal => return Placement::Duplicate,
            Ordering::Greater => {}
        }
        if tail.len() == CHUNK {
            return Placement::Elsewhere;
        }
        // Only the last MAX_SHIFT + 1 slots matter: one compare rules out a version
        // further back (the common case for random keys) without searching the chunk.
        let window = tail.len().saturating_sub(MAX_SHIFT + 1);
        if window > 0 && tail.get(window).is_some_and(|s| s.cmp_to(key, seq) == Ordering::Greater) {
            return Placement::Elsewhere;
        }
        let pos = window
            + tail
                .get(window..)
                .map_or(0, |w| w.partition_point(|s| s.cmp_to(key, seq) == Ordering::Less));
        if tail.get(pos).is_some_and(|s| s.cmp_to(key, seq) == Ordering::Equal) {
            return Placement::Duplicate;
        }
        if tail.len() - pos > MAX_SHIFT {
            return Placement::Elsewhere;
        }
        if pos == 0 {
            // Position 0 of the last chunk must still sort after the previous chunk.
            let prev = self.chunks.len().checked_sub(2).and_then(|c| self.chunks.get(c));
            if prev.and_then(|c| c.last()).is_some_and(|s| s.cmp_to(key, seq) != Ordering::Less) {
                return Placement::Elsewhere;
            }
        }
        Placement::Shift(pos)
    }

    /// Pushes a version that sorts after every other (see [`Placement::Append`]).
    pub(crate) fn push(&mut self, slot: Slot) {
        match self.chunks.last_mut() {
            Some(tail) if tail.len() < CHUNK => tail.push(slot),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(slot);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// Inserts at `pos` of the last chunk (see [`Placement::Shift`]); the chunk has room.
    pub(crate) fn insert_in_tail(&mut self, pos: usize, slot: Slot) {
        if let Some(tail) = self.chunks.last_mut() {
            tail.insert(pos, slot);
            self.len += 1;
        }
    }

    /// The first position whose version sorts at or after `(key, seq)` (`len()` if none).
    pub(crate) fn seek(&self, key: &[u8], seq: SeqNo) -> usize {
        self.partition_point(|s| s.cmp_to(key, seq) == Ordering::Less)
    }

    /// The first position for which `before` is false, `before` being true for a prefix.
    pub(crate) fn partition_point(&self, before: impl Fn(&Slot) -> bool) -> usize {
        // Chunks first (by their last slot), then inside the one chunk that matters.
        let c = self.chunks.partition_point(|chunk| chunk.last().is_some_and(&before));
        match self.chunks.get(c) {
            Some(chunk) => c * CHUNK + chunk.partition_point(&before),
            None => self.len,
        }
    }

    /// True when `(key, seq)` is in the log.
    pub(crate) fn contains(&self, key: &[u8], seq: SeqNo) -> bool {
        self.get(self.seek(key, seq)).is_some_and(|s| s.cmp_to(key, seq) == Ordering::Equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(k: u32, seq: u64) -> Slot {
        Slot {
            head: head_of(&k.to_be_bytes()),
            key: Bytes::copy_from_slice(&k.to_be_bytes()),
            value: Bytes::new(),
            seq: SeqNo(seq),
            kind: ValueKind::Put,
        }
    }

    #[test]
    fn positions_span_chunks_and_seek_finds_the_first_at_or_after() {
        let mut log = Log::default();
        let n = 3 * CHUNK as u32 + 17;
        for k in 0..n {
            log.push(slot(k * 2, 1));
        }
        assert_eq!(log.len(), n as usize);
        for k in [0u32, 1, 2, CHUNK as u32 * 2 - 1, CHUNK as u32 * 2, n * 2 - 2, n * 2] {
            let i = log.seek(&k.to_be_bytes(), SeqNo::MAX);
            assert_eq!(i, k.div_ceil(2) as usize, "key {k}");
        }
        assert!(log.contains(&6u32.to_be_bytes(), SeqNo(1)));
        assert!(!log.contains(&6u32.to_be_bytes(), SeqNo(2)));
    }

    #[test]
    fn placement_appends_shifts_and_refuses_far_or_cross_chunk_positions() {
        let mut log = Log::default();
        for k in 0..CHUNK as u32 + 10 {
            log.push(slot(k * 10, 1));
        }
        let last = (CHUNK as u32 + 9) * 10;
        assert!(matches!(log.place(&(last + 1).to_be_bytes(), SeqNo(1)), Placement::Append));
        assert!(matches!(log.place(&last.to_be_bytes(), SeqNo(1)), Placement::Duplicate));
        // Same key, newer sequence sorts before the stored version: a shift.
        assert!(matches!(log.place(&last.to_be_bytes(), SeqNo(2)), Placement::Shift(9)));
        assert!(matches!(log.place(&(last - 5).to_be_bytes(), SeqNo(1)), Placement::Shift(9)));
        // Before the tail chunk's first slot but after the previous chunk: position 0.
        let first_tail = CHUNK as u32 * 10;
        assert!(matches!(
            log.place(&(first_tail - 1).to_be_bytes(), SeqNo(1)),
            Placement::Shift(0)
        ));
        // Inside the previous chunk: elsewhere.
        assert!(matches!(
            log.place(&(first_tail - 11).to_be_bytes(), SeqNo(1)),
            Placement::Elsewhere
        ));
    }

    #[test]
    fn head_order_agrees_with_byte_order() {
        let keys: [&[u8]; 12] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\x01",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgi",
            b"\xff",
        ];
        for a in keys {
            for b in keys {
                let slot = Slot {
                    head: head_of(a),
                    key: Bytes::copy_from_slice(a),
                    value: Bytes::new(),
                    seq: SeqNo(1),
                    kind: ValueKind::Put,
                };
                assert_eq!(slot.cmp_to(b, SeqNo(1)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn arena_views_hold_the_bytes_stored() {
        let mut arena = Arena::default();
        let mut kept = Vec::new();
        for i in 0..20_000u32 {
            let bytes = vec![(i % 251) as u8; (i % 37) as usize];
            kept.push((arena.store(&bytes), bytes));
        }
        let big = vec![7u8; ARENA_BLOCK];
        assert_eq!(arena.store(&big), big);
        for (stored, want) in kept {
            assert_eq!(stored, want);
        }
    }
}
