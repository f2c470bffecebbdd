//! Named component factories: what a plugin registers, and the ABI stamp a plugin
//! library carries.
//!
//! A plugin crate depends on `strata-core` only. For each component it offers it
//! submits one registration — a [`WalPlugin`], [`MemTablePlugin`], [`TablePlugin`] or
//! [`CompactionPlugin`]: a name unique within its kind, a one-line description, and a
//! `build` function turning [`PluginOptions`] into a factory. Registrations are
//! collected at link time with [`inventory`]:
//!
//! ```
//! use std::sync::Arc;
//! use strata_core::registry::{BuildError, PluginOptions, WalPlugin};
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
//! strata_core::registry::inventory::submit! {
//!     WalPlugin { name: "my-wal", description: "An example WAL.", build }
//! }
//! ```
//!
//! The `strata-plugins` crate looks registrations up by name, assembles stacks from TOML
//! and loads plugin libraries at run time; a library exports its registrations with
//! [`declare_plugin!`](crate::declare_plugin).
//!
//! ## Options
//!
//! Options reach a plugin as [`PluginOptions`], a format-neutral tree
//! ([`OptionValue`]), so that `strata-core` does not depend on a configuration format
//! and so that the type crossing a library boundary is one `strata-core` defines.
//! [`PluginOptions::parse`] deserializes them with serde into the plugin's own options
//! struct and reports an unknown or ill-typed key with its path
//! (`segment_size_bytes: invalid type: string "big", expected u64`).
//!
//! ## The ABI stamp
//!
//! A plugin library and the host exchange Rust types (`Arc<dyn Wal>`, [`crate::Error`],
//! ...) whose layout Rust does not promise to keep across compilers or versions. A
//! library therefore exports an [`AbiStamp`] — plain `#[repr(C)]` bytes that any
//! version can read — naming the strata-core version, the rustc that built it and a
//! fingerprint of the registration types and trait signatures. The loader compares it
//! with its own [`AbiStamp::CURRENT`] and refuses a library that differs in any of the
//! three before calling anything in it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::compaction::CompactionPolicy;
use crate::memtable::MemTableFactory;
use crate::table::TableFormat;
use crate::wal::WalFactory;

#[doc(hidden)]
pub use inventory;

/// One option value, in a format-neutral shape (what TOML, JSON or a command line can
/// express).
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An ordered list.
    Array(Vec<OptionValue>),
    /// A nested table of named values.
    Table(BTreeMap<String, OptionValue>),
}

impl OptionValue {
    /// What kind of value this is, for error messages (`"a string"`, `"an integer"`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            OptionValue::String(_) => "a string",
            OptionValue::Integer(_) => "an integer",
            OptionValue::Float(_) => "a float",
            OptionValue::Bool(_) => "a boolean",
            OptionValue::Array(_) => "an array",
            OptionValue::Table(_) => "a table",
        }
    }
}

/// The options of one component, as given in its configuration section (without the
/// `kind` key that selected the plugin).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginOptions {
    values: BTreeMap<String, OptionValue>,
}

impl PluginOptions {
    /// No options: every plugin must accept this and use its defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options from named values.
    pub fn from_map(values: BTreeMap<String, OptionValue>) -> Self {
        Self { values }
    }

    /// Sets one option, replacing an earlier value of the same key.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: OptionValue) -> Self {
        self.values.insert(key.into(), value);
        self
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&OptionValue> {
        self.values.get(key)
    }

    /// Every option, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptionValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when no option is given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Deserializes the options into `T` (typically a struct with
    /// `#[serde(deny_unknown_fields, default)]`).
    ///
    /// An unknown, missing or ill-typed key is [`BuildError::Option`] carrying the key's
    /// path inside these options (`levels`, `inner.block_size`, `sizes[2]`) and serde's
    /// description of the problem.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        let value = OptionValue::Table(self.values.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { String::new() } else { path };
            BuildError::Option { key, message: e.into_inner().to_string() }
        })
    }
}

/// Why a plugin could not build its factory from the options it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is unknown, missing or has the wrong type. `key` is its path within the
    /// component's options (empty when the problem is the options as a whole).
    #[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Option {
        /// Path of the offending key (`segment_size_bytes`, `inner.level`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The options parsed but the component refused them (out of range, inconsistent)
    /// or failed to start.
    #[error(transparent)]
    Component(#[from] crate::Error),
}

// ----- the deserializer behind `PluginOptions::parse` -----

type DeError = de::value::Error;

impl<'de> IntoDeserializer<'de, DeError> for OptionValue {
    type Deserializer = OptionValue;

    fn into_deserializer(self) -> OptionValue {
        self
    }
}

impl<'de> de::Deserializer<'de> for OptionValue {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            OptionValue::String(s) => visitor.visit_string(s),
            OptionValue::Integer(i) => visitor.visit_i64(i),
            OptionValue::Float(f) => visitor.visit_f64(f),
            OptionValue::Bool(b) => visitor.visit_bool(b),
            OptionValue::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            OptionValue::Table(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    /// Configuration formats have no null: a present key is `Some`, an absent one takes
    /// the struct's default.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Unit variants are written as strings (`compression = "lz4"`); variants with data
    /// as a one-entry table (`{ fixed = 3 }`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            OptionValue::String(s) => visitor.visit_enum(s.into_deserializer()),
            OptionValue::Table(entries) if entries.len() == 1 => {
                let map = MapDeserializer::new(entries.into_iter());
                visitor.visit_enum(de::value::MapAccessDeserializer::new(map))
            }
            other => Err(de::Error::invalid_type(other.unexpected(), &"a variant name")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl OptionValue {
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            OptionValue::String(s) => de::Unexpected::Str(s),
            OptionValue::Integer(i) => de::Unexpected::Signed(*i),
            OptionValue::Float(f) => de::Unexpected::Float(*f),
            OptionValue::Bool(b) => de::Unexpected::Bool(*b),
            OptionValue::Array(_) => de::Unexpected::Seq,
            OptionValue::Table(_) => de::Unexpected::Map,
        }
    }
}

// ----- registrations -----

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
}

impl PluginKind {
    /// Every kind, in configuration order.
    pub const ALL: [PluginKind; 4] =
        [PluginKind::Wal, PluginKind::MemTable, PluginKind::Table, PluginKind::Compaction];

    /// The configuration section (and report) name: `wal`, `memtable`, `table`,
    /// `compaction`.
    pub const fn section(self) -> &'static str {
        match self {
            PluginKind::Wal => "wal",
            PluginKind::MemTable => "memtable",
            PluginKind::Table => "table",
            PluginKind::Compaction => "compaction",
        }
    }

    /// The name of the plugin used when the configuration does not choose one.
    pub const fn default_plugin(self) -> &'static str {
        match self {
            PluginKind::Wal => "file",
            PluginKind::MemTable => "skiplist",
            PluginKind::Table => "mmap",
            PluginKind::Compaction => "leveled",
        }
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
}

// ----- the ABI stamp -----

/// Name of the `#[repr(C)]` [`AbiStamp`] static a plugin library exports.
pub const ABI_STAMP_SYMBOL: &str = "STRATA_PLUGIN_ABI";
/// Name of the `extern "C" fn() -> *const c_void` returning the library's
/// [`PluginDeclaration`].
pub const ENTRY_SYMBOL: &str = "strata_plugin_entry";

/// Which part of two [`AbiStamp`]s differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiPart {
    /// Not a Strata plugin stamp at all, or a stamp layout this host does not know.
    Stamp,
    /// The strata-core version.
    CoreVersion,
    /// The compiler (version, commit and target).
    Rustc,
    /// The fingerprint of the registration types and trait signatures.
    Fingerprint,
}

impl fmt::Display for AbiPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AbiPart::Stamp => "ABI stamp layout",
            AbiPart::CoreVersion => "strata-core version",
            AbiPart::Rustc => "rustc version",
            AbiPart::Fingerprint => "layout fingerprint",
        })
    }
}

/// A library's stamp differs from the host's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{part} differs: the host has {host:?}, the library was built with {library:?}")]
pub struct AbiMismatch {
    /// The first part found to differ (checked in the order stamp, core version, rustc,
    /// fingerprint).
    pub part: AbiPart,
    /// The host's value.
    pub host: String,
    /// The library's value.
    pub library: String,
}

/// What a plugin library was built against, as plain C data any version can read.
///
/// Strings are UTF-8, NUL-padded to the field's length (truncated if longer).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AbiStamp {
    /// `b"STRATAPL"`.
    pub magic: [u8; 8],
    /// Layout version of this struct (1). Read before any field after it.
    pub stamp_version: u32,
    /// strata-core's `CARGO_PKG_VERSION`.
    pub core_version: [u8; 32],
    /// `rustc --version` and the target triple of the compiler that built strata-core.
    pub rustc: [u8; 128],
    /// [`ABI_FINGERPRINT`]-derived text.
    pub fingerprint: [u8; 64],
}

/// The magic at the start of every [`AbiStamp`].
pub const ABI_MAGIC: [u8; 8] = *b"STRATAPL";
/// The [`AbiStamp`] layout version this crate writes and reads.
pub const ABI_STAMP_VERSION: u32 = 1;

/// What the fingerprint covers: every type and signature that crosses the library
/// boundary. IMPORTANT: edit this text (and bump the `abi/N` prefix) whenever a trait,
/// a registration struct or a shared type changes shape, even when the sizes hashed
/// next to it stay the same.
const ABI_SIGNATURES: &str = "abi/1;\
    WalFactory{open(&self,Arc<dyn FileSystem>,&Path)->Result<Arc<dyn Wal>>;name()->&'static str};\
    Wal{append(&[u8],u32,Durability)->Result<SeqNo>;sync;last_seq;read_from(SeqNo)->Result<Box<dyn WalReader>>;checkpoint(SeqNo);recovery()->WalRecovery;files()->Result<Vec<PathBuf>>};\
    WalReader{next_batch;wait_next(Duration)};\
    MemTableFactory{create()->Arc<dyn MemTable>;name};\
    MemTable{insert(&[u8],SeqNo,ValueKind,&[u8]);get(&[u8],SeqNo)->Option<Lookup>;range(Arc<Self>,KeyRange,SeqNo)->EntryIter;memory_bytes;len;is_empty;max_seq};\
    TableFormat{name;builder(Arc<dyn File>,FileNo)->Result<Box<dyn TableBuilder>>;open(Arc<dyn File>,FileNo)->Result<Arc<dyn Table>>};\
    TableBuilder{add;estimated_size;entries;finish(Box<Self>)->Result<TableMeta>};\
    Table{meta;get;range;verify()->Vec<Error>};\
    CompactionPolicy{name;levels;pick(&LevelsView,&HashSet<FileNo>)->Option<CompactionTask>};\
    FileSystem+File;\
    build:fn(&PluginOptions)->Result<Arc<dyn _>,BuildError>";

const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const fn mix(hash: u64, n: usize) -> u64 {
    fnv1a(hash, &(n as u64).to_le_bytes())
}

/// Hash of [`ABI_SIGNATURES`] and of the size and alignment of every type that crosses
/// the library boundary by value or behind a pointer the host dereferences.
pub const ABI_FINGERPRINT: u64 = {
    use std::mem::{align_of, size_of};
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, ABI_SIGNATURES.as_bytes());
    macro_rules! layout {
        ($($t:ty),* $(,)?) => { $( h = mix(mix(h, size_of::<$t>()), align_of::<$t>()); )* };
    }
    layout!(
        PluginDeclaration,
        WalPlugin,
        MemTablePlugin,
        TablePlugin,
        CompactionPlugin,
        PluginOptions,
        OptionValue,
        BuildError,
        crate::Error,
        crate::memtable::Entry,
        crate::memtable::Lookup,
        crate::table::TableMeta,
        crate::wal::WalBatch,
        crate::wal::WalRecovery,
        crate::compaction::LevelsView,
        crate::compaction::CompactionTask,
        crate::types::SeqNo,
        crate::types::ValueKind,
        crate::types::Durability,
        bytes::Bytes,
        Arc<dyn WalFactory>,
        std::collections::HashSet<crate::table::FileNo>,
    );
    h
};

impl AbiStamp {
    /// The stamp of this build of strata-core.
    pub const CURRENT: AbiStamp = AbiStamp {
        magic: ABI_MAGIC,
        stamp_version: ABI_STAMP_VERSION,
        core_version: Self::text(env!("CARGO_PKG_VERSION")),
        rustc: Self::text(env!("STRATA_RUSTC_VERSION")),
        fingerprint: Self::fingerprint_text(ABI_FINGERPRINT),
    };

    /// `s` as a NUL-padded field of `N` bytes (truncated to `N` bytes if longer).
    pub const fn text<const N: usize>(s: &str) -> [u8; N] {
        let bytes = s.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N && i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }

    const fn fingerprint_text(hash: u64) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Self::text::<64>("strata-abi-1:");
        let prefix = "strata-abi-1:".len();
        let mut i = 0;
        while i < 16 {
            out[prefix + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
            i += 1;
        }
        out
    }

    fn field(bytes: &[u8]) -> String {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(bytes.get(..end).unwrap_or(bytes)).into_owned()
    }

    /// The strata-core version as text.
    pub fn core_version(&self) -> String {
        Self::field(&self.core_version)
    }

    /// The compiler as text.
    pub fn rustc(&self) -> String {
        Self::field(&self.rustc)
    }

    /// The fingerprint as text.
    pub fn fingerprint(&self) -> String {
        Self::field(&self.fingerprint)
    }

    /// Checks a library's stamp against this (the host's) one; the error names the first
    /// part that differs.
    pub fn check(&self, library: &AbiStamp) -> Result<(), AbiMismatch> {
        let differs =
            |part, host: String, lib: String| Err(AbiMismatch { part, host, library: lib });
        if library.magic != self.magic || library.stamp_version != self.stamp_version {
            return differs(
                AbiPart::Stamp,
                format!("{} v{}", Self::field(&self.magic), self.stamp_version),
                format!("{} v{}", Self::field(&library.magic), library.stamp_version),
            );
        }
        if library.core_version != self.core_version {
            return differs(AbiPart::CoreVersion, self.core_version(), library.core_version());
        }
        if library.rustc != self.rustc {
            return differs(AbiPart::Rustc, self.rustc(), library.rustc());
        }
        if library.fingerprint != self.fingerprint {
            return differs(AbiPart::Fingerprint, self.fingerprint(), library.fingerprint());
        }
        Ok(())
    }
}

impl fmt::Debug for AbiStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbiStamp")
            .field("stamp_version", &self.stamp_version)
            .field("core_version", &self.core_version())
            .field("rustc", &self.rustc())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// Exports a plugin library's registrations to hosts that load it at run time, and
/// submits them to the link-time registry for hosts that link the crate statically.
///
/// Each list holds constant expressions of the matching registration type:
///
/// ```ignore
/// const EXAMPLE: MemTablePlugin = MemTablePlugin { name: "example-btree", description: "...", build };
/// strata_core::declare_plugin! {
///     memtable: [EXAMPLE],
/// }
/// ```
///
/// Lists may be omitted but must come in the order `wal`, `memtable`, `table`,
/// `compaction`. The macro defines two exported symbols — the `#[repr(C)]`
/// [`AbiStamp`] static `STRATA_PLUGIN_ABI` and `extern "C" fn strata_plugin_entry()` —
/// so it may be used once per crate, and two plugin crates that use it cannot both be
/// linked statically into one binary (their symbols would clash): link at most one
/// statically, load the others.
#[macro_export]
macro_rules! declare_plugin {
    (
        $( wal: [ $($wal:expr),* $(,)? ] $(,)? )?
        $( memtable: [ $($mem:expr),* $(,)? ] $(,)? )?
        $( table: [ $($tab:expr),* $(,)? ] $(,)? )?
        $( compaction: [ $($cmp:expr),* $(,)? ] $(,)? )?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Opts {
        size_bytes: u64,
        ratio: f64,
        on: bool,
        name: String,
        limit: Option<u64>,
        mode: Mode,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        level: u32,
    }

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Fast,
        Safe,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts {
                size_bytes: 7,
                ratio: 0.5,
                on: false,
                name: "x".into(),
                limit: Some(3),
                mode: Mode::Fast,
                inner: Inner::default(),
            }
        }
    }

    #[test]
    fn options_parse_with_defaults_and_every_value_type() {
        let empty: Opts = PluginOptions::new().parse().expect("empty options parse");
        assert_eq!(empty, Opts::default());
        let opts = PluginOptions::new()
            .with("size_bytes", OptionValue::Integer(64))
            .with("ratio", OptionValue::Integer(2))
            .with("on", OptionValue::Bool(true))
            .with("name", OptionValue::String("n".into()))
            .with("limit", OptionValue::Integer(9))
            .with("mode", OptionValue::String("safe".into()))
            .with(
                "inner",
                OptionValue::Table([("level".to_owned(), OptionValue::Integer(4))].into()),
            );
        let parsed: Opts = opts.parse().expect("options parse");
        assert_eq!(
            parsed,
            Opts {
                size_bytes: 64,
                ratio: 2.0,
                on: true,
                name: "n".into(),
                limit: Some(9),
                mode: Mode::Safe,
                inner: Inner { level: 4 },
            }
        );
    }

    fn option_error(opts: PluginOptions) -> (String, String) {
        match opts.parse::<Opts>() {
            Err(BuildError::Option { key, message }) => (key, message),
            other => panic!("expected an option error, got {other:?}"),
        }
    }

    #[test]
    fn ill_typed_and_unknown_options_name_their_path() {
        let (key, message) = option_error(
            PluginOptions::new().with("size_bytes", OptionValue::String("big".into())),
        );
        assert_eq!(key, "size_bytes");
        assert!(message.contains("\"big\"") && message.contains("u64"), "{message}");

        let (key, _) = option_error(PluginOptions::new().with(
            "inner",
            OptionValue::Table([("level".to_owned(), OptionValue::Bool(true))].into()),
        ));
        assert_eq!(key, "inner.level");

        let (key, message) =
            option_error(PluginOptions::new().with("sise_bytes", OptionValue::Integer(1)));
        assert!(message.contains("unknown field `sise_bytes`"), "{key}: {message}");

        let (key, message) =
            option_error(PluginOptions::new().with("size_bytes", OptionValue::Integer(-1)));
        assert_eq!(key, "size_bytes");
        assert!(message.contains("-1"), "{message}");

        let (_, message) =
            option_error(PluginOptions::new().with("mode", OptionValue::String("slow".into())));
        assert!(message.contains("unknown variant `slow`"), "{message}");
    }

    #[test]
    fn stamps_compare_part_by_part() {
        let host = AbiStamp::CURRENT;
        assert_eq!(host.check(&host), Ok(()));
        assert_eq!(host.core_version(), env!("CARGO_PKG_VERSION"));
        assert!(host.rustc().starts_with("rustc "), "{}", host.rustc());
        assert!(host.fingerprint().starts_with("strata-abi-1:"), "{}", host.fingerprint());
        let cases = [
            (AbiStamp { stamp_version: 2, ..host }, AbiPart::Stamp),
            (AbiStamp { core_version: AbiStamp::text("0.0.9"), ..host }, AbiPart::CoreVersion),
            (AbiStamp { rustc: AbiStamp::text("rustc 1.0.0"), ..host }, AbiPart::Rustc),
            (AbiStamp { fingerprint: AbiStamp::text("other"), ..host }, AbiPart::Fingerprint),
        ];
        for (library, part) in cases {
            let err = host.check(&library).expect_err("a changed stamp must be refused");
            assert_eq!(err.part, part);
            assert!(err.to_string().contains(&part.to_string()), "{err}");
        }
    }
}
