//! Damaged segments: every kind of damage has a documented outcome, never a panic and
//! never a bogus allocation. A torn tail of the last segment is cut off and reported;
//! anything else is `Error::Corruption` naming the file and the offset.

use std::path::{Path, PathBuf};

use strata_core::fs::OsFileSystem;
use strata_core::{Durability, Error, SeqNo, Wal};
use strata_wal_file::format::{HEADER_LEN, segment_file_name};
use strata_wal_file::{FileWal, FileWalOptions};

const PAYLOAD: &[u8] = &[0x5a; 100];
/// Prefix (8) + body prefix (12) + payload.
const RECORD: usize = 8 + 12 + PAYLOAD.len();

fn options() -> FileWalOptions {
    FileWalOptions::default().with_segment_size_bytes(64 * 1024)
}

/// Writes `n` single-op records and returns the path of the (only) segment.
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

fn patch(path: &Path, offset: usize, f: impl FnOnce(&mut u8)) {
    let mut bytes = std::fs::read(path).expect("read segment");
    f(&mut bytes[offset]);
    std::fs::write(path, bytes).expect("write segment");
}

fn expect_corruption_at(err: Error, file: &Path, offset: u64) {
    match err {
        Error::Corruption { file: f, offset: o, reason } => {
            assert_eq!(f, file, "wrong file named ({reason})");
            assert_eq!(o, offset, "wrong offset named ({reason})");
        }
        other => panic!("expected a corruption error, got: {other}"),
    }
}

#[test]
fn flipped_byte_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 10);
    let third = HEADER_LEN + 2 * RECORD;
    patch(&seg, third + 30, |b| *b ^= 0x04);
    let err = reopen(dir.path()).expect_err("a damaged record with data after it must not open");
    expect_corruption_at(err, &seg, third as u64);
}

#[test]
fn flipped_byte_in_the_last_record_is_a_torn_tail_and_is_truncated() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 5);
    let last = HEADER_LEN + 4 * RECORD;
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

#[test]
fn truncated_record_at_the_end_is_cut_off() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 3);
    let end = HEADER_LEN + 3 * RECORD;
    for cut in [end - 1, end - RECORD / 2, end - RECORD + 3] {
        let copy = tempfile::tempdir().expect("tempdir");
        let target = copy.path().join(segment_file_name(SeqNo(1)));
        let bytes = std::fs::read(&seg).expect("read");
        std::fs::write(&target, &bytes[..cut]).expect("write");
        let wal = reopen(copy.path())?;
        assert_eq!(wal.last_seq(), SeqNo(2), "cut at {cut}");
        assert!(wal.recovery().truncated_tail.is_some());
        assert_eq!(count_batches(&wal)?, 2);
    }
    Ok(())
}

#[test]
fn wrong_magic_is_an_error_at_offset_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 2);
    patch(&seg, 0, |b| *b = b'X');
    let err = reopen(dir.path()).expect_err("wrong magic must not open");
    expect_corruption_at(err, &seg, 0);
    assert!(err_text(&seg).contains("magic"));
}

fn err_text(dir_seg: &Path) -> String {
    let dir = dir_seg.parent().expect("parent");
    reopen(dir).map(|_| String::new()).unwrap_or_else(|e| e.to_string())
}

#[test]
fn absurd_length_in_the_middle_is_an_error_without_allocating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 6);
    let second = HEADER_LEN + RECORD;
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[second..second + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    std::fs::write(&seg, bytes).expect("write");
    let err = reopen(dir.path()).expect_err("an absurd length with data after it must not open");
    expect_corruption_at(err, &seg, second as u64);
}

#[test]
fn absurd_length_in_the_last_record_is_a_torn_tail() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 3);
    let last = HEADER_LEN + 2 * RECORD;
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Wipe the rest of the record so only the bogus prefix remains (a torn write).
    for b in &mut bytes[last + 8..last + RECORD] {
        *b = 0;
    }
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
    let second_record = HEADER_LEN + RECORD;
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
    let small = FileWalOptions::default().with_segment_size_bytes(1024);
    {
        let wal = FileWal::open(OsFileSystem::shared(), dir.path(), small.clone())?;
        for _ in 0..40 {
            wal.append(PAYLOAD, 1, Durability::Buffered)?;
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wal_"))
        .collect();
    names.sort();
    assert!(names.len() >= 3);
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

#[test]
fn garbage_segment_files_of_every_length_never_panic() {
    // Random bytes after a valid header, truncated at every length: open either
    // succeeds (torn tail) or returns a typed error.
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_log(dir.path(), 4);
    let good = std::fs::read(&seg).expect("read");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in (0..HEADER_LEN + 4 * RECORD + 16).step_by(7) {
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
