//! Concurrency on the real file system: many threads write `Sync` batches at once;
//! every acknowledged write is readable, and group commit makes the number of
//! fdatasyncs (counted through the seam) well below the number of writes.

use std::sync::Arc;

use strata_core::{Durability, WriteBatch};
use strata_harness::crash::item_value;
use strata_harness::sim_fs::CountingFileSystem;
use strata_harness::stack::builder_with;
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
