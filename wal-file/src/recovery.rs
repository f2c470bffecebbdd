//! Open-time scan of the last segment: find the end of the log and cut a torn tail.
//!
//! Only the last segment can hold a torn tail: rotation fsyncs a segment before the
//! next one is created, so every earlier segment is complete, and the reader checks it
//! record by record when it is replayed.
//!
//! Classifying a failed record at offset `x` of the last segment:
//! - the rest of the file is zeros: the clean end of a preallocated segment;
//! - the record's length prefix is all zeros but data follows: a hole left by page-cache
//!   writeback of unsynced data, so nothing after it was ever acknowledged as durable
//!   (a `Sync` acknowledgement covers every byte before it): torn tail;
//! - the record is incomplete, or damaged and followed only by zeros: torn tail;
//! - the record is damaged and non-zero data follows it: corruption, reported with file
//!   and offset. Truncating there could drop acknowledged writes.

use std::path::Path;

use strata_core::{Error, Result, SeqNo};

use crate::format::{HEADER_LEN, RECORD_PREFIX_LEN, RecordAt, decode_record};

/// Where the valid data of the last segment ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TailScan {
    /// Offset just past the last valid record.
    pub end: u64,
    /// Last sequence in the segment (`start - 1` if it holds no record).
    pub last_seq: SeqNo,
    /// Bytes from `end` onwards that were not zero (a torn tail), if any.
    pub torn_bytes: Option<u64>,
    /// Valid records before `end`.
    pub records: u64,
}

pub(crate) fn scan_last_segment(bytes: &[u8], path: &Path, start: SeqNo) -> Result<TailScan> {
    let mut off = HEADER_LEN;
    let mut expected = start;
    let mut records = 0u64;
    loop {
        let rest = bytes.get(off..).unwrap_or_default();
        let (reason, extent_end) = match decode_record(rest) {
            RecordAt::Valid { first, count, size, .. } if first == expected => {
                expected = SeqNo(first.0 + u64::from(count));
                off += size;
                records += 1;
                continue;
            }
            RecordAt::Valid { first, size, .. } => {
                (format!("record starts at sequence {first}, expected {expected}"), off + size)
            }
            RecordAt::End => {
                let tail = nonzero_span(rest);
                let last_seq = SeqNo(expected.0 - 1);
                if let Some(n) = tail {
                    tracing::warn!(
                        file = %path.display(), offset = off, bytes = n,
                        "unsynced data after a hole in the WAL tail is dropped"
                    );
                }
                return Ok(TailScan { end: off as u64, last_seq, torn_bytes: tail, records });
            }
            RecordAt::Incomplete => ("record extends past the end of the file".into(), bytes.len()),
            RecordAt::Damaged(reason) => {
                let len = rest
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, |b| u32::from_le_bytes(b) as usize);
                let claimed_end = off.saturating_add(RECORD_PREFIX_LEN).saturating_add(len);
                let extent =
                    if claimed_end <= bytes.len() { claimed_end } else { off + RECORD_PREFIX_LEN };
                (reason, extent.min(bytes.len()))
            }
        };
        let after = bytes.get(extent_end..).unwrap_or_default();
        if after.iter().all(|b| *b == 0) {
            let torn = nonzero_span(rest).unwrap_or(0);
            tracing::warn!(
                file = %path.display(), offset = off, bytes = torn, %reason,
                "torn WAL tail truncated"
            );
            return Ok(TailScan {
                end: off as u64,
                last_seq: SeqNo(expected.0 - 1),
                torn_bytes: Some(torn),
                records,
            });
        }
        return Err(Error::corruption(
            path,
            off as u64,
            format!("{reason}; valid-looking data follows, so this is not a torn tail"),
        ));
    }
}

/// Length up to the last non-zero byte, or `None` if every byte is zero.
fn nonzero_span(bytes: &[u8]) -> Option<u64> {
    bytes.iter().rposition(|b| *b != 0).map(|i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_header, encode_record};
    use std::path::PathBuf;

    fn segment(records: &[(u64, u32, &[u8])], pad: usize) -> Vec<u8> {
        let mut buf = encode_header(SeqNo(records.first().map_or(1, |r| r.0))).to_vec();
        for (first, count, payload) in records {
            encode_record(&mut buf, SeqNo(*first), *count, payload);
        }
        buf.resize(buf.len() + pad, 0);
        buf
    }

    #[test]
    fn clean_preallocated_segment_ends_at_the_zeros() {
        let seg = segment(&[(1, 2, b"ab"), (3, 1, b"c")], 100);
        let scan = scan_last_segment(&seg, &PathBuf::from("s"), SeqNo(1)).expect("clean");
        assert_eq!(scan.last_seq, SeqNo(3));
        assert_eq!(scan.torn_bytes, None);
        assert_eq!(scan.end as usize, seg.len() - 100);
    }

    #[test]
    fn half_written_last_record_is_a_torn_tail() {
        let full = segment(&[(1, 1, b"first"), (2, 1, b"second-record")], 0);
        let one = segment(&[(1, 1, b"first")], 0);
        for cut in one.len() + 1..full.len() {
            let mut seg = full[..cut].to_vec();
            seg.resize(full.len() + 64, 0);
            let scan = scan_last_segment(&seg, &PathBuf::from("s"), SeqNo(1)).expect("torn tail");
            assert_eq!(scan.last_seq, SeqNo(1), "cut at {cut}");
            assert_eq!(scan.end as usize, one.len());
            assert!(scan.torn_bytes.is_some());
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption_with_offset() {
        let mut seg = segment(&[(1, 1, b"first"), (2, 1, b"second"), (3, 1, b"third")], 32);
        let second_at = segment(&[(1, 1, b"first")], 0).len();
        seg[second_at + 10] ^= 0x20;
        let err = scan_last_segment(&seg, &PathBuf::from("s"), SeqNo(1)).expect_err("corrupt");
        match err {
            Error::Corruption { offset, .. } => assert_eq!(offset as usize, second_at),
            other => panic!("expected corruption, got {other}"),
        }
    }

    #[test]
    fn sequence_gap_is_corruption() {
        let seg = segment(&[(1, 1, b"a"), (5, 1, b"b"), (6, 1, b"c")], 0);
        assert!(scan_last_segment(&seg, &PathBuf::from("s"), SeqNo(1)).is_err());
    }
}
