//! Merging memtable and table iterators into one user-visible scan.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::memtable::Entry;
use crate::table::TableIter;
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

/// A k-way merge of internal-key-ordered sources into one internal-key-ordered stream
/// (every version, nothing hidden). Used by scans and by compaction.
pub(crate) struct MergeIter {
    sources: Vec<TableIter>,
    heap: BinaryHeap<HeapItem>,
    error: Option<crate::Error>,
    done: bool,
}

impl MergeIter {
    pub(crate) fn new(mut sources: Vec<TableIter>) -> Self {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        let mut error = None;
        for (source, it) in sources.iter_mut().enumerate() {
            match it.next() {
                Some(Ok(entry)) => heap.push(HeapItem { entry, source }),
                Some(Err(e)) => {
                    error.get_or_insert(e);
                }
                None => {}
            }
        }
        Self { sources, heap, error, done: false }
    }
}

impl Iterator for MergeIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.done = true;
            return Some(Err(e));
        }
        let HeapItem { entry, source } = self.heap.pop()?;
        match self.sources.get_mut(source).and_then(Iterator::next) {
            Some(Ok(next)) => self.heap.push(HeapItem { entry: next, source }),
            // Report the damage before anything that might sort after the lost entries.
            Some(Err(e)) => self.error = Some(e),
            None => {}
        }
        Some(Ok(entry))
    }
}

/// Iterator over `(key, value)` pairs of a consistent snapshot, in key order.
///
/// For each user key it yields the newest version visible at the snapshot and hides
/// keys whose newest version is a tombstone. A damaged table block ends the scan with
/// one `Err` (never wrong data). The iterator keeps every memtable and table it reads
/// alive, so compactions that replace those files while it runs do not disturb it.
pub struct DbIter {
    merge: MergeIter,
    last_key: Option<Bytes>,
    _pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for DbIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIter").field("sources", &self.merge.sources.len()).finish_non_exhaustive()
    }
}

impl DbIter {
    pub(crate) fn new(
        sources: Vec<TableIter>,
        pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        Self { merge: MergeIter::new(sources), last_key: None, _pin: pin }
    }
}

impl Iterator for DbIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.merge.next()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e)),
            };
            if self.last_key.as_ref().is_some_and(|k| *k == entry.key) {
                continue; // an older version of a key already decided
            }
            self.last_key = Some(entry.key.clone());
            if entry.kind == ValueKind::Put {
                return Some(Ok((entry.key, entry.value)));
            }
        }
    }
}
