//! The `write_batch` target: `BatchIter` over a WAL record's payload.

use strata_core::ValueKind;
use strata_core::batch::{BatchIter, MAX_KEY_BYTES, MAX_VALUE_BYTES, WriteBatch};

use super::sample_batch;

/// Target `write_batch`: `BatchIter` over arbitrary bytes (a WAL record's payload).
///
/// Contract: operations decode within the documented limits (a delete has no value);
/// re-encoding the decoded operations gives back a prefix of the input (all of it when
/// no error came); an error carries an offset inside the input and ends the iteration.
pub fn write_batch(data: &[u8]) {
    let mut iter = BatchIter::new(data);
    let mut again = WriteBatch::new();
    let mut failed = false;
    for _ in 0..=data.len() {
        match iter.next() {
            Some(Ok(op)) => {
                assert!(op.key.len() <= MAX_KEY_BYTES && op.value.len() <= MAX_VALUE_BYTES);
                match op.kind {
                    ValueKind::Put => again.put(op.key, op.value),
                    ValueKind::Delete => {
                        assert!(op.value.is_empty(), "a delete carries a value");
                        again.delete(op.key)
                    }
                };
            }
            Some(Err(e)) => {
                assert!(e.offset <= data.len(), "error offset {} past the input", e.offset);
                assert!(!e.reason.is_empty());
                assert!(iter.next().is_none(), "the iterator goes on after an error");
                failed = true;
                break;
            }
            None => break,
        }
    }
    let bytes = again.as_bytes();
    assert!(data.starts_with(bytes), "decoded operations do not re-encode to the input");
    if !failed {
        assert_eq!(bytes.len(), data.len(), "bytes left over without an error");
    }
}

pub(crate) fn batch_seeds() -> Vec<Vec<u8>> {
    (0..3).map(|i| sample_batch(i).as_bytes().to_vec()).collect()
}
