//! Registers leveled compaction as the `compaction = "leveled"` plugin; its options are
//! the fields of [`LeveledOptions`], checked by [`LeveledPolicy::new`].
//! (`max_compaction_bytes` can be set but not unset: configuration formats have no null.)

use std::sync::Arc;

use strata_core::CompactionPolicy;
use strata_core::registry::{BuildError, CompactionPlugin, PluginOptions};

use crate::{LeveledOptions, LeveledPolicy};

fn build(options: &PluginOptions) -> Result<Arc<dyn CompactionPolicy>, BuildError> {
    let options: LeveledOptions = options.parse()?;
    Ok(Arc::new(LeveledPolicy::new(options)?))
}

strata_core::registry::inventory::submit! {
    CompactionPlugin {
        name: "leveled",
        description: "Leveled compaction (LevelDB/RocksDB shape) with dynamic level targets.",
        build,
    }
}
