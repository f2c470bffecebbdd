//! Registers tiered compaction as the `compaction = "tiered"` plugin; its options are
//! the fields of [`TieredOptions`], checked by [`TieredPolicy::new`].

use std::sync::Arc;

use strata_core::CompactionPolicy;
use strata_core::registry::{BuildError, CompactionPlugin, PluginOptions};

use crate::{TieredOptions, TieredPolicy};

fn build(options: &PluginOptions) -> Result<Arc<dyn CompactionPolicy>, BuildError> {
    let options: TieredOptions = options.parse()?;
    Ok(Arc::new(TieredPolicy::new(options)?))
}

strata_core::registry::inventory::submit! {
    CompactionPlugin {
        name: "tiered",
        description: "Size-tiered (universal) compaction: low write amplification for write-heavy, rarely-read data.",
        build,
    }
}
