//! The on-disk format of WAL segments.
//!
//! A segment is named `wal_{start_seq:020}.log` and starts with a 32-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `STRATWAL` |
//! | 8 | 4 | format version (`2`; `1` is still read), little endian |
//! | 12 | 4 | length the file was created with, in 4 KiB pages (version 2; `0` in version 1) |
//! | 16 | 8 | start sequence (first sequence of the first record) |
//! | 24 | 4 | reserved, zero |
//! | 28 | 4 | CRC32 of bytes 0..28 |
//!
//! A segment is created at its full preallocated length (written and fsynced before it
//! is renamed into place), so a file shorter than its header's created length was cut
//! by something other than Strata: recovery reports it instead of reading the cut as the
//! end of the log.
//!
//! Records follow back to back:
//!
//! | size | field |
//! |---|---|
//! | 4 | body length `n` |
//! | 4 | CRC32 over the 4 length bytes and the body |
//! | n | body |
//!
//! A version 2 body is: first sequence (8), operation count (4), kind (4: `0` a batch,
//! `1` a seal), epoch (8), synced-through sequence (8), encoded batch (`n - 32`). A
//! version 1 body is: first sequence (8), operation count (4), encoded batch (`n - 12`).
//!
//! - The **synced-through** sequence is the last sequence that was on stable storage
//!   when the record was written. It is how recovery tells a torn tail (data that was
//!   never durable) from damage: a record that a later intact record declares durable
//!   can never be cut off as a torn tail.
//! - A **seal** closes a segment when the log rotates: its first-sequence field holds
//!   the next segment's start and its count is zero. It is written after the next
//!   segment exists, so a newest segment that ends in a seal has lost its successor
//!   (deleted or never restored) and recovery refuses to open instead of silently
//!   ending the log early.
//!
//! A length of zero marks the end of the written data (segments are preallocated with
//! zeros). The length is never trusted before its checksum: a record is read only when
//! its whole extent lies inside the file and its CRC matches.

use std::path::Path;

use strata_core::{Epoch, Error, Result, SeqNo};

/// Magic bytes at the start of every segment.
pub const MAGIC: [u8; 8] = *b"STRATWAL";
/// Format version written by this build.
pub const VERSION: u32 = 2;
/// The first format version (no epoch, no synced-through marker, no seal); still read.
pub const VERSION_1: u32 = 1;
/// Size of the segment header.
pub const HEADER_LEN: usize = 32;
const HEADER_CRC_AT: usize = 28;
/// The unit of the header's created-length field.
pub const CREATED_LEN_UNIT: u64 = 4096;
/// Size of a record's length + CRC prefix.
pub const RECORD_PREFIX_LEN: usize = 8;
/// Size of the fixed fields at the start of a version 2 record body.
pub const BODY_PREFIX_LEN: usize = 32;
/// Size of the fixed fields at the start of a version 1 record body.
pub const BODY_PREFIX_LEN_V1: usize = 12;
/// Largest record body accepted, in bytes; anything larger is treated as damage, so a
/// corrupt length can never drive a large allocation.
pub const MAX_BODY_LEN: usize = strata_core::batch::MAX_BATCH_BYTES + BODY_PREFIX_LEN;

const KIND_BATCH: u32 = 0;
const KIND_SEAL: u32 = 1;

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

/// Prefix of a spare segment's file name (see [`crate::FileWalOptions::spare_segment`]).
const SPARE_PREFIX: &str = "wal_spare_";

/// File name of a spare segment: zeros prepared for a rotation, not part of the log
/// (open and `check_dir` ignore it) until a rotation writes its header and renames it.
pub fn spare_file_name(nonce: u64) -> String {
    format!("{SPARE_PREFIX}{nonce:016x}.tmp")
}

/// True for the names [`spare_file_name`] gives.
pub fn is_spare_file_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version of the segment's records.
    pub version: u32,
    /// First sequence of the segment's first record.
    pub start: SeqNo,
    /// The file is at least this long unless something cut it (0: not recorded).
    pub min_len: u64,
}

/// Encodes a version 2 segment header for a segment created `created_len` bytes long.
pub fn encode_header(start: SeqNo, created_len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let pages = u32::try_from(created_len / CREATED_LEN_UNIT).unwrap_or(u32::MAX);
    h[12..16].copy_from_slice(&pages.to_le_bytes());
    h[16..24].copy_from_slice(&start.0.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_CRC_AT]);
    h[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes and checks a segment header; `file` names the segment in errors.
pub fn decode_header(bytes: &[u8], file: &Path) -> Result<SegmentHeader> {
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
    if version != VERSION && version != VERSION_1 {
        return Err(Error::corruption(
            file,
            8,
            format!(
                "unsupported WAL format version {version} (this build reads {VERSION_1} and \
                 {VERSION}); open it with the Strata release that wrote it"
            ),
        ));
    }
    let start = read_u64(h, 16);
    if start == 0 {
        return Err(Error::corruption(file, 16, "segment header says it starts at sequence 0"));
    }
    let min_len =
        if version == VERSION_1 { 0 } else { u64::from(read_u32(h, 12)) * CREATED_LEN_UNIT };
    Ok(SegmentHeader { version, start: SeqNo(start), min_len })
}

/// The fields of a version 2 record besides its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// The epoch the record was written in.
    pub epoch: Epoch,
    /// The last sequence on stable storage when the record was written.
    pub synced_through: SeqNo,
}

/// Appends one version 2 batch record (prefix + body) to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    first: SeqNo,
    count: u32,
    meta: RecordMeta,
    payload: &[u8],
) {
    encode_body(out, first, count, KIND_BATCH, meta, payload);
}

/// Appends a seal record: the segment ends here and the next one starts at `next`.
pub fn encode_seal(out: &mut Vec<u8>, next: SeqNo, meta: RecordMeta) {
    encode_body(out, next, 0, KIND_SEAL, meta, &[]);
}

/// Appends one version 1 record (for tests and tools that build old segments).
pub fn encode_record_v1(out: &mut Vec<u8>, first: SeqNo, count: u32, payload: &[u8]) {
    let body_len = BODY_PREFIX_LEN_V1 + payload.len();
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&first.0.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(payload);
    seal_crc(out, start);
}

fn encode_body(
    out: &mut Vec<u8>,
    first: SeqNo,
    count: u32,
    kind: u32,
    meta: RecordMeta,
    payload: &[u8],
) {
    let body_len = BODY_PREFIX_LEN + payload.len();
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&first.0.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&meta.epoch.0.to_le_bytes());
    out.extend_from_slice(&meta.synced_through.0.to_le_bytes());
    out.extend_from_slice(payload);
    seal_crc(out, start);
}

/// Fills in the CRC of the record that starts at `start` of `out`.
fn seal_crc(out: &mut [u8], start: usize) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 4]);
    hasher.update(&out[start + RECORD_PREFIX_LEN..]);
    let crc = hasher.finalize().to_le_bytes();
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// Outcome of decoding the record that starts at some offset of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordAt<'a> {
    /// A valid batch record.
    Valid {
        /// Sequence of the first operation.
        first: SeqNo,
        /// Number of operations.
        count: u32,
        /// Epoch and synced-through marker (zero for version 1 records).
        meta: RecordMeta,
        /// The encoded batch.
        payload: &'a [u8],
        /// Prefix + body length.
        size: usize,
    },
    /// A valid seal: the segment ends here and the next one starts at `next`.
    Seal {
        /// Start of the next segment.
        next: SeqNo,
        /// Epoch and synced-through marker.
        meta: RecordMeta,
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

impl RecordAt<'_> {
    /// The record's total size, for a valid record or seal.
    pub fn size(&self) -> Option<usize> {
        match self {
            RecordAt::Valid { size, .. } | RecordAt::Seal { size, .. } => Some(*size),
            _ => None,
        }
    }
}

/// Decodes the record at the start of `buf`, laid out as format `version` says.
pub fn decode_record(buf: &[u8], version: u32) -> RecordAt<'_> {
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
    let body_prefix = if version == VERSION_1 { BODY_PREFIX_LEN_V1 } else { BODY_PREFIX_LEN };
    if !(body_prefix..=MAX_BODY_LEN).contains(&len) {
        return RecordAt::Damaged(format!(
            "record length {len} outside the valid range {body_prefix}..={MAX_BODY_LEN}"
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
    let (kind, meta) = if version == VERSION_1 {
        (KIND_BATCH, RecordMeta { epoch: Epoch::ZERO, synced_through: SeqNo::ZERO })
    } else {
        let meta = RecordMeta {
            epoch: Epoch(read_u64(body, 16)),
            synced_through: SeqNo(read_u64(body, 24)),
        };
        (read_u32(body, 12), meta)
    };
    let size = RECORD_PREFIX_LEN + len;
    match kind {
        KIND_SEAL if count == 0 && first.0 != 0 && len == BODY_PREFIX_LEN => {
            return RecordAt::Seal { next: first, meta, size };
        }
        KIND_SEAL => return RecordAt::Damaged("malformed seal record".into()),
        KIND_BATCH => {}
        other => return RecordAt::Damaged(format!("unknown record kind {other}")),
    }
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
        meta,
        payload: body.get(body_prefix..).unwrap_or_default(),
        size,
    }
}

/// Cheap test of whether a record might start at the beginning of `buf` with a first
/// sequence in `min..min + 2^40`: its length is in range and its fixed fields are
/// plausible. Recovery calls it at every byte offset after damage before paying for a
/// checksum, so garbage and zeros are rejected without hashing.
pub fn plausible_record_start(buf: &[u8], version: u32, min: SeqNo) -> bool {
    let body_prefix = if version == VERSION_1 { BODY_PREFIX_LEN_V1 } else { BODY_PREFIX_LEN };
    if buf.len() < RECORD_PREFIX_LEN + body_prefix {
        return false;
    }
    let len = read_u32(buf, 0) as usize;
    if !(body_prefix..=MAX_BODY_LEN).contains(&len) {
        return false;
    }
    let first = read_u64(buf, RECORD_PREFIX_LEN);
    if first < min.0 || first - min.0 >= 1 << 40 {
        return false;
    }
    if version == VERSION_1 {
        return read_u32(buf, RECORD_PREFIX_LEN + 8) != 0;
    }
    let count = read_u32(buf, RECORD_PREFIX_LEN + 8);
    match read_u32(buf, RECORD_PREFIX_LEN + 12) {
        KIND_BATCH => count != 0,
        KIND_SEAL => count == 0 && len == BODY_PREFIX_LEN,
        _ => false,
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

    const META: RecordMeta = RecordMeta { epoch: Epoch(3), synced_through: SeqNo(4) };

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
        let h = encode_header(SeqNo(7), 64 * 1024);
        let decoded = decode_header(&h, &p).expect("valid");
        assert_eq!(
            decoded,
            SegmentHeader { version: VERSION, start: SeqNo(7), min_len: 64 * 1024 }
        );
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x40;
            assert!(decode_header(&bad, &p).is_err(), "flip at {i} must be detected");
        }
    }

    #[test]
    fn record_round_trips_and_every_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, SeqNo(5), 2, META, b"payload");
        match decode_record(&buf, VERSION) {
            RecordAt::Valid { first, count, meta, payload, size } => {
                assert_eq!(
                    (first, count, meta, payload, size),
                    (SeqNo(5), 2, META, &b"payload"[..], buf.len())
                );
            }
            other => panic!("expected a valid record, got {other:?}"),
        }
        assert!(plausible_record_start(&buf, VERSION, SeqNo(5)));
        assert!(!plausible_record_start(&buf, VERSION, SeqNo(6)), "first below the minimum");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                !matches!(decode_record(&bad, VERSION), RecordAt::Valid { .. }),
                "flip at byte {i} must not decode as valid"
            );
        }
    }

    #[test]
    fn seal_round_trips_and_is_not_a_batch() {
        let mut buf = Vec::new();
        encode_seal(&mut buf, SeqNo(9), META);
        assert_eq!(
            decode_record(&buf, VERSION),
            RecordAt::Seal { next: SeqNo(9), meta: META, size: buf.len() }
        );
        assert!(plausible_record_start(&buf, VERSION, SeqNo(9)));
    }

    #[test]
    fn version_1_records_still_decode_with_epoch_zero() {
        let mut buf = Vec::new();
        encode_record_v1(&mut buf, SeqNo(5), 2, b"old");
        match decode_record(&buf, VERSION_1) {
            RecordAt::Valid { first, count, meta, payload, .. } => {
                assert_eq!((first, count, payload), (SeqNo(5), 2, &b"old"[..]));
                assert_eq!(meta.epoch, Epoch::ZERO);
            }
            other => panic!("expected a valid record, got {other:?}"),
        }
    }

    #[test]
    fn absurd_length_is_damage_not_an_allocation() {
        let mut buf = vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4];
        buf.extend_from_slice(&[0u8; 40]);
        assert!(matches!(decode_record(&buf, VERSION), RecordAt::Damaged(_)));
    }

    #[test]
    fn zeros_are_the_end_and_short_buffers_are_incomplete() {
        assert_eq!(decode_record(&[0u8; 64], VERSION), RecordAt::End);
        assert!(!plausible_record_start(&[0u8; 64], VERSION, SeqNo(1)));
        let mut buf = Vec::new();
        encode_record(&mut buf, SeqNo(1), 1, META, b"x");
        assert_eq!(decode_record(&buf[..buf.len() - 1], VERSION), RecordAt::Incomplete);
        assert_eq!(decode_record(&buf[..3], VERSION), RecordAt::Incomplete);
    }
}
