//! The stream crate's error type.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the distribution layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that should hold a message (or a frame of messages) do not.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (`"message"`, `"message frame"`, `"ack"`, ...).
        what: &'static str,
        /// What check failed.
        reason: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// JSON text is not a message.
    #[error("invalid message JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A store or transport operation failed.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    /// A checkpoint file operation failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// The operation (`"write"`, `"rename"`, `"fsync"`...).
        op: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A subscriber asked to resume beyond the log's live edge: the log does not hold
    /// the sequence before the requested one yet. Resuming there would skip whatever
    /// the store commits up to it, so it is refused.
    #[error(
        "cannot resume at sequence {requested}: the log does not hold sequence {} yet, so the position is beyond its live edge (last sequence + 1); was the checkpoint taken on another store, or the store restored from an older copy?",
        requested.saturating_sub(1)
    )]
    ResumeBeyondLiveEdge {
        /// The sequence the subscriber asked to resume at.
        requested: u64,
    },
    /// A resume position names an epoch newer than any the store knows: it comes from
    /// another store or another history, and nothing in this store can be matched to it.
    #[error(
        "cannot resume: the checkpoint was written in epoch {epoch}, newer than any epoch this store knows (its current epoch is {store_epoch}); was the checkpoint taken on another store, or the store restored from an older copy?"
    )]
    UnknownHistory {
        /// The checkpoint's epoch.
        epoch: u64,
        /// The store's current epoch.
        store_epoch: u64,
    },
    /// A component was used in a way it does not support.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn decode(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Decode { what, reason: reason.into() }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<std::path::PathBuf>,
        e: std::io::Error,
    ) -> Self {
        Self::Io { op, path: path.into(), source: e }
    }
}
