//! Rotation off the write path: the append that fills a segment switches to a new one
//! under a temporary name and returns; fdatasyncs, the seal and the rename run later
//! (see `PendingRotation` in `wal.rs`). These tests stop a rotation between its switch
//! and its durable steps — by a process crash (the directory copied as the OS holds it)
//! and by power losses with each of its fdatasyncs failing — and reopen.

use std::path::Path;
use std::time::{Duration, Instant};

use strata_core::fs::OsFileSystem;
use strata_core::{Durability, SeqNo, Wal};
use strata_harness::sim_fs::{CountingFileSystem, CrashMode, SimFileSystem};
use strata_wal_file::{FileWal, FileWalOptions};

mod common;
use common::{names_in, read_all};

fn options() -> FileWalOptions {
    FileWalOptions::default()
        .with_segment_size_bytes(8 * 1024)
        .with_zero_ahead_bytes(4096)
        .with_writeback_bytes(0)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:06} {}", "x".repeat((i % 97) as usize)).into_bytes()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// What a process killed in the middle of a rotation leaves: a log written with records
/// `1..=last`, whose newest segment is still under its temporary name (its durable steps
/// were held), copied as the OS holds it. Returns the copy and `last`.
fn crashed_mid_rotation() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = CountingFileSystem::os();
    let wal = FileWal::open(fs.shared(), dir.path(), options()).expect("open");
    // The first append records the epoch (with an fdatasync): before the hold.
    let mut i = 1;
    wal.append(&payload(i), 1, Durability::Sync).expect("first append");
    // Every fdatasync from here on waits: the rotation switches, its durable steps stall.
    fs.hold_syncs();
    while wal.segment_count() < 2 {
        i += 1;
        wal.append(&payload(i), 1, Durability::Buffered).expect("append");
    }
    // Some records into the new segment (well short of filling it).
    for _ in 0..5 {
        i += 1;
        wal.append(&payload(i), 1, Durability::Buffered).expect("append");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs.held_syncs() == 0 {
        assert!(Instant::now() < deadline, "the rotation never started its first fdatasync");
        std::thread::sleep(Duration::from_millis(1));
    }
    let names = names_in(dir.path());
    assert!(
        names.iter().any(|n| n.ends_with(".log.tmp")),
        "the new segment is still under its temporary name: {names:?}"
    );
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), copy.path());
    fs.release_syncs();
    drop(wal);
    (copy, i)
}

#[test]
fn a_process_crash_before_a_rotation_is_durable_loses_nothing_the_os_held() {
    let (copy, i) = crashed_mid_rotation();
    let reopened = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    let got = read_all(&reopened);
    let want: Vec<(u64, Vec<u8>)> = (1..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(got, want, "every record the OS held is read back after the crash");
    // The first append finishes the rotation: the successor is renamed into place.
    reopened.append(b"after", 1, Durability::Sync).expect("append after reopen");
    drop(reopened);
    let names = names_in(copy.path());
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "no temporary file left: {names:?}");
    let again = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(read_all(&again).len() as u64, i + 1);
}

/// Power loss (the simulated file system) with each fdatasync from the rotation on
/// failing in turn, and torn unsynced writes, for a rotation that creates its segment
/// in line and for one onto a spare segment: every acknowledged record is back,
/// sequences dense, and the log goes on.
#[test]
fn a_power_loss_at_each_step_of_a_rotation_keeps_what_was_acknowledged() {
    for spare in [false, true] {
        let options = || options().with_spare_segment(spare);
        for failing in 1..=5u64 {
            for seed in 0..10u64 {
                let at = format!("spare {spare}, failing {failing}, seed {seed}");
                let sim = SimFileSystem::new();
                let dir = Path::new("/wal");
                let wal = FileWal::open(sim.shared(), dir, options()).expect("open");
                let mut i = 0;
                // Acknowledged: a Sync append returned.
                for _ in 0..3 {
                    i += 1;
                    wal.append(&payload(i), 1, Durability::Sync).expect("sync append");
                }
                if spare {
                    // A quarter of the segment asks for a spare; wait until it is ready.
                    while i < 40 {
                        i += 1;
                        wal.append(&payload(i), 1, Durability::Buffered).expect("append");
                    }
                    assert_eq!(wal.segment_count(), 1, "{at}: no rotation yet");
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !wal.spare_ready() {
                        assert!(Instant::now() < deadline, "{at}: no spare segment");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    wal.sync().expect("sync");
                }
                let acknowledged = i;
                // The `failing`-th fdatasync from here on fails (and all after it), as
                // if the power went out there; the rotation's durable steps run into it.
                sim.fail_sync_after(failing);
                let mut rotated = false;
                while i < 400 && !(rotated && i % 7 == 0) {
                    i += 1;
                    if wal.append(&payload(i), 1, Durability::Buffered).is_err() {
                        break;
                    }
                    rotated |= wal.segment_count() > 1;
                }
                assert!(rotated, "{at}: no rotation happened");
                // (The next spare is asked for only once the new segment is a quarter
                // full, which the few appends since the rotation are not.)
                assert!(!(spare && wal.spare_ready()), "{at}: the rotation took the spare");
                // Waits for the rotation to finish or fail.
                let _ = wal.sync();
                let mode =
                    if seed == 0 { CrashMode::DropUnsynced } else { CrashMode::TornTail { seed } };
                let after = sim.crash_with(mode);
                drop(wal);
                let reopened = match FileWal::open(after.shared(), dir, options()) {
                    Ok(w) => w,
                    Err(e) => panic!("{at}: open after a power loss: {e}"),
                };
                let got = read_all(&reopened);
                assert!(
                    got.len() as u64 >= acknowledged,
                    "{at}: {} records back, {acknowledged} acknowledged",
                    got.len()
                );
                for (n, (seq, bytes)) in got.iter().enumerate() {
                    let want = n as u64 + 1;
                    assert_eq!(*seq, want, "{at}: sequences are dense");
                    assert_eq!(*bytes, payload(want), "{at}: record {want}");
                }
                // The log goes on where it ended.
                let next = reopened.append(b"next", 1, Durability::Sync).expect("append after");
                assert_eq!(next.0, got.len() as u64 + 1);
            }
        }
    }
}

/// Open adopts a successor a crash left under its temporary name, but renames it only at
/// the first append. A checkpoint before that append (a store's first flush after
/// recovery runs before any write) must not delete the predecessor: with it gone, the
/// next open would find no named segment at all and start an empty log at 1.
#[test]
fn a_checkpoint_before_the_first_append_keeps_an_adopted_rotation_openable() {
    let (copy, i) = crashed_mid_rotation();
    let reopened = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(reopened.last_seq(), SeqNo(i));
    // Everything is in tables now (as after a store's first flush); no append yet.
    reopened.checkpoint(SeqNo(i)).expect("checkpoint");
    drop(reopened);
    let names = names_in(copy.path());
    assert!(
        names.iter().any(|n| n.ends_with(".log")),
        "a segment under its final name is kept until the successor is renamed: {names:?}"
    );
    let again = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(again.last_seq(), SeqNo(i), "the log still ends where it ended");
    again.append(b"after", 1, Durability::Sync).expect("append after reopen");
    assert_eq!(again.last_seq(), SeqNo(i + 1), "the next append continues the sequence");
    let oldest = again.oldest_seq();
    let mut r = again.read_from(oldest).expect("reader");
    let mut last = SeqNo(0);
    while let Some(b) = r.next_batch().expect("read") {
        last = SeqNo(b.first_seq.0 + u64::from(b.count) - 1);
    }
    assert_eq!(last, SeqNo(i + 1));
}

/// A store an earlier version damaged that way (the predecessor checkpointed away while
/// its successor still had its temporary name) opens: the temporary segment is the whole
/// log, and the first append gives it its final name.
#[test]
fn a_log_whose_only_segment_is_temporary_opens_with_its_records() {
    let (copy, i) = crashed_mid_rotation();
    let mut tmp_start = None;
    for entry in std::fs::read_dir(copy.path()).expect("read_dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            std::fs::remove_file(copy.path().join(&name)).expect("remove");
        } else if let Some(stem) =
            name.strip_suffix(".log.tmp").and_then(|n| n.strip_prefix("wal_"))
        {
            tmp_start = Some(stem.parse::<u64>().expect("segment name is its start"));
        }
    }
    let tmp_start = tmp_start.expect("the crash left a temporary segment");

    let reopened = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(reopened.last_seq(), SeqNo(i), "the temporary segment's records are the log");
    assert_eq!(reopened.oldest_seq(), SeqNo(tmp_start));
    let mut r = reopened.read_from(SeqNo(tmp_start)).expect("reader");
    let mut got = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        got.push((b.first_seq.0, b.payload.to_vec()));
    }
    let want: Vec<(u64, Vec<u8>)> = (tmp_start..=i).map(|n| (n, payload(n))).collect();
    assert_eq!(got, want);
    drop(r);
    reopened.append(b"after", 1, Durability::Sync).expect("append after reopen");
    drop(reopened);
    let names = names_in(copy.path());
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "renamed at the first append: {names:?}");
    let again = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(again.last_seq(), SeqNo(i + 1));
}

/// `check_dir` (what `strata verify` runs, also against a live store) sees a rotation in
/// flight as open does: the successor under its temporary name is part of the log,
/// whether or not the segment before it is sealed yet, and the log ends where open says.
#[test]
fn check_dir_accepts_a_rotation_in_flight_as_open_does() {
    use strata_wal_file::check::check_dir;
    use strata_wal_file::format::{RecordMeta, encode_seal};

    let (copy, i) = crashed_mid_rotation();
    let problems = |checks: &[strata_wal_file::check::SegmentCheck]| -> Vec<String> {
        checks.iter().filter_map(|c| c.problem.as_ref().map(ToString::to_string)).collect()
    };
    // Unsealed predecessor (the seal comes after the held fdatasync).
    let checks = check_dir(&OsFileSystem, copy.path()).expect("check");
    assert!(problems(&checks).is_empty(), "{:?}", problems(&checks));
    assert_eq!(checks.last().map(|c| c.last_seq), Some(SeqNo(i)), "the log ends at {i}");
    let tmp = checks.last().expect("a segment").path.file_name().expect("name").to_owned();
    let tmp = tmp.to_string_lossy().into_owned();
    assert!(tmp.ends_with(".tmp"), "the last segment checked is the temporary one: {tmp}");

    // Sealed predecessor: the step before the rename.
    let newest = &checks[checks.len() - 2];
    let mut seal = Vec::new();
    let meta = RecordMeta { epoch: strata_core::Epoch(1), synced_through: newest.last_seq };
    encode_seal(&mut seal, checks[checks.len() - 1].start_seq, meta);
    let f = std::fs::OpenOptions::new().write(true).open(&newest.path).expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, &seal, newest.used_bytes).expect("seal");
    drop(f);
    let checks = check_dir(&OsFileSystem, copy.path()).expect("check");
    assert!(problems(&checks).is_empty(), "{:?}", problems(&checks));
    assert_eq!(checks.last().map(|c| c.last_seq), Some(SeqNo(i)));
    let reopened = FileWal::open(OsFileSystem::shared(), copy.path(), options()).expect("reopen");
    assert_eq!(reopened.last_seq(), SeqNo(i), "open agrees");
    drop(reopened);

    // Without the successor, the sealed newest segment is reported, as before.
    std::fs::remove_file(copy.path().join(&tmp)).expect("remove the successor");
    let checks = check_dir(&OsFileSystem, copy.path()).expect("check");
    let found = problems(&checks);
    assert!(found.iter().any(|p| p.contains("which is missing")), "{found:?}");
}

/// A WAL release (after a flush) deletes its segments without holding the segment list:
/// deleting a 64 MiB segment takes milliseconds on a busy disk, and a rotation — inside
/// an append, under the writer lock — needs that list. With a deletion held in flight,
/// appends that rotate still complete.
#[test]
fn a_checkpoint_deleting_segments_does_not_hold_up_a_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = CountingFileSystem::os();
    let wal = std::sync::Arc::new(
        FileWal::open(fs.shared(), dir.path(), options().with_spare_segment(false)).expect("open"),
    );
    let mut i = 0;
    while wal.segment_count() < 4 {
        i += 1;
        wal.append(&payload(i), 1, Durability::Buffered).expect("append");
    }
    wal.sync().expect("sync");
    fs.hold_removes();
    let releasing = {
        let wal = std::sync::Arc::clone(&wal);
        std::thread::spawn(move || wal.checkpoint(SeqNo(i)))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs.held_removes() == 0 {
        assert!(Instant::now() < deadline, "the checkpoint never deleted a segment");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Enough appends for two rotations, on a thread of their own.
    let (done, finished) = std::sync::mpsc::channel();
    let appending = {
        let wal = std::sync::Arc::clone(&wal);
        std::thread::spawn(move || {
            for n in i + 1..=i + 200 {
                wal.append(&payload(n), 1, Durability::Buffered).expect("append");
            }
            let _ = done.send(());
        })
    };
    let appended = finished.recv_timeout(Duration::from_secs(30));
    fs.release_removes();
    appending.join().expect("appender");
    releasing.join().expect("checkpoint thread").expect("checkpoint");
    assert!(appended.is_ok(), "appends that rotate waited for a segment's deletion");
    let got = {
        let mut r = wal.read_from(wal.oldest_seq()).expect("reader");
        let mut last = 0;
        while let Some(b) = r.next_batch().expect("read") {
            last = b.first_seq.0 + u64::from(b.count) - 1;
        }
        last
    };
    assert_eq!(got, i + 200);
}
