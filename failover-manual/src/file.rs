//! The `AUTHORITY` file: one checksummed authority record, replaced atomically.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"STRAUTH\0"` |
//! | 8 | 4 | format version, little-endian `u32` (1) |
//! | 12 | 4 | payload length in bytes, little-endian `u32` (at most [`MAX_PAYLOAD_BYTES`]) |
//! | 16 | 4 | CRC32 of bytes 8..16 and the payload, little-endian |
//! | 20 | length | payload: the [`AuthorityRecord`] as JSON |
//!
//! The checksum covers the version and the length, so a length is never trusted
//! before its checksum matched (the length is only bounded first). A file that ends
//! early, carries bytes after the payload, fails its checksum or holds a record that
//! breaks its invariants is refused with `Error::Corruption` naming the file and the
//! offset; it is never repaired silently: the file is only ever replaced whole, so any
//! damage is real damage.
//!
//! Replacement: the new bytes go to `AUTHORITY.tmp`, which is synced, renamed over
//! `AUTHORITY`, and the directory is synced. A crash leaves the old or the new record;
//! a leftover `AUTHORITY.tmp` is never read, and the next write removes it.

use std::path::{Path, PathBuf};

use strata_core::fs::{FileSystem, OpenMode, read_all};
use strata_core::{AuthorityRecord, Error, Result};

/// The record's file name.
pub const AUTHORITY_FILE: &str = "AUTHORITY";
/// The temporary file a new record is written to before the rename.
pub const AUTHORITY_TMP_FILE: &str = "AUTHORITY.tmp";
/// The lock file every operation on the record holds, in whatever process: one at a
/// time, so a read never sees a commit half done and a compare-and-set never races.
pub const AUTHORITY_LOCK_FILE: &str = "AUTHORITY.lock";

/// The magic at offset 0.
pub const MAGIC: [u8; 8] = *b"STRAUTH\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest payload accepted: a record is a few hundred bytes, so anything near
/// this is damage, and no allocation is driven by an unchecked length beyond it.
pub const MAX_PAYLOAD_BYTES: u32 = 1 << 20;

const VERSION_AT: usize = MAGIC.len();
const LENGTH_AT: usize = VERSION_AT + size_of::<u32>();
const CRC_AT: usize = LENGTH_AT + size_of::<u32>();
/// Bytes before the payload.
pub const HEADER_BYTES: usize = CRC_AT + size_of::<u32>();

fn crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(VERSION_AT..CRC_AT).unwrap_or_default());
    h.update(payload);
    h.finalize()
}

/// Encodes `record` into the file's bytes.
pub fn encode(record: &AuthorityRecord) -> Result<Vec<u8>> {
    let payload = serde_json::to_vec(record)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode the authority record: {e}")))?;
    let len =
        u32::try_from(payload.len()).ok().filter(|n| *n <= MAX_PAYLOAD_BYTES).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the authority record encodes to {} bytes, over the {MAX_PAYLOAD_BYTES} allowed",
                payload.len()
            ))
        })?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    let sum = crc(&out, &payload);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Decodes the bytes of the file at `file` (named in errors), checking everything.
pub fn decode(file: &Path, bytes: &[u8]) -> Result<AuthorityRecord> {
    let damaged = |offset: usize, reason: String| {
        Error::corruption(
            file,
            offset as u64,
            format!("{reason}; the authority file is replaced whole, so this is damage"),
        )
    };
    if bytes.len() < HEADER_BYTES {
        return Err(damaged(
            bytes.len(),
            format!("truncated: {} bytes, the header alone is {HEADER_BYTES}", bytes.len()),
        ));
    }
    if bytes.get(..VERSION_AT) != Some(&MAGIC[..]) {
        return Err(damaged(0, "bad magic: not an authority record file".into()));
    }
    let version = u32_at(bytes, VERSION_AT);
    let len = u32_at(bytes, LENGTH_AT);
    let stored = u32_at(bytes, CRC_AT);
    if len > MAX_PAYLOAD_BYTES {
        return Err(damaged(
            LENGTH_AT,
            format!("payload length {len} is over the {MAX_PAYLOAD_BYTES} bytes allowed"),
        ));
    }
    let end = HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Err(damaged(
            bytes.len(),
            format!(
                "truncated: the header says {len} payload bytes, the file ends after {}",
                bytes.len() - HEADER_BYTES
            ),
        ));
    }
    if bytes.len() > end {
        return Err(damaged(end, format!("{} bytes after the payload", bytes.len() - end)));
    }
    let payload = bytes.get(HEADER_BYTES..end).unwrap_or_default();
    let computed = crc(bytes, payload);
    if computed != stored {
        return Err(damaged(
            CRC_AT,
            format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    if version != FORMAT_VERSION {
        return Err(damaged(
            VERSION_AT,
            format!("format version {version}; this build reads version {FORMAT_VERSION}"),
        ));
    }
    let record: AuthorityRecord = serde_json::from_slice(payload).map_err(|e| {
        damaged(HEADER_BYTES + e.column().saturating_sub(1), format!("payload does not parse: {e}"))
    })?;
    record
        .validate()
        .map_err(|e| damaged(HEADER_BYTES, format!("the record breaks its invariants: {e}")))?;
    Ok(record)
}

/// The record file's path in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(AUTHORITY_FILE)
}

/// Reads the record in `dir`; `None` when there is none.
pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<AuthorityRecord>> {
    let path = path_in(dir);
    if !fs.exists(&path)? {
        return Ok(None);
    }
    let file = fs.open(&path, OpenMode::ReadOnly)?;
    let bytes = read_all(&*file)?;
    decode(&path, &bytes).map(Some)
}

/// Replaces the record in `dir` durably: temporary file, sync, rename, directory sync.
pub fn store(fs: &dyn FileSystem, dir: &Path, record: &AuthorityRecord) -> Result<()> {
    let bytes = encode(record)?;
    let tmp = dir.join(AUTHORITY_TMP_FILE);
    if fs.exists(&tmp)? {
        fs.remove_file(&tmp)?;
    }
    let file = fs.open(&tmp, OpenMode::CreateNew)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_data()?;
    drop(file);
    // IMPORTANT: the rename is the commit point, and only the directory sync makes it
    // durable; a record is reported committed only after both.
    fs.rename(&tmp, &path_in(dir))?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use strata_core::{Epoch, LeaseSettings, SeqNo};

    use super::*;

    fn record() -> AuthorityRecord {
        let mut r =
            AuthorityRecord::initial(9, "n1", Epoch(4), SeqNo(77), LeaseSettings::default());
        r.in_sync = ["n2".into(), "n3".into()].into();
        r.version = 12;
        r
    }

    fn offset_of(err: &Error) -> u64 {
        match err {
            Error::Corruption { offset, .. } => *offset,
            other => panic!("expected corruption, got {other}"),
        }
    }

    #[test]
    fn records_round_trip() {
        let bytes = encode(&record()).expect("encode");
        assert_eq!(decode(Path::new("A"), &bytes).expect("decode"), record());
    }

    #[test]
    fn every_truncation_is_refused_with_the_offset_where_the_file_ends() {
        let bytes = encode(&record()).expect("encode");
        for cut in 0..bytes.len() {
            let err = decode(Path::new("AUTHORITY"), &bytes[..cut]).expect_err("truncated");
            assert_eq!(offset_of(&err), cut as u64, "cut at {cut}: {err}");
            assert!(err.to_string().contains("AUTHORITY"), "{err}");
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = encode(&record()).expect("encode");
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let err = decode(Path::new("AUTHORITY"), &bad).expect_err("flipped");
            assert!(err.is_corruption(), "byte {at}: {err}");
        }
    }

    #[test]
    fn trailing_bytes_and_huge_lengths_are_damage() {
        let mut bytes = encode(&record()).expect("encode");
        let end = bytes.len();
        bytes.push(0);
        assert_eq!(offset_of(&decode(Path::new("A"), &bytes).expect_err("trailing")), end as u64);
        let mut huge = encode(&record()).expect("encode");
        huge[LENGTH_AT..CRC_AT].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(offset_of(&decode(Path::new("A"), &huge).expect_err("huge")), LENGTH_AT as u64);
    }
}
