//! The source half of the ABI fingerprint: a hash of the text of every file that
//! defines a type or trait crossing the plugin library boundary.
//!
//! This file is compiled twice: by `plugins/build.rs` (`#[path]` module), which hashes
//! the files of the strata-core and strata-plugins being built and hands the result to
//! the crate as `ABI_SOURCE_HASH`, and into the crate itself, where its tests check that
//! an edit of a shared trait changes the hash and that the hash compiled into
//! [`AbiStamp::CURRENT`](super::AbiStamp::CURRENT) is the one of the sources in the
//! tree. It uses `std` only.
//!
//! Lines that hold nothing but a comment (`//`, `///`, `//!`) and blank lines are left
//! out, and every line is trimmed, so that documentation and formatting edits keep the
//! fingerprint; every other edit of these files changes it, whether or not it changes
//! the ABI (a new fingerprint only asks for plugins to be rebuilt).

use std::io;
use std::path::Path;

/// The files of strata-core (relative to its `src/`) whose definitions cross the
/// library boundary: the component traits and their factories (the failover policy's
/// included), the `FileSystem`
/// and `File` seam handed to them, the error, the shared types, and the batch
/// encoding a WAL stores.
pub const CORE_ABI_FILES: &[&str] = &[
    "batch.rs",
    "compaction.rs",
    "error.rs",
    "failover/decide.rs",
    "failover/lease.rs",
    "failover/mod.rs",
    "failover/node.rs",
    "failover/record.rs",
    "fs/mod.rs",
    "memtable.rs",
    "table.rs",
    "types.rs",
    "wal.rs",
];

/// The files of strata-plugins (relative to its `src/`) that define what a library
/// exports: the registration structs and declaration, the options, the allocator loan.
pub const PLUGIN_ABI_FILES: &[&str] =
    &["registry/mod.rs", "registry/options.rs", "registry/host_alloc.rs"];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash`.
pub const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The text that is hashed: every line trimmed, without blank and comment-only lines.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The hash of named source texts, in the order given: each file's name, the length of
/// its normalized text and that text.
pub fn hash_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut hash = FNV_OFFSET;
    for (name, text) in files {
        let text = normalize(text);
        hash = fnv1a(hash, name.as_bytes());
        hash = fnv1a(hash, &(text.len() as u64).to_le_bytes());
        hash = fnv1a(hash, text.as_bytes());
    }
    hash
}

/// Every file the fingerprint covers, as `(name, path)`: [`CORE_ABI_FILES`] under
/// `core_src` (named `core/…`), then [`PLUGIN_ABI_FILES`] under `plugins_src`
/// (named `plugins/…`).
pub fn abi_files(core_src: &Path, plugins_src: &Path) -> Vec<(String, std::path::PathBuf)> {
    let core = CORE_ABI_FILES.iter().map(|f| (format!("core/{f}"), core_src.join(f)));
    let plugins = PLUGIN_ABI_FILES.iter().map(|f| (format!("plugins/{f}"), plugins_src.join(f)));
    core.chain(plugins).collect()
}

/// Reads every file of [`abi_files`] and hashes them with [`hash_texts`]. An error
/// names the file that could not be read.
pub fn hash_sources(core_src: &Path, plugins_src: &Path) -> io::Result<u64> {
    let mut texts = Vec::new();
    for (name, path) in abi_files(core_src, plugins_src) {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("reading {} for the ABI fingerprint: {e}", path.display()),
            )
        })?;
        texts.push((name, text));
    }
    Ok(hash_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))))
}
