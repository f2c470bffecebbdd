//! Write batches: an ordered group of puts and deletes applied atomically.
//!
//! The batch keeps its operations in the exact byte form the WAL stores, so appending
//! it to the log copies one buffer and never re-encodes.
//!
//! Encoding of one operation (little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | kind tag (`0` delete, `1` put) |
//! | 4 | key length `k` |
//! | k | key |
//! | 4 | value length `v` (puts only) |
//! | v | value (puts only) |

use crate::types::ValueKind;

/// Largest key a batch accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value a batch accepts, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;
/// Largest encoded batch, in bytes (bounds every allocation driven by a length on disk).
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

const TAG_LEN: usize = 1;
const LEN_LEN: usize = size_of::<u32>();

/// An ordered group of puts and deletes that becomes visible atomically.
///
/// Operation `i` of a batch committed at first sequence `s` gets sequence `s + i`;
/// within a batch a later operation on the same key wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: u32,
    oversized: Option<String>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` of encoded operations.
    pub fn with_capacity(bytes: usize) -> Self {
        Self { rep: Vec::with_capacity(bytes), count: 0, oversized: None }
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.note_sizes(key.len(), value.len());
        self.rep.reserve(TAG_LEN + 2 * LEN_LEN + key.len() + value.len());
        self.rep.push(ValueKind::Put as u8);
        push_len(&mut self.rep, key.len());
        self.rep.extend_from_slice(key);
        push_len(&mut self.rep, value.len());
        self.rep.extend_from_slice(value);
        self.count = self.count.saturating_add(1);
        self
    }

    /// Deletes `key` (writes a tombstone).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        self.note_sizes(key.len(), 0);
        self.rep.push(ValueKind::Delete as u8);
        push_len(&mut self.rep, key.len());
        self.rep.extend_from_slice(key);
        self.count = self.count.saturating_add(1);
        self
    }

    /// Removes every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.count = 0;
        self.oversized = None;
    }

    /// Number of operations (each consumes one sequence number).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded operations, exactly as the WAL stores them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.rep
    }

    /// Checks the limits (`MAX_KEY_BYTES`, `MAX_VALUE_BYTES`, `MAX_BATCH_BYTES`, non-empty
    /// keys); the engine calls it before assigning sequences.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(why) = &self.oversized {
            return Err(why.clone());
        }
        if self.rep.len() > MAX_BATCH_BYTES {
            return Err(format!(
                "batch of {} bytes exceeds the {MAX_BATCH_BYTES}-byte limit",
                self.rep.len()
            ));
        }
        Ok(())
    }

    /// Iterates the operations in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter::new(&self.rep)
    }

    fn note_sizes(&mut self, key_len: usize, value_len: usize) {
        if self.oversized.is_some() {
            return;
        }
        if key_len == 0 {
            self.oversized = Some("empty keys are not allowed".into());
        } else if key_len > MAX_KEY_BYTES {
            self.oversized =
                Some(format!("key of {key_len} bytes exceeds the {MAX_KEY_BYTES}-byte limit"));
        } else if value_len > MAX_VALUE_BYTES {
            self.oversized = Some(format!(
                "value of {value_len} bytes exceeds the {MAX_VALUE_BYTES}-byte limit"
            ));
        }
    }
}

fn push_len(rep: &mut Vec<u8>, len: usize) {
    // Lengths are bounded by MAX_KEY_BYTES / MAX_VALUE_BYTES (checked by `validate`
    // before anything is written), so saturating never changes a value we persist.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    rep.extend_from_slice(&len.to_le_bytes());
}

/// One decoded operation of a batch, borrowing from the batch bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOp<'a> {
    /// Put or delete.
    pub kind: ValueKind,
    /// The user key.
    pub key: &'a [u8],
    /// The value (empty for deletes).
    pub value: &'a [u8],
}

/// Why encoded batch bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchDecodeError {
    /// Byte offset inside the batch where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// Iterator over the operations of encoded batch bytes; every length is bounds-checked,
/// so malformed bytes yield an error, never a panic or an oversized allocation.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Decodes `bytes` (as produced by [`WriteBatch::as_bytes`]).
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes, offset: 0, failed: false }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BatchDecodeError> {
        if self.rest.len() < n {
            return Err(BatchDecodeError {
                offset: self.offset,
                reason: format!("{what} needs {n} bytes but only {} remain", self.rest.len()),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        self.offset += n;
        Ok(head)
    }

    fn take_len(&mut self, what: &str, max: usize) -> Result<usize, BatchDecodeError> {
        let at = self.offset;
        let raw = self.take(LEN_LEN, what)?;
        let mut buf = [0u8; LEN_LEN];
        buf.copy_from_slice(raw);
        let len = u32::from_le_bytes(buf) as usize;
        if len > max {
            return Err(BatchDecodeError {
                offset: at,
                reason: format!("{what} {len} exceeds the limit of {max}"),
            });
        }
        Ok(len)
    }

    fn decode_one(&mut self) -> Result<BatchOp<'a>, BatchDecodeError> {
        let at = self.offset;
        let tag = self.take(TAG_LEN, "kind tag")?;
        let kind = tag.first().and_then(|t| ValueKind::from_tag(*t)).ok_or_else(|| {
            BatchDecodeError { offset: at, reason: format!("unknown operation tag {tag:?}") }
        })?;
        let key_len = self.take_len("key length", MAX_KEY_BYTES)?;
        let key = self.take(key_len, "key")?;
        let value = match kind {
            ValueKind::Put => {
                let value_len = self.take_len("value length", MAX_VALUE_BYTES)?;
                self.take(value_len, "value")?
            }
            ValueKind::Delete => &[],
        };
        Ok(BatchOp { kind, key, value })
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchOp<'a>, BatchDecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let op = self.decode_one();
        self.failed = op.is_err();
        Some(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_puts_and_deletes_in_order() {
        let mut b = WriteBatch::new();
        b.put("k1", "v1").delete("k2").put("k3", "");
        assert_eq!(b.count(), 3);
        let ops: Vec<_> = b.iter().collect::<Result<_, _>>().expect("valid batch");
        assert_eq!(ops[0], BatchOp { kind: ValueKind::Put, key: b"k1", value: b"v1" });
        assert_eq!(ops[1], BatchOp { kind: ValueKind::Delete, key: b"k2", value: b"" });
        assert_eq!(ops[2], BatchOp { kind: ValueKind::Put, key: b"k3", value: b"" });
    }

    #[test]
    fn truncated_bytes_give_an_error_with_offset() {
        let mut b = WriteBatch::new();
        b.put("key", "value");
        let bytes = b.as_bytes();
        for cut in 1..bytes.len() {
            let results: Vec<_> = BatchIter::new(&bytes[..cut]).collect();
            assert!(results.last().is_some_and(|r| r.is_err()), "cut at {cut} must fail");
        }
    }

    #[test]
    fn absurd_length_is_rejected_without_allocating() {
        let mut bytes = vec![ValueKind::Put as u8];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = BatchIter::new(&bytes).next().and_then(Result::err).expect("must fail");
        assert_eq!(err.offset, 1);
        assert!(err.reason.contains("exceeds"), "{}", err.reason);
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let err = BatchIter::new(&[9, 0, 0]).next().and_then(Result::err).expect("must fail");
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn oversized_and_empty_keys_fail_validation() {
        let mut b = WriteBatch::new();
        b.put("", "v");
        assert!(b.validate().is_err());
        let mut b = WriteBatch::new();
        b.put(vec![0u8; MAX_KEY_BYTES + 1], "v");
        assert!(b.validate().is_err());
        let mut b = WriteBatch::new();
        b.put("ok", "v");
        assert!(b.validate().is_ok());
    }
}
