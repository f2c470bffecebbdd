//! # strata-sstable-mmap
//!
//! Strata's block-based SSTable: the default [`strata_core::TableFormat`] (`"mmap"`).
//!
//! - Entries live in checksummed data blocks of about `block_size` bytes, optionally
//!   LZ4-compressed; a sparse index holds each block's last internal key, a bloom
//!   filter holds the user keys, a meta section the [`strata_core::TableMeta`] fields,
//!   and a fixed footer points at all three (byte layout in [`format`](mod@format)).
//! - The builder writes only through the [`strata_core::fs::File`] it is given, in
//!   writes of up to 256 KiB, and syncs the file in `finish`.
//! - The reader maps the file (or, on a file system without descriptors, reads it
//!   once) and checks only footer, meta, index and filter at open; the index is used
//!   in place, so opening costs O(index), not O(data). A point lookup is a bloom
//!   probe, a binary search over the index, one block CRC and a search of that block;
//!   the value comes back as a zero-copy slice of the mapped file.
//! - Every block is checked against its CRC each time it is read: damage is
//!   `Error::Corruption` naming the file and the block's offset, never data.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

mod block;
pub mod bloom;
mod builder;
pub mod format;
pub mod index;
mod iter;
pub mod meta;
mod options;
mod reader;
mod verify;

use std::sync::Arc;

use strata_core::fs::File;
use strata_core::{FileNo, Result, Table, TableBuilder, TableFormat};

pub use block::Compression;
pub use bloom::BloomFilter;
pub use builder::MmapTableBuilder;
pub use options::{
    DEFAULT_BLOCK_SIZE, DEFAULT_BLOOM_BITS_PER_KEY, MAX_BLOOM_BITS_PER_KEY, MmapTableOptions,
};
pub use reader::MmapTable;

/// The block-based table format with a memory-mapped reader.
#[derive(Clone, Debug, Default)]
pub struct MmapTableFormat {
    opts: MmapTableOptions,
}

impl MmapTableFormat {
    /// The format writing tables with `opts` (checked when a builder is created).
    pub fn new(opts: MmapTableOptions) -> Self {
        Self { opts }
    }

    /// The options new tables are written with.
    pub fn options(&self) -> &MmapTableOptions {
        &self.opts
    }

    /// Like [`TableFormat::open`], but returns the concrete table (for
    /// [`MmapTable::may_contain`], [`MmapTable::filter`] and the other extras).
    pub fn open_table(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<MmapTable>> {
        MmapTable::open(file, file_no)
    }
}

impl TableFormat for MmapTableFormat {
    fn name(&self) -> &'static str {
        "mmap"
    }

    fn builder(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Box<dyn TableBuilder>> {
        Ok(Box::new(MmapTableBuilder::new(file, file_no, self.opts)?))
    }

    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<dyn Table>> {
        Ok(MmapTable::open(file, file_no)?)
    }
}
