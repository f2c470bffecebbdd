//! Live snapshots, so compaction keeps the versions they can still read.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::types::SeqNo;

/// Counts of live snapshots per sequence.
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    live: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// Registers a snapshot at the sequence `current` returns, read under the list's
    /// lock so that [`SnapshotList::oldest`] never misses one being taken.
    pub(crate) fn register(
        self: &Arc<Self>,
        current: impl FnOnce() -> SeqNo,
    ) -> (SeqNo, SnapshotGuard) {
        let mut live = self.live.lock();
        let seq = current();
        *live.entry(seq).or_insert(0) += 1;
        (seq, SnapshotGuard { list: Arc::clone(self), seq })
    }

    /// The oldest sequence any reader may still ask for: the oldest live snapshot, or
    /// `current` when there is none.
    pub(crate) fn oldest(&self, current: impl FnOnce() -> SeqNo) -> SeqNo {
        let live = self.live.lock();
        let now = current();
        live.keys().next().map_or(now, |&s| s.min(now))
    }

    pub(crate) fn count(&self) -> usize {
        self.live.lock().values().sum()
    }
}

/// Keeps one snapshot registered until dropped.
#[derive(Debug)]
pub(crate) struct SnapshotGuard {
    list: Arc<SnapshotList>,
    seq: SeqNo,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        let mut live = self.list.live.lock();
        if let Some(n) = live.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.seq);
            }
        }
    }
}
