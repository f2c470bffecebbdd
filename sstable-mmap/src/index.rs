//! The sparse index: its entries' encoding (one per data block, the block's handle and
//! last internal key; layout in [`crate::format`]) and the section used in place over
//! the file bytes.

use std::cmp::Ordering;
use std::path::Path;

use bytes::Bytes;
use strata_core::{Error, Result, SeqNo, compare_internal};

use crate::format::{
    BLOCK_TRAILER_LEN, Footer, INDEX_ENTRY_FIXED_LEN, INDEX_TAG, MAX_KEY_LEN, MAX_STORED_BLOCK_LEN,
    read_u32, read_u64, section_body,
};

/// Appends an index entry for a block.
pub fn encode_index_entry(
    out: &mut Vec<u8>,
    offset: u64,
    len: u32,
    last_key: &[u8],
    last_seq: u64,
) {
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&last_seq.to_le_bytes());
    // Keys are at most MAX_KEY_LEN (checked in `add`), so this never saturates.
    out.extend_from_slice(&u32::try_from(last_key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(last_key);
}

/// One decoded index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry<'a> {
    /// Offset of the block.
    pub offset: u64,
    /// Length of the block on disk, trailer included.
    pub len: u32,
    /// Sequence of the block's last entry.
    pub last_seq: u64,
    /// User key of the block's last entry.
    pub last_key: &'a [u8],
    /// Size of this index entry.
    pub size: usize,
}

/// Decodes the index entry at `pos` of `body`; `None` if it does not fit.
#[inline]
pub fn decode_index_entry(body: &[u8], pos: usize) -> Option<IndexEntry<'_>> {
    let fixed = body.get(pos..pos.checked_add(INDEX_ENTRY_FIXED_LEN)?)?;
    let key_len = read_u32(fixed, 20) as usize;
    if key_len > MAX_KEY_LEN {
        return None;
    }
    let key_at = pos + INDEX_ENTRY_FIXED_LEN;
    let last_key = body.get(key_at..key_at + key_len)?;
    Some(IndexEntry {
        offset: read_u64(fixed, 0),
        len: read_u32(fixed, 8),
        last_seq: read_u64(fixed, 12),
        last_key,
        size: INDEX_ENTRY_FIXED_LEN + key_len,
    })
}

/// Checks the index section and the block handles it holds.
pub(crate) fn parse_index(path: &Path, data: &Bytes, footer: &Footer) -> Result<Index> {
    let body = section_body(path, data, footer.index, INDEX_TAG)?;
    let at = body.start as u64;
    Index::parse(path, data.slice(body), at, footer.index.offset)
}

/// The index section used in place: entries are decoded from the file bytes on each
/// probe; only their positions are kept on the heap (4 bytes per block).
#[derive(Clone)]
pub(crate) struct Index {
    body: Bytes,
    positions: Vec<u32>,
}

impl Index {
    /// Parses and checks the index body: every block handle lies inside the data
    /// region `0..data_end` and the blocks tile it in order; last keys strictly increase.
    pub(crate) fn parse(path: &Path, body: Bytes, body_at: u64, data_end: u64) -> Result<Index> {
        let bad =
            |pos: usize, reason: String| Error::corruption(path, body_at + pos as u64, reason);
        if u32::try_from(body.len()).is_err() {
            return Err(bad(0, format!("index section of {} bytes is too large", body.len())));
        }
        let count = body.get(..4).map(|b| read_u32(b, 0) as usize).unwrap_or(usize::MAX);
        // Bound the allocation by what the section can hold before trusting the count.
        if count > body.len() / INDEX_ENTRY_FIXED_LEN {
            return Err(bad(
                0,
                format!(
                    "index claims {count} blocks, more than its {} bytes can describe",
                    body.len()
                ),
            ));
        }
        let mut positions = Vec::with_capacity(count);
        let mut pos = 4usize;
        let mut expected_offset = 0u64;
        let mut prev: Option<IndexEntry<'_>> = None;
        for i in 0..count {
            let Some(e) = decode_index_entry(&body, pos) else {
                return Err(bad(
                    pos,
                    format!("index entry {i} of {count} is truncated or malformed"),
                ));
            };
            let len = u64::from(e.len);
            if e.offset != expected_offset
                || len < BLOCK_TRAILER_LEN as u64
                || len > MAX_STORED_BLOCK_LEN as u64
                || e.offset + len > data_end
            {
                return Err(bad(
                    pos,
                    format!(
                        "index entry {i} places a block at {}+{} bytes; expected it at {expected_offset}, \
                     {BLOCK_TRAILER_LEN}..={MAX_STORED_BLOCK_LEN} bytes long, ending by {data_end}",
                        e.offset, e.len
                    ),
                ));
            }
            if let Some(p) = prev
                && compare_internal(p.last_key, SeqNo(p.last_seq), e.last_key, SeqNo(e.last_seq))
                    != Ordering::Less
            {
                return Err(bad(
                    pos,
                    format!("index entry {i} is not after entry {} in key order", i - 1),
                ));
            }
            positions.push(pos as u32);
            expected_offset = e.offset + len;
            pos += e.size;
            prev = Some(e);
        }
        if expected_offset != data_end || pos != body.len() {
            return Err(bad(
                pos,
                format!(
                    "index blocks end at {expected_offset} (data ends at {data_end}); index entries \
                 end at body byte {pos} of {}",
                    body.len()
                ),
            ));
        }
        Ok(Index { body, positions })
    }

    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }

    /// Entry `i`; positions were checked at open, so `None` only for `i >= len`.
    #[inline]
    pub(crate) fn entry(&self, i: usize) -> Option<IndexEntry<'_>> {
        let pos = *self.positions.get(i)? as usize;
        decode_index_entry(&self.body, pos)
    }

    /// The first block whose last internal key is `>= (key, seq)`; `len()` if none.
    #[inline]
    pub(crate) fn find(&self, key: &[u8], seq: SeqNo) -> usize {
        self.positions.partition_point(|&pos| {
            decode_index_entry(&self.body, pos as usize).is_some_and(|e| {
                compare_internal(e.last_key, SeqNo(e.last_seq), key, seq) == Ordering::Less
            })
        })
    }
}
