//! Shared pieces of the process-crash test: the keys and values the crash writer
//! produces, and the expected-state file that records what it had acknowledged.
//!
//! The writer appends one line `writer index` to the expected-state file after each
//! `Sync` write returns; a line therefore proves an acknowledgement. A kill can cut the
//! last line short, so readers ignore a line that does not parse.

use std::collections::BTreeMap;
use std::path::Path;

/// Key of write `index` by writer `writer`.
pub fn item_key(writer: u32, index: u64) -> Vec<u8> {
    format!("item/{writer:04}/{index:012}").into_bytes()
}

/// Key holding the index of the last write by `writer`.
pub fn latest_key(writer: u32) -> Vec<u8> {
    format!("latest/{writer:04}").into_bytes()
}

/// Value of write `index` by `writer`: deterministic, so a reader can check it, and
/// 100–300 bytes long like the exchange workload.
pub fn item_value(seed: u64, writer: u32, index: u64) -> Vec<u8> {
    let mut x = seed ^ (u64::from(writer) << 48) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let len = 100 + (x % 201) as usize;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Parses the expected-state file into the highest acknowledged index per writer.
pub fn read_expected(path: &Path) -> std::io::Result<BTreeMap<u32, u64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut acked = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(w), Some(i), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(w), Ok(i)) = (w.parse::<u32>(), i.parse::<u64>()) else { continue };
        let e = acked.entry(w).or_insert(i);
        *e = (*e).max(i);
    }
    Ok(acked)
}

/// The stack the crash writer runs and the crash test reopens with: 64 KiB memtables,
/// tiny leveled sizes and 16 KiB WAL segments, so kills land in flushes, compactions
/// and manifest writes as well as in WAL appends. Reopening with the same stack matters:
/// a default stack would preallocate a 64 MiB WAL segment that every later writer
/// process must scan at open before it writes anything.
pub fn crash_stack(dir: impl AsRef<Path>) -> strata_core::DbBuilder {
    crate::stack::tiny_builder(dir, strata_core::fs::OsFileSystem::shared(), 64 * 1024, 256 * 1024)
}
