//! # strata-wal-file
//!
//! The segmented file write-ahead log: the default [`strata_core::Wal`].
//!
//! - Segments `wal_{start_seq:020}.log`, each with a checksummed header; records carry a
//!   CRC32 over their length and body (byte layout in [`format`](mod@format)).
//! - Group commit: appends write under a short lock; `Sync` appenders then queue on a
//!   sync lock, and whoever holds it fdatasyncs everything written so far, so one
//!   fdatasync acknowledges every writer that was waiting.
//! - Segments are preallocated (fallocate) and rotated by size; a segment is fsynced
//!   before the next one is created, so only the last one can have a torn tail.
//! - A failed write or fsync poisons the log: every later append gets `Error::Poisoned`.
//! - At open a torn tail of the last segment is truncated and reported; damage anywhere
//!   else is `Error::Corruption` with file and offset.
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

pub mod check;
pub mod epochs;
pub mod format;
mod notify;
mod options;
mod reader;
mod recovery;
pub mod truncation;
mod wal;

pub use options::{
    DEFAULT_READER_RETENTION_BYTES, DEFAULT_SEGMENT_SIZE_BYTES, DEFAULT_WRITEBACK_BYTES,
    DEFAULT_ZERO_AHEAD_BYTES, FileWalOptions,
};
pub use wal::{FileWal, FileWalFactory};
