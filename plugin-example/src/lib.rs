//! # strata-plugin-example
//!
//! An example Strata plugin, small enough to read in one sitting: a memtable on a
//! `parking_lot::RwLock<BTreeMap>`, registered as `memtable = "example-btree"` and
//! exported for loading at run time with [`strata_plugins::declare_plugin!`].
//!
//! Built as a `cdylib` (`libstrata_plugin_example.so`) it is loaded with
//!
//! ```toml
//! [[load]]
//! path = "target/release/libstrata_plugin_example.so"
//!
//! [memtable]
//! kind = "example-btree"
//! scan_batch = 256
//! ```
//!
//! and built as an `rlib` it registers itself with the binary it is linked into.
//! It is correct but not fast: every insert takes a write lock that readers share, which
//! is what the default skiplist memtable exists to avoid.

mod memtable;

use std::sync::Arc;

use strata_core::MemTableFactory;
use strata_plugins::registry::{BuildError, MemTablePlugin, PluginOptions};

pub use memtable::{BTreeMemTable, BTreeMemTableFactory, BTreeOptions};

fn build(options: &PluginOptions) -> Result<Arc<dyn MemTableFactory>, BuildError> {
    let options: BTreeOptions = options.parse()?;
    Ok(Arc::new(BTreeMemTableFactory::new(options)?))
}

/// The registration of `memtable = "example-btree"`.
pub const PLUGIN: MemTablePlugin = MemTablePlugin {
    name: "example-btree",
    description: "Example memtable: a BTreeMap behind a RwLock (correct, not fast).",
    build,
};

// Loaded at run time, this library allocates through the host's allocator.
strata_plugins::use_host_allocator!();

strata_plugins::declare_plugin! {
    memtable: [PLUGIN],
}
