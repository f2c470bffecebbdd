//! The spare segment: zeros written off the write path that a rotation takes as its new
//! segment (see `FileWalOptions::spare_segment`). These tests check that a rotation
//! really takes it (the same file, by inode), that a spare is never part of the log —
//! open and `check_dir` pass over one a crash left, and the next build removes it — that
//! a crash after the switch to a spare loses nothing the OS held, and that a closed log
//! leaves no spare behind. Power loss at each step of a rotation onto a spare is in
//! `wal_rotation.rs`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_core::fs::OsFileSystem;
use strata_core::{Durability, SeqNo, Wal};
use strata_harness::sim_fs::CountingFileSystem;
use strata_wal_file::format::is_spare_file_name;
use strata_wal_file::{FileWal, FileWalOptions};

mod common;
use common::{names_in, read_all};

const SEGMENT: u64 = 64 * 1024;

fn options() -> FileWalOptions {
    FileWalOptions::default()
        .with_segment_size_bytes(SEGMENT)
        .with_zero_ahead_bytes(4096)
        .with_writeback_bytes(0)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:06} {}", "y".repeat((i % 89) as usize)).into_bytes()
}

fn spares_in(dir: &Path) -> Vec<PathBuf> {
    names_in(dir).into_iter().filter(|n| is_spare_file_name(n)).map(|n| dir.join(n)).collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Appends buffered records after `*i` until the log holds `segments` segments.
fn append_until_segments(wal: &FileWal, i: &mut u64, segments: usize) {
    while wal.segment_count() < segments {
        *i += 1;
        wal.append(&payload(*i), 1, Durability::Buffered).expect("append");
    }
}

#[test]
fn a_rotation_takes_the_spare_and_a_new_one_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), options()).expect("open");
    assert!(spares_in(dir.path()).is_empty(), "open writes nothing, no spare either");
    let mut i = 1;
    wal.append(&payload(i), 1, Durability::Sync).expect("first append");
    assert!(spares_in(dir.path()).is_empty(), "none while the segment is nearly empty");
    fill_until_spare_ready(&wal, &mut i);
    let spares = spares_in(dir.path());
    assert_eq!(spares.len(), 1, "one spare: {spares:?}");
    let spare_ino = std::fs::metadata(&spares[0]).expect("spare").ino();
    assert_eq!(std::fs::metadata(&spares[0]).expect("spare").len(), SEGMENT, "a segment's size");

    append_until_segments(&wal, &mut i, 2);
    let newest = names_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("wal_0"))
        .max()
        .expect("a newest segment");
    let newest_ino = std::fs::metadata(dir.path().join(&newest)).expect("newest").ino();
    assert_eq!(newest_ino, spare_ino, "the new segment {newest} is the spare's file");

    // The next spare follows the rotation, and the one after that is taken too.
    fill_until_spare_ready(&wal, &mut i);
    let next = spares_in(dir.path());
    assert_eq!(next.len(), 1, "{next:?}");
    assert_ne!(next[0], spares[0], "a new spare");
    let next_ino = std::fs::metadata(&next[0]).expect("spare").ino();
    append_until_segments(&wal, &mut i, 3);
    wal.sync().expect("sync");
    let third = dir.path().join(
        names_in(dir.path()).into_iter().filter(|n| n.starts_with("wal_0")).max().expect("newest"),
    );
    assert_eq!(std::fs::metadata(&third).expect("third").ino(), next_ino);

    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(read_all(&wal), want);
    drop(wal);
    assert!(spares_in(dir.path()).is_empty(), "a closed log leaves no spare");
    let names = names_in(dir.path());
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "nothing temporary left: {names:?}");
    let reopened = FileWal::open(OsFileSystem::shared(), dir.path(), options()).expect("reopen");
    assert_eq!(read_all(&reopened), want);
}

/// A spare is asked for once the current segment is a quarter full: appends about a
/// third of a segment (well short of a rotation) and waits until it is ready.
fn fill_until_spare_ready(wal: &FileWal, i: &mut u64) {
    let segments = wal.segment_count();
    for _ in 0..250 {
        *i += 1;
        wal.append(&payload(*i), 1, Durability::Buffered).expect("append");
    }
    assert_eq!(wal.segment_count(), segments, "no rotation yet");
    wait_until("a spare segment is ready", || wal.spare_ready());
}

/// A spare a crash left behind (its bytes whatever the crash left: here not even zeros)
/// is not part of the log: open changes nothing and reads the same records, `check_dir`
/// finds no problem, and the first append's build replaces it.
#[test]
fn a_leftover_spare_is_not_part_of_the_log() {
    use strata_wal_file::check::check_dir;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options().with_spare_segment(false);
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), opts.clone()).expect("open");
    let mut i = 0;
    append_until_segments(&wal, &mut i, 2);
    wal.sync().expect("sync");
    drop(wal);
    let leftover = dir.path().join("wal_spare_00000000deadbeef.tmp");
    // What looks most like a segment: a valid header for the next sequence, then junk.
    let mut bytes = vec![0xA5u8; SEGMENT as usize];
    let header = strata_wal_file::format::encode_header(SeqNo(i + 1), SEGMENT);
    bytes[..header.len()].copy_from_slice(&header);
    std::fs::write(&leftover, &bytes).expect("write leftover");
    let before = names_in(dir.path());

    let checks = check_dir(&OsFileSystem, dir.path()).expect("check");
    let problems: Vec<String> =
        checks.iter().filter_map(|c| c.problem.as_ref().map(ToString::to_string)).collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(checks.last().map(|c| c.last_seq), Some(SeqNo(i)));

    let reopened = FileWal::open(OsFileSystem::shared(), dir.path(), options()).expect("reopen");
    assert_eq!(names_in(dir.path()), before, "open changes nothing");
    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(read_all(&reopened), want);
    i += 1;
    reopened.append(&payload(i), 1, Durability::Sync).expect("append");
    assert!(!leftover.exists(), "the first append removes the leftover");
    append_until_segments(&reopened, &mut i, 3);
    fill_until_spare_ready(&reopened, &mut i);
    let spares = spares_in(dir.path());
    assert_eq!(spares.len(), 1, "the leftover is replaced: {spares:?}");
    assert_ne!(spares[0], leftover);
    append_until_segments(&reopened, &mut i, 4);
    reopened.sync().expect("sync");
    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(read_all(&reopened), want);
}

/// A process killed after a rotation switched to the spare but before its durable steps
/// ran (they are held): the copy of the directory as the OS holds it opens with every
/// record, and the first append renames the segment into place.
#[test]
fn a_process_crash_after_switching_to_the_spare_loses_nothing_the_os_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = CountingFileSystem::os();
    let wal = FileWal::open(fs.shared(), dir.path(), options()).expect("open");
    let mut i = 1;
    wal.append(&payload(i), 1, Durability::Sync).expect("first append");
    fill_until_spare_ready(&wal, &mut i);
    let spare_ino = std::fs::metadata(&spares_in(dir.path())[0]).expect("spare").ino();
    fs.hold_syncs();
    append_until_segments(&wal, &mut i, 2);
    for _ in 0..5 {
        i += 1;
        wal.append(&payload(i), 1, Durability::Buffered).expect("append");
    }
    wait_until("the rotation waits in its first fdatasync", || fs.held_syncs() > 0);
    let tmp = names_in(dir.path())
        .into_iter()
        .find(|n| n.ends_with(".log.tmp"))
        .expect("the new segment is still under its temporary name");
    assert_eq!(std::fs::metadata(dir.path().join(&tmp)).expect("tmp").ino(), spare_ino);
    let copy = tempfile::tempdir().expect("tempdir");
    for name in names_in(dir.path()) {
        std::fs::copy(dir.path().join(&name), copy.path().join(&name)).expect("copy");
    }
    fs.release_syncs();
    drop(wal);

    let reopened = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(read_all(&reopened), want, "every record the OS held is read back");
    reopened.append(b"after", 1, Durability::Sync).expect("append after reopen");
    drop(reopened);
    let names = names_in(copy.path());
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "nothing temporary left: {names:?}");
    let again = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(read_all(&again).len() as u64, i + 1);
}

/// A spare that cannot be written does not poison the log: rotations create their
/// segments in line. (The build fails here on a leftover it cannot remove: a directory
/// under a spare's name.)
#[test]
fn a_spare_that_cannot_be_written_leaves_the_log_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("wal_spare_0000000000000001.tmp");
    std::fs::create_dir(&blocker).expect("mkdir");
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), options()).expect("open");
    let mut i = 1;
    wal.append(&payload(i), 1, Durability::Sync).expect("first append");
    append_until_segments(&wal, &mut i, 3);
    wal.sync().expect("sync");
    assert!(!wal.spare_ready(), "no spare could be written");
    assert_eq!(spares_in(dir.path()), vec![blocker.clone()], "only the blocker");
    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(read_all(&wal), want);
    drop(wal);
    std::fs::remove_dir(&blocker).expect("rmdir");
    let reopened = FileWal::open(OsFileSystem::shared(), dir.path(), options()).expect("reopen");
    assert_eq!(read_all(&reopened), want);
}
