//! Merging memtable iterators into one user-visible scan.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use bytes::Bytes;

use crate::memtable::{Entry, EntryIter};
use crate::types::{ValueKind, compare_internal};

struct HeapItem {
    entry: Entry,
    source: usize,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the smallest internal key pops first.
        compare_internal(&other.entry.key, other.entry.seq, &self.entry.key, self.entry.seq)
            .then_with(|| other.source.cmp(&self.source))
    }
}

/// Iterator over `(key, value)` pairs of a consistent snapshot, in key order.
///
/// Built from one internal-key-ordered source per memtable; for each user key it yields
/// the newest version visible at the snapshot and hides keys whose newest version is a
/// tombstone.
pub struct DbIter {
    sources: Vec<EntryIter>,
    heap: BinaryHeap<HeapItem>,
    last_key: Option<Bytes>,
}

impl std::fmt::Debug for DbIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIter").field("sources", &self.sources.len()).finish_non_exhaustive()
    }
}

impl DbIter {
    pub(crate) fn new(mut sources: Vec<EntryIter>) -> Self {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (source, it) in sources.iter_mut().enumerate() {
            if let Some(entry) = it.next() {
                heap.push(HeapItem { entry, source });
            }
        }
        Self { sources, heap, last_key: None }
    }
}

impl Iterator for DbIter {
    type Item = (Bytes, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(HeapItem { entry, source }) = self.heap.pop() {
            if let Some(next) = self.sources.get_mut(source).and_then(Iterator::next) {
                self.heap.push(HeapItem { entry: next, source });
            }
            if self.last_key.as_ref().is_some_and(|k| *k == entry.key) {
                continue; // an older version of a key already decided
            }
            self.last_key = Some(entry.key.clone());
            if entry.kind == ValueKind::Put {
                return Some((entry.key, entry.value));
            }
        }
        None
    }
}
