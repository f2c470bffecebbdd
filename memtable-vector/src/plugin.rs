//! Registers the vector memtable as the `memtable = "vector"` plugin. It takes no
//! options (the engine's `memtable_size_bytes` decides when it is rotated).

use std::sync::Arc;

use strata_core::MemTableFactory;
use strata_core::registry::{BuildError, MemTablePlugin, PluginOptions};

use crate::VectorFactory;

fn build(options: &PluginOptions) -> Result<Arc<dyn MemTableFactory>, BuildError> {
    if let Some((key, _)) = options.iter().next() {
        return Err(BuildError::Option {
            key: key.to_owned(),
            message: "unknown option: the vector memtable takes no options".to_owned(),
        });
    }
    Ok(Arc::new(VectorFactory))
}

strata_core::registry::inventory::submit! {
    MemTablePlugin {
        name: "vector",
        description: "Append-optimized memtable for sequential keys (order ids, timestamps).",
        build,
    }
}
