//! The immutable sorted table contract (SSTables).
//!
//! The engine flushes memtables and writes compaction outputs through a
//! [`TableFormat`]; it never looks inside a table file itself. What it keeps about a
//! table — its number, size, key range, sequence range and counts — is a
//! [`TableMeta`], recorded in the manifest.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::fs::File;
use crate::memtable::{Entry, KeyRange, Lookup};
use crate::types::{SeqNo, ValueKind};

/// The number of a table file. Allocated by the manifest, monotonic, never reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileNo(pub u64);

impl FileNo {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The table's file name inside the store directory: `000042.sst`.
    pub fn table_file_name(self) -> String {
        format!("{:06}.sst", self.0)
    }
}

impl fmt::Display for FileNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// What the engine and the manifest know about one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// The table's file number.
    pub file_no: FileNo,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Smallest user key in the table (empty for an empty table).
    pub smallest_key: Bytes,
    /// Largest user key in the table (empty for an empty table).
    pub largest_key: Bytes,
    /// Smallest sequence of any entry (`SeqNo::ZERO` for an empty table).
    pub min_seq: SeqNo,
    /// Greatest sequence of any entry (`SeqNo::ZERO` for an empty table).
    pub max_seq: SeqNo,
    /// Number of entries (versions), tombstones included.
    pub entries: u64,
    /// Number of tombstones among the entries.
    pub tombstones: u64,
}

impl TableMeta {
    /// True when the table's key range intersects `[smallest, largest]` (inclusive).
    pub fn overlaps(&self, smallest: &[u8], largest: &[u8]) -> bool {
        self.entries > 0 && &*self.smallest_key <= largest && &*self.largest_key >= smallest
    }

    /// True when `key` lies within the table's key range.
    pub fn may_hold(&self, key: &[u8]) -> bool {
        self.entries > 0 && &*self.smallest_key <= key && key <= &*self.largest_key
    }
}

/// Iterator over a table's entries in internal-key order. An `Err` (a damaged block)
/// ends the iteration: the iterator yields nothing after it.
pub type TableIter = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// Writes one table from entries given in order.
///
/// Contract:
/// - `add` takes entries in strictly increasing internal-key order (user key ascending,
///   then sequence descending); an entry out of order, or with a key or value larger than
///   the format accepts, is `Error::InvalidArgument` and the builder must not be used
///   further. Any key and value size the engine accepts (keys up to 64 KiB, values up to
///   64 MiB, see [`crate::batch`]) must be accepted.
/// - `finish` writes whatever the format needs after the entries, makes the whole file
///   durable (`File::sync_data`) and returns the table's metadata; a table with zero
///   entries is valid.
/// - The builder writes only through the `File` it was given (the I/O seam), so the
///   fault-injecting file system sees every byte.
pub trait TableBuilder: Send {
    /// Appends one version.
    fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()>;
    /// Bytes the finished file would take if finished now (for splitting outputs).
    fn estimated_size(&self) -> u64;
    /// Entries added so far.
    fn entries(&self) -> u64;
    /// Completes the file, syncs it and returns its metadata.
    fn finish(self: Box<Self>) -> Result<TableMeta>;
}

/// An open, immutable table.
///
/// Contract (what the conformance suite checks):
/// - `get(key, snapshot)` returns the version of `key` with the greatest sequence
///   `<= snapshot` held by this table, or `None`; never a newer one. Tombstones are
///   returned as [`Lookup::Deleted`].
/// - `range(range, snapshot)` yields every version with sequence `<= snapshot` whose key
///   lies in `range`, in internal-key order.
/// - Every byte served was checked against its checksum; a damaged block is
///   `Error::Corruption` naming the file and the block's offset, never data.
/// - `verify` reads the whole file and returns every problem found (empty when intact).
/// - Opening reads only the table's fixed metadata (footer, index, filter): its cost
///   does not grow with the amount of data in the table.
pub trait Table: Send + Sync + fmt::Debug {
    /// The table's metadata, as read from the file.
    fn meta(&self) -> &TableMeta;
    /// The newest version of `key` visible at `snapshot`.
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Lookup>>;
    /// Versions in `range` visible at `snapshot`, in internal-key order.
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> TableIter;
    /// Checks every checksum in the file.
    fn verify(&self) -> Vec<crate::Error>;
}

/// A table file layout: builds tables and opens them.
///
/// Contract: a table written by `builder(...)` and `finish`ed opens with `open` and
/// returns exactly the entries added; a file that is not a complete table of this
/// format (wrong magic or version, truncated, damaged footer or index) is
/// `Error::Corruption` naming the file and offset at `open`.
pub trait TableFormat: Send + Sync + fmt::Debug {
    /// A short name for reports and the manifest (`"mmap"`).
    fn name(&self) -> &'static str;
    /// A builder writing table `file_no` into `file` (a new, empty file).
    fn builder(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Box<dyn TableBuilder>>;
    /// Opens table `file_no` stored in `file`.
    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<dyn Table>>;
}
