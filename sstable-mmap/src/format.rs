//! The on-disk format of a table file.
//!
//! All integers are little endian. A table is written front to back in one pass and
//! never modified afterwards:
//!
//! ```text
//! [data block 0] [data block 1] ... [data block n-1] [index] [filter] [meta] [footer]
//! ```
//!
//! The data blocks cover `0..index offset` without gaps, and the three sections follow
//! each other without gaps up to the footer; the reader checks both, so a damaged
//! offset cannot point it at the wrong bytes.
//!
//! # Footer (last [`FOOTER_LEN`] = 64 bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | index section offset |
//! | 8 | 8 | index section length |
//! | 16 | 8 | filter section offset |
//! | 24 | 8 | filter section length |
//! | 32 | 8 | meta section offset |
//! | 40 | 8 | meta section length |
//! | 48 | 4 | format version ([`VERSION`]) |
//! | 52 | 4 | CRC32 of bytes 0..52 |
//! | 56 | 8 | magic `STRATSST` ([`MAGIC`]) |
//!
//! The magic sits at the very end so a truncated file reads as "wrong magic".
//!
//! # Data block
//!
//! | size | field |
//! |---|---|
//! | s | payload as stored (raw, or LZ4-compressed raw payload) |
//! | 4 | length of the raw payload (bounded by [`MAX_RAW_BLOCK_LEN`]) |
//! | 1 | compression (`0` none, `1` LZ4 block format) |
//! | 4 | CRC32 over the stored payload, the raw length and the compression byte |
//!
//! A raw payload holds entries back to back, in strictly increasing internal-key order
//! (user key ascending, sequence descending), followed by the restart array:
//!
//! | size | field |
//! |---|---|
//! | 1–3 | key length `k` (LEB128 varint, at most [`MAX_KEY_LEN`]) |
//! | 1–4 | value length `v` (LEB128 varint, at most [`MAX_VALUE_LEN`]) |
//! | 1 | kind (`0` delete, `1` put; [`strata_core::ValueKind`]) |
//! | 8 | sequence |
//! | k | user key |
//! | v | value |
//!
//! then `4 × r` bytes of restart offsets (the payload offset of every
//! [`RESTART_INTERVAL`]-th entry, starting with entry 0) and `4` bytes holding `r`.
//!
//! Keys are stored whole, not prefix-compressed: a reader then hands out keys *and*
//! values as zero-copy slices of the mapped file, and the restarts only serve binary
//! search inside the block. Shared key prefixes are what LZ4 removes when it is on.
//!
//! A block holds roughly `block_size` bytes; an entry larger than that gets a block of
//! its own.
//!
//! # Sections (index, filter, meta)
//!
//! | size | field |
//! |---|---|
//! | 4 | tag: `SIDX`, `SBLM` or `SMET` |
//! | n | body |
//! | 4 | CRC32 over the tag and the body |
//!
//! **Index body** — one entry per data block, in file order:
//!
//! | size | field |
//! |---|---|
//! | 4 | block count |
//! | per block: 8 | block offset |
//! | 4 | block length on disk (payload + trailer) |
//! | 8 | sequence of the block's last entry |
//! | 4 | length `k` of the block's last user key |
//! | k | the block's last user key |
//!
//! The last internal key of each block is what lookups binary-search: the first block
//! whose last key is `>=` the sought `(key, snapshot)` holds the answer, even when the
//! versions of one user key span several blocks.
//!
//! **Filter body** — a bloom filter over the distinct user keys ([`crate::bloom`]):
//! `4` bytes hash count (`0` = no filter, every key may be present), then the bit array
//! (bit `i` is bit `i % 8` of byte `i / 8`).
//!
//! **Meta body**:
//!
//! | size | field |
//! |---|---|
//! | 8 | entries (versions, tombstones included) |
//! | 8 | tombstones |
//! | 8 | smallest sequence |
//! | 8 | greatest sequence |
//! | 8 | data block count |
//! | 8 | distinct user keys |
//! | 8 | file number the builder was given |
//! | 4 | block size the builder was configured with |
//! | 1 | compression the builder was configured with |
//! | 3 | reserved, zero |
//! | 4 + k | smallest user key (length, bytes) |
//! | 4 + k | largest user key (length, bytes) |
//!
//! Every length read from a file is checked against the bytes that are actually there
//! (and against the limits above) before it is used, and a checksum is verified before
//! anything it covers is interpreted.

use std::ops::Range;
use std::path::Path;

use strata_core::batch::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use strata_core::{Error, Result};

/// Magic bytes at the end of every table file.
pub const MAGIC: [u8; 8] = *b"STRATSST";
/// Current format version.
pub const VERSION: u32 = 1;
/// Size of the footer.
pub const FOOTER_LEN: usize = 64;
const FOOTER_VERSION_AT: usize = 48;
const FOOTER_CRC_AT: usize = 52;
const FOOTER_MAGIC_AT: usize = 56;

/// Size of a data block's trailer (raw length, compression, CRC32).
pub const BLOCK_TRAILER_LEN: usize = 9;
/// Every this many entries a block records a restart offset.
pub const RESTART_INTERVAL: usize = 16;
/// Largest user key a table accepts.
pub const MAX_KEY_LEN: usize = MAX_KEY_BYTES;
/// Largest value a table accepts.
pub const MAX_VALUE_LEN: usize = MAX_VALUE_BYTES;
/// Largest `block_size` option accepted.
pub const MAX_BLOCK_SIZE: usize = 16 * 1024 * 1024;
/// Fixed bytes of an entry besides its varint lengths: kind and sequence.
pub const ENTRY_FIXED_LEN: usize = 9;
/// Largest raw block payload a reader accepts (and so the largest buffer a damaged or
/// hostile file can make it allocate for decompression): one maximal entry alone in a
/// block, or a full block of the largest configurable size, plus its restart array.
pub const MAX_RAW_BLOCK_LEN: usize = {
    let entry = MAX_KEY_LEN + MAX_VALUE_LEN + ENTRY_FIXED_LEN + 3 + 4 + 8;
    let full = MAX_BLOCK_SIZE + 8;
    if entry > full { entry } else { full }
};
/// Largest data block on disk (raw payload, or its LZ4 form which can be slightly
/// larger, plus the trailer); blocks whose LZ4 form is not smaller are stored raw.
pub const MAX_STORED_BLOCK_LEN: usize = MAX_RAW_BLOCK_LEN + BLOCK_TRAILER_LEN;

/// Tag of the index section.
pub const INDEX_TAG: [u8; 4] = *b"SIDX";
/// Tag of the filter section.
pub const FILTER_TAG: [u8; 4] = *b"SBLM";
/// Tag of the meta section.
pub const META_TAG: [u8; 4] = *b"SMET";
/// Tag + CRC around every section body.
pub const SECTION_OVERHEAD: usize = 8;
/// Fixed bytes of an index entry besides its key.
pub const INDEX_ENTRY_FIXED_LEN: usize = 24;
/// Fixed bytes of the meta body besides the two keys.
pub const META_FIXED_LEN: usize = 64;

/// Where a section lies in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectionHandle {
    /// Offset of the section's tag.
    pub offset: u64,
    /// Length of tag + body + CRC.
    pub len: u64,
}

/// The decoded footer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footer {
    /// The index section.
    pub index: SectionHandle,
    /// The filter section.
    pub filter: SectionHandle,
    /// The meta section.
    pub meta: SectionHandle,
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut f = [0u8; FOOTER_LEN];
        let fields = [
            self.index.offset,
            self.index.len,
            self.filter.offset,
            self.filter.len,
            self.meta.offset,
            self.meta.len,
        ];
        for (slot, v) in f.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        f[FOOTER_VERSION_AT..FOOTER_CRC_AT].copy_from_slice(&VERSION.to_le_bytes());
        let crc = crc32fast::hash(&f[..FOOTER_CRC_AT]);
        f[FOOTER_CRC_AT..FOOTER_MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
        f[FOOTER_MAGIC_AT..].copy_from_slice(&MAGIC);
        f
    }

    /// Decodes and checks the footer at the end of `file_bytes`, and checks that the
    /// sections it names tile the file between the data blocks and the footer.
    pub fn decode(path: &Path, file_bytes: &[u8]) -> Result<Footer> {
        let len = file_bytes.len();
        let Some(at) = len.checked_sub(FOOTER_LEN) else {
            return Err(Error::corruption(
                path,
                0,
                format!("file of {len} bytes is shorter than the {FOOTER_LEN}-byte table footer"),
            ));
        };
        let f = file_bytes.get(at..).unwrap_or_default();
        let at64 = at as u64;
        if f.get(FOOTER_MAGIC_AT..) != Some(&MAGIC[..]) {
            return Err(Error::corruption(
                path,
                at64 + FOOTER_MAGIC_AT as u64,
                format!(
                    "wrong magic: expected {:?}, found {:?} (not a strata table, or truncated)",
                    String::from_utf8_lossy(&MAGIC),
                    String::from_utf8_lossy(f.get(FOOTER_MAGIC_AT..).unwrap_or_default()),
                ),
            ));
        }
        let stored = read_u32(f, FOOTER_CRC_AT);
        let actual = crc32fast::hash(f.get(..FOOTER_CRC_AT).unwrap_or_default());
        if stored != actual {
            return Err(Error::corruption(
                path,
                at64 + FOOTER_CRC_AT as u64,
                format!("footer checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
            ));
        }
        let version = read_u32(f, FOOTER_VERSION_AT);
        if version != VERSION {
            return Err(Error::corruption(
                path,
                at64 + FOOTER_VERSION_AT as u64,
                format!("unsupported table format version {version} (this build reads {VERSION})"),
            ));
        }
        let h =
            |i: usize| SectionHandle { offset: read_u64(f, i * 16), len: read_u64(f, i * 16 + 8) };
        let footer = Footer { index: h(0), filter: h(1), meta: h(2) };
        // The sections must tile [index offset, footer) exactly, in this order.
        let tiles = [
            ("index", footer.index, footer.filter.offset),
            ("filter", footer.filter, footer.meta.offset),
            ("meta", footer.meta, at64),
        ];
        for (name, handle, next) in tiles {
            if handle.offset.checked_add(handle.len) != Some(next)
                || handle.len < SECTION_OVERHEAD as u64
                || next > at64
            {
                return Err(Error::corruption(
                    path,
                    at64,
                    format!(
                        "footer places the {name} section at {}+{} bytes, which does not end at \
                         {next} (file of {len} bytes, footer at {at})",
                        handle.offset, handle.len
                    ),
                ));
            }
        }
        Ok(footer)
    }
}

/// Appends a section (tag, body written by `body`, CRC) to `out` and returns its handle,
/// `base` being the file offset at which `out` starts.
pub fn encode_section(
    out: &mut Vec<u8>,
    base: u64,
    tag: [u8; 4],
    body: impl FnOnce(&mut Vec<u8>),
) -> SectionHandle {
    let start = out.len();
    out.extend_from_slice(&tag);
    body(out);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    SectionHandle { offset: base + start as u64, len: (out.len() - start) as u64 }
}

/// Checks a section's bounds, tag and CRC and returns the byte range of its body.
pub fn section_body(
    path: &Path,
    file_bytes: &[u8],
    handle: SectionHandle,
    tag: [u8; 4],
) -> Result<Range<usize>> {
    let name = String::from_utf8_lossy(&tag).into_owned();
    let range = usize::try_from(handle.offset)
        .ok()
        .zip(usize::try_from(handle.len).ok())
        .and_then(|(o, l)| Some(o..o.checked_add(l)?))
        .filter(|r| r.len() >= SECTION_OVERHEAD);
    let Some(bytes) = range.clone().and_then(|r| file_bytes.get(r)) else {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!(
                "{name} section of {} bytes at {} lies outside the file of {} bytes",
                handle.len,
                handle.offset,
                file_bytes.len()
            ),
        ));
    };
    let (covered, crc) = bytes.split_at(bytes.len() - 4);
    let stored = read_u32(crc, 0);
    let actual = crc32fast::hash(covered);
    if stored != actual {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!(
                "{name} section checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ),
        ));
    }
    if covered.get(..4) != Some(&tag[..]) {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!(
                "section tag mismatch: expected {name:?}, found {:?}",
                String::from_utf8_lossy(covered.get(..4).unwrap_or_default())
            ),
        ));
    }
    let start = range.map_or(0, |r| r.start);
    Ok(start + 4..start + bytes.len() - 4)
}

/// Appends `v` as a LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint` takes for `v`.
#[inline]
pub const fn varint_len(v: u32) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

/// Decodes a LEB128 varint at `pos`; returns the value and the position after it.
#[inline]
pub fn get_varint(buf: &[u8], mut pos: usize) -> Option<(u32, usize)> {
    let mut v = 0u32;
    for shift in [0, 7, 14, 21, 28] {
        let b = *buf.get(pos)?;
        pos += 1;
        if shift == 28 && b > 0x0f {
            return None; // more than 32 bits
        }
        v |= u32::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some((v, pos));
        }
    }
    None
}

/// Reads a little-endian u32 at `at` (zero if out of bounds; callers check bounds).
#[inline]
pub fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `at` (zero if out of bounds; callers check bounds).
#[inline]
pub fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn footer() -> Footer {
        Footer {
            index: SectionHandle { offset: 100, len: 20 },
            filter: SectionHandle { offset: 120, len: 30 },
            meta: SectionHandle { offset: 150, len: 50 },
        }
    }

    #[test]
    fn footer_round_trips_and_every_flip_is_detected() {
        let p = PathBuf::from("t.sst");
        let mut file = vec![0u8; 200];
        file.extend_from_slice(&footer().encode());
        assert_eq!(Footer::decode(&p, &file).expect("valid"), footer());
        for i in 200..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            let err = Footer::decode(&p, &bad).expect_err("flip must be detected");
            assert!(err.is_corruption(), "flip at {i}: {err}");
        }
    }

    #[test]
    fn footer_rejects_sections_that_do_not_tile_the_file() {
        let p = PathBuf::from("t.sst");
        let mut f = footer();
        f.meta.len = 49;
        let mut file = vec![0u8; 200];
        file.extend_from_slice(&f.encode());
        assert!(Footer::decode(&p, &file).expect_err("gap").is_corruption());
        let short = &file[..FOOTER_LEN - 1];
        assert!(Footer::decode(&p, short).expect_err("short").is_corruption());
    }

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 65_536, 64 << 20, u32::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b, 0), Some((v, b.len())));
            assert_eq!(get_varint(&b[..b.len() - 1], 0), None);
        }
        assert_eq!(get_varint(&[0xff; 6], 0), None);
    }

    #[test]
    fn section_checks_tag_and_crc() {
        let p = PathBuf::from("t.sst");
        let mut out = vec![7u8; 3];
        let h = encode_section(&mut out, 0, META_TAG, |b| b.extend_from_slice(b"hello"));
        assert_eq!(h, SectionHandle { offset: 3, len: 13 });
        assert_eq!(section_body(&p, &out, h, META_TAG).expect("valid"), 7..12);
        assert!(section_body(&p, &out, h, INDEX_TAG).is_err());
        let mut bad = out.clone();
        bad[9] ^= 1;
        assert!(section_body(&p, &bad, h, META_TAG).is_err());
        let far = SectionHandle { offset: u64::MAX - 2, len: 13 };
        assert!(section_body(&p, &out, far, META_TAG).is_err());
    }
}
