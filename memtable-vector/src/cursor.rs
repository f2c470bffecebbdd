//! The owned iterator behind [`strata_core::MemTable::range`].

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{Entry, KeyRange, SeqNo, compare_internal};

use crate::log::Slot;
use crate::table::VectorMemTable;

/// Visible entries a cursor buffers per refill.
const SCAN_BATCH: usize = 64;

/// Most versions (visible or not) a cursor examines per refill, so one `next` does a
/// bounded amount of work under the read lock.
const SCAN_LIMIT: usize = 16 * SCAN_BATCH;

/// Walks the table in slices: each refill takes the read lock, merges the log and the
/// out-of-order map from just after the last internal key examined, and releases the
/// lock. Positions are never remembered across refills (an insert may shift the log),
/// only keys, so every version present when the scan started is met exactly once.
pub(crate) struct RangeCursor {
    table: Arc<VectorMemTable>,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    /// The last internal key examined; the next refill starts after it.
    after: Option<(Bytes, SeqNo)>,
    snapshot: SeqNo,
    buffer: VecDeque<Entry>,
    exhausted: bool,
}

impl RangeCursor {
    pub(crate) fn new(table: Arc<VectorMemTable>, range: KeyRange, snapshot: SeqNo) -> Self {
        let (start, end) = range;
        RangeCursor {
            table,
            start,
            end,
            after: None,
            snapshot,
            buffer: VecDeque::with_capacity(SCAN_BATCH),
            exhausted: false,
        }
    }

    fn below_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(e) => key <= &**e,
            Bound::Excluded(e) => key < &**e,
            Bound::Unbounded => true,
        }
    }

    fn refill(&mut self) {
        let table = Arc::clone(&self.table);
        let inner = table.inner.read();
        let logs = &inner.logs;
        let mut positions: Vec<usize> = logs
            .iter()
            .map(|log| match &self.after {
                Some((k, s)) => log.partition_point(|x| x.cmp_to(k, *s) != Ordering::Greater),
                None => match &self.start {
                    Bound::Included(k) => log.seek(k, SeqNo::MAX),
                    Bound::Excluded(k) => log.partition_point(|x| *x.key <= **k),
                    Bound::Unbounded => 0,
                },
            })
            .collect();
        let lower: Bound<&[u8]> = match &self.after {
            Some((k, _)) => Bound::Included(k),
            None => self.start.as_ref().map(|b| &**b),
        };
        let upper: Bound<&[u8]> = self.end.as_ref().map(|b| &**b);
        let after = self.after.clone();
        let mut spilled = nonempty(lower, upper)
            .then(|| inner.spill.range::<[u8], _>((lower, upper)))
            .into_iter()
            .flatten()
            .flat_map(|(k, versions)| versions.iter().map(move |v| (k, v)))
            .skip_while(|(k, v)| {
                after.as_ref().is_some_and(|(ak, aseq)| *k == ak && v.seq >= *aseq)
            })
            .peekable();

        let mut examined = 0usize;
        let mut last: Option<(Bytes, SeqNo)> = None;
        loop {
            // The smallest head among the logs (k-way merge over at most MAX_LOGS).
            let mut logged: Option<(usize, &Slot)> = None;
            for (i, log) in logs.iter().enumerate() {
                let head = positions.get(i).and_then(|&p| log.get(p));
                if let Some(s) = head.filter(|s| self.below_end(&s.key))
                    && logged.is_none_or(|(_, b)| s.cmp_to(&b.key, b.seq).is_lt())
                {
                    logged = Some((i, s));
                }
            }
            let take_log = match (logged, spilled.peek()) {
                (None, None) => {
                    self.exhausted = true;
                    break;
                }
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((_, s)), Some((k, v))) => compare_internal(&s.key, s.seq, k, v.seq).is_lt(),
            };
            let entry = if take_log {
                let Some((i, s)) = logged else { break };
                if let Some(p) = positions.get_mut(i) {
                    *p += 1;
                }
                Entry { key: s.key.clone(), seq: s.seq, kind: s.kind, value: s.value.clone() }
            } else {
                let Some((k, v)) = spilled.next() else { break };
                Entry { key: k.clone(), seq: v.seq, kind: v.kind, value: v.value.clone() }
            };
            examined += 1;
            let visible = entry.seq <= self.snapshot;
            let stop = examined >= SCAN_LIMIT || (visible && self.buffer.len() + 1 >= SCAN_BATCH);
            if stop {
                last = Some((entry.key.clone(), entry.seq));
            }
            if visible {
                self.buffer.push_back(entry);
            }
            if stop {
                break;
            }
        }
        drop(spilled);
        drop(inner);
        if let Some(last) = last {
            self.after = Some(last);
        }
    }
}

/// False for bounds `BTreeMap::range` would panic on (start after end, or equal and
/// excluded); such a range selects nothing anyway.
fn nonempty(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
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
