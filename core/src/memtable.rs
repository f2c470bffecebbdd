//! The in-memory sorted table contract.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::types::{SeqNo, ValueKind};

/// One version of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The user key.
    pub key: Bytes,
    /// The sequence that wrote this version.
    pub seq: SeqNo,
    /// Put or tombstone.
    pub kind: ValueKind,
    /// The value (empty for tombstones).
    pub value: Bytes,
}

/// A lookup's answer for one key at one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible version is a put with this value, written at `seq`.
    Value {
        /// The value.
        value: Bytes,
        /// Sequence of the version.
        seq: SeqNo,
    },
    /// The newest visible version is a tombstone written at `seq`.
    Deleted {
        /// Sequence of the tombstone.
        seq: SeqNo,
    },
}

impl Lookup {
    /// Sequence of the version found.
    pub fn seq(&self) -> SeqNo {
        match self {
            Lookup::Value { seq, .. } | Lookup::Deleted { seq } => *seq,
        }
    }
}

/// Key range for scans: `(start, end)` bounds over user keys.
pub type KeyRange = (Bound<Bytes>, Bound<Bytes>);

/// Iterator over memtable versions in internal-key order.
pub type EntryIter = Box<dyn Iterator<Item = Entry> + Send>;

/// A concurrent sorted map of versioned keys.
///
/// Contract (what the conformance suite checks):
/// - `insert` may be called from many threads at once without external locking; every
///   `(key, seq)` is inserted at most once (the engine guarantees unique sequences).
/// - `get(key, snapshot)` returns the version of `key` with the greatest sequence
///   `<= snapshot`, or `None` if there is none; never a version newer than `snapshot`.
/// - `range(range, snapshot)` yields every version with sequence `<= snapshot` whose key
///   lies in `range`, ordered by key ascending then sequence descending. Entries inserted
///   while iterating may or may not appear; entries present before the call always do.
/// - `memory_bytes` is the memory the table holds for its entries, computed from the
///   sizes actually stored (not estimated from a count); it only grows.
/// - `max_seq` is the greatest sequence inserted so far (`SeqNo::ZERO` when empty).
pub trait MemTable: Send + Sync + fmt::Debug {
    /// Inserts one version.
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]);
    /// The newest version of `key` visible at `snapshot`.
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Lookup>;
    /// Versions in `range` visible at `snapshot`, in internal-key order.
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter;
    /// Bytes held for the entries.
    fn memory_bytes(&self) -> usize;
    /// Number of versions held.
    fn len(&self) -> usize;
    /// True when no version is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Greatest sequence inserted.
    fn max_seq(&self) -> SeqNo;
}

/// Creates empty memtables.
pub trait MemTableFactory: Send + Sync + fmt::Debug {
    /// A new, empty memtable.
    fn create(&self) -> Arc<dyn MemTable>;
    /// A short name for reports (`"skiplist"`).
    fn name(&self) -> &'static str;
}
