//! The on-disk format of WAL segments.
//!
//! A segment is named `wal_{start_seq:020}.log` and starts with a 32-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `STRATWAL` |
//! | 8 | 4 | format version (`1`), little endian |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | start sequence (first sequence of the first record) |
//! | 24 | 4 | reserved, zero |
//! | 28 | 4 | CRC32 of bytes 0..28 |
//!
//! Records follow back to back:
//!
//! | size | field |
//! |---|---|
//! | 4 | body length `n` |
//! | 4 | CRC32 over the 4 length bytes and the body |
//! | n | body: first sequence (8), operation count (4), encoded batch (`n - 12`) |
//!
//! A length of zero marks the end of the written data (segments are preallocated with
//! zeros). The length is never trusted before its checksum: a record is read only when
//! its whole extent lies inside the file and its CRC matches.

use std::path::Path;

use strata_core::{Error, Result, SeqNo};

/// Magic bytes at the start of every segment.
pub const MAGIC: [u8; 8] = *b"STRATWAL";
/// Current format version.
pub const VERSION: u32 = 1;
/// Size of the segment header.
pub const HEADER_LEN: usize = 32;
const HEADER_CRC_AT: usize = 28;
/// Size of a record's length + CRC prefix.
pub const RECORD_PREFIX_LEN: usize = 8;
/// Size of the sequence + count fields at the start of a record body.
pub const BODY_PREFIX_LEN: usize = 12;
/// Largest record body accepted, in bytes; anything larger is treated as damage, so a
/// corrupt length can never drive a large allocation.
pub const MAX_BODY_LEN: usize = strata_core::batch::MAX_BATCH_BYTES + BODY_PREFIX_LEN;

/// File name of the segment starting at `start`.
pub fn segment_file_name(start: SeqNo) -> String {
    format!("wal_{:020}.log", start.0)
}

/// Parses a segment file name back into its start sequence.
pub fn parse_segment_file_name(name: &str) -> Option<SeqNo> {
    let digits = name.strip_prefix("wal_")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Sequences start at 1: a segment cannot start at 0.
    digits.parse().ok().filter(|s| *s > 0).map(SeqNo)
}

/// Encodes a segment header.
pub fn encode_header(start: SeqNo) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&start.0.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_CRC_AT]);
    h[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes and checks a segment header; `file` names the segment in errors.
pub fn decode_header(bytes: &[u8], file: &Path) -> Result<SeqNo> {
    let Some(h) = bytes.get(..HEADER_LEN) else {
        return Err(Error::corruption(
            file,
            0,
            format!("segment header needs {HEADER_LEN} bytes, file has {}", bytes.len()),
        ));
    };
    if h[0..8] != MAGIC {
        return Err(Error::corruption(
            file,
            0,
            format!("wrong magic: expected {:?}, found {:?}", MAGIC, &h[0..8]),
        ));
    }
    let stored = read_u32(h, HEADER_CRC_AT);
    let actual = crc32fast::hash(&h[..HEADER_CRC_AT]);
    if stored != actual {
        return Err(Error::corruption(
            file,
            HEADER_CRC_AT as u64,
            format!("header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    let version = read_u32(h, 8);
    if version != VERSION {
        return Err(Error::corruption(
            file,
            8,
            format!("unsupported WAL format version {version} (this build reads {VERSION})"),
        ));
    }
    let start = read_u64(h, 16);
    if start == 0 {
        return Err(Error::corruption(file, 16, "segment header says it starts at sequence 0"));
    }
    Ok(SeqNo(start))
}

/// Appends one record (prefix + body) for a batch to `out`.
pub fn encode_record(out: &mut Vec<u8>, first: SeqNo, count: u32, payload: &[u8]) {
    let body_len = BODY_PREFIX_LEN + payload.len();
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&first.0.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(payload);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(&out[start + RECORD_PREFIX_LEN..]);
    let crc = hasher.finalize().to_le_bytes();
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// Outcome of decoding the record that starts at some offset of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordAt<'a> {
    /// A valid record: its first sequence, count, payload and total size in bytes.
    Valid {
        /// Sequence of the first operation.
        first: SeqNo,
        /// Number of operations.
        count: u32,
        /// The encoded batch.
        payload: &'a [u8],
        /// Prefix + body length.
        size: usize,
    },
    /// A zero length field: the end of written data.
    End,
    /// Fewer bytes remain than the record (or its prefix) needs.
    Incomplete,
    /// The record is damaged; the reason says how.
    Damaged(String),
}

/// Decodes the record at the start of `buf`.
pub fn decode_record(buf: &[u8]) -> RecordAt<'_> {
    let Some(prefix) = buf.get(..RECORD_PREFIX_LEN) else {
        return if buf.iter().all(|b| *b == 0) { RecordAt::End } else { RecordAt::Incomplete };
    };
    let len = read_u32(prefix, 0) as usize;
    let stored_crc = read_u32(prefix, 4);
    if len == 0 {
        return if stored_crc == 0 {
            RecordAt::End
        } else {
            RecordAt::Damaged("zero length with a non-zero checksum".into())
        };
    }
    if !(BODY_PREFIX_LEN..=MAX_BODY_LEN).contains(&len) {
        return RecordAt::Damaged(format!(
            "record length {len} outside the valid range {BODY_PREFIX_LEN}..={MAX_BODY_LEN}"
        ));
    }
    let Some(body) = buf.get(RECORD_PREFIX_LEN..RECORD_PREFIX_LEN + len) else {
        return RecordAt::Incomplete;
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&prefix[0..4]);
    hasher.update(body);
    let actual = hasher.finalize();
    if actual != stored_crc {
        return RecordAt::Damaged(format!(
            "record checksum mismatch: stored {stored_crc:#010x}, computed {actual:#010x}"
        ));
    }
    let first = SeqNo(read_u64(body, 0));
    let count = read_u32(body, 8);
    if count == 0 {
        return RecordAt::Damaged("record holds zero operations".into());
    }
    // The sequence after the record must exist: readers compute it.
    if first.0 == 0 || first.0.checked_add(u64::from(count)).is_none() {
        return RecordAt::Damaged(format!("record sequences {first} + {count} are out of range"));
    }
    RecordAt::Valid {
        first,
        count,
        payload: body.get(BODY_PREFIX_LEN..).unwrap_or_default(),
        size: RECORD_PREFIX_LEN + len,
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
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

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(segment_file_name(SeqNo(42)), "wal_00000000000000000042.log");
        assert_eq!(parse_segment_file_name("wal_00000000000000000042.log"), Some(SeqNo(42)));
        assert_eq!(parse_segment_file_name("wal_42.log"), None);
        assert_eq!(parse_segment_file_name("LOCK"), None);
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let p = PathBuf::from("seg");
        let h = encode_header(SeqNo(7));
        assert_eq!(decode_header(&h, &p).expect("valid"), SeqNo(7));
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x40;
            assert!(decode_header(&bad, &p).is_err(), "flip at {i} must be detected");
        }
    }

    #[test]
    fn record_round_trips_and_every_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, SeqNo(5), 2, b"payload");
        match decode_record(&buf) {
            RecordAt::Valid { first, count, payload, size } => {
                assert_eq!(
                    (first, count, payload, size),
                    (SeqNo(5), 2, &b"payload"[..], buf.len())
                );
            }
            other => panic!("expected a valid record, got {other:?}"),
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                !matches!(decode_record(&bad), RecordAt::Valid { .. }),
                "flip at byte {i} must not decode as valid"
            );
        }
    }

    #[test]
    fn absurd_length_is_damage_not_an_allocation() {
        let mut buf = vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4];
        buf.extend_from_slice(&[0u8; 16]);
        assert!(matches!(decode_record(&buf), RecordAt::Damaged(_)));
    }

    #[test]
    fn zeros_are_the_end_and_short_buffers_are_incomplete() {
        assert_eq!(decode_record(&[0u8; 64]), RecordAt::End);
        let mut buf = Vec::new();
        encode_record(&mut buf, SeqNo(1), 1, b"x");
        assert_eq!(decode_record(&buf[..buf.len() - 1]), RecordAt::Incomplete);
        assert_eq!(decode_record(&buf[..3]), RecordAt::Incomplete);
    }
}
