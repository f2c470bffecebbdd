//! The one error type every Strata trait returns.

use std::io;
use std::path::PathBuf;

use std::time::Duration;

use crate::failover::NodeId;
use crate::types::{Epoch, SeqNo};

/// Result alias used across Strata.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Strata component.
///
/// Variants carry the context a person needs to act: the file, the byte offset, the
/// sequence number. Callers match on the variant, never on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on a file or directory failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// The operation that failed (`"open"`, `"write"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not match what was written; the data is not served.
    #[error("corruption in {file} at byte offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record or structure inside `file`.
        offset: u64,
        /// What check failed (expected vs. found).
        reason: String,
    },
    /// Another process (or another `Db` in this process) holds the store's LOCK file.
    #[error(
        "the store at {path} is already open in another process or handle (LOCK is held); close it first"
    )]
    Locked {
        /// The LOCK file that could not be acquired.
        path: PathBuf,
    },
    /// An earlier I/O failure (typically a failed fsync) made durability unknowable, so
    /// the component refuses further writes until it is reopened.
    #[error("refusing writes after an earlier failure: {reason}; reopen the store to recover")]
    Poisoned {
        /// The failure that poisoned the component.
        reason: String,
    },
    /// A reader asked for sequence numbers the log no longer (or not yet) holds.
    #[error(
        "sequence {requested} is not available: the log holds {oldest} onwards (checkpointed segments were deleted)"
    )]
    SequenceUnavailable {
        /// The sequence that was asked for.
        requested: SeqNo,
        /// The oldest sequence still available.
        oldest: SeqNo,
    },
    /// The caller passed something the component cannot accept (empty key, oversized batch...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The stack was configured inconsistently (missing component, bad option value).
    #[error("configuration error: {0}")]
    Config(String),
    /// The component does not implement this capability.
    #[error("{component} does not support {capability}")]
    Unsupported {
        /// The component (e.g. `"wal=file"`).
        component: &'static str,
        /// The missing capability.
        capability: &'static str,
    },
    /// A transport endpoint failed: the medium refused, the peer went away or sent
    /// something that is not a frame.
    #[error("transport {transport} on topic {topic:?}: {reason}")]
    Transport {
        /// The transport (`"iceoryx"`, `"tcp"`, ...).
        transport: &'static str,
        /// The topic the endpoint serves.
        topic: String,
        /// What went wrong, in words a user can act on.
        reason: String,
    },
    /// A frame (or a message inside one) is larger than the endpoint's configured maximum.
    #[error("frame of {len} bytes on topic {topic:?} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The topic.
        topic: String,
        /// The offending length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The endpoint was disconnected (by the slow-subscriber policy or by the peer).
    #[error("disconnected from topic {topic:?}: {reason}")]
    Disconnected {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A client write reached a node that is not the primary.
    #[error("this node is a replica and does not accept writes; write to the primary at {primary}")]
    NotPrimary {
        /// Where the primary is (an address, or `"unknown"`).
        primary: String,
    },
    /// A replicated batch does not continue the log: it starts after a gap.
    #[error(
        "replicated batch starts at sequence {got} but the log continues at {expected}: \
         batches are missing in between; resume shipping from {expected}"
    )]
    SequenceGap {
        /// The sequence the log expects next.
        expected: SeqNo,
        /// The first sequence of the batch that arrived.
        got: SeqNo,
    },
    /// A replicated batch (or a promotion) names an epoch older than one the log already
    /// holds: it comes from a deposed primary.
    #[error("epoch {got} is older than epoch {newest} this log already holds; refusing it")]
    StaleEpoch {
        /// The epoch that arrived.
        got: Epoch,
        /// The newest epoch the log holds.
        newest: Epoch,
    },
    /// The log holds other data at a sequence than the primary sends for it (a tail the
    /// primary's history does not have), or a truncation cannot be carried out.
    #[error("log diverged from the primary at sequence {seq}: {reason}")]
    Diverged {
        /// The first sequence that differs.
        seq: SeqNo,
        /// What differs and what to do.
        reason: String,
    },
    /// A compare-and-set on the failover authority record expected another version
    /// than the committed one: someone changed it in between. Re-read the record and
    /// decide again.
    #[error(
        "the authority record is at version {found}, not {expected}: it changed since it \
         was read; re-read it and decide again"
    )]
    StaleAuthority {
        /// The version the change was based on.
        expected: u64,
        /// The committed version.
        found: u64,
    },
    /// A request carries an epoch older than the authority's: it comes from a deposed
    /// primary, which must stop acknowledging writes.
    #[error(
        "epoch {epoch} is older than the authority's epoch {current} (primary {primary}): \
         the request comes from a deposed primary and is refused; write to {primary}"
    )]
    Fenced {
        /// The epoch the request carried.
        epoch: Epoch,
        /// The authority's epoch.
        current: Epoch,
        /// The authority's primary.
        primary: NodeId,
    },
    /// A request names an epoch the authority does not expect: a promotion not at the
    /// current epoch + 1, or a request in an epoch the authority never granted.
    #[error(
        "epoch {got} is not the expected {expected}: a promotion takes exactly the next epoch, every other request the current one"
    )]
    WrongEpoch {
        /// The epoch the request named.
        got: Epoch,
        /// The one the authority expects.
        expected: Epoch,
    },
    /// A node may not take the role or place a request asked for (promote a replica
    /// outside the in-sync set, grant a lease to a replica...).
    #[error("node {node} is not eligible: {reason}")]
    NotEligible {
        /// The node.
        node: NodeId,
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// The primary's lease ran out: it must not acknowledge writes until it renews it.
    #[error(
        "the lease of {node} in epoch {epoch} expired {expired_for:?} ago: not acknowledging \
         writes until it is renewed"
    )]
    LeaseExpired {
        /// The lease holder.
        node: NodeId,
        /// The epoch it was granted in.
        epoch: Epoch,
        /// How long ago it expired.
        expired_for: Duration,
    },
}

impl Error {
    /// Wraps an `io::Error` with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    /// Builds a [`Error::Corruption`].
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Self::Corruption { file: file.into(), offset, reason: reason.into() }
    }

    /// Builds a [`Error::Transport`].
    pub fn transport(
        transport: &'static str,
        topic: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Transport { transport, topic: topic.into(), reason: reason.into() }
    }

    /// True when the error reports damaged data (as opposed to an I/O or usage problem).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corruption { .. })
    }
}
