//! Damaged segments: every kind of damage has a documented outcome, never a panic and
//! never a bogus allocation. A torn tail of the last segment (the last record written,
//! with nothing intact after it) is cut off and reported; anything else — a damaged
//! record followed by intact records, a segment cut short, a deleted newest segment —
//! is `Error::Corruption` naming the file and the offset, and a failed open changes no
//! byte of the directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_core::fs::OsFileSystem;
use strata_core::{Durability, Epoch, EpochStart, Error, SeqNo, Wal};
use strata_wal_file::format::{HEADER_LEN, segment_file_name};
use strata_wal_file::{FileWal, FileWalOptions};

const PAYLOAD: &[u8] = &[0x5a; 100];

fn options() -> FileWalOptions {
    FileWalOptions::default().with_segment_size_bytes(64 * 1024)
}

/// Writes `n` single-op `Sync` records and returns the path of the (only) segment.
fn write_log(dir: &Path, n: u64) -> PathBuf {
    let wal = FileWal::open(OsFileSystem::shared(), dir, options()).expect("open");
    for _ in 0..n {
        wal.append(PAYLOAD, 1, Durability::Sync).expect("append");
    }
    dir.join(segment_file_name(SeqNo(1)))
}

fn reopen(dir: &Path) -> strata_core::Result<FileWal> {
    FileWal::open(OsFileSystem::shared(), dir, options())
}

fn count_batches(wal: &FileWal) -> strata_core::Result<u64> {
    let mut r = wal.read_from(SeqNo(1))?;
    let mut n = 0;
    while r.next_batch()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Offsets of the records of a segment, found from their length prefixes (so the tests
/// hold for any record layout).
fn record_offsets(seg: &Path) -> Vec<usize> {
    let bytes = std::fs::read(seg).expect("read segment");
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        out.push(off);
        off += 8 + len;
    }
    out
}

fn patch(path: &Path, offset: usize, f: impl FnOnce(&mut u8)) {
    let mut bytes = std::fs::read(path).expect("read segment");
    f(&mut bytes[offset]);
    std::fs::write(path, bytes).expect("write segment");
}

/// Every file of a directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

/// Opening `dir` fails with corruption at `file`/`offset` and leaves every byte as it was.
fn expect_failed_open_at(dir: &Path, file: &Path, offset: u64) -> String {
    let before = snapshot(dir);
    let err = match reopen(dir) {
        Ok(wal) => panic!("damage opened as a log ending at {}", wal.last_seq()),
        Err(e) => e,
    };
    let reason = expect_corruption_at(err, file, offset);
    assert!(before == snapshot(dir), "a failed open changed the directory");
    reason
}

fn expect_corruption_at(err: Error, file: &Path, offset: u64) -> String {
    match err {
        Error::Corruption { file: f, offset: o, reason } => {
            assert_eq!(f, file, "wrong file named ({reason})");
            assert_eq!(o, offset, "wrong offset named ({reason})");
            reason
        }
        other => panic!("expected a corruption error, got: {other}"),
    }
}

/// Writes 40 records into 1 KiB segments; returns the options and the segment names,
/// oldest first (at least three).
fn write_small_segments(
    dir: &Path,
    durability: Durability,
) -> strata_core::Result<(FileWalOptions, Vec<String>)> {
    let small = FileWalOptions::default().with_segment_size_bytes(1024);
    {
        let wal = FileWal::open(OsFileSystem::shared(), dir, small.clone())?;
        for _ in 0..40 {
            wal.append(PAYLOAD, 1, durability)?;
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    assert!(names.len() >= 3);
    Ok((small, names))
}

#[test]
fn flipped_byte_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 10);
    let third = record_offsets(&seg)[2];
    patch(&seg, third + 30, |b| *b ^= 0x04);
    expect_failed_open_at(dir.path(), &seg, third as u64);
}

/// One flipped bit in a length field makes the record claim more bytes than the file
/// holds. Only the damaged record's claimed extent used to be inspected, so everything
/// from it on was cut off as a "torn tail" — acknowledged writes lost.
#[test]
fn length_flipped_to_run_past_the_end_is_damage_when_records_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 40);
    let at = record_offsets(&seg)[5];
    patch(&seg, at + 2, |b| *b ^= 0x40); // +4 MiB: past the 64 KiB file
    let reason = expect_failed_open_at(dir.path(), &seg, at as u64);
    assert!(reason.contains("follows"), "{reason}");
}

/// The flipped length lands the claimed end in the zeros after the last record.
#[test]
fn length_flipped_to_skip_every_later_record_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 40);
    let offsets = record_offsets(&seg);
    let at = offsets[3];
    let end_of_data = offsets[39] + (offsets[39] - offsets[38]);
    let claim = (end_of_data + 512 - at - 8) as u32;
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[at..at + 4].copy_from_slice(&claim.to_le_bytes());
    std::fs::write(&seg, bytes).expect("write");
    expect_failed_open_at(dir.path(), &seg, at as u64);
}

/// Zeros over a record's start (a zeroed sector) with `Sync` records after it: the
/// records after it say the zeroed one was durable, so this is damage, not the end.
#[test]
fn zeroed_record_start_before_durable_records_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 20);
    let offsets = record_offsets(&seg);
    let at = offsets[7];
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[at..offsets[8]].fill(0);
    std::fs::write(&seg, bytes).expect("write");
    expect_failed_open_at(dir.path(), &seg, at as u64);
}

/// A page that never reached the disk while later pages did (writeback reordering
/// before a power loss), with only unsynced (`Buffered`) records in and after it: the
/// unsynced tail is dropped and reported, because nothing after the hole was durable.
#[test]
fn writeback_hole_before_unsynced_records_is_dropped_and_reported() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = dir.path().join(segment_file_name(SeqNo(1)));
    {
        let wal = FileWal::open(OsFileSystem::shared(), dir.path(), options())?;
        for _ in 0..10 {
            wal.append(PAYLOAD, 1, Durability::Sync)?;
        }
        for _ in 0..100 {
            wal.append(PAYLOAD, 1, Durability::Buffered)?;
        }
    }
    let offsets = record_offsets(&seg);
    let hole = offsets[10];
    let page_end = (hole / 4096 + 1) * 4096;
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[hole..page_end].fill(0);
    std::fs::write(&seg, bytes).expect("write");
    let wal = reopen(dir.path())?;
    assert_eq!(wal.last_seq(), SeqNo(10), "the log ends at the last durable record");
    let recovery = wal.recovery();
    assert_eq!(recovery.truncated_tail.map(|t| t.1), Some(hole as u64));
    assert!(recovery.dropped_unsynced_records > 0, "dropped records are reported");
    assert_eq!(count_batches(&wal)?, 10);
    // The dropped records never come back: the tail is cleared before new appends.
    assert_eq!(wal.append(b"next", 1, Durability::Sync)?, SeqNo(11));
    drop(wal);
    let wal = reopen(dir.path())?;
    assert_eq!(wal.last_seq(), SeqNo(11));
    assert_eq!(wal.recovery().truncated_tail, None);
    Ok(())
}

/// The same hole with a record after it that says the hole's record was durable.
#[test]
fn writeback_hole_before_a_record_that_says_it_was_durable_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 120);
    let offsets = record_offsets(&seg);
    let hole = offsets[10];
    let page_end = (hole / 4096 + 1) * 4096;
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[hole..page_end].fill(0);
    std::fs::write(&seg, bytes).expect("write");
    let reason = expect_failed_open_at(dir.path(), &seg, hole as u64);
    assert!(reason.contains("durable"), "{reason}");
}

#[test]
fn flipped_byte_in_the_last_record_is_a_torn_tail_and_is_truncated() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 5);
    let last = record_offsets(&seg)[4];
    patch(&seg, last + 50, |b| *b ^= 0x80);
    let wal = reopen(dir.path())?;
    let (file, offset, _) = wal.recovery().truncated_tail.expect("truncation must be reported");
    assert_eq!((file, offset), (seg.clone(), last as u64));
    assert_eq!(wal.last_seq(), SeqNo(4));
    assert_eq!(count_batches(&wal)?, 4);
    // The log continues right after the last intact record, and reopens cleanly.
    assert_eq!(wal.append(b"next", 1, Durability::Sync)?, SeqNo(5));
    drop(wal);
    let wal = reopen(dir.path())?;
    assert_eq!(wal.recovery().truncated_tail, None);
    assert_eq!(count_batches(&wal)?, 5);
    Ok(())
}

/// A torn write inside the preallocated file: part of the last record, zeros after it.
#[test]
fn torn_last_record_is_cut_off() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 3);
    let offsets = record_offsets(&seg);
    let end = offsets[2] + (offsets[2] - offsets[1]);
    let record = end - offsets[2];
    for cut in [end - 1, end - record / 2, end - record + 3] {
        let copy = tempfile::tempdir().expect("tempdir");
        let target = copy.path().join(segment_file_name(SeqNo(1)));
        let mut bytes = std::fs::read(&seg).expect("read");
        bytes[cut..].fill(0);
        std::fs::write(&target, &bytes).expect("write");
        let wal = reopen(copy.path())?;
        assert_eq!(wal.last_seq(), SeqNo(2), "cut at {cut}");
        assert!(wal.recovery().truncated_tail.is_some());
        assert_eq!(count_batches(&wal)?, 2);
    }
    Ok(())
}

/// Without preallocation the file grows with the log, so a power loss can leave it
/// shorter than what was written: a record cut by the end of the file is a torn tail.
#[test]
fn record_cut_by_the_end_of_a_growing_file_is_a_torn_tail() -> strata_core::Result<()> {
    let growing = FileWalOptions::default().with_preallocate(false).with_zero_ahead_bytes(0);
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = FileWal::open(OsFileSystem::shared(), dir.path(), growing.clone())?;
        for _ in 0..3 {
            wal.append(PAYLOAD, 1, Durability::Sync)?;
        }
    }
    let seg = dir.path().join(segment_file_name(SeqNo(1)));
    let len = std::fs::metadata(&seg).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 7)
        .expect("cut");
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), growing)?;
    assert_eq!(wal.last_seq(), SeqNo(2));
    assert!(wal.recovery().truncated_tail.is_some());
    Ok(())
}

/// A preallocated segment is created at its full length; one cut shorter — even exactly
/// at a record boundary, where every remaining record is intact — lost its end to
/// something other than a crash, and open refuses it instead of ending the log early.
#[test]
fn preallocated_segment_cut_at_a_record_boundary_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 10);
    let boundary = record_offsets(&seg)[6];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(boundary as u64)
        .expect("cut");
    let reason = expect_failed_open_at(dir.path(), &seg, boundary as u64);
    assert!(reason.contains("cut short"), "{reason}");
}

/// Rotation seals the old segment once the new one exists, so a deleted newest segment
/// is noticed instead of the log silently ending at the previous one.
#[test]
fn deleted_newest_segment_is_detected_through_the_seal() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (small, mut segments) = write_small_segments(dir.path(), Durability::Sync)?;
    let newest = segments.pop().expect("newest");
    std::fs::remove_file(dir.path().join(&newest)).expect("rm");
    let before = snapshot(dir.path());
    let err = FileWal::open(OsFileSystem::shared(), dir.path(), small)
        .expect_err("a log whose newest segment is gone must not open");
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(&newest), "the error names the missing file: {err}");
    assert!(before == snapshot(dir.path()), "a failed open changed the directory");
    Ok(())
}

#[test]
fn wrong_magic_is_an_error_at_offset_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 2);
    patch(&seg, 0, |b| *b = b'X');
    let reason = expect_failed_open_at(dir.path(), &seg, 0);
    assert!(reason.contains("magic"), "{reason}");
}

#[test]
fn absurd_length_in_the_middle_is_an_error_without_allocating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 6);
    let second = record_offsets(&seg)[1];
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[second..second + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    std::fs::write(&seg, bytes).expect("write");
    expect_failed_open_at(dir.path(), &seg, second as u64);
}

#[test]
fn absurd_length_in_the_last_record_is_a_torn_tail() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 3);
    let offsets = record_offsets(&seg);
    let last = offsets[2];
    let end = last + (offsets[2] - offsets[1]);
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Wipe the rest of the record so only the bogus prefix remains (a torn write).
    bytes[last + 8..end].fill(0);
    std::fs::write(&seg, bytes).expect("write");
    let wal = reopen(dir.path())?;
    assert_eq!(wal.last_seq(), SeqNo(2));
    assert!(wal.recovery().truncated_tail.is_some());
    Ok(())
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_on_read_naming_it() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = FileWalOptions::default().with_segment_size_bytes(1024);
    {
        let wal = FileWal::open(OsFileSystem::shared(), dir.path(), small.clone())?;
        for _ in 0..30 {
            wal.append(PAYLOAD, 1, Durability::Buffered)?;
        }
        wal.sync()?;
    }
    let first = dir.path().join(segment_file_name(SeqNo(1)));
    let second_record = record_offsets(&first)[1];
    patch(&first, second_record + 25, |b| *b ^= 0x10);
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), small)?;
    let mut r = wal.read_from(SeqNo(1))?;
    assert!(r.next_batch()?.is_some(), "the first record is intact");
    let err = r.next_batch().expect_err("the damaged record must not be served");
    expect_corruption_at(err, &first, second_record as u64);
    Ok(())
}

#[test]
fn missing_middle_segment_is_an_error_not_a_silent_gap() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (small, names) = write_small_segments(dir.path(), Durability::Buffered)?;
    std::fs::remove_file(dir.path().join(&names[1])).expect("rm");
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), small)?;
    let mut r = wal.read_from(SeqNo(1))?;
    let mut result = Ok(());
    loop {
        match r.next_batch() {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let err = result.expect_err("a gap must be reported");
    assert!(err.is_corruption(), "{err}");
    Ok(())
}

/// Every opening for writing starts a new epoch, recorded durably with its first
/// sequence before its first batch; batches carry the epoch they were written in.
#[test]
fn every_incarnation_writes_in_a_new_epoch_recorded_in_the_history() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let epoch_of = |wal: &FileWal, seq: u64| -> strata_core::Result<Epoch> {
        let mut r = wal.read_from(SeqNo(seq))?;
        Ok(r.next_batch()?.expect("batch").epoch)
    };
    let first = {
        let wal = reopen(dir.path())?;
        wal.append(PAYLOAD, 2, Durability::Sync)?;
        wal.epoch()
    };
    // An incarnation that writes nothing leaves no entry.
    drop(reopen(dir.path())?);
    let wal = reopen(dir.path())?;
    let second = wal.epoch();
    assert!(second > first, "epochs grow: {first} then {second}");
    wal.append(PAYLOAD, 1, Durability::Buffered)?;
    assert_eq!(epoch_of(&wal, 1)?, first);
    assert_eq!(epoch_of(&wal, 3)?, second);
    assert_eq!(
        wal.epoch_history(),
        vec![
            EpochStart { epoch: first, first_seq: SeqNo(1) },
            EpochStart { epoch: second, first_seq: SeqNo(3) },
        ]
    );
    assert_eq!(wal.recovery().epoch, second);
    drop(wal);
    let wal = reopen(dir.path())?;
    assert!(wal.epoch() > second, "an epoch that wrote is never handed out again");
    assert_eq!(wal.epoch_history().len(), 2);
    Ok(())
}

/// Segments written before epochs existed (format version 1) are read with epoch 0,
/// never appended to, and the log continues in a new-format segment.
#[test]
fn version_1_segments_open_as_epoch_zero_and_the_log_continues() -> strata_core::Result<()> {
    use strata_wal_file::format::{MAGIC, VERSION_1, encode_record_v1};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seg = vec![0u8; HEADER_LEN];
    seg[0..8].copy_from_slice(&MAGIC);
    seg[8..12].copy_from_slice(&VERSION_1.to_le_bytes());
    seg[16..24].copy_from_slice(&1u64.to_le_bytes());
    let crc = crc32(&seg[..28]);
    seg[28..32].copy_from_slice(&crc.to_le_bytes());
    encode_record_v1(&mut seg, SeqNo(1), 2, b"old batch");
    seg.resize(seg.len() + 4096, 0);
    std::fs::write(dir.path().join(segment_file_name(SeqNo(1))), &seg).expect("write");

    let wal = reopen(dir.path())?;
    assert_eq!(wal.last_seq(), SeqNo(2));
    assert_eq!(wal.append(b"new batch", 1, Durability::Sync)?, SeqNo(3));
    drop(wal);
    let wal = reopen(dir.path())?;
    let mut r = wal.read_from(SeqNo(1))?;
    let old = r.next_batch()?.expect("old batch");
    assert_eq!(
        (old.first_seq, old.epoch, old.payload.as_ref()),
        (SeqNo(1), Epoch::ZERO, &b"old batch"[..])
    );
    let new = r.next_batch()?.expect("new batch");
    assert_eq!(new.first_seq, SeqNo(3));
    assert!(new.epoch > Epoch::ZERO);
    assert!(r.next_batch()?.is_none());
    Ok(())
}

fn crc32(bytes: &[u8]) -> u32 {
    // The same CRC-32 (IEEE) the format uses, computed bitwise so the test does not
    // depend on the crate's choice of implementation.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn garbage_segment_files_of_every_length_never_panic() {
    // Random bytes after a valid header, truncated at every length: open either
    // succeeds (torn tail) or returns a typed error.
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 4);
    let good = std::fs::read(&seg).expect("read");
    let offsets = record_offsets(&seg);
    let end = offsets[3] + (offsets[3] - offsets[2]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in (0..end + 16).step_by(7) {
        let mut bytes = good[..len.min(good.len())].to_vec();
        for b in bytes.iter_mut().skip(HEADER_LEN) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(5) {
                *b = state as u8;
            }
        }
        let copy = tempfile::tempdir().expect("tempdir");
        std::fs::write(copy.path().join(segment_file_name(SeqNo(1))), &bytes).expect("write");
        match reopen(copy.path()) {
            Ok(wal) => {
                let _ = count_batches(&wal);
            }
            Err(e) => assert!(
                matches!(e, Error::Corruption { .. }),
                "len {len}: unexpected error kind {e}"
            ),
        }
    }
}
