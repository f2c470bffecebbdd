//! The truncation marker: how `truncate_after` stays crash-safe.
//!
//! Cutting a log's tail touches several files (later segments are deleted, the holding
//! segment's tail is zeroed, the epoch history is rewritten), and a power loss can stop
//! it between any two of those steps. So the cut is first decided durably: the file
//! `wal_truncate` in the log's directory records the last sequence to keep, and from
//! the moment it exists the log *is* the truncated log. Open honours a marker it finds
//! by reading only up to that sequence (and finishes the cut at the first append); the
//! truncation removes the marker once every step is done. Before the marker exists,
//! nothing has changed.
//!
//! | size | field |
//! |---|---|
//! | 8 | magic `STRATRUN` |
//! | 8 | last sequence kept |
//! | 4 | CRC32 of the 16 bytes before it |

use std::path::{Path, PathBuf};

use strata_core::fs::{FileSystem, OpenMode, read_all};
use strata_core::{Error, Result, SeqNo};

/// Name of the marker file inside the log's directory.
pub const TRUNCATE_FILE: &str = "wal_truncate";
const MAGIC: [u8; 8] = *b"STRATRUN";
const LEN: usize = 20;

/// Path of the marker in `dir`.
pub fn marker_path(dir: &Path) -> PathBuf {
    dir.join(TRUNCATE_FILE)
}

/// Encodes a marker that keeps everything up to `keep`.
pub fn encode(keep: SeqNo) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&keep.0.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a marker's bytes; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<SeqNo> {
    let bad = |offset: u64, why: &str| {
        Error::corruption(
            path,
            offset,
            format!(
                "{why}; the truncation marker is written atomically, so this is damage. It \
                 records an interrupted cut of the log's tail: restore it from a backup, or \
                 re-bootstrap this replica from its primary"
            ),
        )
    };
    if bytes.len() != LEN || bytes[..8] != MAGIC {
        return Err(bad(0, "not a truncation marker (wrong magic or length)"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[16..]);
    if u32::from_le_bytes(crc) != crc32fast::hash(&bytes[..16]) {
        return Err(bad(16, "checksum mismatch"));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..16]);
    Ok(SeqNo(u64::from_le_bytes(seq)))
}

/// The pending truncation of `dir`, if a marker exists.
pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<SeqNo>> {
    let path = marker_path(dir);
    if !fs.exists(&path)? {
        return Ok(None);
    }
    let bytes = read_all(&*fs.open(&path, OpenMode::ReadOnly)?)?;
    decode(&bytes, &path).map(Some)
}

/// Writes the marker durably (temporary file, fsync, rename, directory fsync).
pub fn store(fs: &dyn FileSystem, dir: &Path, keep: SeqNo) -> Result<()> {
    crate::epochs::replace_file(fs, dir, TRUNCATE_FILE, &encode(keep))
}

/// Removes the marker durably: the truncation is complete.
pub fn remove(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let path = marker_path(dir);
    if fs.exists(&path)? {
        fs.remove_file(&path)?;
    }
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flip_or_cut_is_detected() {
        let bytes = encode(SeqNo(4242));
        let p = PathBuf::from(TRUNCATE_FILE);
        assert_eq!(decode(&bytes, &p).expect("valid"), SeqNo(4242));
        for i in 0..bytes.len() {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(decode(&bad, &p).is_err(), "flip at {i} must be detected");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &p).is_err(), "cut at {cut} must be detected");
        }
    }
}
