//! The crash model, faults and file semantics of [`SimFileSystem`].

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::fs::{File, FileSystem, OpenMode, read_all};
use strata_core::{Error, Result};

use super::image::splitmix64;
use super::{CrashMode, EIO, ENOSPC, SimFileSystem};

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A file system with `/db` created and `/db/f` created, durable as an entry, empty.
fn setup() -> (SimFileSystem, Arc<dyn File>) {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    let f = fs.open(p("/db/f"), OpenMode::CreateNew).expect("create");
    fs.sync_dir(p("/db")).expect("sync dir");
    (fs, f)
}

fn io_kind(err: &Error) -> Option<io::ErrorKind> {
    match err {
        Error::Io { source, .. } => Some(source.kind()),
        _ => None,
    }
}

fn raw_os(err: &Error) -> Option<i32> {
    match err {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[test]
fn unsynced_data_vanishes_after_crash() {
    let (fs, f) = setup();
    f.write_all_at(b"synced", 0).expect("write");
    f.sync_data().expect("sync");
    f.write_all_at(b"+unsynced", 6).expect("write");
    assert_eq!(fs.read_file("/db/f").expect("live"), b"synced+unsynced");
    let after = fs.crash();
    assert_eq!(after.read_file("/db/f").expect("file survives"), b"synced");
    let g = after.open(p("/db/f"), OpenMode::ReadOnly).expect("reopen");
    assert_eq!(read_all(g.as_ref()).expect("read"), b"synced");
}

#[test]
fn synced_data_survives_and_durable_entry_without_data_sync_is_empty() {
    let (fs, f) = setup();
    f.write_all_at(b"hello", 0).expect("write");
    f.sync_data().expect("sync");
    let g = fs.open(p("/db/g"), OpenMode::CreateNew).expect("create g");
    g.write_all_at(b"never synced", 0).expect("write");
    fs.sync_dir(p("/db")).expect("sync dir");
    let after = fs.crash();
    assert_eq!(after.read_file("/db/f").expect("f"), b"hello");
    assert_eq!(after.read_file("/db/g").expect("g entry is durable"), b"");
    // The recovered system is fully usable, and crashes again consistently.
    let f2 = after.open(p("/db/f"), OpenMode::ReadWrite).expect("reopen");
    f2.write_all_at(b" world", 5).expect("write");
    f2.sync_data().expect("sync");
    assert_eq!(after.crash().read_file("/db/f").expect("f"), b"hello world");
}

#[test]
fn created_file_vanishes_without_dir_sync_even_if_data_synced() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    let f = fs.open(p("/db/new"), OpenMode::CreateNew).expect("create");
    f.write_all_at(b"data", 0).expect("write");
    f.sync_data().expect("sync");
    assert!(fs.exists(p("/db/new")).expect("exists"));
    let after = fs.crash();
    assert!(!after.exists(p("/db/new")).expect("exists"));
    assert_eq!(after.read_file("/db/new"), None);
    assert!(after.list_dir(p("/db")).expect("list").is_empty());
    // The directory itself was durable at creation.
    assert!(after.exists(p("/db")).expect("exists"));
}

#[test]
fn sync_dir_covers_direct_children_only() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db/sub")).expect("mkdir");
    let f = fs.open(p("/db/sub/f"), OpenMode::CreateNew).expect("create");
    f.sync_data().expect("sync");
    fs.sync_dir(p("/db")).expect("sync parent of parent");
    assert_eq!(fs.crash().read_file("/db/sub/f"), None);
}

#[test]
fn rename_is_durable_only_after_sync_dir() {
    let (fs, f) = setup();
    f.write_all_at(b"v1", 0).expect("write");
    f.sync_data().expect("sync");
    fs.rename(p("/db/f"), p("/db/g")).expect("rename");
    assert!(!fs.exists(p("/db/f")).expect("exists"));
    assert_eq!(fs.read_file("/db/g").expect("g"), b"v1");

    let undone = fs.crash();
    assert_eq!(undone.read_file("/db/f").expect("rename undone"), b"v1");
    assert_eq!(undone.read_file("/db/g"), None);

    undone.rename(p("/db/f"), p("/db/g")).expect("rename");
    undone.sync_dir(p("/db")).expect("sync dir");
    let done = undone.crash();
    assert_eq!(done.read_file("/db/f"), None);
    assert_eq!(done.read_file("/db/g").expect("rename durable"), b"v1");
}

#[test]
fn rename_over_existing_file_keeps_old_contents_until_sync_dir() {
    let (fs, f) = setup();
    f.write_all_at(b"old", 0).expect("write");
    f.sync_data().expect("sync");
    let tmp = fs.open(p("/db/tmp"), OpenMode::CreateNew).expect("create");
    tmp.write_all_at(b"new", 0).expect("write");
    tmp.sync_data().expect("sync");
    fs.rename(p("/db/tmp"), p("/db/f")).expect("rename");
    assert_eq!(fs.read_file("/db/f").expect("live"), b"new");
    assert_eq!(fs.crash().read_file("/db/f").expect("old survives"), b"old");
    // Crashing the already crashed system again yields the same durable state.
    fs.sync_dir(p("/db")).expect_err("crashed");
    assert_eq!(fs.crash().read_file("/db/f").expect("old"), b"old");
}

#[test]
fn removal_is_durable_only_after_sync_dir_and_open_handles_survive_it() {
    let (fs, f) = setup();
    f.write_all_at(b"x", 0).expect("write");
    f.sync_data().expect("sync");
    fs.remove_file(p("/db/f")).expect("remove");
    assert!(!fs.exists(p("/db/f")).expect("exists"));
    // The handle still works, like an unlinked inode.
    f.write_all_at(b"y", 1).expect("write after unlink");
    assert_eq!(read_all(f.as_ref()).expect("read"), b"xy");
    assert_eq!(fs.crash().read_file("/db/f").expect("comes back"), b"x");

    let (fs, _f) = setup();
    fs.remove_file(p("/db/f")).expect("remove");
    fs.sync_dir(p("/db")).expect("sync dir");
    assert_eq!(fs.crash().read_file("/db/f"), None);
}

#[test]
fn torn_tail_keeps_durable_prefix_plus_prefix_of_unsynced_bytes() {
    let unsynced: &[u8] = b" and a long unsynced tail of appended bytes";
    let mut lengths = BTreeSet::new();
    for seed in 0..64 {
        let (fs, f) = setup();
        f.write_all_at(b"durable", 0).expect("write");
        f.sync_data().expect("sync");
        f.write_all_at(unsynced, 7).expect("write");
        let live = fs.read_file("/db/f").expect("live");
        let image = fs.crash_with(CrashMode::TornTail { seed }).read_file("/db/f").expect("f");
        assert!(image.starts_with(b"durable"), "seed {seed}: {image:?}");
        assert!(live.starts_with(&image), "seed {seed}: {image:?} is not a prefix of live");
        lengths.insert(image.len());

        // Deterministic: the same seed tears the same way.
        let (fs2, f2) = setup();
        f2.write_all_at(b"durable", 0).expect("write");
        f2.sync_data().expect("sync");
        f2.write_all_at(unsynced, 7).expect("write");
        let again = fs2.crash_with(CrashMode::TornTail { seed }).read_file("/db/f");
        assert_eq!(again.as_deref(), Some(image.as_slice()), "seed {seed}");
    }
    assert!(lengths.len() > 5, "tears should vary with the seed: {lengths:?}");
    assert!(lengths.iter().all(|&n| (7..=7 + unsynced.len()).contains(&n)));
}

#[test]
fn torn_tail_on_preallocated_file_persists_a_prefix_of_in_place_writes() {
    let mut cuts = BTreeSet::new();
    for seed in 0..32 {
        let (fs, f) = setup();
        f.allocate(64).expect("allocate");
        f.write_all_at(b"head", 0).expect("write");
        f.sync_data().expect("sync");
        f.write_all_at(b"ABCDEFGH", 4).expect("write");
        let image = fs.crash_with(CrashMode::TornTail { seed }).read_file("/db/f").expect("f");
        assert_eq!(image.len(), 64);
        assert_eq!(image.get(..4), Some(b"head".as_slice()));
        let kept = image.iter().skip(4).take_while(|&&b| b != 0).count();
        assert_eq!(image.get(4..4 + kept), b"ABCDEFGH".get(..kept), "seed {seed}");
        assert!(image.iter().skip(4 + kept).all(|&b| b == 0), "seed {seed}: {image:?}");
        cuts.insert(kept);
    }
    assert!(cuts.len() > 2, "{cuts:?}");
}

#[test]
fn torn_tail_does_not_resurrect_files_without_durable_entries() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    let f = fs.open(p("/db/f"), OpenMode::CreateNew).expect("create");
    f.write_all_at(b"abc", 0).expect("write");
    assert_eq!(fs.crash_with(CrashMode::TornTail { seed: 7 }).read_file("/db/f"), None);
}

#[test]
fn fail_sync_after_fails_the_nth_sync_and_leaves_durable_unchanged() {
    let (fs, f) = setup();
    fs.fail_sync_after(2);
    f.write_all_at(b"one", 0).expect("write");
    f.sync_data().expect("first sync succeeds");
    f.write_all_at(b"two", 3).expect("write");
    let err = f.sync_data().expect_err("second sync fails");
    assert_eq!(raw_os(&err), Some(EIO), "{err}");
    assert_eq!(fs.durable_file("/db/f").expect("durable"), b"one");
    f.sync_data().expect_err("later syncs fail too");
    assert_eq!(fs.sync_data_count(), 3);
    assert_eq!(fs.durable_file("/db/f").expect("durable"), b"one");

    fs.clear_faults();
    f.sync_data().expect("sync after clear");
    assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"onetwo");
}

#[test]
fn fail_sync_after_one_fails_the_very_next_sync() {
    let (fs, f) = setup();
    f.write_all_at(b"x", 0).expect("write");
    fs.fail_sync_after(1);
    f.sync_data().expect_err("fails");
    assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"");
}

#[test]
fn fail_writes_after_returns_enospc_and_writes_nothing() {
    let (fs, f) = setup();
    fs.fail_writes_after(2);
    f.write_all_at(b"ab", 0).expect("first write");
    let err = f.write_all_at(b"cd", 2).expect_err("second write fails");
    assert_eq!(raw_os(&err), Some(ENOSPC), "{err}");
    assert!(matches!(&err, Error::Io { op: "write", path, .. } if path == p("/db/f")));
    assert_eq!(fs.read_file("/db/f").expect("live"), b"ab");
    fs.clear_faults();
    f.write_all_at(b"cd", 2).expect("write after clear");
    assert_eq!(fs.read_file("/db/f").expect("live"), b"abcd");
    assert_eq!(fs.write_count(), 3);
}

#[test]
fn crashed_file_system_refuses_everything() {
    let (fs, f) = setup();
    f.write_all_at(b"keep", 0).expect("write");
    f.sync_data().expect("sync");
    let zombie = fs.clone();
    let lock = fs.lock(p("/db/LOCK")).expect("lock");
    let after = fs.crash();
    assert!(zombie.is_crashed());

    let crashed = |r: Result<()>| {
        let err = r.expect_err("crashed file system must refuse");
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("crashed"), "{err}");
    };
    crashed(f.write_all_at(b"zombie", 0));
    crashed(f.sync_data());
    crashed(f.set_len(0));
    crashed(f.allocate(100));
    crashed(f.len().map(drop));
    crashed(f.read_at(&mut [0u8; 4], 0).map(drop));
    crashed(zombie.open(p("/db/f"), OpenMode::ReadWrite).map(drop));
    crashed(zombie.open(p("/db/z"), OpenMode::CreateNew).map(drop));
    crashed(zombie.rename(p("/db/f"), p("/db/g")));
    crashed(zombie.remove_file(p("/db/f")));
    crashed(zombie.list_dir(p("/db")).map(drop));
    crashed(zombie.create_dir_all(p("/other")));
    crashed(zombie.sync_dir(p("/db")));
    crashed(zombie.exists(p("/db/f")).map(drop));
    crashed(zombie.lock(p("/db/LOCK2")).map(drop));
    crashed(zombie.write_file_raw("/db/f", b"raw"));
    drop(lock);

    // Nothing the zombie tried reached the new file system.
    assert_eq!(after.read_file("/db/f").expect("f"), b"keep");
    assert_eq!(after.list_dir(p("/db")).expect("list"), vec!["f".to_string()]);
    assert_eq!(after.sync_data_count(), 0);
}

#[test]
fn lock_is_exclusive_until_the_guard_drops() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    let held = fs.lock(p("/db/LOCK")).expect("first lock");
    assert!(fs.exists(p("/db/LOCK")).expect("exists"), "lock file is created");
    let err = fs.clone().lock(p("/db/LOCK")).expect_err("second lock must fail");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let other = fs.lock(p("/db/OTHER")).expect("other path is independent");
    drop(held);
    let _again = fs.lock(p("/db/LOCK")).expect("relock after drop");
    drop(other);
    // A crash releases every lock (the process died).
    fs.sync_dir(p("/db")).expect("sync dir");
    let after = fs.crash();
    let _fresh = after.lock(p("/db/LOCK")).expect("lock after crash");
}

#[test]
fn open_modes_follow_the_contract() {
    let (fs, f) = setup();
    f.write_all_at(b"data", 0).expect("write");
    let err = fs.open(p("/db/f"), OpenMode::CreateNew).expect_err("exists");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::AlreadyExists), "{err}");
    assert_eq!(f.len().expect("len"), 4, "CreateNew must not clobber");
    let err = fs.open(p("/db/missing"), OpenMode::ReadWrite).expect_err("missing");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");
    let err = fs.open(p("/db/missing"), OpenMode::ReadOnly).expect_err("missing");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");
    let err = fs.open(p("/nodir/f"), OpenMode::CreateNew).expect_err("no parent");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");

    let ro = fs.open(p("/db/f"), OpenMode::ReadOnly).expect("open ro");
    assert!(matches!(ro.write_all_at(b"x", 0), Err(Error::Io { .. })));
    assert!(matches!(ro.set_len(0), Err(Error::Io { .. })));
    assert!(matches!(ro.allocate(10), Err(Error::Io { .. })));
    assert_eq!(read_all(ro.as_ref()).expect("read"), b"data");
    assert_eq!(ro.path(), p("/db/f"));
    let rw = fs.open(p("/db/f"), OpenMode::ReadWrite).expect("open rw");
    rw.write_all_at(b"D", 0).expect("write");
    assert_eq!(read_all(f.as_ref()).expect("shared data"), b"Data");
}

#[test]
fn reads_writes_and_lengths_behave_like_a_file() {
    let (_fs, f) = setup();
    f.write_all_at(b"abc", 5).expect("write past end");
    assert_eq!(read_all(f.as_ref()).expect("read"), b"\0\0\0\0\0abc");
    let mut buf = [9u8; 4];
    assert_eq!(f.read_at(&mut buf, 6).expect("read"), 2);
    assert_eq!(&buf[..2], b"bc");
    assert_eq!(f.read_at(&mut buf, 8).expect("eof"), 0);
    assert_eq!(f.read_at(&mut buf, 1000).expect("past eof"), 0);
    f.allocate(4).expect("allocate smaller is a no-op");
    assert_eq!(f.len().expect("len"), 8);
    f.allocate(16).expect("allocate");
    assert_eq!(f.len().expect("len"), 16);
    f.set_len(6).expect("truncate");
    assert_eq!(read_all(f.as_ref()).expect("read"), b"\0\0\0\0\0a");
    let err = f.write_all_at(b"x", u64::MAX).expect_err("absurd offset");
    assert!(matches!(err, Error::Io { .. }));
}

#[test]
fn namespace_operations() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/a/b/c")).expect("mkdir");
    fs.create_dir_all(p("/a/b")).expect("mkdir again is fine");
    fs.open(p("/a/b/f1"), OpenMode::CreateNew).expect("create");
    fs.open(p("/a/b/./f2"), OpenMode::CreateNew).expect("create");
    let mut names = fs.list_dir(p("/a/b")).expect("list");
    names.sort();
    assert_eq!(names, vec!["c", "f1", "f2"]);
    assert_eq!(fs.file_names("/a/b"), vec!["f1", "f2"]);
    assert!(fs.exists(p("/a/b/f2")).expect("exists"));
    assert!(fs.exists(p("/a")).expect("exists"));
    assert!(!fs.exists(p("/a/zz")).expect("exists"));
    let err = fs.list_dir(p("/nope")).expect_err("missing dir");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
    let err = fs.remove_file(p("/a/b/zz")).expect_err("missing file");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
    let err = fs.rename(p("/a/b/zz"), p("/a/b/yy")).expect_err("missing source");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
    let err = fs.rename(p("/a/b/f1"), p("/x/f1")).expect_err("missing target dir");
    assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
    fs.create_dir_all(p("/a/b/f1")).expect_err("file in the way");
    fs.sync_dir(p("/nope")).expect_err("missing dir");
    // Relative paths work too, rooted at "".
    fs.create_dir_all(p("rel")).expect("mkdir");
    fs.open(p("rel/f"), OpenMode::CreateNew).expect("create");
    fs.sync_dir(p("rel")).expect("sync");
    assert!(fs.crash().exists(p("./rel/f")).expect("exists"));
}

#[test]
fn write_file_raw_overwrites_live_and_durable() {
    let (fs, f) = setup();
    f.write_all_at(b"original", 0).expect("write");
    f.sync_data().expect("sync");
    fs.write_file_raw("/db/f", b"0riginal").expect("corrupt");
    assert_eq!(read_all(f.as_ref()).expect("read via old handle"), b"0riginal");
    assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"0riginal");

    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    fs.write_file_raw("/db/new", b"abc").expect("create raw");
    assert_eq!(fs.crash().read_file("/db/new").expect("durable at once"), b"abc");
}

/// Random writes, truncations, extensions and syncs: after each sync the durable image
/// equals the live one, and a crash restores the image of the last successful sync.
/// Exercises the dirty-range bookkeeping.
#[test]
fn durable_image_tracks_last_sync_under_random_operations() {
    for seed in 0..50u64 {
        let (fs, f) = setup();
        let mut rng = seed;
        let mut next = |bound: u64| {
            rng = splitmix64(rng);
            rng % bound
        };
        let mut last_synced = Vec::new();
        for _ in 0..60 {
            match next(5) {
                0 | 1 => {
                    let len = next(20) as usize + 1;
                    let byte = next(255) as u8 + 1;
                    f.write_all_at(&vec![byte; len], next(100)).expect("write");
                }
                2 => f.set_len(next(120)).expect("set_len"),
                3 => f.allocate(next(150)).expect("allocate"),
                _ => {
                    f.sync_data().expect("sync");
                    last_synced = fs.read_file("/db/f").expect("live");
                    assert_eq!(fs.durable_file("/db/f").expect("durable"), last_synced);
                }
            }
        }
        assert_eq!(fs.crash().read_file("/db/f").expect("f"), last_synced, "seed {seed}");
    }
}

#[test]
fn shared_between_threads() {
    let fs = SimFileSystem::new();
    fs.create_dir_all(p("/db")).expect("mkdir");
    let shared = fs.shared();
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let path = PathBuf::from(format!("/db/t{t}"));
                let f = shared.open(&path, OpenMode::CreateNew).expect("create");
                for i in 0..100u64 {
                    f.write_all_at(&[t], i).expect("write");
                    f.sync_data().expect("sync");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    fs.sync_dir(p("/db")).expect("sync dir");
    assert_eq!(fs.sync_data_count(), 400);
    assert_eq!(fs.write_count(), 400);
    assert_eq!(fs.sync_dir_count(), 1);
    let after = fs.crash();
    for t in 0..4u8 {
        assert_eq!(after.read_file(format!("/db/t{t}")).expect("file"), vec![t; 100]);
    }
}
