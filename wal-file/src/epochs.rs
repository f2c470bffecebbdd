//! The durable epoch history: which epoch started at which sequence.
//!
//! The file `wal_epochs` in the log's directory holds, oldest first, one entry per epoch
//! that wrote at least one batch:
//!
//! | size | field |
//! |---|---|
//! | 8 | magic `STRATEPO` |
//! | 4 | version (`1`) |
//! | 4 | entry count `n` (at most [`MAX_ENTRIES`]) |
//! | 16 × n | epoch (8), first sequence (8) |
//! | 4 | CRC32 of everything before it |
//!
//! It is replaced atomically (temporary file, fsync, rename, directory fsync) before the
//! first batch of a new epoch is written, so an epoch that reached the log is always in
//! the history and is never handed out again, also after a crash.

use std::path::{Path, PathBuf};

use strata_core::fs::{FileSystem, OpenMode, read_all};
use strata_core::{Epoch, EpochStart, Error, Result, SeqNo};

/// Name of the history file inside the log's directory.
pub const EPOCHS_FILE: &str = "wal_epochs";
const MAGIC: [u8; 8] = *b"STRATEPO";
const VERSION: u32 = 1;
/// Entries kept; older ones are dropped when a new epoch is added.
pub const MAX_ENTRIES: usize = 1024;
const FIXED: usize = 8 + 4 + 4 + 4;

/// Path of the history file in `dir`.
pub fn epochs_path(dir: &Path) -> PathBuf {
    dir.join(EPOCHS_FILE)
}

/// Reads the history of `dir` (empty when the file does not exist).
pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<EpochStart>> {
    let path = epochs_path(dir);
    if !fs.exists(&path)? {
        return Ok(Vec::new());
    }
    let bytes = read_all(&*fs.open(&path, OpenMode::ReadOnly)?)?;
    decode(&bytes, &path)
}

/// Decodes a history file's bytes; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<EpochStart>> {
    let bad = |offset: usize, why: String| {
        Error::corruption(
            path,
            offset as u64,
            format!(
                "{why}; the epoch history is written atomically, so this is damage: restore \
                 it from a backup, or delete it to start a new history (resuming subscribers \
                 then cannot be told about batches a crash rewrote before now)"
            ),
        )
    };
    if bytes.len() < FIXED || bytes[..8] != MAGIC {
        return Err(bad(0, "not an epoch history file (wrong magic or too short)".into()));
    }
    let stored = u32::from_le_bytes(le4(bytes, bytes.len() - 4));
    let actual = crc32fast::hash(&bytes[..bytes.len() - 4]);
    if stored != actual {
        return Err(bad(
            bytes.len() - 4,
            format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    let version = u32::from_le_bytes(le4(bytes, 8));
    if version != VERSION {
        return Err(bad(8, format!("unsupported epoch history version {version}")));
    }
    let count = u32::from_le_bytes(le4(bytes, 12)) as usize;
    if count > MAX_ENTRIES || bytes.len() != FIXED + 16 * count {
        return Err(bad(12, format!("{count} entries do not fit a file of {} bytes", bytes.len())));
    }
    let mut out: Vec<EpochStart> = Vec::with_capacity(count);
    for i in 0..count {
        let at = 16 + 16 * i;
        let epoch = Epoch(u64::from_le_bytes(le8(bytes, at)));
        let first_seq = SeqNo(u64::from_le_bytes(le8(bytes, at + 8)));
        if let Some(prev) = out.last()
            && (epoch <= prev.epoch || first_seq < prev.first_seq)
        {
            return Err(bad(
                at,
                format!(
                    "entry {i} ({epoch} at {first_seq}) does not follow {} at {}",
                    prev.epoch, prev.first_seq
                ),
            ));
        }
        out.push(EpochStart { epoch, first_seq });
    }
    Ok(out)
}

/// Encodes a history (the newest [`MAX_ENTRIES`] entries).
pub fn encode(history: &[EpochStart]) -> Vec<u8> {
    let kept = &history[history.len().saturating_sub(MAX_ENTRIES)..];
    let mut out = Vec::with_capacity(FIXED + 16 * kept.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
    for e in kept {
        out.extend_from_slice(&e.epoch.0.to_le_bytes());
        out.extend_from_slice(&e.first_seq.0.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Replaces the history of `dir` durably.
pub fn store(fs: &dyn FileSystem, dir: &Path, history: &[EpochStart]) -> Result<()> {
    replace_file(fs, dir, EPOCHS_FILE, &encode(history))
}

/// Replaces `dir/name` with `bytes` atomically and durably: a temporary file, fsync,
/// rename, directory fsync. A crash leaves the old file or the new one.
pub(crate) fn replace_file(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    if fs.exists(&tmp)? {
        fs.remove_file(&tmp)?;
    }
    let file = fs.open(&tmp, OpenMode::CreateNew)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)
}

fn le4(b: &[u8], at: usize) -> [u8; 4] {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    a
}

fn le8(b: &[u8], at: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flip_is_detected() {
        let h = vec![
            EpochStart { epoch: Epoch(1), first_seq: SeqNo(1) },
            EpochStart { epoch: Epoch(3), first_seq: SeqNo(100) },
        ];
        let bytes = encode(&h);
        let p = PathBuf::from("wal_epochs");
        assert_eq!(decode(&bytes, &p).expect("valid"), h);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x08;
            assert!(decode(&bad, &p).is_err(), "flip at {i} must be detected");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &p).is_err(), "cut at {cut} must be detected");
        }
    }

    #[test]
    fn only_the_newest_entries_are_kept() {
        let h: Vec<_> = (1..=MAX_ENTRIES as u64 + 5)
            .map(|i| EpochStart { epoch: Epoch(i), first_seq: SeqNo(i * 10) })
            .collect();
        let back = decode(&encode(&h), &PathBuf::from("e")).expect("valid");
        assert_eq!(back.len(), MAX_ENTRIES);
        assert_eq!(back.last(), h.last());
    }
}
