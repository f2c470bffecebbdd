//! Power loss through the `FileSystem` seam: the simulated file system drops every byte
//! and directory entry that was not synced (or keeps a torn prefix of it). After each
//! crash the store must reopen holding every acknowledged `Sync` write, and the writes
//! that survive must be a prefix of the commit order (nothing unwritten, no holes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_core::{Db, Durability, Error, WriteBatch};
use strata_harness::crash::item_value;
use strata_harness::sim_fs::{CrashMode, SimFileSystem};
use strata_harness::stack::tiny_builder;

/// Small memtables and leveled sizes: the rounds below flush and compact many times,
/// so crashes land in the middle of table writes, manifest edits and WAL checkpoints.
fn open(fs: &SimFileSystem) -> Db {
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024)
        .open()
        .expect("reopen after power loss must succeed")
}

fn key(i: u64) -> Vec<u8> {
    format!("w{i:08}").into_bytes()
}

/// Checks that writes `0..n` survived as a prefix that covers `acked`, returns its length.
fn surviving_prefix(db: &Db, attempted: u64, acked_through: Option<u64>) -> u64 {
    let mut present = 0;
    while present < attempted && db.get(&key(present)).expect("get").is_some() {
        present += 1;
    }
    for i in present..attempted {
        assert!(
            db.get(&key(i)).expect("get").is_none(),
            "write {i} survived but {present} did not: a hole"
        );
    }
    for i in 0..present {
        assert_eq!(
            db.get(&key(i)).expect("get").as_deref(),
            Some(&item_value(1, 0, i)[..]),
            "value of write {i}"
        );
    }
    if let Some(a) = acked_through {
        assert!(present > a, "acknowledged Sync write {a} was lost (only {present} survived)");
    }
    assert!(
        db.get(&key(attempted)).expect("get").is_none(),
        "a write that was never made appeared"
    );
    present
}

/// Writes `n` keys from `next` on, every fourth `Sync` (a promise) and the rest
/// `Buffered` (none); records the last `Sync` one; returns the next key.
fn write_mix(db: &Db, mut next: u64, n: u64, last_sync: &mut Option<u64>) -> u64 {
    for j in 0..n {
        let mut b = WriteBatch::new();
        b.put(key(next), item_value(1, 0, next));
        let d = if j % 4 == 0 { Durability::Sync } else { Durability::Buffered };
        db.write(&b, d).expect("write");
        if d == Durability::Sync {
            *last_sync = Some(next);
        }
        next += 1;
    }
    next
}

/// A power loss: even rounds drop every unsynced byte, odd ones tear the tails.
fn crash_round(fs: &SimFileSystem, round: u64) -> SimFileSystem {
    let mode = if round.is_multiple_of(2) {
        CrashMode::DropUnsynced
    } else {
        CrashMode::TornTail { seed: round }
    };
    fs.crash_with(mode)
}

#[test]
fn power_loss_keeps_every_synced_write_over_many_rounds() {
    let mut fs = SimFileSystem::new();
    let mut next = 0u64;
    let mut last_sync: Option<u64> = None;
    for round in 0..30u64 {
        let db = open(&fs);
        let survived = surviving_prefix(&db, next, last_sync);
        next = survived;
        next = write_mix(&db, next, 20 + round * 3, &mut last_sync);
        fs = crash_round(&fs, round);
        drop(db);
    }
    let db = open(&fs);
    surviving_prefix(&db, next, last_sync);
}

#[test]
fn power_loss_during_concurrent_sync_writers_keeps_acknowledged_writes() {
    for round in 0..5u64 {
        let fs = SimFileSystem::new();
        let db = open(&fs);
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let db = db.clone();
                let acked = Arc::clone(&acked);
                std::thread::spawn(move || {
                    for i in 1.. {
                        let mut b = WriteBatch::new();
                        b.put(format!("t{t}/{i:08}"), item_value(2, t as u32, i));
                        if db.write(&b, Durability::Sync).is_err() {
                            return; // the file system crashed under us
                        }
                        acked[t as usize].store(i, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20 + round * 10));
        let crashed = fs.crash_with(CrashMode::TornTail { seed: round });
        let snapshot: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        drop(db);
        let db = open(&crashed);
        for (t, &upto) in snapshot.iter().enumerate() {
            for i in 1..=upto {
                let got = db.get(format!("t{t}/{i:08}").as_bytes()).expect("get");
                assert_eq!(
                    got.as_deref(),
                    Some(&item_value(2, t as u32, i)[..]),
                    "round {round}: thread {t} write {i} acknowledged but lost"
                );
            }
        }
        assert!(snapshot.iter().sum::<u64>() > 0, "round {round}: nothing was acknowledged");
    }
}

#[test]
fn failed_fsync_poisons_the_store_and_loses_no_acknowledged_write() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    for i in 0..10 {
        db.put(&key(i), &item_value(1, 0, i), Durability::Sync).expect("write before the fault");
    }
    fs.fail_sync_after(1);
    let err = db.put(&key(10), &item_value(1, 0, 10), Durability::Sync).expect_err("fsync fails");
    assert!(matches!(err, Error::Io { .. }), "the first failure reports the I/O error: {err}");
    let err = db.put(&key(11), b"x", Durability::Buffered).expect_err("store is poisoned");
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("fdatasync"), "the reason names the failed call: {err}");
    // Reads keep working.
    assert!(db.get(&key(3)).expect("read after poison").is_some());
    fs.clear_faults();
    let crashed = fs.crash();
    drop(db);
    let db = open(&crashed);
    surviving_prefix(&db, 11, Some(9));
}

#[test]
fn failed_write_poisons_the_store() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    db.put(b"a", b"1", Durability::Sync).expect("write");
    fs.fail_writes_after(1);
    let err = db.put(b"b", b"2", Durability::Buffered).expect_err("ENOSPC");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    fs.clear_faults();
    let err = db.put(b"c", b"3", Durability::Buffered).expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
}

/// Fails the n-th fsync (file or directory) for every n up to the point where a run of
/// writes finishes without reaching it, so that every sync point of the write path, the
/// flush (table file, directory), the manifest (edit, CURRENT) and the WAL checkpoint
/// gets its turn. Each time: the store poisons, the machine loses power, and the
/// reopened store holds every acknowledged write.
#[test]
fn a_failed_sync_at_every_point_of_flush_and_compaction_loses_nothing() {
    let writes = 400u64;
    let mut n = 1u64;
    let mut reached_the_end = 0;
    while reached_the_end < 3 {
        let fs = SimFileSystem::new();
        let db = open(&fs);
        fs.fail_sync_after(n);
        let mut acked = None;
        let mut failed = false;
        for i in 0..writes {
            let d = if i % 5 == 0 { Durability::Sync } else { Durability::Buffered };
            match db.put(&key(i), &item_value(1, 0, i), d) {
                Ok(_) if d == Durability::Sync => acked = Some(i),
                Ok(_) => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            // The failure may hit a background flush or compaction instead of a write.
            failed = db.wait_for_background().is_err();
        }
        if !failed {
            reached_the_end += 1;
        }
        let crashed = fs.crash();
        crashed.clear_faults();
        drop(db);
        let db = open(&crashed);
        let survived = surviving_prefix(&db, writes, acked);
        assert!(survived <= writes);
        n += 1;
        assert!(n < 10_000, "the sweep never ended");
    }
    assert!(n > 20, "the sweep should have crossed many sync points, crossed {n}");
}

/// The rounds above reopen on the simulated file system, whose files have no
/// descriptor, so tables are read into memory rather than mapped. Here every crash's
/// surviving image is materialised to a real directory and reopened through the OS file
/// system: the checks then run through the mmap table reader, and a flipped byte in a
/// mapped table is reported, never served.
#[test]
fn power_loss_survivors_read_through_the_real_mmap_reader() {
    use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};
    use strata_sstable_mmap::MmapTableFormat;
    let mut fs = SimFileSystem::new();
    let mut next = 0u64;
    let mut last_sync: Option<u64> = None;
    let real = tempfile::tempdir().expect("tempdir");
    let mut tables_seen = 0;
    for round in 0..8u64 {
        let db = open(&fs);
        next = write_mix(&db, next, 200 + round * 20, &mut last_sync);
        fs = crash_round(&fs, round);
        drop(db);

        let dir = real.path().join(format!("round-{round}"));
        fs.materialize("/db", &dir).expect("materialize");
        let unlisted = {
            let db = tiny_builder(&dir, OsFileSystem::shared(), 4 * 1024, 16 * 1024)
                .open()
                .expect("the materialised survivors open through the OS file system");
            next = surviving_prefix(&db, next, last_sync);
            db.open_report().kept_unlisted_tables.clone()
        };
        // The tables the manifest lists (a table a crash left half-written is not one:
        // open removes it, or keeps it unlisted when its number was never handed out).
        let tables: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sst"))
            .filter(|p| !unlisted.iter().any(|u| u.file_name() == p.file_name()))
            .collect();
        tables_seen += tables.len();
        for t in &tables {
            let file = OsFileSystem.open(t, OpenMode::ReadOnly).expect("open table");
            let table = MmapTableFormat::default()
                .open_table(file, strata_core::FileNo(1))
                .expect("a live table opens");
            assert!(table.is_mapped(), "{} was not read through mmap", t.display());
        }
        // Damage one mapped table: every read is the right value or an error.
        if let Some(t) = tables.first() {
            let mut bytes = std::fs::read(t).expect("read table");
            let at = bytes.len() / 3;
            bytes[at] ^= 0x10;
            std::fs::write(t, bytes).expect("write table");
            match tiny_builder(&dir, OsFileSystem::shared(), 4 * 1024, 16 * 1024).open() {
                Err(e) => assert!(e.is_corruption(), "round {round}: {e}"),
                Ok(db) => {
                    for i in 0..next {
                        match db.get(&key(i)) {
                            Ok(Some(v)) => assert_eq!(
                                v.as_ref(),
                                &item_value(1, 0, i)[..],
                                "round {round}: damage served as the value of write {i}"
                            ),
                            Ok(None) => panic!("round {round}: write {i} read as missing"),
                            Err(e) => assert!(e.is_corruption(), "round {round}: {e}"),
                        }
                    }
                }
            }
        }
    }
    assert!(tables_seen > 0, "no round left a table to read through mmap");
    let db = open(&fs);
    surviving_prefix(&db, next, last_sync);
}
