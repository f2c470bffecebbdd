//! # strata-wal-file
//!
//! The segmented file write-ahead log: the default [`strata_core::Wal`].
//!
//! - Segments `wal_{start_seq:020}.log`, each with a checksummed header; records carry a
//!   CRC32 over their length and body (byte layout in [`format`](mod@format)).
//! - Group commit: appends write under a short lock; `Sync` appenders then queue on a
//!   sync lock, and whoever holds it fdatasyncs everything written so far, so one
//!   fdatasync acknowledges every writer that was waiting.
//! - Segments are preallocated (fallocate) and rotated by size. The append that fills a
//!   segment only opens the next one under a temporary name and goes on; a thread of
//!   the log's own then fdatasyncs the old segment, makes the new one durable, seals the
//!   old one and renames the new one into place (a `Sync` append, a checkpoint, a copy
//!   or a truncation that comes first does these steps itself). A segment's final name
//!   exists only once the segment before it is durable and sealed, so only the last one
//!   can have a torn tail; open adopts a temporary successor that continues the newest
//!   segment (a process that died mid-rotation loses nothing the OS held).
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
mod spare;
pub mod truncation;
mod wal;

pub use options::{
    DEFAULT_READER_RETENTION_BYTES, DEFAULT_SEGMENT_SIZE_BYTES, DEFAULT_WRITEBACK_BYTES,
    DEFAULT_ZERO_AHEAD_BYTES, FileWalOptions,
};
pub use wal::{FileWal, FileWalFactory};
