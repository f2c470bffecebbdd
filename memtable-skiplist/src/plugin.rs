//! Registers the skiplist memtable as the `memtable = "skiplist"` plugin. It takes no
//! options (the engine's `memtable_size_bytes` decides when it is rotated).

use std::sync::Arc;

use strata_core::MemTableFactory;
use strata_core::registry::{BuildError, MemTablePlugin, PluginOptions};

use crate::SkipListFactory;

fn build(options: &PluginOptions) -> Result<Arc<dyn MemTableFactory>, BuildError> {
    if let Some((key, _)) = options.iter().next() {
        return Err(BuildError::Option {
            key: key.to_owned(),
            message: "unknown option: the skiplist memtable takes no options".to_owned(),
        });
    }
    Ok(Arc::new(SkipListFactory))
}

strata_core::registry::inventory::submit! {
    MemTablePlugin {
        name: "skiplist",
        description: "Lock-free concurrent memtable on crossbeam-skiplist.",
        build,
    }
}
