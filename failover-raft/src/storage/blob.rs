//! Small whole files (the vote/commit metadata and the snapshot), each replaced
//! atomically and checked with a CRC.
//!
//! | size | field |
//! |---|---|
//! | 8 | magic (one per file kind) |
//! | 4 | format version (`1`), little endian |
//! | 4 | body length `n` (at most [`MAX_BLOB_BODY`]) |
//! | n | body (JSON) |
//! | 4 | CRC32 of everything before it |
//!
//! A blob is only ever replaced whole (temporary file, fsync, rename, directory fsync),
//! so a crash leaves the old file or the new one and a mismatch is always damage.

use std::path::Path;

use strata_core::fs::{FileSystem, OpenMode, read_all};
use strata_core::{Error, Result};

const VERSION: u32 = 1;
const FIXED: usize = 8 + 4 + 4 + 4;
/// Largest blob body accepted, so a damaged length never drives a large allocation.
pub const MAX_BLOB_BODY: usize = 64 << 20;

/// Frames `body` as a blob with `magic`.
pub fn encode(magic: &[u8; 8], body: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(body.len()).ok().filter(|n| *n as usize <= MAX_BLOB_BODY).ok_or_else(
        || {
            Error::InvalidArgument(format!(
                "raft metadata of {} bytes exceeds the maximum of {MAX_BLOB_BODY}",
                body.len()
            ))
        },
    )?;
    let mut out = Vec::with_capacity(FIXED + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks a blob's framing and returns its body; `path` names the file in errors.
pub fn decode<'a>(magic: &[u8; 8], bytes: &'a [u8], path: &Path) -> Result<&'a [u8]> {
    let bad = |offset: usize, why: String| Error::corruption(path, offset as u64, why);
    if bytes.len() < FIXED || bytes.get(..8) != Some(magic.as_slice()) {
        return Err(bad(0, "wrong magic or too short for a raft metadata file".into()));
    }
    let crc_at = bytes.len() - 4;
    let stored = u32::from_le_bytes(le4(bytes, crc_at));
    let actual = crc32fast::hash(bytes.get(..crc_at).unwrap_or_default());
    if stored != actual {
        return Err(bad(
            crc_at,
            format!(
                "checksum mismatch: stored {stored:#010x}, computed {actual:#010x} (this file \
                 is replaced atomically, so this is damage, not a torn write)"
            ),
        ));
    }
    let version = u32::from_le_bytes(le4(bytes, 8));
    if version != VERSION {
        return Err(bad(8, format!("unsupported format version {version}")));
    }
    let len = u32::from_le_bytes(le4(bytes, 12)) as usize;
    if len > MAX_BLOB_BODY || FIXED + len != bytes.len() {
        return Err(bad(
            12,
            format!("body length {len} does not fit a file of {} bytes", bytes.len()),
        ));
    }
    Ok(bytes.get(16..16 + len).unwrap_or_default())
}

/// Reads and checks the blob at `path`, or `None` when the file does not exist.
pub fn load(fs: &dyn FileSystem, path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>> {
    if !fs.exists(path)? {
        return Ok(None);
    }
    let bytes = read_all(&*fs.open(path, OpenMode::ReadOnly)?)?;
    decode(magic, &bytes, path).map(|b| Some(b.to_vec()))
}

/// Replaces `dir/name` with `bytes` atomically and durably: a temporary file, fsync,
/// rename, directory fsync. A crash leaves the old file or the new one.
pub fn replace_file(fs: &dyn FileSystem, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
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

/// Reads a little-endian `u32` at `at` (zero when out of range; callers check lengths).
pub fn le4(b: &[u8], at: usize) -> [u8; 4] {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flip_or_cut_is_detected() {
        let magic = *b"STRATTST";
        let bytes = encode(&magic, b"{\"a\":1}").expect("encodes");
        let p = Path::new("blob");
        assert_eq!(decode(&magic, &bytes, p).expect("valid"), b"{\"a\":1}");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&magic, &bad, p).is_err(), "flip at {i} must be detected");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&magic, &bytes[..cut], p).is_err(), "cut at {cut} must be detected");
        }
    }
}
