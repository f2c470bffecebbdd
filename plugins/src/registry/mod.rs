//! Named component factories: what a plugin registers, and the ABI stamp a plugin
//! library carries.
//!
//! A plugin crate depends on `strata-core` (the traits) and on this crate (the
//! registration types). For each component it offers it submits one registration — a [`WalPlugin`], [`MemTablePlugin`], [`TablePlugin`] or
//! [`CompactionPlugin`]: a name unique within its kind, a one-line description, and a
//! `build` function turning [`PluginOptions`] into a factory. Registrations are
//! collected at link time with [`inventory`]:
//!
//! ```
//! use std::sync::Arc;
//! use strata_plugins::registry::{BuildError, PluginOptions, WalPlugin};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(deny_unknown_fields, default)]
//! struct MyOptions { segment_size_bytes: u64 }
//!
//! fn build(options: &PluginOptions) -> Result<Arc<dyn strata_core::WalFactory>, BuildError> {
//!     let _opts: MyOptions = options.parse()?;
//!     // ... construct and return the factory ...
//! #   Err(BuildError::Component(strata_core::Error::Config("demo".into())))
//! }
//!
//! strata_plugins::registry::inventory::submit! {
//!     WalPlugin { name: "my-wal", description: "An example WAL.", build }
//! }
//! ```
//!
//! The rest of `strata-plugins` looks registrations up by name, assembles stacks from
//! TOML and loads plugin libraries at run time; a library exports its registrations with
//! [`declare_plugin!`](crate::declare_plugin). The components that come with Strata
//! are registered by this crate (`wal = "file"`, `memtable = "skiplist"` and
//! `"vector"`, `table = "mmap"`, `compaction = "leveled"` and `"tiered"`), so that
//! their crates depend on `strata-core` alone.
//!
//! ## Options
//!
//! Options reach a plugin as [`PluginOptions`], a format-neutral tree
//! ([`OptionValue`]), so that plugins do not depend on a configuration format and so
//! that the type crossing a library boundary is one this crate defines.
//! [`PluginOptions::parse`] deserializes them with serde into the plugin's own options
//! struct and reports an unknown or ill-typed key with its path
//! (`segment_size_bytes: invalid type: string "big", expected u64`).
//!
//! ## The ABI stamp
//!
//! A plugin library and the host exchange Rust types (`Arc<dyn Wal>`, [`strata_core::Error`],
//! ...) whose layout Rust does not promise to keep across compilers or versions. A
//! library therefore exports an [`AbiStamp`] — plain `#[repr(C)]` bytes that any
//! version can read — naming the strata-core version, the rustc that built it and a
//! fingerprint of the shared types: a hash of the source text of the traits and types
//! that cross the boundary, taken by this crate's build script (see [`fingerprint`]),
//! mixed with their sizes and alignments. The loader compares it
//! with its own [`AbiStamp::CURRENT`] and refuses a library that differs in any of the
//! three before calling anything in it.

mod abi;
pub mod fingerprint;
mod host_alloc;
mod options;

use std::fmt;
use std::sync::Arc;

pub use abi::{
    ABI_FINGERPRINT, ABI_MAGIC, ABI_SOURCE_HASH, ABI_STAMP_SYMBOL, ABI_STAMP_VERSION, AbiMismatch,
    AbiPart, AbiStamp, ENTRY_SYMBOL, fingerprint_of,
};
pub use host_alloc::{HOST_ALLOCATOR, HostAllocator, PluginAllocator, USE_HOST_ALLOCATOR_SYMBOL};
pub use options::{BuildError, OptionValue, PluginOptions};

use strata_core::CompactionPolicy;
use strata_core::FailoverFactory;
use strata_core::MemTableFactory;
use strata_core::TableFormat;
use strata_core::WalFactory;

#[doc(hidden)]
pub use inventory;

/// The component kinds a plugin can provide, with their configuration section names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    /// A [`WalFactory`] (`[wal]`).
    Wal,
    /// A [`MemTableFactory`] (`[memtable]`).
    MemTable,
    /// A [`TableFormat`] (`[table]`).
    Table,
    /// A [`CompactionPolicy`] (`[compaction]`).
    Compaction,
    /// A [`FailoverFactory`] (`[failover]`): which failover policy a replicated
    /// deployment runs. Not part of a store's stack: a single node has none.
    Failover,
}

impl PluginKind {
    /// Every kind, in configuration order.
    pub const ALL: [PluginKind; 5] = [
        PluginKind::Wal,
        PluginKind::MemTable,
        PluginKind::Table,
        PluginKind::Compaction,
        PluginKind::Failover,
    ];

    /// The configuration section (and report) name: `wal`, `memtable`, `table`,
    /// `compaction`, `failover`.
    pub const fn section(self) -> &'static str {
        match self {
            PluginKind::Wal => "wal",
            PluginKind::MemTable => "memtable",
            PluginKind::Table => "table",
            PluginKind::Compaction => "compaction",
            PluginKind::Failover => "failover",
        }
    }

    /// The name of the plugin used when the configuration does not choose one: the
    /// component of the default stack ([`crate::default_plugin`], from
    /// [`DefaultStack`](crate::DefaultStack)).
    pub fn default_plugin(self) -> &'static str {
        crate::default_stack::default_plugin(self)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section())
    }
}

macro_rules! registration {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $factory:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name {
            /// The name configurations select it by, unique within its kind
            /// (lowercase, `-` between words).
            pub name: &'static str,
            /// One sentence for `strata plugins` listings.
            pub description: &'static str,
            /// Builds the factory from the component's options. Must accept empty
            /// options (every option at its default) and must reject unknown keys.
            pub build: fn(&PluginOptions) -> Result<Arc<$factory>, BuildError>,
        }

        impl $name {
            /// The kind of component this registers.
            pub const KIND: PluginKind = $kind;
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.name)
                    .field("description", &self.description)
                    .finish_non_exhaustive()
            }
        }

        inventory::collect!($name);
    };
}

registration!(
    /// Registers a [`WalFactory`] under a name (`[wal] kind = "<name>"`).
    WalPlugin,
    PluginKind::Wal,
    dyn WalFactory
);
registration!(
    /// Registers a [`MemTableFactory`] under a name (`[memtable] kind = "<name>"`).
    MemTablePlugin,
    PluginKind::MemTable,
    dyn MemTableFactory
);
registration!(
    /// Registers a [`TableFormat`] under a name (`[table] kind = "<name>"`).
    TablePlugin,
    PluginKind::Table,
    dyn TableFormat
);
registration!(
    /// Registers a [`CompactionPolicy`] under a name (`[compaction] kind = "<name>"`).
    CompactionPlugin,
    PluginKind::Compaction,
    dyn CompactionPolicy
);
registration!(
    /// Registers a [`FailoverFactory`] under a name (`[failover] kind = "<name>"`).
    FailoverPlugin,
    PluginKind::Failover,
    dyn FailoverFactory
);

/// Every plugin a library exports, as returned by its `strata_plugin_entry` (see
/// [`declare_plugin!`](crate::declare_plugin)). Only read by a host whose
/// [`AbiStamp`] matched the library's.
#[derive(Debug)]
pub struct PluginDeclaration {
    /// WAL plugins.
    pub wal: &'static [WalPlugin],
    /// Memtable plugins.
    pub memtable: &'static [MemTablePlugin],
    /// Table format plugins.
    pub table: &'static [TablePlugin],
    /// Compaction policy plugins.
    pub compaction: &'static [CompactionPlugin],
    /// Failover policy plugins.
    pub failover: &'static [FailoverPlugin],
}

/// Exports a plugin library's registrations to hosts that load it at run time, and
/// submits them to the link-time registry for hosts that link the crate statically.
///
/// Each list holds constant expressions of the matching registration type:
///
/// ```no_run
/// # use std::sync::Arc;
/// use strata_plugins::registry::{BuildError, MemTablePlugin, PluginOptions};
/// # fn build(_: &PluginOptions) -> Result<Arc<dyn strata_core::MemTableFactory>, BuildError> {
/// #     Err(BuildError::Component(strata_core::Error::Config("demo".into())))
/// # }
/// const EXAMPLE: MemTablePlugin =
///     MemTablePlugin { name: "example-btree", description: "An example.", build };
///
/// strata_plugins::declare_plugin! {
///     memtable: [EXAMPLE],
/// }
/// # fn main() {}
/// ```
///
/// Lists may be omitted but must come in the order `wal`, `memtable`, `table`,
/// `compaction`, `failover`. The macro defines two exported symbols — the `#[repr(C)]`
/// [`AbiStamp`] static `STRATA_PLUGIN_ABI` and `extern "C" fn strata_plugin_entry()` —
/// so it may be used once per crate, and two plugin crates that use it cannot both be
/// linked statically into one binary (their symbols would clash): link at most one
/// statically, load the others. A library loaded at run time also needs
/// [`use_host_allocator!`](crate::use_host_allocator) (the loader refuses it otherwise).
#[macro_export]
macro_rules! declare_plugin {
    (
        $( wal: [ $($wal:expr),* $(,)? ] $(,)? )?
        $( memtable: [ $($mem:expr),* $(,)? ] $(,)? )?
        $( table: [ $($tab:expr),* $(,)? ] $(,)? )?
        $( compaction: [ $($cmp:expr),* $(,)? ] $(,)? )?
        $( failover: [ $($fo:expr),* $(,)? ] $(,)? )?
    ) => {
        /// The ABI stamp the Strata loader checks before calling anything in this library.
        #[unsafe(no_mangle)]
        pub static STRATA_PLUGIN_ABI: $crate::registry::AbiStamp =
            $crate::registry::AbiStamp::CURRENT;

        static __STRATA_PLUGIN_DECLARATION: $crate::registry::PluginDeclaration =
            $crate::registry::PluginDeclaration {
                wal: &[$($($wal),*)?],
                memtable: &[$($($mem),*)?],
                table: &[$($($tab),*)?],
                compaction: &[$($($cmp),*)?],
                failover: &[$($($fo),*)?],
            };

        /// The library's registrations: a `*const PluginDeclaration`, only to be read by a
        /// host whose ABI stamp equals `STRATA_PLUGIN_ABI`.
        #[unsafe(no_mangle)]
        pub extern "C" fn strata_plugin_entry() -> *const ::core::ffi::c_void {
            (&raw const __STRATA_PLUGIN_DECLARATION).cast()
        }

        $($( $crate::registry::inventory::submit! { $wal } )*)?
        $($( $crate::registry::inventory::submit! { $mem } )*)?
        $($( $crate::registry::inventory::submit! { $tab } )*)?
        $($( $crate::registry::inventory::submit! { $cmp } )*)?
        $($( $crate::registry::inventory::submit! { $fo } )*)?
    };
}

/// Every statically linked WAL plugin.
pub fn wal_plugins() -> impl Iterator<Item = &'static WalPlugin> {
    inventory::iter::<WalPlugin>.into_iter()
}

/// Every statically linked memtable plugin.
pub fn memtable_plugins() -> impl Iterator<Item = &'static MemTablePlugin> {
    inventory::iter::<MemTablePlugin>.into_iter()
}

/// Every statically linked table format plugin.
pub fn table_plugins() -> impl Iterator<Item = &'static TablePlugin> {
    inventory::iter::<TablePlugin>.into_iter()
}

/// Every statically linked compaction policy plugin.
pub fn compaction_plugins() -> impl Iterator<Item = &'static CompactionPlugin> {
    inventory::iter::<CompactionPlugin>.into_iter()
}

/// Every statically linked failover policy plugin.
pub fn failover_plugins() -> impl Iterator<Item = &'static FailoverPlugin> {
    inventory::iter::<FailoverPlugin>.into_iter()
}
