//! Options of the mmap table format.

use strata_core::{Error, Result};

use crate::block::Compression;
use crate::format::MAX_BLOCK_SIZE;

/// Default target size of a data block in bytes.
pub const DEFAULT_BLOCK_SIZE: usize = 4096;
/// Default bloom filter bits per key: 10 bits with 7 hashes give about 0.82 % false
/// positives in theory (measured by the `bloom_false_positives` test, < 1 %).
pub const DEFAULT_BLOOM_BITS_PER_KEY: u32 = 10;
/// Default interval at which a table being built is handed to the OS for writeback: 1 MiB.
pub const DEFAULT_WRITEBACK_BYTES: u64 = 1024 * 1024;
/// Largest `bloom_bits_per_key` accepted.
pub const MAX_BLOOM_BITS_PER_KEY: u32 = 64;

/// How [`crate::MmapTableFormat`] writes tables. Readers need no options: everything
/// they need is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmapTableOptions {
    /// Target size of a data block (raw, before compression), `1..=16 MiB`. Smaller
    /// blocks make point lookups check and scan less; larger ones make the index
    /// smaller. Default [`DEFAULT_BLOCK_SIZE`].
    pub block_size: usize,
    /// Bloom filter bits per distinct user key, `0..=64`; `0` writes no filter.
    /// Default [`DEFAULT_BLOOM_BITS_PER_KEY`].
    pub bloom_bits_per_key: u32,
    /// Block compression. Default [`Compression::None`] (values served straight from
    /// the mapped file).
    pub compression: Compression,
    /// Start the OS writing the table back every this many bytes written, without
    /// waiting (`sync_file_range`; 0: off). Without it a flush or compaction leaves its
    /// whole output dirty until the final fdatasync, which sends it to the disk in one
    /// burst: a `Sync` WAL write's fdatasync queued behind a 128 MiB burst waited tens
    /// of milliseconds. Like RocksDB's `bytes_per_sync`, writeback stays this far
    /// behind the write position (see `strata_core::fs::WritebackPacer`). Default
    /// `DEFAULT_WRITEBACK_BYTES`.
    pub writeback_bytes: u64,
}

impl Default for MmapTableOptions {
    fn default() -> Self {
        Self {
            block_size: DEFAULT_BLOCK_SIZE,
            bloom_bits_per_key: DEFAULT_BLOOM_BITS_PER_KEY,
            compression: Compression::None,
            writeback_bytes: DEFAULT_WRITEBACK_BYTES,
        }
    }
}

impl MmapTableOptions {
    /// Sets [`block_size`](Self::block_size).
    #[must_use]
    pub fn with_block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }

    /// Sets [`bloom_bits_per_key`](Self::bloom_bits_per_key).
    #[must_use]
    pub fn with_bloom_bits_per_key(mut self, bits: u32) -> Self {
        self.bloom_bits_per_key = bits;
        self
    }

    /// Sets [`compression`](Self::compression).
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`writeback_bytes`](Self::writeback_bytes).
    #[must_use]
    pub fn with_writeback_bytes(mut self, bytes: u64) -> Self {
        self.writeback_bytes = bytes;
        self
    }

    /// Checks the ranges documented on each field (`Error::Config` otherwise).
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(Error::Config(format!(
                "sstable-mmap block_size {} is outside 1..={MAX_BLOCK_SIZE}",
                self.block_size
            )));
        }
        if self.bloom_bits_per_key > MAX_BLOOM_BITS_PER_KEY {
            return Err(Error::Config(format!(
                "sstable-mmap bloom_bits_per_key {} is above {MAX_BLOOM_BITS_PER_KEY}",
                self.bloom_bits_per_key
            )));
        }
        Ok(())
    }
}
