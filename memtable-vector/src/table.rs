//! The memtable: the append logs, the out-of-order map, and the counters.

use std::collections::BTreeMap;
use std::fmt;
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use strata_core::{EntryIter, KeyRange, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind};

use crate::cursor::RangeCursor;
use crate::log::{Arena, Log, Placement, Slot, head_of};

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

const MAX_LOGS: usize = VectorMemTable::MAX_LOGS;

/// What the lock guards.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// Sorted runs; a version is appended to the one whose last version is the greatest
    /// below it (patience sorting), so interleaved increasing streams stay in logs.
    pub(crate) logs: Vec<Log>,
    pub(crate) spill: Spill,
    arena: Arena,
}

/// Where [`Inner::place`] puts a version.
enum Target {
    Append(usize),
    Shift(usize, usize),
    NewLog,
    Spill,
}

impl Inner {
    /// True when `(key, seq)` is stored anywhere.
    fn contains(&self, key: &[u8], seq: SeqNo) -> bool {
        self.logs.iter().any(|log| log.contains(key, seq))
            || self.spill.get(key).is_some_and(|v| v.iter().any(|v| v.seq == seq))
    }

    /// A slot with `key` and `value` copied into the arena.
    fn slot(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Slot {
        Slot {
            head: head_of(key),
            key: self.arena.store(key),
            value: self.arena.store(value),
            seq,
            kind,
        }
    }

    /// Picks the log to append to (the best fit), else a short shift, else a new log,
    /// else the out-of-order map; `None` for a duplicate found on the way.
    fn place(&self, key: &[u8], seq: SeqNo) -> Option<Target> {
        let mut append: Option<usize> = None;
        let mut shift: Option<(usize, usize)> = None;
        for (i, log) in self.logs.iter().enumerate() {
            match log.place(key, seq) {
                Placement::Duplicate => return None,
                Placement::Append => {
                    let better = append.is_none_or(|j| {
                        match (log.last(), self.logs.get(j).and_then(Log::last)) {
                            (Some(a), Some(b)) => a.cmp_to(&b.key, b.seq).is_gt(),
                            _ => false,
                        }
                    });
                    if better {
                        append = Some(i);
                    }
                }
                Placement::Shift(pos) => shift = shift.or(Some((i, pos))),
                Placement::Elsewhere => {}
            }
        }
        Some(match (append, shift) {
            (Some(i), _) => Target::Append(i),
            (None, Some((i, pos))) => Target::Shift(i, pos),
            (None, None) if self.logs.len() < MAX_LOGS => Target::NewLog,
            (None, None) => Target::Spill,
        })
    }
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
/// A `parking_lot::RwLock` guards:
///
/// - up to [`VectorMemTable::MAX_LOGS`] **logs**, each a chunked vector of versions in
///   strictly increasing internal-key order (user key ascending, sequence descending).
///   A version goes to the log whose last version is the greatest one below it (best
///   fit, as in patience sorting) and is pushed in O(1) with no search; a version that
///   fits no log but sorts at most 64 places before the end of a log's last
///   4096-version chunk is shifted into place; otherwise it opens a new log while
///   fewer than `MAX_LOGS` exist. Several writer threads each inserting increasing
///   keys thus append to a few logs instead of falling back to a tree;
/// - the **out-of-order map**, a `BTreeMap` from user key to its versions, for
///   everything else.
///
/// Lookups binary-search every log and probe the map, keeping the newest version
/// found; scans merge them (a k-way merge over at most `MAX_LOGS + 1` sources). Keys
/// and values are copied into 64 KiB arena blocks (larger ones get their own
/// allocation), so an in-order insert takes the write lock, compares against the last
/// version of each log, copies the bytes and pushes: no allocator call, no tree walk.
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
/// key head, the two buffer handles, the sequence and the kind (versions in the
/// out-of-order map are counted the same). Not counted: the unused tail of the
/// current arena block and of the current log chunk (preallocated capacity, at most
/// 64 KiB and 4096 slots), the out-of-order map's node and per-key vector overhead
/// (the map stays small for sequential keys), and allocator rounding.
///
/// # Duplicate versions
///
/// The [`MemTable`] contract says every `(key, seq)` is inserted at most once. A
/// repeat is ignored (the first version kept, the repeat not counted in `len` or
/// `memory_bytes`) whenever the table sees it: when the repeat would open a new log
/// (at most 7 times per table, so every log and the map are searched), when the stored
/// copy is among the last 65 versions of any log, and when both go to the out-of-order
/// map. Other repeats are stored a second time: finding them would cost a binary
/// search per log on every insert, for a case the contract excludes.
pub struct VectorMemTable {
    pub(crate) inner: RwLock<Inner>,
    memory: AtomicUsize,
    len: AtomicUsize,
    spilled: AtomicUsize,
    max_seq: AtomicU64,
}

impl VectorMemTable {
    /// Fixed bytes counted per inserted version on top of the key and value lengths: the
    /// size of one stored slot (the key's 8-byte head, two `Bytes` handles, the
    /// sequence, the kind, padded). On a 64-bit target this is 88 bytes.
    pub const ENTRY_OVERHEAD_BYTES: usize = size_of::<Slot>();

    /// Most append logs (sorted runs) a table keeps: 8. Writers racing each other
    /// produce a few interleaved increasing streams, and each stream finds a log it can
    /// append to; a version that fits no log opens a new one while fewer than this many
    /// exist, and goes to the out-of-order map after that. More logs would make every
    /// lookup probe more of them.
    pub const MAX_LOGS: usize = 8;

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
            let Some(target) = inner.place(key, seq) else { return };
            match target {
                Target::Append(i) => {
                    let slot = inner.slot(key, seq, kind, value);
                    if let Some(log) = inner.logs.get_mut(i) {
                        log.push(slot);
                    }
                }
                Target::NewLog => {
                    // At most MAX_LOGS - 1 times per table: search everything.
                    if inner.contains(key, seq) {
                        return;
                    }
                    let mut log = Log::default();
                    log.push(inner.slot(key, seq, kind, value));
                    inner.logs.push(log);
                }
                Target::Shift(i, pos) => {
                    let slot = inner.slot(key, seq, kind, value);
                    if let Some(log) = inner.logs.get_mut(i) {
                        log.insert_in_tail(pos, slot);
                    }
                }
                Target::Spill => {
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
        // In each log, the first version at or after (key, snapshot) is the newest one
        // of `key` with a sequence <= snapshot, if it still carries `key`. The answer is
        // the newest of those and of the out-of-order map's.
        let logged = inner
            .logs
            .iter()
            .filter_map(|log| log.get(log.seek(key, snapshot)).filter(|s| *s.key == *key))
            .max_by_key(|s| s.seq)
            .map(|s| (s.seq, s.kind, &s.value));
        let spilled = inner
            .spill
            .get(key)
            .and_then(|versions| versions.get(versions.partition_point(|v| v.seq > snapshot)))
            .map(|v| (v.seq, v.kind, &v.value));
        let (seq, kind, value) = match (logged, spilled) {
            (None, None) => return None,
            (Some(found), None) | (None, Some(found)) => found,
            (Some(a), Some(b)) => {
                if a.0 > b.0 {
                    a
                } else {
                    b
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
