//! Registers the block-based table format as the `table = "mmap"` plugin; its options
//! are the fields of [`MmapTableOptions`] (`block_size`, `bloom_bits_per_key`,
//! `compression = "none" | "lz4"`), checked with [`MmapTableOptions::validate`].

use std::sync::Arc;

use strata_core::TableFormat;
use strata_core::registry::{BuildError, PluginOptions, TablePlugin};

use crate::{MmapTableFormat, MmapTableOptions};

fn build(options: &PluginOptions) -> Result<Arc<dyn TableFormat>, BuildError> {
    let options: MmapTableOptions = options.parse()?;
    options.validate()?;
    Ok(Arc::new(MmapTableFormat::new(options)))
}

strata_core::registry::inventory::submit! {
    TablePlugin {
        name: "mmap",
        description: "Block-based SSTable with bloom filter, sparse index, optional LZ4 and an mmap reader.",
        build,
    }
}
