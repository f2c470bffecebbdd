//! Range iteration over one table.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{Entry, KeyRange, Result, SeqNo};

use crate::block::{BlockView, malformed};
use crate::reader::MmapTable;

enum State {
    /// Not positioned yet: the seek happens on the first `next`, so that its errors
    /// come out of the iterator like every other.
    Unpositioned,
    /// At byte `pos` of block `block`.
    In {
        block: usize,
        view: BlockView,
        pos: usize,
    },
    Done,
}

/// Versions in a key range visible at a snapshot, in internal-key order. Keys and
/// values are zero-copy slices of the table's bytes (or of one decompressed block).
pub(crate) struct RangeIter {
    table: Arc<MmapTable>,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    snapshot: SeqNo,
    state: State,
}

impl RangeIter {
    pub(crate) fn new(table: Arc<MmapTable>, (start, end): KeyRange, snapshot: SeqNo) -> Self {
        Self { table, start, end, snapshot, state: State::Unpositioned }
    }

    /// Positions at the first entry at or after the start bound.
    fn seek(&self) -> Result<State> {
        // `(k, MAX)` is the smallest internal key of `k`, `(k, 0)` the largest; an
        // excluded start still lands on `k`'s last version, skipped in `advance`.
        let (block, target) = match &self.start {
            Bound::Unbounded => (0, None),
            Bound::Included(k) => (self.table.index().find(k, SeqNo::MAX), Some((k, SeqNo::MAX))),
            Bound::Excluded(k) => (self.table.index().find(k, SeqNo::ZERO), Some((k, SeqNo::ZERO))),
        };
        if block >= self.table.index().len() {
            return Ok(State::Done);
        }
        let view = self.table.block(block)?;
        let pos = match target {
            None => 0,
            Some((k, seq)) => match view.seek(k, seq) {
                Ok(Some(e)) => e.start,
                Ok(None) => view.entries_end(),
                Err(pos) => {
                    return Err(malformed(self.table.path(), self.table.block_offset(block), pos));
                }
            },
        };
        Ok(State::In { block, view, pos })
    }

    fn advance(&mut self) -> Result<Option<Entry>> {
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Unpositioned => self.state = self.seek()?,
                State::In { block, view, pos } => {
                    if *pos >= view.entries_end() {
                        let next = *block + 1;
                        if next >= self.table.index().len() {
                            self.state = State::Done;
                            return Ok(None);
                        }
                        self.state =
                            State::In { block: next, view: self.table.block(next)?, pos: 0 };
                        continue;
                    }
                    let Some(e) = view.entry_at(*pos) else {
                        let (block, pos) = (*block, *pos);
                        return Err(malformed(
                            self.table.path(),
                            self.table.block_offset(block),
                            pos,
                        ));
                    };
                    *pos = e.next;
                    let key = view.key(&e);
                    if past_end(&self.end, key) {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    if e.seq > self.snapshot || before_start(&self.start, key) {
                        continue;
                    }
                    let raw = view.raw();
                    return Ok(Some(Entry {
                        key: raw.slice(e.key),
                        seq: e.seq,
                        kind: e.kind,
                        value: raw.slice(e.value),
                    }));
                }
            }
        }
    }
}

fn past_end(end: &Bound<Bytes>, key: &[u8]) -> bool {
    match end {
        Bound::Unbounded => false,
        Bound::Included(e) => key > &e[..],
        Bound::Excluded(e) => key >= &e[..],
    }
}

/// Only an excluded start needs a check per entry: the seek already skipped everything
/// below an included one.
fn before_start(start: &Bound<Bytes>, key: &[u8]) -> bool {
    match start {
        Bound::Excluded(s) => key <= &s[..],
        _ => false,
    }
}

impl Iterator for RangeIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
