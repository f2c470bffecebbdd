//! The memtable: internal keys `(user key, Reverse(seq))` in a `BTreeMap`, so that the
//! map's order is user key ascending, sequence descending.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::mem::size_of;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use strata_core::{
    Entry, EntryIter, Error, KeyRange, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind,
};

type Key = (Vec<u8>, Reverse<u64>);
type Value = (ValueKind, Bytes);

/// Options of `memtable = "example-btree"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BTreeOptions {
    /// Entries a range iterator copies out per read-lock acquisition, `1..=65536`.
    /// Default 256.
    pub scan_batch: usize,
}

impl Default for BTreeOptions {
    fn default() -> Self {
        Self { scan_batch: 256 }
    }
}

/// The memtable. See the crate documentation.
#[derive(Debug)]
pub struct BTreeMemTable {
    map: RwLock<BTreeMap<Key, Value>>,
    memory: AtomicUsize,
    len: AtomicUsize,
    max_seq: AtomicU64,
    scan_batch: usize,
}

impl BTreeMemTable {
    /// Bytes counted per version besides the key's and value's lengths: the map's key
    /// and value structs as stored in a B-tree node. Not counted: the nodes' spare slots
    /// and headers (a node holds up to 11 entries), allocator rounding.
    pub const ENTRY_OVERHEAD_BYTES: usize = size_of::<Key>() + size_of::<Value>();

    /// An empty memtable.
    pub fn new(options: BTreeOptions) -> Self {
        Self {
            map: RwLock::new(BTreeMap::new()),
            memory: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            scan_batch: options.scan_batch.max(1),
        }
    }
}

impl MemTable for BTreeMemTable {
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let stored = Bytes::copy_from_slice(value);
        let mut map = self.map.write();
        // The contract says each (key, seq) comes once; a repeat keeps the first
        // version and is not counted.
        if let std::collections::btree_map::Entry::Vacant(slot) =
            map.entry((key.to_vec(), Reverse(seq.get())))
        {
            slot.insert((kind, stored));
            self.memory
                .fetch_add(key.len() + value.len() + Self::ENTRY_OVERHEAD_BYTES, Ordering::Relaxed);
            self.len.fetch_add(1, Ordering::Release);
            self.max_seq.fetch_max(seq.get(), Ordering::AcqRel);
        }
    }

    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Lookup> {
        let map = self.map.read();
        // (key, Reverse(snapshot)) is where the versions of `key` no newer than the
        // snapshot begin; the first one is the newest visible.
        let ((found, Reverse(seq)), (kind, value)) =
            map.range((key.to_vec(), Reverse(snapshot.get()))..).next()?;
        if found.as_slice() != key {
            return None;
        }
        Some(match kind {
            ValueKind::Put => Lookup::Value { value: value.clone(), seq: SeqNo(*seq) },
            ValueKind::Delete => Lookup::Deleted { seq: SeqNo(*seq) },
        })
    }

    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter {
        let (start, end) = range;
        let lower = match start {
            // (k, Reverse(MAX)) sorts before every version of k.
            Bound::Included(k) => Bound::Included((k.to_vec(), Reverse(u64::MAX))),
            // (k, Reverse(0)) sorts after every version of k.
            Bound::Excluded(k) => Bound::Excluded((k.to_vec(), Reverse(0))),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper = match end {
            Bound::Included(k) => Bound::Included((k.to_vec(), Reverse(0))),
            Bound::Excluded(k) => Bound::Excluded((k.to_vec(), Reverse(u64::MAX))),
            Bound::Unbounded => Bound::Unbounded,
        };
        Box::new(Cursor {
            table: self,
            lower,
            upper,
            snapshot,
            buffer: VecDeque::new(),
            done: false,
        })
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

/// True when `BTreeMap::range` accepts the bounds and they select something (it panics
/// on a start after the end, or on equal bounds that are both excluded).
fn non_empty(lower: &Bound<Key>, upper: &Bound<Key>) -> bool {
    match (lower, upper) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(l), Bound::Included(u)) => l <= u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => l < u,
    }
}

/// The iterator behind `range`: copies up to `scan_batch` visible entries per read
/// lock, then resumes after the last key it examined, so writers are never blocked for
/// a whole scan.
struct Cursor {
    table: Arc<BTreeMemTable>,
    lower: Bound<Key>,
    upper: Bound<Key>,
    snapshot: SeqNo,
    buffer: VecDeque<Entry>,
    done: bool,
}

impl Cursor {
    fn refill(&mut self) {
        if !non_empty(&self.lower, &self.upper) {
            self.done = true;
            return;
        }
        let map = self.table.map.read();
        let mut last = None;
        let mut examined = 0;
        for ((key, Reverse(seq)), (kind, value)) in
            map.range((self.lower.clone(), self.upper.clone()))
        {
            examined += 1;
            if *seq <= self.snapshot.get() {
                self.buffer.push_back(Entry {
                    key: Bytes::copy_from_slice(key),
                    seq: SeqNo(*seq),
                    kind: *kind,
                    value: value.clone(),
                });
            }
            if self.buffer.len() >= self.table.scan_batch || examined >= 16 * self.table.scan_batch
            {
                last = Some((key.clone(), Reverse(*seq)));
                break;
            }
        }
        match last {
            Some(k) => self.lower = Bound::Excluded(k),
            None => self.done = true,
        }
    }
}

impl Iterator for Cursor {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            self.refill();
        }
    }
}

/// Creates [`BTreeMemTable`]s; reports its name as `"example-btree"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BTreeMemTableFactory {
    options: BTreeOptions,
}

impl BTreeMemTableFactory {
    /// A factory with `options` (`Error::Config` if `scan_batch` is out of range).
    pub fn new(options: BTreeOptions) -> Result<Self, Error> {
        if !(1..=65536).contains(&options.scan_batch) {
            return Err(Error::Config(format!(
                "example-btree scan_batch {} is outside 1..=65536",
                options.scan_batch
            )));
        }
        Ok(Self { options })
    }
}

impl MemTableFactory for BTreeMemTableFactory {
    fn create(&self) -> Arc<dyn MemTable> {
        Arc::new(BTreeMemTable::new(self.options))
    }

    fn name(&self) -> &'static str {
        "example-btree"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(scan_batch: usize) -> Arc<BTreeMemTable> {
        Arc::new(BTreeMemTable::new(BTreeOptions { scan_batch }))
    }

    #[test]
    fn lookups_see_the_newest_version_at_or_below_the_snapshot() {
        let t = table(2);
        t.insert(b"a", SeqNo(1), ValueKind::Put, b"a1");
        t.insert(b"a", SeqNo(5), ValueKind::Delete, b"");
        t.insert(b"ab", SeqNo(3), ValueKind::Put, b"ab3");
        assert_eq!(t.get(b"a", SeqNo(0)), None);
        assert_eq!(
            t.get(b"a", SeqNo(4)),
            Some(Lookup::Value { value: Bytes::from_static(b"a1"), seq: SeqNo(1) })
        );
        assert_eq!(t.get(b"a", SeqNo::MAX), Some(Lookup::Deleted { seq: SeqNo(5) }));
        assert_eq!(t.get(b"ab", SeqNo(2)), None, "must not fall through to the next key");
        assert_eq!(t.get(b"b", SeqNo::MAX), None);
        assert_eq!((t.len(), t.max_seq()), (3, SeqNo(5)));
    }

    #[test]
    fn ranges_are_in_internal_key_order_and_respect_bounds_and_snapshot() {
        let t = table(2);
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            for seq in 1..=3u64 {
                t.insert(*k, SeqNo(seq * 10 + i as u64), ValueKind::Put, b"v");
            }
        }
        let got: Vec<(Bytes, u64)> = Arc::clone(&t)
            .range(
                (
                    Bound::Excluded(Bytes::from_static(b"a")),
                    Bound::Included(Bytes::from_static(b"c")),
                ),
                SeqNo(25),
            )
            .map(|e| (e.key, e.seq.get()))
            .collect();
        let want: Vec<(Bytes, u64)> = vec![
            (Bytes::from_static(b"b"), 21),
            (Bytes::from_static(b"b"), 11),
            (Bytes::from_static(b"c"), 22),
            (Bytes::from_static(b"c"), 12),
        ];
        assert_eq!(got, want);
        let empty = Arc::clone(&t).range(
            (Bound::Excluded(Bytes::from_static(b"c")), Bound::Excluded(Bytes::from_static(b"c"))),
            SeqNo::MAX,
        );
        assert_eq!(empty.count(), 0);
        let reversed = Arc::clone(&t).range(
            (Bound::Included(Bytes::from_static(b"d")), Bound::Included(Bytes::from_static(b"a"))),
            SeqNo::MAX,
        );
        assert_eq!(reversed.count(), 0);
    }

    #[test]
    fn memory_grows_by_exactly_the_stored_sizes() {
        let t = table(256);
        t.insert(b"key", SeqNo(1), ValueKind::Put, &[0u8; 100]);
        assert_eq!(t.memory_bytes(), 3 + 100 + BTreeMemTable::ENTRY_OVERHEAD_BYTES);
        t.insert(b"key", SeqNo(1), ValueKind::Put, &[0u8; 100]);
        assert_eq!(t.len(), 1, "a repeated (key, seq) is ignored");
        t.insert(b"k2", SeqNo(2), ValueKind::Delete, b"");
        assert_eq!(t.memory_bytes(), 3 + 100 + 2 + 2 * BTreeMemTable::ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn the_factory_checks_its_options() {
        assert!(BTreeMemTableFactory::new(BTreeOptions { scan_batch: 0 }).is_err());
        let f = BTreeMemTableFactory::new(BTreeOptions::default()).expect("defaults are valid");
        assert_eq!(f.name(), "example-btree");
        assert!(f.create().is_empty());
    }
}
