//! # strata-plugins
//!
//! Named component factories and the stacks made of them.
//!
//! - **Registry.** Components register their factories by name through [`registry`]
//!   (this crate registers the ones that come with Strata: `wal = "file"`,
//!   `memtable = "skiplist"` and `"vector"`, `table = "mmap"`, `compaction = "leveled"`
//!   and `"tiered"`, `failover = "manual"` and `"raft"`); [`plugins`] lists them, together with
//!   those of loaded libraries.
//! - **The default stack.** [`DefaultStack`] is its one definition (file WAL,
//!   skiplist memtable, mmap tables, leveled compaction); [`default_builder`] assembles
//!   it, and [`StackConfig::default`] and [`default_stack_toml`] name the same thing.
//! - **Stacks from TOML.** [`StackConfig`] reads `[wal]`, `[memtable]`, `[table]`,
//!   `[compaction]` (each `kind = "<plugin>"` plus that plugin's options), `[engine]`
//!   ([`strata_core::DbOptions`]), an optional `[failover]` (the failover policy of a
//!   replicated deployment, [`StackConfig::failover_factory`]) and `[[load]]` sections, and
//!   [`StackConfig::builder`] turns them into a [`strata_core::DbBuilder`]. Unknown
//!   plugins, unknown or ill-typed options are errors naming the section and key;
//!   [`default_stack_toml`] spells out the default stack.
//! - **Plugin libraries.** [`load_library`] loads a shared library exporting plugins
//!   with [`declare_plugin!`] (and [`use_host_allocator!`]), after checking its ABI
//!   stamp (strata-core version, rustc, a fingerprint of the shared traits' source and
//!   layout); a mismatched library is refused and never called. Loaded libraries stay loaded for the life of the process.
//!
//! ```
//! let config = strata_plugins::StackConfig::from_toml_str(
//!     "[wal]\nkind = \"file\"\nsegment_size_bytes = 1048576\n",
//! )?;
//! let dir = tempfile::tempdir().expect("tempdir");
//! let db = config.builder(dir.path())?.open()?;
//! db.put(b"k", b"v", strata_core::Durability::Sync)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod builtin;
mod config;
mod default_stack;
mod dynamic;
mod error;
mod ffi;
mod lookup;
pub mod registry;

pub use config::{ComponentConfig, StackConfig, default_stack_toml};
pub use default_stack::{DefaultStack, default_builder, default_plugin};
pub use dynamic::load_library;
pub use error::PluginError;
pub use lookup::{PluginInfo, PluginSource, plugin_names, plugins};
pub use registry::{
    BuildError, CompactionPlugin, FailoverPlugin, MemTablePlugin, OptionValue, PluginKind,
    PluginOptions, TablePlugin, WalPlugin,
};
