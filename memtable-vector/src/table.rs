//! The memtable: the append log, the out-of-order map, and the counters.

use std::collections::BTreeMap;
use std::fmt;
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use strata_core::{EntryIter, KeyRange, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind};

use crate::cursor::RangeCursor;
use crate::log::{Arena, Log, Placement, Slot};

/// One version of a key in the out-of-order map.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
    pub(crate) value: Bytes,
}

/// Versions that arrived too far out of order for the log: user key → versions,
/// newest (greatest sequence) first.
pub(crate) type Spill = BTreeMap<Bytes, Vec<Version>>;

/// What the lock guards.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) log: Log,
    pub(crate) spill: Spill,
    arena: Arena,
}

/// A memtable tuned for keys that arrive in increasing order (order ids, trade ids,
/// timestamps).
///
/// Create it with [`VectorMemTable::new`] (or [`Default`]), or through
/// [`VectorFactory`]. All operations take `&self` (`range` takes `Arc<Self>`) and may
/// be called from any number of threads at once.
///
/// # Structure
///
/// A `parking_lot::RwLock` guards two sorted structures:
///
/// - the **log**, a chunked vector of versions in strictly increasing internal-key
///   order (user key ascending, sequence descending). A version that sorts after the
///   last one is pushed in O(1) with no search; one that sorts a little earlier (at
///   most 64 places back, inside the last 4096-version chunk) is shifted into place,
///   which keeps near-sorted input from several writer threads in the log;
/// - the **out-of-order map**, a `BTreeMap` from user key to its versions, for
///   everything else.
///
/// Lookups and scans search both and merge the answers. Keys and values are copied
/// into 64 KiB arena blocks (larger ones get their own allocation), so an in-order
/// insert takes the write lock, compares against the last version, copies the bytes
/// and pushes: no allocator call, no tree walk.
///
/// Writers serialise on the lock (readers share it): with many threads inserting at
/// once this scales worse than the lock-free skiplist, although each critical section
/// is short.
///
/// # Memory accounting
///
/// Each inserted version adds exactly `key.len() + value.len() +`
/// [`VectorMemTable::ENTRY_OVERHEAD_BYTES`] to [`MemTable::memory_bytes`]: the bytes
/// copied into the arena (or their own allocation) plus the fixed slot that holds the
/// two buffer handles, the sequence and the kind. Not counted: the unused tail of the
/// current arena block and of the current log chunk (preallocated capacity, at most
/// 64 KiB and 4096 slots), the out-of-order map's node and per-key vector overhead
/// (the map stays small for sequential keys), and allocator rounding.
///
/// # Duplicate versions
///
/// The [`MemTable`] contract says every `(key, seq)` is inserted at most once. If the
/// same pair is inserted again anyway, the first version is kept and the later insert
/// is ignored (not counted in `len` or `memory_bytes`).
pub struct VectorMemTable {
    pub(crate) inner: RwLock<Inner>,
    memory: AtomicUsize,
    len: AtomicUsize,
    spilled: AtomicUsize,
    max_seq: AtomicU64,
}

impl VectorMemTable {
    /// Fixed bytes counted per inserted version on top of the key and value lengths: the
    /// size of one stored slot (two `Bytes` handles, the sequence, the kind, padded).
    /// On a 64-bit target this is 80 bytes.
    pub const ENTRY_OVERHEAD_BYTES: usize = size_of::<Slot>();

    /// An empty memtable.
    pub fn new() -> VectorMemTable {
        VectorMemTable {
            inner: RwLock::new(Inner::default()),
            memory: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            spilled: AtomicUsize::new(0),
            max_seq: AtomicU64::new(SeqNo::ZERO.get()),
        }
    }

    /// Number of versions that arrived too far out of order for the append log and
    /// live in the out-of-order map. Close to 0 for sequential keys; close to
    /// [`MemTable::len`] for random keys, where [`VectorMemTable`] is just a locked
    /// `BTreeMap` and the skiplist memtable is the better choice. Use it to check that a
    /// workload suits this table.
    pub fn out_of_order_len(&self) -> usize {
        self.spilled.load(Ordering::Relaxed)
    }
}

impl Default for VectorMemTable {
    fn default() -> Self {
        VectorMemTable::new()
    }
}

impl fmt::Debug for VectorMemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorMemTable")
            .field("len", &self.len())
            .field("out_of_order_len", &self.out_of_order_len())
            .field("memory_bytes", &self.memory_bytes())
            .field("max_seq", &self.max_seq())
            .finish_non_exhaustive()
    }
}

impl MemTable for VectorMemTable {
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        {
            let mut guard = self.inner.write();
            let inner = &mut *guard;
            match inner.log.place(key, seq) {
                Placement::Duplicate => return,
                Placement::Append => {
                    let slot = Slot {
                        key: inner.arena.store(key),
                        value: inner.arena.store(value),
                        seq,
                        kind,
                    };
                    inner.log.push(slot);
                }
                Placement::Shift(pos) => {
                    let slot = Slot {
                        key: inner.arena.store(key),
                        value: inner.arena.store(value),
                        seq,
                        kind,
                    };
                    inner.log.insert_in_tail(pos, slot);
                }
                Placement::Elsewhere => {
                    if inner.log.contains(key, seq) {
                        return;
                    }
                    let versions = match inner.spill.get_mut(key) {
                        Some(v) => v,
                        None => inner.spill.entry(inner.arena.store(key)).or_default(),
                    };
                    let pos = versions.partition_point(|v| v.seq > seq);
                    if versions.get(pos).is_some_and(|v| v.seq == seq) {
                        return;
                    }
                    versions.insert(pos, Version { seq, kind, value: inner.arena.store(value) });
                    self.spilled.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Counters are updated under the lock, so a reader that sees an entry through
            // the lock also sees it counted.
            self.memory
                .fetch_add(key.len() + value.len() + Self::ENTRY_OVERHEAD_BYTES, Ordering::Relaxed);
            self.len.fetch_add(1, Ordering::Release);
            self.max_seq.fetch_max(seq.get(), Ordering::Release);
        }
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Lookup> {
        let inner = self.inner.read();
        // The first log version at or after (key, snapshot) is the newest one of `key`
        // with a sequence <= snapshot, if it still carries `key`.
        let logged = inner.log.get(inner.log.seek(key, snapshot)).filter(|s| *s.key == *key);
        let spilled = inner
            .spill
            .get(key)
            .and_then(|versions| versions.get(versions.partition_point(|v| v.seq > snapshot)));
        let (seq, kind, value) = match (logged, spilled) {
            (None, None) => return None,
            (Some(s), None) => (s.seq, s.kind, &s.value),
            (None, Some(v)) => (v.seq, v.kind, &v.value),
            (Some(s), Some(v)) => {
                if s.seq > v.seq {
                    (s.seq, s.kind, &s.value)
                } else {
                    (v.seq, v.kind, &v.value)
                }
            }
        };
        Some(match kind {
            ValueKind::Put => Lookup::Value { value: value.clone(), seq },
            ValueKind::Delete => Lookup::Deleted { seq },
        })
    }

    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter {
        Box::new(RangeCursor::new(self, range, snapshot))
    }

    fn memory_bytes(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn max_seq(&self) -> SeqNo {
        SeqNo(self.max_seq.load(Ordering::Acquire))
    }
}

/// Creates empty [`VectorMemTable`]s; reports its name as `"vector"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct VectorFactory;

impl VectorFactory {
    /// The factory.
    pub fn new() -> VectorFactory {
        VectorFactory
    }
}

impl MemTableFactory for VectorFactory {
    fn create(&self) -> Arc<dyn MemTable> {
        Arc::new(VectorMemTable::new())
    }

    fn name(&self) -> &'static str {
        "vector"
    }
}
