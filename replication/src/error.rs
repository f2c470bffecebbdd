//! The replication crate's error.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while shipping or applying the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store refused or failed (its own error carries file, offset, sequence).
    #[error(transparent)]
    Store(#[from] strata_core::Error),
    /// A socket or file operation failed.
    #[error("{op} {target}: {source}")]
    Io {
        /// What was being done (`"connect"`, `"read frame"`, ...).
        op: &'static str,
        /// The peer address or file.
        target: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something that is not a valid message: the connection is dropped.
    #[error("protocol error from {peer}: {reason}")]
    Protocol {
        /// The peer's address.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// The peer refused the connection and said why.
    #[error("refused by {peer}: {reason}")]
    Refused {
        /// The peer's address.
        peer: String,
        /// Its reason.
        reason: String,
    },
    /// The store belongs to another cluster than the peer.
    #[error(
        "cluster id mismatch: this store belongs to cluster {ours:016x}, the peer to \
         {theirs:016x}; point the replica at its own cluster's primary or give it an empty \
         directory"
    )]
    ClusterMismatch {
        /// This store's cluster id.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// A file the replication keeps (cluster id, in-sync set) is damaged.
    #[error("{file}: {reason}")]
    BadFile {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A synchronous write is durable on the primary but the in-sync set did not confirm
    /// it within the configured wait.
    #[error(
        "write {seq} is durable on the primary but not confirmed by the in-sync set \
         ({reason}); it is not acknowledged"
    )]
    NotReplicated {
        /// The write's last sequence.
        seq: strata_core::SeqNo,
        /// Who is missing.
        reason: String,
    },
    /// The failover authority did not answer in time (it is unreachable from this
    /// node, or slow): nothing was changed by this node's request, or its outcome is
    /// unknown and the next read of the record tells.
    #[error("the failover authority did not answer: {reason}")]
    AuthorityUnavailable {
        /// What was asked and how long it was waited for.
        reason: String,
    },
    /// The node was stopped.
    #[error("the replication node is stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn io(op: &'static str, target: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { op, target: target.into(), source }
    }

    pub(crate) fn protocol(peer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Protocol { peer: peer.into(), reason: reason.into() }
    }
}
