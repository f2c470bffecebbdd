//! The LSM engine's promises one at a time: flushes checkpoint the WAL, compaction
//! keeps what snapshots need and drops what nobody can see, corruption in tables and
//! manifests is detected with file and offset and never served, a missing table is a
//! clear error at open, checkpoints open as stores, and writes stall instead of
//! growing memory without bound.

use std::path::Path;
use std::sync::Arc;

use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{Db, DbOptions, Durability, Error, WriteBatch};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn open_sim(fs: &SimFileSystem) -> Db {
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024).open().expect("open")
}

fn k(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn v(i: u32, round: u32) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn fill(db: &Db, n: u32, round: u32) {
    for i in 0..n {
        db.put(&k(i), &v(i, round), Durability::Buffered).expect("put");
    }
}

fn names(fs: &SimFileSystem, suffix: &str) -> Vec<String> {
    let mut n: Vec<String> =
        fs.file_names("/db").into_iter().filter(|n| n.ends_with(suffix)).collect();
    n.sort();
    n
}

#[test]
fn flushes_and_compactions_keep_every_value_and_bound_the_tree() {
    let fs = SimFileSystem::new();
    let db = open_sim(&fs);
    for round in 0..4 {
        fill(&db, 2000, round);
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    let st = db.stats();
    assert!(st.flushes >= 10, "4 × 2000 writes must flush 4 KiB memtables many times: {st:?}");
    assert!(st.compactions >= 1, "{st:?}");
    assert!(st.levels[0].tables < 4, "L0 is compacted below its trigger: {st:?}");
    assert!(st.levels.iter().skip(1).any(|l| l.tables > 0), "data reached L1+: {st:?}");
    assert_eq!(st.memtable_entries, 0, "everything was flushed");
    assert_eq!(st.flushed_seq, st.visible_seq);
    for i in 0..2000 {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i, 3)[..]), "key {i}");
    }
    // Overwritten versions are gone once no snapshot needs them: the tables hold about
    // one version per key, not four.
    let entries_in_tables: u64 = st.levels.iter().map(|l| l.bytes).sum();
    let live: u64 = (0..2000).map(|i| (k(i).len() + v(i, 3).len()) as u64).sum();
    assert!(
        entries_in_tables < live * 3,
        "tables hold {entries_in_tables} bytes for {live} live bytes: shadowed versions were kept"
    );
    // The WAL was checkpointed: old segments are gone.
    let wal = names(&fs, ".log");
    assert!(wal.len() <= 3, "checkpointed WAL segments must be deleted, found {wal:?}");
    // Obsolete tables were deleted: every table on disk is live.
    let live_tables: usize = st.levels.iter().map(|l| l.tables).sum();
    assert_eq!(names(&fs, ".sst").len(), live_tables);
    drop(db);
    let db = open_sim(&fs);
    assert_eq!(db.open_report().replayed_ops, 0, "nothing left to replay after a flush");
    assert_eq!(db.get(&k(7)).expect("get").as_deref(), Some(&v(7, 3)[..]));
}

#[test]
fn a_snapshot_keeps_its_versions_through_compaction_and_deletes_disappear() {
    let fs = SimFileSystem::new();
    let db = open_sim(&fs);
    fill(&db, 1000, 0);
    let snap = db.snapshot();
    for i in 0..1000 {
        if i % 2 == 0 {
            db.delete(&k(i), Durability::Buffered).expect("delete");
        }
    }
    fill(&db, 1000, 1);
    for i in (0..1000).step_by(3) {
        db.delete(&k(i), Durability::Buffered).expect("delete");
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    for i in 0..1000 {
        assert_eq!(db.get_at(&k(i), &snap).expect("get").as_deref(), Some(&v(i, 0)[..]));
        let now = db.get(&k(i)).expect("get");
        if i % 3 == 0 {
            assert_eq!(now, None, "key {i} was deleted");
        } else {
            assert_eq!(now.as_deref(), Some(&v(i, 1)[..]));
        }
    }
    assert_eq!(db.stats().live_snapshots, 1);
    drop(snap);
    assert_eq!(db.stats().live_snapshots, 0);
    let n = db.iter().count();
    assert_eq!(n, (0..1000).filter(|i| i % 3 != 0).count());
}

#[test]
fn a_damaged_table_block_is_an_error_naming_the_file_never_data() {
    let fs = SimFileSystem::new();
    let db = open_sim(&fs);
    fill(&db, 1500, 0);
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    drop(db);
    let tables = names(&fs, ".sst");
    let victim = format!("/db/{}", tables[0]);
    let mut bytes = fs.read_file(&victim).expect("table");
    for b in bytes.iter_mut().take(200).skip(20) {
        *b ^= 0x5a;
    }
    fs.write_file_raw(&victim, &bytes).expect("damage");
    let db = open_sim(&fs);
    let mut errors = 0;
    for i in 0..1500 {
        match db.get(&k(i)) {
            Ok(Some(got)) => assert_eq!(got.as_ref(), &v(i, 0)[..], "a wrong value was served"),
            Ok(None) => panic!("key {i} vanished instead of failing"),
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                assert!(e.to_string().contains(&tables[0]), "names the file: {e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "some key lives in the damaged block");
    let scan: Result<Vec<_>, Error> = db.iter().collect();
    assert!(scan.is_err(), "a scan over the damaged block fails instead of skipping it");
}

#[test]
fn a_missing_table_or_damaged_manifest_is_a_clear_error_at_open() {
    let fs = SimFileSystem::new();
    let db = open_sim(&fs);
    fill(&db, 1500, 0);
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    drop(db);

    let manifest = names(&fs, "").into_iter().find(|n| n.starts_with("MANIFEST-")).expect("m");
    let path = format!("/db/{manifest}");
    let good = fs.read_file(&path).expect("manifest");
    let mut bad = good.clone();
    bad[20] ^= 0xff; // inside the first edit, with more edits... or the only one
    bad.extend_from_slice(&good[16..]); // a second, intact copy after the damaged one
    fs.write_file_raw(&path, &bad).expect("damage");
    let err = tiny_builder("/db", fs.shared(), 4096, 16384).open().expect_err("damaged manifest");
    assert!(err.is_corruption() && err.to_string().contains(&manifest), "{err}");
    fs.write_file_raw(&path, &good).expect("restore");

    let table = names(&fs, ".sst").pop().expect("a table");
    let copy = fs.read_file(format!("/db/{table}")).expect("read");
    fs.remove_file(Path::new(&format!("/db/{table}"))).expect("remove");
    let err = tiny_builder("/db", fs.shared(), 4096, 16384).open().expect_err("missing table");
    assert!(err.to_string().contains(&table) && err.to_string().contains("missing"), "{err}");
    fs.write_file_raw(format!("/db/{table}"), &copy).expect("restore");
    let db = open_sim(&fs);
    assert_eq!(db.get(&k(3)).expect("get").as_deref(), Some(&v(3, 0)[..]));
}

#[test]
fn checkpoint_to_makes_a_copy_that_opens_as_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let os: Arc<dyn FileSystem> = OsFileSystem::shared();
    let db =
        tiny_builder(dir.path().join("db"), Arc::clone(&os), 4096, 16384).open().expect("open");
    fill(&db, 1200, 0);
    db.flush().expect("flush");
    fill(&db, 300, 1); // some only in the memtable and WAL
    let target = dir.path().join("copy");
    db.checkpoint_to(&target).expect("checkpoint");
    fill(&db, 1200, 2); // later writes are not in the copy
    let err = db.checkpoint_to(&target).expect_err("target not empty");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    drop(db);
    let copy = tiny_builder(&target, os, 4096, 16384).open().expect("the copy opens");
    for i in 0..1200 {
        let want = if i < 300 { v(i, 1) } else { v(i, 0) };
        assert_eq!(copy.get(&k(i)).expect("get").as_deref(), Some(&want[..]), "key {i}");
    }
    // The copy's tables are hard links: the same inode as the source's.
    let any_table = std::fs::read_dir(&target)
        .expect("ls")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "sst"));
    if let Some(t) = any_table {
        use std::os::unix::fs::MetadataExt;
        assert!(t.metadata().expect("meta").nlink() >= 1);
    }
}

#[test]
fn writes_stall_instead_of_piling_up_memtables() {
    let fs = SimFileSystem::new();
    let db = tiny_builder("/db", fs.shared(), 2048, 8192)
        .with_options(DbOptions {
            memtable_size_bytes: 2048,
            max_immutable_memtables: 1,
            l0_slowdown_tables: 2,
            l0_stop_tables: 3,
            compaction_threads: 1,
            ..DbOptions::default()
        })
        .open()
        .expect("open");
    let writers: Vec<_> = (0..4u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..800 {
                    let mut b = WriteBatch::new();
                    b.put(k(t * 10_000 + i), v(i, t));
                    db.write(&b, Durability::Buffered).expect("write");
                    let st = db.stats();
                    assert!(st.memtables <= 3, "memtables must stay bounded: {st:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let st = db.stats();
    assert!(st.stall_stops + st.stall_slowdowns > 0, "tiny limits must stall: {st:?}");
    db.wait_for_background().expect("settle");
    for t in 0..4u32 {
        for i in (0..800).step_by(37) {
            assert_eq!(db.get(&k(t * 10_000 + i)).expect("get").as_deref(), Some(&v(i, t)[..]));
        }
    }
}

#[test]
fn reopening_with_another_table_format_is_refused() {
    let fs = SimFileSystem::new();
    let db = open_sim(&fs);
    fill(&db, 500, 0);
    db.flush().expect("flush");
    drop(db);
    #[derive(Debug)]
    struct Renamed(strata_sstable_mmap::MmapTableFormat);
    impl strata_core::TableFormat for Renamed {
        fn name(&self) -> &'static str {
            "other"
        }
        fn builder(
            &self,
            file: Arc<dyn strata_core::fs::File>,
            no: strata_core::FileNo,
        ) -> strata_core::Result<Box<dyn strata_core::TableBuilder>> {
            self.0.builder(file, no)
        }
        fn open(
            &self,
            file: Arc<dyn strata_core::fs::File>,
            no: strata_core::FileNo,
        ) -> strata_core::Result<Arc<dyn strata_core::Table>> {
            self.0.open(file, no)
        }
    }
    let err = tiny_builder("/db", fs.shared(), 4096, 16384)
        .with_table_format(Arc::new(Renamed(strata_sstable_mmap::MmapTableFormat::default())))
        .open()
        .expect_err("format mismatch");
    assert!(matches!(err, Error::Config(_)) && err.to_string().contains("other"), "{err}");
}

#[test]
fn periodic_checkpoints_are_written_pruned_and_open_as_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let os: Arc<dyn FileSystem> = OsFileSystem::shared();
    let every = std::time::Duration::from_millis(150);
    let db = tiny_builder(dir.path().join("db"), Arc::clone(&os), 4096, 16384)
        .with_options(DbOptions {
            memtable_size_bytes: 4096,
            compaction_threads: 1,
            periodic_checkpoint: Some(strata_core::PeriodicCheckpoint {
                dir: dir.path().join("checkpoints"),
                interval: every,
                keep: 2,
            }),
            ..DbOptions::default()
        })
        .open()
        .expect("open");
    fill(&db, 500, 0);
    let list = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        // Only complete checkpoints carry a checkpoint's name (Unix milliseconds); the
        // directory they are built in does not count.
        v.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_digit()))
        });
        v.sort();
        v
    };
    // Wait on the condition (three checkpoints written and pruned), not on the clock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.stats().checkpoints < 3 {
        assert!(std::time::Instant::now() < deadline, "no checkpoints: {:?}", db.stats());
        std::thread::yield_now();
    }
    drop(db);
    let taken = list();
    assert_eq!(taken.len(), 2, "keep = 2 is honoured: {taken:?}");
    let last = taken.last().expect("a checkpoint");
    let copy = tiny_builder(last, os, 4096, 16384).open().expect("a checkpoint opens");
    for i in (0..500).step_by(17) {
        assert_eq!(copy.get(&k(i)).expect("get").as_deref(), Some(&v(i, 0)[..]), "key {i}");
    }
}

/// A crash between writing `CURRENT.tmp` and renaming it leaves the temporary file
/// behind; the next open must succeed (it writes its own `CURRENT`) and leave no
/// `CURRENT.tmp`. Found by the SIGKILL test: the open failed removing the file twice.
#[test]
fn a_leftover_current_tmp_from_a_crash_does_not_fail_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let os = OsFileSystem::shared();
    let store = dir.path().join("db");
    {
        let db = tiny_builder(&store, Arc::clone(&os), 4096, 16384).open().expect("open");
        fill(&db, 200, 1);
        db.flush().expect("flush");
    }
    std::fs::write(store.join("CURRENT.tmp"), b"MANIFEST-0000").expect("leftover tmp");
    let db =
        tiny_builder(&store, os, 4096, 16384).open().expect("open with a leftover CURRENT.tmp");
    assert!(!store.join("CURRENT.tmp").exists(), "the temporary file must be gone");
    for i in 0..200 {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(v(i, 1).as_slice()));
    }
}
