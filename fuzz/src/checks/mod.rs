//! The bodies of Strata's fuzz targets, shared by two callers:
//!
//! - `fuzz/fuzz_targets/*.rs` (libFuzzer, through `fuzz/src/lib.rs`), and
//! - `harness/tests/fuzz_regressions.rs` (plain `cargo test` on stable), which replays
//!   every saved regression input and a few thousand seeded inputs per target.
//!
//! Both compile this module tree from its files (`fuzz/src/lib.rs` as `mod checks`, the
//! regression test through `#[path]`), so it names only crates that both the fuzz crate
//! and `strata-harness` depend on. One file per target; this one holds what they share.
//!
//! Every target feeds bytes from outside (a file, a shared-memory message) to a decoder
//! and asserts the contract of DESIGN.md §5: the decoder returns an error (for files,
//! `Error::Corruption` naming a file of the store and an offset) or data that is valid
//! by the format's own rules. A panic, an arithmetic overflow (the fuzz profile and
//! debug tests keep overflow checks on) or an allocation driven by an unchecked length
//! (libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb`) is a bug in the decoder.
//!
//! Checksums stop a fuzzer at the first CRC, so most targets read a flags byte first
//! that can ask the target to *repair* the checksums (and magic numbers) of the bytes it
//! was given before decoding them: the decoders are then exercised on well-framed but
//! arbitrary content, which is what a bug in a writer, or a hostile file, would produce.

mod bloom_filter;
mod exchange_message;
mod manifest_edit;
mod sstable;
mod sstable_mutate;
mod wal_record;
mod write_batch;

use std::path::Path;

use strata_core::Error;
use strata_core::batch::WriteBatch;

pub use bloom_filter::bloom_filter;
pub use exchange_message::exchange_message;
pub use manifest_edit::manifest_edit;
pub use sstable::sstable;
pub use sstable_mutate::sstable_mutate;
pub use wal_record::wal_record;
pub use write_batch::write_batch;

use exchange_message::exchange_seeds;
use manifest_edit::manifest_seeds;
use sstable::table_seeds;
use wal_record::wal_seeds;
use write_batch::batch_seeds;

/// A fuzz target: its name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target: its name (the directory under `fuzz/regressions/`) and its body.
pub const TARGETS: &[Target] = &[
    ("wal_record", wal_record),
    ("write_batch", write_batch),
    ("manifest_edit", manifest_edit),
    ("sstable", sstable),
    ("sstable_mutate", sstable_mutate),
    ("bloom_filter", bloom_filter),
    ("exchange_message", exchange_message),
];

/// Most batches, records, edits or entries a target walks through, so a long input
/// cannot turn one execution into a slow one.
pub(crate) const MAX_STEPS: usize = 4096;

/// Reads fuzzer bytes as little-endian numbers; once the input runs out every read
/// yields zeros, so any input is a valid description.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes as a little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Asserts that `err` is `Error::Corruption` naming a file at or under `within`, and
/// returns its offset.
pub(crate) fn expect_corruption(err: &Error, within: &Path, what: &str) -> u64 {
    match err {
        Error::Corruption { file, offset, reason } => {
            assert!(
                file.starts_with(within),
                "{what}: corruption names {} instead of a file under {}",
                file.display(),
                within.display()
            );
            assert!(!reason.is_empty(), "{what}: corruption without a reason");
            *offset
        }
        other => panic!("{what}: expected Error::Corruption, got {other:?}"),
    }
}

/// CRC-32 (IEEE, reflected), the checksum of every Strata file format; computed here so
/// the regression test needs no dependency that `strata-harness` lacks.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// An incremental CRC-32, for checksums that cover non-adjacent bytes.
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(crate) fn new() -> Self {
        Self(!0)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    pub(crate) fn finalize(self) -> u32 {
        !self.0
    }
}

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut h = Crc32::new();
    h.update(bytes);
    h.finalize()
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at.saturating_add(4)) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at.saturating_add(8)) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at.saturating_add(4)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Valid (or nearly valid) inputs for `target`: the starting corpus for libFuzzer and
/// the inputs the regression test mutates.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "wal_record" => wal_seeds(),
        "write_batch" => batch_seeds(),
        "manifest_edit" => manifest_seeds(),
        "sstable" => table_seeds(),
        "sstable_mutate" => vec![vec![0, 20, 1, 2, 3, 4, 5], vec![0x13, 40, 9, 9, 9], vec![1; 64]],
        "bloom_filter" => {
            vec![vec![10, 3, 1, b'a', 1, b'b', 2, b'c', b'd', 7, 0, 0, 0, 0xff, 0x0f]]
        }
        "exchange_message" => exchange_seeds(),
        _ => Vec::new(),
    }
}

pub(crate) fn sample_batch(i: u8) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put([b'k', i], [b'v'; 3]).delete([b'd', i]).put(b"key", b"");
    b
}
