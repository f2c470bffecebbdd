//! Registers the file WAL as the `wal = "file"` plugin; its options are the fields of
//! [`FileWalOptions`] (`segment_size_bytes`, `preallocate`, `retention_bytes`).

use std::sync::Arc;

use strata_core::WalFactory;
use strata_core::registry::{BuildError, PluginOptions, WalPlugin};

use crate::{FileWalFactory, FileWalOptions};

fn build(options: &PluginOptions) -> Result<Arc<dyn WalFactory>, BuildError> {
    let options: FileWalOptions = options.parse()?;
    Ok(Arc::new(FileWalFactory::new(options)))
}

strata_core::registry::inventory::submit! {
    WalPlugin {
        name: "file",
        description: "Segmented file WAL with CRC32 records, preallocation and group commit.",
        build,
    }
}
