//! Concurrency on the real file system: many threads write `Sync` batches at once;
//! every acknowledged write is readable, and group commit makes the number of
//! fdatasyncs (counted through the seam) well below the number of writes.

use std::sync::Arc;

use strata_core::{Durability, WriteBatch};
use strata_harness::crash::item_value;
use strata_harness::sim_fs::{CountingFileSystem, SimFileSystem};
use strata_harness::stack::{builder_with, tiny_builder};
use strata_wal_file::FileWalOptions;

#[test]
fn concurrent_sync_writers_share_fdatasyncs_and_lose_nothing() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = CountingFileSystem::os();
    let db = builder_with(dir.path(), fs.shared(), FileWalOptions::default()).open().expect("open");
    fs.reset_counts();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let mut b = WriteBatch::new();
                    b.put(format!("{t:02}/{i:05}"), item_value(3, t as u32, i));
                    b.put(format!("last/{t:02}"), i.to_le_bytes());
                    db.write(&b, Durability::Sync).expect("sync write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let writes = THREADS * PER_THREAD;
    let syncs = fs.sync_data_count();
    assert!(syncs >= 1, "Sync writes must fdatasync");
    assert!(
        syncs * 2 <= writes,
        "group commit should share fdatasyncs: {syncs} fdatasyncs for {writes} Sync writes"
    );
    let db = Arc::new(db);
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let got = db.get(format!("{t:02}/{i:05}").as_bytes()).expect("get");
            assert_eq!(got.as_deref(), Some(&item_value(3, t as u32, i)[..]));
        }
    }
    eprintln!("{writes} Sync writes from {THREADS} threads used {syncs} fdatasyncs");
}

/// A failed fdatasync in the middle of group commit: every waiter is woken (nobody
/// hangs waiting for a leader that gave up), every write after the failure fails, and
/// every write that was acknowledged survives a power loss.
#[test]
fn a_failed_fdatasync_wakes_every_waiter_and_loses_no_acknowledged_write() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 40;
    for fail_after in [1u64, 5, 20] {
        let fs = SimFileSystem::new();
        let db = tiny_builder("/db", fs.shared(), 64 * 1024, 256 * 1024).open().expect("open");
        fs.fail_sync_after(fail_after);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for t in 0..THREADS {
            let db = db.clone();
            let done = done_tx.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut failed_at = None;
                for i in 0..PER_THREAD {
                    match db.put(format!("{t:02}/{i:05}").as_bytes(), b"v", Durability::Sync) {
                        Ok(_) if failed_at.is_none() => acked.push(i),
                        Ok(_) => {
                            panic!("thread {t}: write {i} succeeded after {failed_at:?} failed")
                        }
                        Err(_) => failed_at = failed_at.or(Some(i)),
                    }
                }
                let _ = done.send((t, acked, failed_at));
            });
        }
        drop(done_tx);
        let mut acked_all = Vec::new();
        let mut failures = 0;
        for _ in 0..THREADS {
            let (t, acked, failed_at) = done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a writer hung in group commit after the fdatasync failure");
            failures += u64::from(failed_at.is_some());
            acked_all.extend(acked.into_iter().map(|i| (t, i)));
        }
        assert!(failures > 0, "fail_after {fail_after}: no write saw the fdatasync failure");
        let crashed = fs.crash();
        crashed.clear_faults();
        drop(db);
        let db =
            tiny_builder("/db", crashed.shared(), 64 * 1024, 256 * 1024).open().expect("reopen");
        for (t, i) in acked_all {
            assert!(
                db.get(format!("{t:02}/{i:05}").as_bytes()).expect("get").is_some(),
                "fail_after {fail_after}: acknowledged write {t}/{i} was lost"
            );
        }
    }
}
