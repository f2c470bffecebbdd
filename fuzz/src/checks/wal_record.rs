//! The `wal_record` target: WAL segment headers and records, and WAL directories
//! checked and recovered.

use std::path::Path;
use std::sync::Arc;

use strata_core::batch::BatchIter;
use strata_core::{SeqNo, Wal};
use strata_harness::sim_fs::SimFileSystem;
use strata_wal_file::check::check_dir;
use strata_wal_file::format::{self as walfmt, RecordAt};
use strata_wal_file::{FileWal, FileWalOptions};

use super::{
    Crc32, Cursor, MAX_STEPS, crc32, expect_corruption, le_u32, le_u64, put_u32, sample_batch,
};

/// Target `wal_record`: WAL segment decoding.
///
/// Input: a flags byte, then segment bytes. The bytes go through `decode_header` and
/// `decode_record` directly, then as one or two segment files of a WAL directory on
/// [`SimFileSystem`] through `check::check_dir` (read-only verification) and
/// `FileWal::open` (recovery), whose log is then replayed.
///
/// Flags: bit 0 repairs the header and record checksums, bit 1 also writes a valid
/// magic and version, bit 2 splits the bytes into two segments (at a 16-bit position
/// read after the flags), bit 3 names the first segment after a fuzzer-chosen start
/// sequence instead of the one its header holds.
///
/// Contract: a record decodes as `Valid` only if it re-encodes to exactly its bytes; a
/// header decodes only with the right magic, version and CRC; every problem checking or
/// opening finds is `Error::Corruption` naming a segment; a directory `check_dir` finds
/// clean opens, recovers the same last sequence and replays every record, densely
/// numbered, without error.
pub fn wal_record(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let split = usize::from(c.u16());
    let name_start = u64::from(c.u8());
    let body = c.rest();
    check_header(body);
    check_records(body);
    check_records(body.get(walfmt::HEADER_LEN..).unwrap_or_default());
    let mut segments: Vec<Vec<u8>> = if flags & 4 != 0 && split < body.len() {
        vec![body[..split].to_vec(), body[split..].to_vec()]
    } else {
        vec![body.to_vec()]
    };
    for seg in &mut segments {
        if flags & 1 != 0 {
            repair_wal_segment(seg, flags & 2 != 0);
        }
    }
    check_wal_dir(&segments, (flags & 8 != 0).then_some(name_start));
}

pub(crate) fn check_header(data: &[u8]) {
    let path = Path::new("wal/header");
    match walfmt::decode_header(data, path) {
        Ok(header) => {
            assert!(data.len() >= walfmt::HEADER_LEN);
            assert_eq!(data[..8], walfmt::MAGIC, "header accepted with a wrong magic");
            let version = le_u32(data, 8);
            assert!(
                version == walfmt::VERSION || version == walfmt::VERSION_1,
                "header accepted with a wrong version"
            );
            assert_eq!(header.version, version);
            assert_eq!(le_u32(data, 28), crc32(&data[..28]), "header accepted with a wrong CRC");
            assert_eq!(le_u64(data, 16), header.start.0, "header start is not bytes 16..24");
        }
        Err(e) => {
            let offset = expect_corruption(&e, path, "decode_header");
            assert!(offset < walfmt::HEADER_LEN as u64, "header error at offset {offset}");
        }
    }
}

pub(crate) fn check_records(data: &[u8]) {
    let mut off = 0usize;
    for _ in 0..MAX_STEPS {
        let rest = &data[off..];
        match walfmt::decode_record(rest, walfmt::VERSION) {
            RecordAt::Valid { first, count, meta, payload, size } => {
                assert!(count > 0, "a valid record holds zero operations");
                assert!(size <= rest.len(), "record of {size} bytes in {} bytes", rest.len());
                assert_eq!(size, walfmt::RECORD_PREFIX_LEN + le_u32(rest, 0) as usize);
                let mut again = Vec::new();
                walfmt::encode_record(&mut again, first, count, meta, payload);
                assert_eq!(again[..], rest[..size], "a valid record does not re-encode to itself");
                off += size;
            }
            RecordAt::Seal { next, meta, size } => {
                let mut again = Vec::new();
                walfmt::encode_seal(&mut again, next, meta);
                assert_eq!(again[..], rest[..size], "a valid seal does not re-encode to itself");
                off += size;
            }
            RecordAt::End => {
                let prefix = &rest[..rest.len().min(walfmt::RECORD_PREFIX_LEN)];
                assert!(prefix.iter().all(|b| *b == 0), "End at a non-zero prefix");
                return;
            }
            RecordAt::Incomplete => {
                let claimed = walfmt::RECORD_PREFIX_LEN + le_u32(rest, 0) as usize;
                assert!(
                    rest.len() < walfmt::RECORD_PREFIX_LEN || claimed > rest.len(),
                    "Incomplete for a record that fits"
                );
                return;
            }
            RecordAt::Damaged(reason) => {
                assert!(!reason.is_empty());
                return;
            }
        }
    }
}

/// Recomputes the header CRC (and with `magic` the magic and version) and the CRC of
/// every record that is framed well enough to be found.
pub fn repair_wal_segment(seg: &mut [u8], magic: bool) {
    if seg.len() < walfmt::HEADER_LEN {
        return;
    }
    if magic {
        seg[..8].copy_from_slice(&walfmt::MAGIC);
        put_u32(seg, 8, walfmt::VERSION);
    }
    let crc = crc32(&seg[..28]);
    put_u32(seg, 28, crc);
    let mut off = walfmt::HEADER_LEN;
    while off + walfmt::RECORD_PREFIX_LEN <= seg.len() {
        let len = le_u32(seg, off) as usize;
        let end = off + walfmt::RECORD_PREFIX_LEN + len;
        if !(walfmt::BODY_PREFIX_LEN..=walfmt::MAX_BODY_LEN).contains(&len) || end > seg.len() {
            return;
        }
        let mut h = Crc32::new();
        h.update(&seg[off..off + 4]);
        h.update(&seg[off + walfmt::RECORD_PREFIX_LEN..end]);
        let crc = h.finalize();
        put_u32(seg, off + 4, crc);
        off = end;
    }
}

pub(crate) fn check_wal_dir(segments: &[Vec<u8>], name_start: Option<u64>) {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("wal");
    fs.create_dir_all(dir).expect("creating a directory on SimFileSystem must succeed");
    for (i, seg) in segments.iter().enumerate() {
        let start = match name_start {
            Some(s) if i == 0 => s,
            _ => le_u64(seg, 16),
        };
        let name = walfmt::segment_file_name(SeqNo(start));
        sim.write_file_raw(dir.join(name), seg).expect("write_file_raw must succeed");
    }

    let (checks, checked) = match check_dir(&*fs, dir) {
        Ok(checks) => (checks, true),
        Err(e) => {
            expect_corruption(&e, dir, "check_dir");
            (Vec::new(), false)
        }
    };
    for c in &checks {
        if let Some(p) = &c.problem {
            expect_corruption(p, dir, "check_dir problem");
        }
        assert!(c.used_bytes <= c.file_bytes, "check_dir: used {c:?}");
    }
    let clean = checked && checks.iter().all(|c| c.problem.is_none());

    let options =
        FileWalOptions::default().with_preallocate(false).with_segment_size_bytes(1 << 16);
    let wal = match FileWal::open(Arc::clone(&fs), dir, options) {
        Ok(wal) => wal,
        Err(e) => {
            expect_corruption(&e, dir, "FileWal::open");
            assert!(!clean, "check_dir found nothing wrong, but open failed: {e}");
            return;
        }
    };
    let recovered = wal.recovery().last_seq;
    if clean && let Some(last) = checks.last() {
        assert_eq!(recovered, last.last_seq, "open and check_dir disagree on the last sequence");
    }
    let mut reader = match wal.read_from(SeqNo::ZERO) {
        Ok(r) => r,
        Err(e) => panic!("read_from(oldest) of an opened log failed: {e}"),
    };
    let mut expected: Option<SeqNo> = None;
    let mut batches = 0u64;
    for _ in 0..MAX_STEPS {
        match reader.next_batch() {
            Ok(Some(batch)) => {
                assert!(batch.count > 0);
                if let Some(e) = expected {
                    assert_eq!(batch.first_seq, e, "replayed batches are not dense");
                }
                // The engine decodes every payload on replay; it must not panic.
                for op in BatchIter::new(&batch.payload).take(MAX_STEPS) {
                    if op.is_err() {
                        break;
                    }
                }
                expected = Some(batch.last_seq().next());
                batches += 1;
            }
            Ok(None) => {
                if clean {
                    let records: u64 = checks.iter().map(|c| c.records).sum();
                    assert_eq!(batches, records, "replay and check_dir disagree on records");
                    if batches > 0 {
                        assert_eq!(expected, Some(recovered.next()), "replay ended early");
                    }
                }
                return;
            }
            Err(e) => {
                expect_corruption(&e, dir, "WAL replay");
                assert!(!clean, "check_dir found nothing wrong, but replay failed: {e}");
                return;
            }
        }
    }
}

pub(crate) const SEED_META: walfmt::RecordMeta =
    walfmt::RecordMeta { epoch: strata_core::Epoch(1), synced_through: SeqNo::ZERO };

pub(crate) fn wal_seeds() -> Vec<Vec<u8>> {
    let mut seg = walfmt::encode_header(SeqNo(1), 0).to_vec();
    let mut next = 1u64;
    for i in 0..3u8 {
        let b = sample_batch(i);
        walfmt::encode_record(&mut seg, SeqNo(next), b.count(), SEED_META, b.as_bytes());
        next += u64::from(b.count());
    }
    let mut padded = seg.clone();
    padded.resize(seg.len() + 40, 0);
    let with = |flags: u8, body: &[u8]| {
        let mut v = vec![flags, 0, 0, 0];
        v.extend_from_slice(body);
        v
    };
    // Two segments, the first cut `cut` bytes after its header (inside its record when
    // `cut` is small).
    let two = |cut: usize| {
        let b = sample_batch(0);
        let mut first = walfmt::encode_header(SeqNo(1), 0).to_vec();
        walfmt::encode_record(&mut first, SeqNo(1), b.count(), SEED_META, b.as_bytes());
        let split = walfmt::HEADER_LEN + cut;
        first.resize(split, 0);
        let mut v = vec![4u8, split as u8, (split >> 8) as u8, 0];
        v.extend_from_slice(&first);
        let mut second = walfmt::encode_header(SeqNo(4), 0).to_vec();
        walfmt::encode_record(&mut second, SeqNo(4), b.count(), SEED_META, b.as_bytes());
        v.extend_from_slice(&second);
        v
    };
    vec![with(0, &seg), with(0, &padded), with(1, &seg[..seg.len() - 5]), two(80), two(40)]
}
