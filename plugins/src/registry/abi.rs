//! The ABI stamp a plugin library carries, checked before anything in it is called.

use std::fmt;
use std::sync::Arc;

use super::fingerprint::fnv1a;
use super::options::{BuildError, OptionValue, PluginOptions};
use super::{
    CompactionPlugin, FailoverPlugin, MemTablePlugin, PluginDeclaration, TablePlugin, WalPlugin,
};
use strata_core::WalFactory;

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
    /// strata-core's version ([`strata_core::VERSION`]).
    pub core_version: [u8; 32],
    /// `rustc --version` and the target triple of the compiler that built strata-plugins
    /// (and strata-core, in the same build).
    pub rustc: [u8; 128],
    /// [`ABI_FINGERPRINT`]-derived text.
    pub fingerprint: [u8; 64],
}

/// The magic at the start of every [`AbiStamp`].
pub const ABI_MAGIC: [u8; 8] = *b"STRATAPL";
/// The [`AbiStamp`] layout version this crate writes and reads.
pub const ABI_STAMP_VERSION: u32 = 1;

// `ABI_SOURCE_HASH` (and, for tests, `CORE_SRC_DIR`): written by build.rs.
include!(concat!(env!("OUT_DIR"), "/abi_source.rs"));

/// Mixes a size or alignment into a hash.
const fn mix(hash: u64, n: usize) -> u64 {
    fnv1a(hash, &(n as u64).to_le_bytes())
}

/// The fingerprint of a build whose ABI source files hash to `source_hash` (see
/// [`fingerprint`](super::fingerprint)): that hash, the protocol (the allocator loan
/// before the entry point) and the size and alignment of every type that crosses the
/// library boundary by value or behind a pointer the host dereferences (which also
/// catches a changed dependency, `bytes::Bytes` say, whose source is not hashed).
pub const fn fingerprint_of(source_hash: u64) -> u64 {
    use std::mem::{align_of, size_of};
    let mut h = fnv1a(source_hash, b"abi/3;host_allocator before entry");
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
        FailoverPlugin,
        PluginOptions,
        OptionValue,
        BuildError,
        strata_core::Error,
        strata_core::memtable::Entry,
        strata_core::memtable::Lookup,
        strata_core::table::TableMeta,
        strata_core::wal::WalBatch,
        strata_core::wal::WalRecovery,
        strata_core::compaction::LevelsView,
        strata_core::compaction::CompactionTask,
        strata_core::types::SeqNo,
        strata_core::types::ValueKind,
        strata_core::types::Durability,
        bytes::Bytes,
        Arc<dyn WalFactory>,
        std::collections::HashSet<strata_core::table::FileNo>,
    );
    h
}

/// The fingerprint of this build: [`fingerprint_of`] the hash build.rs took of the
/// source files that define the shared traits and types, so that no edit of them ships
/// under an old fingerprint.
pub const ABI_FINGERPRINT: u64 = fingerprint_of(ABI_SOURCE_HASH);

impl AbiStamp {
    /// The stamp of this build (of strata-core and strata-plugins).
    pub const CURRENT: AbiStamp = AbiStamp {
        magic: ABI_MAGIC,
        stamp_version: ABI_STAMP_VERSION,
        core_version: Self::text(strata_core::VERSION),
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

    /// The [`fingerprint`](Self::fingerprint) field for a fingerprint hash:
    /// `strata-abi-1:` and 16 hex digits.
    pub const fn fingerprint_text(hash: u64) -> [u8; 64] {
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
        assert_eq!(host.core_version(), strata_core::VERSION);
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

    fn plugins_src() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn the_stamp_is_derived_from_the_sources_in_the_tree() {
        let core_src = std::path::Path::new(CORE_SRC_DIR);
        let hash = super::super::fingerprint::hash_sources(core_src, &plugins_src())
            .expect("the ABI source files are readable");
        assert_eq!(hash, ABI_SOURCE_HASH, "build.rs hashed other sources than these");
        assert_eq!(
            AbiStamp::CURRENT.fingerprint,
            AbiStamp::fingerprint_text(fingerprint_of(hash)),
            "the stamp carries the fingerprint of the hashed sources"
        );
    }

    /// Copies the ABI source files into a temporary tree, applies `edit` to one of them
    /// and returns the stamp a build of that tree would carry.
    fn stamp_after_edit(name: &str, edit: impl FnOnce(String) -> String) -> AbiStamp {
        use super::super::fingerprint::{abi_files, hash_sources};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (core, plugins) = (tmp.path().join("core"), tmp.path().join("plugins"));
        let originals = abi_files(std::path::Path::new(CORE_SRC_DIR), &plugins_src());
        let mut edit = Some(edit);
        for ((file, from), (_, to)) in originals.iter().zip(abi_files(&core, &plugins)) {
            let text = std::fs::read_to_string(from).expect("read ABI source");
            let text = match edit.take_if(|_| file == name) {
                Some(edit) => edit(text),
                None => text,
            };
            std::fs::create_dir_all(to.parent().expect("a file has a parent")).expect("mkdir");
            std::fs::write(&to, text).expect("write copy");
        }
        assert!(edit.is_none(), "{name} is not one of the ABI source files");
        let hash = hash_sources(&core, &plugins).expect("hash the copy");
        AbiStamp {
            fingerprint: AbiStamp::fingerprint_text(fingerprint_of(hash)),
            ..AbiStamp::CURRENT
        }
    }

    #[test]
    fn editing_a_shared_trait_changes_the_fingerprint() {
        let host = AbiStamp::CURRENT;
        // Unchanged copy: same stamp.
        assert_eq!(host.check(&stamp_after_edit("core/wal.rs", |t| t)), Ok(()));
        // Documentation and layout only: same stamp.
        let doc_only = stamp_after_edit("core/fs/mod.rs", |t| {
            t.replacen("pub trait File", "/// More words.\n\n  pub trait File", 1)
        });
        assert_eq!(host.check(&doc_only), Ok(()));
        // A new method on `File` (which once did not change the hand-written text).
        let new_method = stamp_after_edit("core/fs/mod.rs", |t| {
            let at = t.find("pub trait File").expect("fs/mod.rs defines File");
            let brace = at + t[at..].find('{').expect("the trait has a body");
            format!("{}{{\n    fn extra(&self) -> u64;{}", &t[..brace], &t[brace + 1..])
        });
        let err = host.check(&new_method).expect_err("a new trait method must change the stamp");
        assert_eq!(err.part, AbiPart::Fingerprint);
        // A changed signature in another shared file, and in a registration type.
        for (file, from, to) in [
            (
                "core/memtable.rs",
                "fn memory_bytes(&self) -> usize",
                "fn memory_bytes(&self) -> u64",
            ),
            (
                "plugins/registry/mod.rs",
                "pub description: &'static str,",
                "pub about: &'static str,",
            ),
        ] {
            let stamp = stamp_after_edit(file, |t| {
                assert!(t.contains(from), "{file} no longer contains {from:?}: update this test");
                t.replacen(from, to, 1)
            });
            assert_eq!(host.check(&stamp).map_err(|e| e.part), Err(AbiPart::Fingerprint), "{file}");
        }
    }
}
