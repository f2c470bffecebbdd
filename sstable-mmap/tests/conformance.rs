//! The table conformance suite (`strata_harness::conformance::table`) on the mmap
//! SSTable format: default options, LZ4 blocks, and tiny blocks (many blocks per table,
//! so damage and ranges cross block boundaries).

use std::sync::Arc;

use strata_harness::conformance::table::{self, TableCaps};
use strata_sstable_mmap::{Compression, MmapTableFormat, MmapTableOptions};

#[test]
fn mmap_tables_conform() {
    table::run(Arc::new(MmapTableFormat::default()), TableCaps::default()).assert_ok();
}

#[test]
fn mmap_tables_with_lz4_conform() {
    let options = MmapTableOptions::default().with_compression(Compression::Lz4);
    table::run(Arc::new(MmapTableFormat::new(options)), TableCaps::default()).assert_ok();
}

#[test]
fn mmap_tables_with_tiny_blocks_conform() {
    let options = MmapTableOptions::default().with_block_size(128);
    table::run(Arc::new(MmapTableFormat::new(options)), TableCaps::default()).assert_ok();
}
