//! Data blocks: building, sealing (compression + trailer), checking and searching.
//!
//! Byte layout in [`crate::format`].

use std::cmp::Ordering;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use strata_core::{Error, Result, SeqNo, ValueKind, compare_internal};

use crate::format::{
    BLOCK_TRAILER_LEN, ENTRY_FIXED_LEN, MAX_KEY_LEN, MAX_RAW_BLOCK_LEN, MAX_VALUE_LEN,
    RESTART_INTERVAL, get_varint, put_varint, read_u32, read_u64, varint_len,
};

/// Block compression (the on-disk tag of a data block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Blocks are stored as they are. Values are served straight from the mapped file.
    #[default]
    None,
    /// Blocks are LZ4-compressed (block format) when that makes them smaller; a reader
    /// decompresses a block into one heap buffer and serves values as slices of it.
    Lz4,
}

impl Compression {
    /// The on-disk tag.
    pub const fn tag(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
        }
    }

    /// Decodes an on-disk tag; `None` for an unknown tag.
    pub const fn from_tag(tag: u8) -> Option<Compression> {
        match tag {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

/// Encoded size of an entry inside a block.
pub(crate) fn entry_len(key_len: usize, value_len: usize) -> usize {
    let k = u32::try_from(key_len).unwrap_or(u32::MAX);
    let v = u32::try_from(value_len).unwrap_or(u32::MAX);
    varint_len(k) + varint_len(v) + ENTRY_FIXED_LEN + key_len + value_len
}

/// Accumulates the raw payload of one block.
#[derive(Debug, Default)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    count: usize,
}

impl BlockBuilder {
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Raw payload size if finished now (entries + restart array + count).
    pub(crate) fn size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Raw payload size after adding an entry of `entry_len` encoded bytes.
    pub(crate) fn size_after(&self, entry_len: usize) -> usize {
        let new_restart = if self.count.is_multiple_of(RESTART_INTERVAL) { 4 } else { 0 };
        self.size() + entry_len + new_restart
    }

    /// Appends an entry; the caller checked order and sizes.
    pub(crate) fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        if self.count.is_multiple_of(RESTART_INTERVAL) {
            // Payloads are bounded by MAX_RAW_BLOCK_LEN < 4 GiB.
            self.restarts.push(u32::try_from(self.buf.len()).unwrap_or(u32::MAX));
        }
        self.buf.reserve(entry_len(key.len(), value.len()));
        put_varint(&mut self.buf, u32::try_from(key.len()).unwrap_or(u32::MAX));
        put_varint(&mut self.buf, u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.buf.push(kind as u8);
        self.buf.extend_from_slice(&seq.0.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        self.count += 1;
    }

    /// Appends the block as stored on disk (payload, trailer) to `out`, compressing it
    /// first if asked and worthwhile, and resets the builder. Returns the stored length.
    pub(crate) fn seal_into(
        &mut self,
        out: &mut Vec<u8>,
        compression: Compression,
        scratch: &mut Vec<u8>,
    ) -> usize {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        let restarts = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&restarts.to_le_bytes());
        let raw = &self.buf[..];
        let start = out.len();
        let mut stored_as = Compression::None;
        if compression == Compression::Lz4 {
            scratch.clear();
            scratch.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
            // Keep LZ4 only when it saves at least 1/8: below that the decompression
            // cost on every read is not worth the space.
            if let Ok(n) = lz4_flex::block::compress_into(raw, scratch)
                && n < raw.len() - raw.len() / 8
            {
                out.extend_from_slice(&scratch[..n]);
                stored_as = Compression::Lz4;
            }
        }
        if stored_as == Compression::None {
            out.extend_from_slice(raw);
        }
        out.extend_from_slice(&u32::try_from(raw.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.push(stored_as.tag());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        self.buf.clear();
        self.restarts.clear();
        self.count = 0;
        out.len() - start
    }
}

/// Checks the block stored at `stored` (payload + trailer, at file offset `offset`) and
/// returns its raw payload: a zero-copy slice of `file` for an uncompressed block, one
/// freshly decompressed buffer for an LZ4 block.
pub(crate) fn read_block(
    path: &Path,
    file: &Bytes,
    range: Range<usize>,
    offset: u64,
) -> Result<Bytes> {
    let bad = |reason: String| Error::corruption(path, offset, reason);
    let Some(stored) = file.get(range.clone()) else {
        return Err(bad(format!("block {range:?} lies outside the file of {} bytes", file.len())));
    };
    let Some(payload_len) = stored.len().checked_sub(BLOCK_TRAILER_LEN) else {
        return Err(bad(format!("block of {} bytes is shorter than its trailer", stored.len())));
    };
    let (covered, crc) = stored.split_at(stored.len() - 4);
    let stored_crc = read_u32(crc, 0);
    let actual = crc32fast::hash(covered);
    if stored_crc != actual {
        return Err(bad(format!(
            "data block checksum mismatch: stored {stored_crc:#010x}, computed {actual:#010x}"
        )));
    }
    let raw_len = read_u32(stored, payload_len) as usize;
    let tag = stored[payload_len + 4];
    match Compression::from_tag(tag) {
        Some(Compression::None) if raw_len == payload_len => {
            Ok(file.slice(range.start..range.start + payload_len))
        }
        Some(Compression::None) => Err(bad(format!(
            "uncompressed block says its payload is {raw_len} bytes but holds {payload_len}"
        ))),
        Some(Compression::Lz4) => {
            if raw_len > MAX_RAW_BLOCK_LEN {
                return Err(bad(format!(
                    "block claims {raw_len} bytes decompressed, above the {MAX_RAW_BLOCK_LEN}-byte limit"
                )));
            }
            let mut raw = vec![0u8; raw_len];
            match lz4_flex::block::decompress_into(&stored[..payload_len], &mut raw) {
                Ok(n) if n == raw_len => Ok(Bytes::from(raw)),
                Ok(n) => Err(bad(format!("block decompressed to {n} bytes, expected {raw_len}"))),
                Err(e) => Err(bad(format!("block does not decompress: {e}"))),
            }
        }
        None => Err(bad(format!("unknown block compression tag {tag}"))),
    }
}

/// One decoded entry: positions inside the raw payload.
#[derive(Clone, Debug)]
pub(crate) struct RawEntry {
    /// Position of the entry itself.
    pub(crate) start: usize,
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
    /// Position of the next entry.
    pub(crate) next: usize,
}

/// A checked raw block payload, ready to search.
#[derive(Clone, Debug)]
pub(crate) struct BlockView {
    raw: Bytes,
    /// Where the entries end and the restart array begins.
    entries_end: usize,
    restart_count: usize,
}

impl BlockView {
    /// Splits a raw payload into entries and restart array; `offset` names the block in
    /// errors.
    pub(crate) fn new(path: &Path, raw: Bytes, offset: u64) -> Result<BlockView> {
        let len = raw.len();
        let restart_count = len.checked_sub(4).map(|at| read_u32(&raw, at) as usize);
        let entries_end = restart_count
            .filter(|r| *r > 0)
            .and_then(|r| r.checked_mul(4)?.checked_add(4))
            .and_then(|tail| len.checked_sub(tail));
        match (restart_count, entries_end) {
            (Some(restart_count), Some(entries_end)) => {
                Ok(BlockView { raw, entries_end, restart_count })
            }
            _ => Err(Error::corruption(
                path,
                offset,
                format!("block of {len} bytes has a malformed restart array ({restart_count:?})"),
            )),
        }
    }

    pub(crate) fn raw(&self) -> &Bytes {
        &self.raw
    }

    pub(crate) fn entries_end(&self) -> usize {
        self.entries_end
    }

    fn restart(&self, i: usize) -> usize {
        read_u32(&self.raw, self.entries_end + 4 * i) as usize
    }

    /// Decodes the entry at `pos`; `None` if it is malformed.
    #[inline]
    pub(crate) fn entry_at(&self, start: usize) -> Option<RawEntry> {
        let buf = self.raw.get(..self.entries_end)?;
        let (key_len, p) = get_varint(buf, start)?;
        let (value_len, p) = get_varint(buf, p)?;
        let (key_len, value_len) = (key_len as usize, value_len as usize);
        if key_len > MAX_KEY_LEN || value_len > MAX_VALUE_LEN {
            return None;
        }
        let fixed = buf.get(p..p + ENTRY_FIXED_LEN)?;
        let kind = ValueKind::from_tag(fixed[0])?;
        let seq = SeqNo(read_u64(fixed, 1));
        let key_at = p + ENTRY_FIXED_LEN;
        let value_at = key_at + key_len;
        let next = value_at + value_len;
        if next > buf.len() {
            return None;
        }
        Some(RawEntry { start, key: key_at..value_at, value: value_at..next, seq, kind, next })
    }

    pub(crate) fn key(&self, e: &RawEntry) -> &[u8] {
        self.raw.get(e.key.clone()).unwrap_or_default()
    }

    /// Checks the restart array against `starts`, the position of every entry in order:
    /// restart `i` must be the position of entry `i * RESTART_INTERVAL`. `Err` names the
    /// first restart that is wrong (or the count, when there are too many or too few).
    pub(crate) fn check_restarts(&self, starts: &[usize]) -> Result<(), usize> {
        let expected = starts.iter().step_by(RESTART_INTERVAL);
        if expected.len() != self.restart_count {
            return Err(self.restart_count);
        }
        match expected.enumerate().find(|&(i, &pos)| self.restart(i) != pos) {
            Some((i, _)) => Err(i),
            None => Ok(()),
        }
    }

    /// The first entry whose internal key is `>= (key, seq)`, or `None` when every entry
    /// of the block is smaller. `Err(pos)` names a malformed entry's position.
    pub(crate) fn seek(&self, key: &[u8], seq: SeqNo) -> Result<Option<RawEntry>, usize> {
        let below = |pos: usize| -> Result<bool, usize> {
            let e = self.entry_at(pos).ok_or(pos)?;
            Ok(compare_internal(self.key(&e), e.seq, key, seq) == Ordering::Less)
        };
        // Binary search for the last restart whose entry is below the target: every
        // entry before it is below too, so the linear scan starts there.
        let (mut left, mut right) = (0usize, self.restart_count);
        while right - left > 1 {
            let mid = left + (right - left) / 2;
            if below(self.restart(mid))? {
                left = mid;
            } else {
                right = mid;
            }
        }
        let mut pos = self.restart(left);
        if pos >= self.entries_end {
            // A restart past the entries would make every entry look smaller than the
            // target: damage, not "not in this block".
            return Err(pos);
        }
        while pos < self.entries_end {
            let e = self.entry_at(pos).ok_or(pos)?;
            if compare_internal(self.key(&e), e.seq, key, seq) != Ordering::Less {
                return Ok(Some(e));
            }
            pos = e.next;
        }
        Ok(None)
    }
}

/// The corruption error for a malformed entry at `pos` of the block at `offset`.
pub(crate) fn malformed(path: &Path, offset: u64, pos: usize) -> Error {
    Error::corruption(path, offset, format!("malformed entry at byte {pos} of the block's payload"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn build(n: usize, compression: Compression) -> (Bytes, BlockView) {
        let mut b = BlockBuilder::default();
        for i in 0..n {
            b.add(
                format!("k{:04}", i / 2).as_bytes(),
                SeqNo(100 - (i % 2) as u64),
                ValueKind::Put,
                b"vvvvvvvv",
            );
        }
        let mut out = Vec::new();
        let len = b.seal_into(&mut out, compression, &mut Vec::new());
        assert_eq!(len, out.len());
        let file = Bytes::from(out);
        let raw = read_block(&PathBuf::from("t"), &file, 0..len, 0).expect("valid block");
        let view = BlockView::new(&PathBuf::from("t"), raw, 0).expect("valid layout");
        (file, view)
    }

    #[test]
    fn seek_finds_every_entry_with_and_without_compression() {
        for compression in [Compression::None, Compression::Lz4] {
            let (_, v) = build(100, compression);
            for i in 0..50 {
                let key = format!("k{i:04}");
                let e = v.seek(key.as_bytes(), SeqNo(100)).expect("ok").expect("found");
                assert_eq!((v.key(&e), e.seq), (key.as_bytes(), SeqNo(100)));
                let e = v.seek(key.as_bytes(), SeqNo(99)).expect("ok").expect("found");
                assert_eq!((v.key(&e), e.seq), (key.as_bytes(), SeqNo(99)));
                let e = v.seek(key.as_bytes(), SeqNo(5)).expect("ok");
                let next = format!("k{:04}", i + 1);
                assert_eq!(e.map(|e| v.key(&e).to_vec()), (i < 49).then(|| next.into_bytes()));
            }
        }
    }

    #[test]
    fn every_flip_is_detected() {
        let (file, _) = build(20, Compression::None);
        for i in 0..file.len() {
            let mut bad = file.to_vec();
            bad[i] ^= 0x04;
            let bad = Bytes::from(bad);
            assert!(read_block(&PathBuf::from("t"), &bad, 0..bad.len(), 0).is_err(), "flip at {i}");
        }
    }
}
