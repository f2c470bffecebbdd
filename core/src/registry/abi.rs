//! The ABI stamp a plugin library carries, checked before anything in it is called.

use std::fmt;
use std::sync::Arc;

use super::options::{BuildError, OptionValue, PluginOptions};
use super::{CompactionPlugin, MemTablePlugin, PluginDeclaration, TablePlugin, WalPlugin};
use crate::wal::WalFactory;

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
const ABI_SIGNATURES: &str = "abi/2;\
    host_allocator:extern C fn(Option<&HostAllocator>)->bool called before entry;\
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

/// Hash of the trait and registration signatures (a constant text next to this item)
/// and of the size and alignment of every type that crosses
/// the library boundary by value or behind a pointer the host dereferences.
pub const ABI_FINGERPRINT: u64 = {
    use std::mem::{align_of, size_of};
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, ABI_SIGNATURES.as_bytes());
    macro_rules! layout {
        ($($t:ty),* $(,)?) => { $( h = mix(mix(h, size_of::<$t>()), align_of::<$t>()); )* };
    }
    layout!(
        PluginDeclaration,
        super::HostAllocator,
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

#[cfg(test)]
mod tests {
    use super::*;

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
