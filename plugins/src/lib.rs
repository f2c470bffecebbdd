//! # strata-plugins
//!
//! Named component factories and the stacks made of them.
//!
//! - **Registry.** Every component crate registers its factories by name through
//!   [`strata_core::registry`] (`wal = "file"`, `memtable = "skiplist"`,
//!   `table = "mmap"`, `compaction = "leveled"` come with Strata); [`plugins`] lists
//!   them, together with those of loaded libraries.
//! - **Stacks from TOML.** [`StackConfig`] reads `[wal]`, `[memtable]`, `[table]`,
//!   `[compaction]` (each `kind = "<plugin>"` plus that plugin's options), `[engine]`
//!   ([`strata_core::DbOptions`]) and `[[load]]` sections, and
//!   [`StackConfig::builder`] turns them into a [`strata_core::DbBuilder`]. Unknown
//!   plugins, unknown or ill-typed options are errors naming the section and key;
//!   [`default_stack_toml`] spells out the default stack.
//! - **Plugin libraries.** [`load_library`] loads a shared library exporting plugins
//!   with [`strata_core::declare_plugin!`], after checking its ABI stamp (strata-core
//!   version, rustc, layout fingerprint); a mismatched library is refused and never
//!   called. Loaded libraries stay loaded for the life of the process.
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

mod config;
mod dynamic;
mod error;
mod ffi;
mod lookup;

pub use config::{ComponentConfig, StackConfig, default_stack_toml};
pub use dynamic::load_library;
pub use error::PluginError;
pub use lookup::{PluginInfo, PluginSource, plugin_names, plugins};
pub use strata_core::registry::PluginKind;
