//! Open-time scan of the last segment: find the end of the log and decide what a failed
//! record at its end means — a torn tail that is cut off, or damage that is reported.
//!
//! Only the last segment can hold a torn tail: rotation fsyncs a segment (and seals it)
//! before the next one gets its final name, so every earlier segment is complete, and
//! the reader checks it record by record when it is replayed. (A next segment still
//! under its temporary name is adopted by open as the last one when it continues this
//! one; see `PendingRotation` in `wal.rs`.)
//!
//! When the record at offset `x` of the last segment (expected to start at sequence `s`)
//! is not intact — damaged, cut short, or a zero length with data after it — recovery
//! looks at every later byte offset for intact records with sequences `>= s`
//! ("followers"), because a damaged length field can claim any extent:
//! - no follower: nothing after `x` is an intact record, so the failed record was the
//!   last one written: a torn tail, cut off and reported;
//! - followers exist, the bytes from `x` to the end of its 4 KiB page are zeros (a page
//!   that never reached the disk while later pages did: writeback reordering before a
//!   power loss), and no follower's synced-through marker reaches `s`: nothing from `x`
//!   on was ever durable, so it is dropped as an unsynced tail and reported, with the
//!   number of intact records dropped;
//! - otherwise it is damage: `Error::Corruption` with file and offset, never a
//!   truncation. A flipped bit anywhere before intact records is always damage.
//!
//! What the log cannot tell: damage to the very last records, after which nothing intact
//! was written, looks exactly like a torn write of records that were never durable. Such
//! a tail is cut off and reported in the open report.
//!
//! The segment is read in bounded chunks, never whole.

use std::path::Path;

use strata_core::fs::File;
use strata_core::{Epoch, Error, Result, SeqNo};

use crate::format::{
    HEADER_LEN, RECORD_PREFIX_LEN, RecordAt, SegmentHeader, decode_record, plausible_record_start,
};

/// Bytes read at a time.
const CHUNK_BYTES: usize = 1024 * 1024;
/// Page size of the writeback-hole rule.
const PAGE: u64 = 4096;

/// Where the valid data of the last segment ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TailScan {
    /// Offset just past the last valid record (or the seal).
    pub end: u64,
    /// Last sequence in the segment (`start - 1` if it holds no record).
    pub last_seq: SeqNo,
    /// Bytes from `end` onwards that were not zero (a torn tail), if any.
    pub torn_bytes: Option<u64>,
    /// Valid records before `end`.
    pub records: u64,
    /// Intact records after the torn tail that were dropped with it (never durable).
    pub dropped_unsynced: u64,
    /// The highest epoch of the segment's records.
    pub max_epoch: Epoch,
    /// Set when the segment ends in a seal naming the next segment's start.
    pub sealed: Option<SeqNo>,
}

/// A bounded read window over a file.
pub(crate) struct Window<'f> {
    file: &'f dyn File,
    len: u64,
    buf: Vec<u8>,
    at: u64,
}

impl<'f> Window<'f> {
    pub(crate) fn new(file: &'f dyn File, len: u64) -> Self {
        Self { file, len, buf: Vec::new(), at: 0 }
    }

    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Up to `want` bytes at `off` (fewer at the end of the file).
    pub(crate) fn get(&mut self, off: u64, want: usize) -> Result<&[u8]> {
        let end = off.saturating_add(want as u64).min(self.len);
        if off < self.at || end > self.at + self.buf.len() as u64 {
            let size =
                usize::try_from((self.len.saturating_sub(off)).min(want.max(CHUNK_BYTES) as u64))
                    .unwrap_or(CHUNK_BYTES);
            self.buf.resize(size, 0);
            let mut filled = 0;
            while filled < size {
                let n = self.file.read_at(&mut self.buf[filled..], off + filled as u64)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            self.buf.truncate(filled);
            self.at = off;
        }
        let start = usize::try_from(off - self.at).unwrap_or(usize::MAX);
        let stop = usize::try_from(end.saturating_sub(self.at)).unwrap_or(usize::MAX);
        Ok(self.buf.get(start..stop.max(start)).unwrap_or_default())
    }

    /// Decodes the record at `off`, reading as much as its (bounded) length asks for.
    pub(crate) fn record_at(&mut self, off: u64, version: u32) -> Result<RecordAt<'_>> {
        let claimed = {
            let b = self.get(off, RECORD_PREFIX_LEN)?;
            b.get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| u32::from_le_bytes(b) as usize)
        };
        let want = RECORD_PREFIX_LEN + claimed.min(crate::format::MAX_BODY_LEN);
        let b = self.get(off, want)?;
        Ok(decode_record(b, version))
    }

    /// Offset of the first non-zero byte at or after `off`.
    pub(crate) fn first_nonzero_from(&mut self, mut off: u64) -> Result<Option<u64>> {
        while off < self.len {
            let chunk = self.get(off, CHUNK_BYTES)?;
            if chunk.is_empty() {
                break;
            }
            if let Some(i) = chunk.iter().position(|b| *b != 0) {
                return Ok(Some(off + i as u64));
            }
            off += chunk.len() as u64;
        }
        Ok(None)
    }

    /// Offset just past the last non-zero byte at or after `off`, if any.
    fn nonzero_end_from(&mut self, mut off: u64) -> Result<Option<u64>> {
        let mut last = None;
        while off < self.len {
            let chunk = self.get(off, CHUNK_BYTES)?;
            if chunk.is_empty() {
                break;
            }
            if let Some(i) = chunk.iter().rposition(|b| *b != 0) {
                last = Some(off + i as u64 + 1);
            }
            off += chunk.len() as u64;
        }
        Ok(last)
    }
}

/// Intact records found after a failed one.
struct Followers {
    /// Offset of the first.
    offset: u64,
    /// Its first sequence.
    first: SeqNo,
    /// How many intact records follow in a chain from it.
    records: u64,
    /// The highest synced-through marker among them.
    max_synced: SeqNo,
}

/// Looks at every offset from `from` on for an intact record whose first sequence is at
/// least `min`, then follows the chain of intact records from there.
fn find_followers(
    w: &mut Window<'_>,
    from: u64,
    version: u32,
    min: SeqNo,
) -> Result<Option<Followers>> {
    let probe = RECORD_PREFIX_LEN + crate::format::BODY_PREFIX_LEN;
    let mut off = from;
    while off + probe as u64 <= w.len() {
        if !plausible_record_start(w.get(off, probe)?, version, min) {
            off += 1;
            continue;
        }
        let (first, mut next, mut max_synced, size) = match w.record_at(off, version)? {
            RecordAt::Valid { first, count, meta, size, .. } => {
                (first, SeqNo(first.0 + u64::from(count)), meta.synced_through, size)
            }
            RecordAt::Seal { next, meta, size } => (next, next, meta.synced_through, size),
            _ => {
                off += 1;
                continue;
            }
        };
        let mut records = 1;
        let mut at = off + size as u64;
        loop {
            match w.record_at(at, version)? {
                RecordAt::Valid { first, count, meta, size, .. } if first == next => {
                    next = SeqNo(first.0 + u64::from(count));
                    max_synced = max_synced.max(meta.synced_through);
                    records += 1;
                    at += size as u64;
                }
                RecordAt::Seal { next: n, meta, .. } if n == next => {
                    max_synced = max_synced.max(meta.synced_through);
                    break;
                }
                _ => break,
            }
        }
        return Ok(Some(Followers { offset: off, first, records, max_synced }));
    }
    Ok(None)
}

/// Scans the last segment, whose header is `header`, from its first record.
///
/// With `keep` (a pending truncation, see [`crate::truncation`]) the log ends after
/// sequence `keep`: the scan stops before the first record past it, and reports the
/// bytes from there on as the tail to clear.
pub(crate) fn scan_last_segment(
    file: &dyn File,
    path: &Path,
    header: SegmentHeader,
    keep: Option<SeqNo>,
) -> Result<TailScan> {
    let len = file.len()?;
    if header.min_len > 0 && len < header.min_len {
        return Err(Error::corruption(
            path,
            len,
            format!(
                "the newest WAL segment is {len} bytes long but was created {} bytes long: \
                 it was cut short after it was written, so acknowledged writes may be \
                 missing; restore the file from a backup (or a replica) before opening",
                header.min_len
            ),
        ));
    }
    let mut w = Window::new(file, len);
    let mut off = HEADER_LEN as u64;
    let mut scan = TailScan {
        end: off,
        last_seq: SeqNo(header.start.0 - 1),
        torn_bytes: None,
        records: 0,
        dropped_unsynced: 0,
        max_epoch: Epoch::ZERO,
        sealed: None,
    };
    let mut expected = header.start;
    let reason = loop {
        if keep.is_some_and(|k| expected.0 > k.0) {
            // The pending truncation ends the log here.
            scan.end = off;
            scan.last_seq = SeqNo(expected.0 - 1);
            scan.torn_bytes = w.nonzero_end_from(off)?.map(|e| e - off);
            return Ok(scan);
        }
        match w.record_at(off, header.version)? {
            RecordAt::Valid { first, count, .. }
                if first == expected
                    && keep.is_some_and(|k| first.0 + u64::from(count).max(1) - 1 > k.0) =>
            {
                return Err(Error::corruption(
                    path,
                    off,
                    format!(
                        "the pending truncation keeps sequence {} but the batch at this offset \
                         holds {first} to {}: the marker does not match the log; restore the \
                         log from a backup or re-bootstrap this replica",
                        keep.unwrap_or(SeqNo::ZERO),
                        first.0 + u64::from(count).max(1) - 1
                    ),
                ));
            }
            RecordAt::Valid { first, count, meta, size, .. } if first == expected => {
                expected = SeqNo(first.0 + u64::from(count));
                off += size as u64;
                scan.records += 1;
                scan.max_epoch = scan.max_epoch.max(meta.epoch);
            }
            RecordAt::Valid { first, .. } => {
                break format!("record starts at sequence {first}, expected {expected}");
            }
            RecordAt::Seal { next, size, .. } if next == expected => {
                let after = off + size as u64;
                if let Some(at) = w.first_nonzero_from(after)? {
                    return Err(Error::corruption(
                        path,
                        at,
                        "data after the seal that closed this segment: the segment is damaged",
                    ));
                }
                scan.end = after;
                scan.last_seq = SeqNo(expected.0 - 1);
                scan.sealed = Some(next);
                return Ok(scan);
            }
            RecordAt::Seal { next, .. } => {
                break format!("seal names the next segment start {next}, expected {expected}");
            }
            RecordAt::End => match w.first_nonzero_from(off)? {
                None => {
                    scan.end = off;
                    scan.last_seq = SeqNo(expected.0 - 1);
                    return Ok(scan);
                }
                Some(_) => break "a zero record length with non-zero data after it".to_owned(),
            },
            RecordAt::Incomplete => break "record extends past the end of the file".to_owned(),
            RecordAt::Damaged(reason) => break reason,
        }
    };
    scan.end = off;
    scan.last_seq = SeqNo(expected.0 - 1);
    let torn = w.nonzero_end_from(off)?.map(|e| e - off);
    match find_followers(&mut w, off + 1, header.version, expected)? {
        None => {
            tracing::warn!(
                file = %path.display(), offset = off, bytes = torn.unwrap_or(0), %reason,
                "torn WAL tail truncated"
            );
            scan.torn_bytes = Some(torn.unwrap_or(0));
            Ok(scan)
        }
        Some(f) => {
            let page_end = ((off / PAGE) + 1) * PAGE;
            let hole = f.offset >= page_end && w.first_nonzero_from(off)? >= Some(page_end);
            if hole && f.max_synced < expected {
                tracing::warn!(
                    file = %path.display(), offset = off, records = f.records,
                    "a page of the WAL tail never reached the disk and the records after it \
                     were never synced: the unsynced tail is dropped"
                );
                scan.torn_bytes = Some(torn.unwrap_or(0));
                scan.dropped_unsynced = f.records;
                return Ok(scan);
            }
            let durable = if f.max_synced >= expected {
                format!(" (which records that everything up to {} was durable)", f.max_synced)
            } else {
                String::new()
            };
            Err(Error::corruption(
                path,
                off,
                format!(
                    "{reason}; an intact record for sequence {} follows at offset {}{durable}, \
                     so this is damage, not a torn tail: acknowledged writes from sequence \
                     {expected} on would be lost by cutting here. Restore the segment from a \
                     backup or a replica",
                    f.first, f.offset
                ),
            ))
        }
    }
}
