//! Identities and small value types shared by every component.

use std::cmp::Ordering;
use std::fmt;

/// A sequence number: the position of one operation in the store's total commit order.
///
/// Sequences are dense and start at 1; `SeqNo(0)` means "nothing yet". Serialized as
/// the bare number.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// "Nothing committed yet": every real sequence is greater.
    pub const ZERO: SeqNo = SeqNo(0);
    /// The largest sequence; reading at it sees everything.
    pub const MAX: SeqNo = SeqNo(u64::MAX);

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next sequence.
    #[must_use]
    pub const fn next(self) -> SeqNo {
        SeqNo(self.0 + 1)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An epoch: one incarnation of a store's history.
///
/// Every batch in the log carries the epoch of the process (or, with replication, the
/// primary) that wrote it. A new epoch starts each time the log is opened for writing,
/// so sequences that a crash lost and the next incarnation reused belong to a different
/// epoch than the ones a subscriber may have seen: `(epoch, sequence)` names a batch
/// unambiguously, a bare sequence does not. `Epoch(0)` is the epoch of logs written
/// before epochs existed. Serialized as the bare number.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of batches written before epochs were recorded.
    pub const ZERO: Epoch = Epoch(0);

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The epoch after this one; `None` past `u64::MAX` (an epoch is never reused, so
    /// there is no wrapping around).
    pub const fn checked_next(self) -> Option<Epoch> {
        match self.0.checked_add(1) {
            Some(n) => Some(Epoch(n)),
            None => None,
        }
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// What one versioned entry says about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key is deleted as of this sequence.
    Delete = 0,
    /// The key holds the entry's value as of this sequence.
    Put = 1,
}

impl ValueKind {
    /// Decodes the on-disk tag; `None` for an unknown tag.
    pub const fn from_tag(tag: u8) -> Option<ValueKind> {
        match tag {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// How durable a write must be before `write` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Return once the bytes are on stable storage (fdatasync). Concurrent `Sync`
    /// writers share one fdatasync (group commit).
    Sync,
    /// Return once the operating system has the bytes (they survive a process crash,
    /// not a power loss).
    Buffered,
}

/// Orders internal keys: user key ascending, then sequence descending, so the newest
/// version of a key comes first.
pub fn compare_internal(a_key: &[u8], a_seq: SeqNo, b_key: &[u8], b_seq: SeqNo) -> Ordering {
    a_key.cmp(b_key).then_with(|| b_seq.cmp(&a_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_order_is_key_ascending_then_sequence_descending() {
        assert_eq!(compare_internal(b"a", SeqNo(1), b"b", SeqNo(9)), Ordering::Less);
        assert_eq!(compare_internal(b"a", SeqNo(9), b"a", SeqNo(1)), Ordering::Less);
        assert_eq!(compare_internal(b"a", SeqNo(3), b"a", SeqNo(3)), Ordering::Equal);
    }

    #[test]
    fn value_kind_tags_round_trip_and_reject_unknown() {
        assert_eq!(ValueKind::from_tag(ValueKind::Put as u8), Some(ValueKind::Put));
        assert_eq!(ValueKind::from_tag(ValueKind::Delete as u8), Some(ValueKind::Delete));
        assert_eq!(ValueKind::from_tag(7), None);
    }
}
