//! # strata-memtable-skiplist
//!
//! Strata's default memtable: a lock-free sorted map of versioned keys built on
//! [`crossbeam_skiplist::SkipMap`].
//!
//! - [`SkipListMemTable`] implements [`strata_core::MemTable`]. Inserts and point lookups
//!   take no lock: they go straight to the skiplist, whose operations are lock-free
//!   (epoch-based reclamation, compare-and-swap linking), and the bookkeeping counters
//!   (`len`, `memory_bytes`, `max_seq`) are atomics.
//! - [`SkipListFactory`] implements [`strata_core::MemTableFactory`] (name `"skiplist"`).
//!
//! ## Ordering
//!
//! Entries are keyed by *internal key* `(user key, sequence)`, ordered user key ascending
//! then sequence descending ([`strata_core::compare_internal`]), so the newest version of
//! a key comes first. A lookup at snapshot `s` is therefore one `lower_bound` seek to
//! `(key, s)`: the first entry at or after that position is the newest version with a
//! sequence `<= s`, provided it still carries the same user key.
//!
//! ## Allocation
//!
//! Values of up to [`ARENA_MAX_ITEM_BYTES`] are copied once on insert into the table's
//! arena: shared chunks of [`ARENA_CHUNK_BYTES`], each handed out as
//! [`bytes::Bytes`] slices, so an insert asks the allocator for nothing but the skiplist
//! node (and a buffer for a key longer than the node's 16-byte inline head), and a flushed table returns its values to the allocator a chunk at a time
//! instead of one free per entry (glibc's malloc serialises those frees against the
//! writers' allocations; the arena makes the table much less sensitive to the
//! embedder's allocator). Larger items get a buffer of their own. [`MemTable::get`] and
//! [`MemTable::range`] hand out clones of the stored buffers (a reference-count
//! increment, never a copy of the bytes); a value handed out keeps its chunk alive. Point lookups
//! do not allocate a probe key: the map is searched through a borrowed view of
//! `(&[u8], SeqNo)` (the `Borrow<dyn KeyView>` technique).
//!
//! ## Scans
//!
//! Crossbeam's range iterators borrow the map, but [`MemTable::range`] must return an owned
//! `'static` iterator. The returned cursor holds an `Arc` of the table and refills a small
//! buffer (64 visible entries) per step with a fresh `range` starting just after the last
//! internal key it examined, skipping versions newer than the snapshot.
//!
//! ```
//! use std::ops::Bound;
//! use std::sync::Arc;
//!
//! use strata_core::{Lookup, MemTable, SeqNo, ValueKind};
//! use strata_memtable_skiplist::SkipListMemTable;
//!
//! let table = Arc::new(SkipListMemTable::new());
//! table.insert(b"k", SeqNo(1), ValueKind::Put, b"old");
//! table.insert(b"k", SeqNo(2), ValueKind::Put, b"new");
//!
//! assert!(matches!(table.get(b"k", SeqNo(1)), Some(Lookup::Value { seq: SeqNo(1), .. })));
//! assert!(matches!(table.get(b"k", SeqNo(5)), Some(Lookup::Value { seq: SeqNo(2), .. })));
//!
//! let seqs: Vec<u64> = Arc::clone(&table)
//!     .range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX)
//!     .map(|e| e.seq.get())
//!     .collect();
//! assert_eq!(seqs, [2, 1]);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::mem::size_of;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{self, AtomicU64, AtomicUsize};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use strata_core::{
    Entry, EntryIter, KeyRange, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind,
};

/// Values up to this size go into the arena; larger ones get their own
/// buffer (so one large value does not retire a chunk early).
pub const ARENA_MAX_ITEM_BYTES: usize = 4096;

/// Size of one arena chunk.
pub const ARENA_CHUNK_BYTES: usize = 64 * 1024;

/// The table's arena: the chunk being filled. Filled parts are split off as `Bytes`
/// that share the chunk's buffer; the buffer is freed when the last of them drops.
#[derive(Default)]
struct Arena {
    chunk: std::sync::Mutex<bytes::BytesMut>,
}

impl Arena {
    /// `data` as stored bytes, and the bytes of a chunk this copy retired unused (the
    /// tail that was too short for it), which the table's accounting adds.
    fn copy(&self, data: &[u8]) -> (Bytes, usize) {
        if data.is_empty() {
            return (Bytes::new(), 0);
        }
        if data.len() > ARENA_MAX_ITEM_BYTES {
            return (Bytes::copy_from_slice(data), 0);
        }
        // A panic elsewhere cannot leave the chunk half-updated: the guard's state is
        // always a valid (possibly empty) chunk.
        let mut chunk = self.chunk.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut retired = 0;
        if chunk.capacity() - chunk.len() < data.len() {
            retired = chunk.capacity() - chunk.len();
            *chunk = bytes::BytesMut::with_capacity(ARENA_CHUNK_BYTES);
        }
        chunk.extend_from_slice(data);
        (chunk.split().freeze(), retired)
    }
}

/// Visible entries a range cursor buffers per refill.
const SCAN_BATCH: usize = 64;

/// Most skiplist entries (visible or not) a range cursor examines per refill, so one
/// `next` call does a bounded amount of work even across long runs of versions newer
/// than the snapshot.
const SCAN_LIMIT: usize = 16 * SCAN_BATCH;

/// The first 16 bytes of a user key (zero padded, big endian) and its length, stored
/// inline in the skiplist node.
///
/// Comparing heads decides the order of two keys without touching their heap bytes
/// whenever the heads differ or both keys fit in 16 bytes (every exchange key does).
/// Each node visit during a search is then one cache miss instead of two, which halves
/// insert and lookup time on large tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeyHead {
    // Two u64 halves rather than one u128: u128's 16-byte alignment would pad the node.
    hi: u64,
    lo: u64,
    len: u32,
}

impl KeyHead {
    const INLINE: usize = 2 * size_of::<u64>();

    fn of(key: &[u8]) -> KeyHead {
        let mut bytes = [0u8; Self::INLINE];
        let n = key.len().min(Self::INLINE);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..n), key.get(..n)) {
            dst.copy_from_slice(src);
        }
        let [h0, h1, h2, h3, h4, h5, h6, h7, l0, l1, l2, l3, l4, l5, l6, l7] = bytes;
        KeyHead {
            hi: u64::from_be_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
            lo: u64::from_be_bytes([l0, l1, l2, l3, l4, l5, l6, l7]),
            // Keys are at most MAX_KEY_BYTES (64 KiB); only `<= INLINE` matters anyway.
            len: u32::try_from(key.len()).unwrap_or(u32::MAX),
        }
    }

    fn fits_inline(self) -> bool {
        self.len as usize <= Self::INLINE
    }
}

/// Lexicographic order of user keys, using the inline heads where they decide.
///
/// Equal zero-padded prefixes mean the keys agree on their first `min(len, 16)` bytes
/// and the longer one continues with zeros up to 16 bytes; if both keys fit in 16 bytes,
/// the shorter one is therefore a prefix of the longer one and sorts first.
fn compare_user(a_head: KeyHead, a: &[u8], b_head: KeyHead, b: &[u8]) -> Ordering {
    match (a_head.hi, a_head.lo).cmp(&(b_head.hi, b_head.lo)) {
        Ordering::Equal => {}
        decided => return decided,
    }
    match (a_head.fits_inline(), b_head.fits_inline()) {
        (true, true) => a_head.len.cmp(&b_head.len),
        // The short key is the long key's first bytes followed (in the padded head) by
        // zeros that the long key also has: it is a prefix, so it sorts first.
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

/// Internal-key order (user key ascending, sequence descending), equal to
/// [`strata_core::compare_internal`] but faster.
fn compare_views(a: &dyn KeyView, b: &dyn KeyView) -> Ordering {
    compare_user(a.head(), a.user_key(), b.head(), b.user_key()).then_with(|| b.seq().cmp(&a.seq()))
}

/// A borrowed view of an internal key, so the map can be searched without building an
/// owned [`InternalKey`].
trait KeyView {
    /// The inline head of the user key.
    fn head(&self) -> KeyHead;
    /// The user key's bytes; only read when the key is longer than the inline head.
    fn user_key(&self) -> &[u8];
    /// The version's sequence.
    fn seq(&self) -> SeqNo;
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_views(self, other)
    }
}

/// The owned key stored in the map: user key plus sequence.
///
/// A key of up to 16 bytes lives entirely in its inline head (no heap allocation);
/// a longer one also keeps all its bytes in `spill`.
#[derive(Clone, Debug)]
struct InternalKey {
    head: KeyHead,
    spill: Bytes,
    seq: SeqNo,
}

impl InternalKey {
    fn new(user_key: &[u8], seq: SeqNo) -> InternalKey {
        let head = KeyHead::of(user_key);
        let spill =
            if head.fits_inline() { Bytes::new() } else { Bytes::copy_from_slice(user_key) };
        InternalKey { head, spill, seq }
    }

    /// The user key as an owned buffer (allocates for inline keys).
    fn user_key_bytes(&self) -> Bytes {
        if !self.head.fits_inline() {
            return self.spill.clone();
        }
        let mut bytes = [0u8; KeyHead::INLINE];
        bytes[..8].copy_from_slice(&self.head.hi.to_be_bytes());
        bytes[8..].copy_from_slice(&self.head.lo.to_be_bytes());
        Bytes::copy_from_slice(bytes.get(..self.head.len as usize).unwrap_or_default())
    }
}

impl KeyView for InternalKey {
    fn head(&self) -> KeyHead {
        self.head
    }

    fn user_key(&self) -> &[u8] {
        // Only consulted for keys longer than the inline head (see `compare_user`).
        &self.spill
    }

    fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl PartialEq for InternalKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InternalKey {}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Must agree with `Ord for dyn KeyView`, which the map uses for borrowed probes.
        compare_views(self, other)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for InternalKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// A stack-allocated search key: borrows the caller's user key.
struct Probe<'a> {
    head: KeyHead,
    user_key: &'a [u8],
    seq: SeqNo,
}

impl<'a> Probe<'a> {
    fn new(user_key: &'a [u8], seq: SeqNo) -> Probe<'a> {
        Probe { head: KeyHead::of(user_key), user_key, seq }
    }
}

impl KeyView for Probe<'_> {
    fn head(&self) -> KeyHead {
        self.head
    }

    fn user_key(&self) -> &[u8] {
        self.user_key
    }

    fn seq(&self) -> SeqNo {
        self.seq
    }
}

/// The value stored in the map.
#[derive(Clone, Debug)]
struct StoredValue {
    kind: ValueKind,
    value: Bytes,
}

/// A concurrent, lock-free memtable on a [`crossbeam_skiplist::SkipMap`].
///
/// Create it with [`SkipListMemTable::new`] (or [`Default`]), or through
/// [`SkipListFactory`]. All operations take `&self` (`range` takes `Arc<Self>`) and may be
/// called from any number of threads at once.
///
/// # Memory accounting
///
/// [`MemTable::memory_bytes`] is computed from the sizes actually stored. Each inserted
/// version adds exactly `spilled key + value.len() +`
/// [`SkipListMemTable::ENTRY_OVERHEAD_BYTES`], where the two lengths are the bytes of the
/// stored key and value (a value in an arena chunk or a buffer of its own; an empty
/// slice stores nothing). When an arena chunk is retired, the unused tail it leaves behind is
/// added too, so every byte of a retired chunk is counted; the unused part of the chunk
/// being filled is not (yet) held for any entry and is not counted. A key of up to 16 bytes is stored inside the
/// node's inline key head and spills nothing; a longer key spills `key.len()` bytes. The
/// overhead is the fixed part of the
/// skiplist node that holds them; see [`SkipListMemTable::ENTRY_OVERHEAD_BYTES`] for what
/// it contains and what is deliberately left out.
///
/// # Duplicate versions
///
/// The [`MemTable`] contract says every `(key, seq)` is inserted at most once. If the same
/// pair is inserted again anyway, the first version is kept and the later insert is
/// ignored (not counted in `len` or `memory_bytes`).
pub struct SkipListMemTable {
    map: SkipMap<InternalKey, StoredValue>,
    arena: Arena,
    memory: AtomicUsize,
    len: AtomicUsize,
    max_seq: AtomicU64,
}

impl SkipListMemTable {
    /// Fixed bytes counted per inserted version, on top of the key and value lengths.
    ///
    /// It is the size of crossbeam's skiplist node without its variable tower levels:
    /// - the stored key struct (16-byte inline head + length, `Bytes` handle for long
    ///   keys, `SeqNo`) and value struct (`Bytes` handle + `ValueKind`, padded), which
    ///   the node embeds inline;
    /// - the node header word (`refs_and_height`, an `AtomicUsize`);
    /// - one tower pointer: every node is linked at level 0 at least.
    ///
    /// Not counted: the node's extra tower levels (the height is drawn at random inside
    /// crossbeam and cannot be observed, about one extra pointer per node on average),
    /// allocator rounding and headers, the skiplist's own head tower, and the small
    /// shared reference-count block `bytes` allocates the first time a stored buffer is
    /// cloned by a read. On a 64-bit target this constant is 120 bytes.
    pub const ENTRY_OVERHEAD_BYTES: usize = size_of::<InternalKey>()
        + size_of::<StoredValue>()
        + size_of::<AtomicUsize>()
        + size_of::<usize>();

    /// An empty memtable.
    pub fn new() -> SkipListMemTable {
        SkipListMemTable {
            map: SkipMap::new(),
            arena: Arena::default(),
            memory: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            max_seq: AtomicU64::new(SeqNo::ZERO.get()),
        }
    }
}

impl Default for SkipListMemTable {
    fn default() -> Self {
        SkipListMemTable::new()
    }
}

impl fmt::Debug for SkipListMemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkipListMemTable")
            .field("len", &self.len())
            .field("memory_bytes", &self.memory_bytes())
            .field("max_seq", &self.max_seq())
            .finish_non_exhaustive()
    }
}

impl MemTable for SkipListMemTable {
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let internal = InternalKey::new(key, seq);
        // The value is copied only once the version is known to be new, so a duplicate
        // costs the arena nothing.
        let mut inserted = None;
        self.map.get_or_insert_with(internal, || {
            let (value, retired) = self.arena.copy(value);
            inserted = Some(retired);
            StoredValue { kind, value }
        });
        let Some(retired) = inserted else {
            // Contract violation (duplicate `(key, seq)`): the first version stays.
            return;
        };
        let spilled = if key.len() > KeyHead::INLINE { key.len() } else { 0 };
        self.memory.fetch_add(
            spilled + value.len() + Self::ENTRY_OVERHEAD_BYTES + retired,
            atomic::Ordering::Relaxed,
        );
        self.len.fetch_add(1, atomic::Ordering::Release);
        self.max_seq.fetch_max(seq.get(), atomic::Ordering::Release);
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Lookup> {
        let probe = Probe::new(key, snapshot);
        // The first internal key >= (key, snapshot) is the newest version of `key` with a
        // sequence <= snapshot, unless `key` has no such version and we landed on the
        // next user key.
        let found = self.map.lower_bound(Bound::Included(&probe as &dyn KeyView))?;
        let internal = found.key();
        if compare_user(internal.head, &internal.spill, probe.head, key) != Ordering::Equal {
            return None;
        }
        debug_assert!(internal.seq <= snapshot);
        let stored = found.value();
        Some(match stored.kind {
            ValueKind::Put => Lookup::Value { value: stored.value.clone(), seq: internal.seq },
            ValueKind::Delete => Lookup::Deleted { seq: internal.seq },
        })
    }

    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter {
        Box::new(RangeCursor::new(self, range, snapshot))
    }

    fn memory_bytes(&self) -> usize {
        self.memory.load(atomic::Ordering::Relaxed)
    }

    fn len(&self) -> usize {
        self.len.load(atomic::Ordering::Acquire)
    }

    fn max_seq(&self) -> SeqNo {
        SeqNo(self.max_seq.load(atomic::Ordering::Acquire))
    }
}

/// Maps a user-key start bound to the internal-key bound selecting the same versions.
fn internal_start(bound: Bound<Bytes>) -> Bound<InternalKey> {
    match bound {
        // (k, MAX) sorts before every version of k.
        Bound::Included(user_key) => Bound::Included(InternalKey::new(&user_key, SeqNo::MAX)),
        // (k, ZERO) sorts after every other version of k: excluding it skips them all.
        Bound::Excluded(user_key) => Bound::Excluded(InternalKey::new(&user_key, SeqNo::ZERO)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Maps a user-key end bound to the internal-key bound selecting the same versions.
fn internal_end(bound: Bound<Bytes>) -> Bound<InternalKey> {
    match bound {
        // (k, ZERO) sorts after every other version of k: including it keeps them all.
        Bound::Included(user_key) => Bound::Included(InternalKey::new(&user_key, SeqNo::ZERO)),
        // (k, MAX) sorts before every other version of k: excluding it drops them all.
        Bound::Excluded(user_key) => Bound::Excluded(InternalKey::new(&user_key, SeqNo::MAX)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_view(bound: &Bound<InternalKey>) -> Bound<&dyn KeyView> {
    bound.as_ref().map(|key| key as &dyn KeyView)
}

/// The owned iterator behind [`MemTable::range`].
///
/// Holds the table alive through an `Arc` and walks it in slices: each refill opens a
/// skiplist range starting just after the last internal key examined, so it borrows the
/// map only for the duration of the refill.
struct RangeCursor {
    table: Arc<SkipListMemTable>,
    /// Where the next refill starts: the original start bound, then `Excluded(last key
    /// examined)`.
    lower: Bound<InternalKey>,
    upper: Bound<InternalKey>,
    snapshot: SeqNo,
    buffer: VecDeque<Entry>,
    exhausted: bool,
}

impl RangeCursor {
    fn new(table: Arc<SkipListMemTable>, range: KeyRange, snapshot: SeqNo) -> RangeCursor {
        let (start, end) = range;
        RangeCursor {
            table,
            lower: internal_start(start),
            upper: internal_end(end),
            snapshot,
            buffer: VecDeque::with_capacity(SCAN_BATCH),
            exhausted: false,
        }
    }

    /// Examines up to `SCAN_LIMIT` entries after `lower`, buffering up to `SCAN_BATCH`
    /// visible ones, and moves `lower` past the last entry examined.
    fn refill(&mut self) {
        let RangeCursor { table, lower, upper, snapshot, buffer, exhausted } = self;
        let mut last_examined = None;
        {
            let mut entries = table.map.range::<dyn KeyView, _>((as_view(lower), as_view(upper)));
            let mut examined = 0;
            loop {
                let Some(found) = entries.next() else {
                    *exhausted = true;
                    break;
                };
                examined += 1;
                let internal = found.key();
                if internal.seq <= *snapshot {
                    let stored = found.value();
                    buffer.push_back(Entry {
                        key: internal.user_key_bytes(),
                        seq: internal.seq,
                        kind: stored.kind,
                        value: stored.value.clone(),
                    });
                }
                if buffer.len() >= SCAN_BATCH || examined >= SCAN_LIMIT {
                    last_examined = Some(internal.clone());
                    break;
                }
            }
        }
        if let Some(key) = last_examined {
            *lower = Bound::Excluded(key);
        }
    }
}

impl Iterator for RangeCursor {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                return Some(entry);
            }
            if self.exhausted {
                return None;
            }
            self.refill();
        }
    }
}

/// Creates empty [`SkipListMemTable`]s; reports its name as `"skiplist"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SkipListFactory;

impl SkipListFactory {
    /// The factory.
    pub fn new() -> SkipListFactory {
        SkipListFactory
    }
}

impl MemTableFactory for SkipListFactory {
    fn create(&self) -> Arc<dyn MemTable> {
        Arc::new(SkipListMemTable::new())
    }

    fn name(&self) -> &'static str {
        "skiplist"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_view_order_matches_owned_key_order() {
        let a = InternalKey::new(b"a", SeqNo(5));
        let b = InternalKey::new(b"a", SeqNo(3));
        let probe = Probe::new(b"a", SeqNo(4));
        assert!(a < b);
        let (a_view, b_view, p_view): (&dyn KeyView, &dyn KeyView, &dyn KeyView) = (&a, &b, &probe);
        assert!(a_view < p_view && p_view < b_view);
        assert_eq!(<InternalKey as Borrow<dyn KeyView>>::borrow(&a).seq(), SeqNo(5));
    }

    #[test]
    fn entry_overhead_counts_node_fixed_part() {
        // Key: head (u128 + len) + Bytes handle (4 words) + SeqNo; value: Bytes +
        // ValueKind padded; node header; one tower pointer.
        if size_of::<usize>() == 8 {
            assert_eq!(SkipListMemTable::ENTRY_OVERHEAD_BYTES, 64 + 40 + 8 + 8);
            assert_eq!(size_of::<InternalKey>(), 64, "the key head must not pad the node");
        }
    }

    #[test]
    fn head_order_matches_byte_order_for_tricky_keys() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\x01",
            b"ab",
            b"0123456789abcdef",
            b"0123456789abcdef\0",
            b"0123456789abcdef\x01",
            b"0123456789abcdeg",
            b"0123456789abcde",
            b"0123456789abcde\0\0",
            b"\xff\xff",
            b"\xff\xff\0",
            b"0123456789abcdef0123",
            b"0123456789abcdef012",
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    compare_user(KeyHead::of(a), a, KeyHead::of(b), b),
                    a.cmp(b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn cursor_stops_refilling_after_scan_limit_of_invisible_versions() {
        let table = Arc::new(SkipListMemTable::new());
        let invisible = 3 * SCAN_LIMIT as u64;
        for seq in 1..=invisible {
            table.insert(b"hot", SeqNo(seq + 10), ValueKind::Put, b"v");
        }
        table.insert(b"hot", SeqNo(1), ValueKind::Put, b"old");
        table.insert(b"next", SeqNo(2), ValueKind::Put, b"n");
        let mut cursor =
            RangeCursor::new(Arc::clone(&table), (Bound::Unbounded, Bound::Unbounded), SeqNo(5));
        cursor.refill();
        assert!(cursor.buffer.is_empty(), "first slice holds only invisible versions");
        assert!(!cursor.exhausted);
        let rest: Vec<(Bytes, u64)> = cursor.map(|e| (e.key, e.seq.get())).collect();
        assert_eq!(rest, [(Bytes::from_static(b"hot"), 1), (Bytes::from_static(b"next"), 2)]);
    }
}
