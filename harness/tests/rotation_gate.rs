//! A `Sync` writer's fdatasync does not hold the rotation gate: while its fdatasync is
//! held in flight (the counting file system's hold), a rotation of the memtable goes
//! through. Before the gate was narrowed, the rotation's write lock waited for that
//! fdatasync, and every writer arriving meanwhile queued behind the rotation without
//! even appending to the log.

use std::time::{Duration, Instant};

use strata_core::{DbOptions, Durability};
use strata_harness::sim_fs::CountingFileSystem;
use strata_plugins::DefaultStack;

#[test]
fn a_rotation_does_not_wait_for_a_sync_writers_fdatasync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = CountingFileSystem::os();
    let stack = DefaultStack::new().with_engine(DbOptions::default());
    let db = stack
        .builder(dir.path())
        .expect("stack")
        .with_file_system(fs.shared())
        .open()
        .expect("open");
    // The first append prepares the log (fdatasyncs of its own); the memtable is then
    // not empty, so `flush` rotates it.
    db.put(b"warm-up", b"1", Durability::Sync).expect("first write");

    fs.hold_syncs();
    let sync_writer = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"synced", b"1", Durability::Sync).map(|_| ()))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs.held_syncs() == 0 {
        assert!(Instant::now() < deadline, "the Sync write never reached its fdatasync");
        std::thread::sleep(Duration::from_millis(1));
    }
    let rotations = db.stats().rotations;
    // `flush` rotates first, then waits for the table, whose writing needs the held
    // fdatasync (and the Sync write's visibility): it finishes after the release.
    let flusher = {
        let db = db.clone();
        std::thread::spawn(move || db.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rotated = false;
    while Instant::now() < deadline {
        if db.stats().rotations > rotations {
            rotated = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let still_held = fs.held_syncs() >= 1;
    fs.release_syncs();
    sync_writer.join().expect("sync writer").expect("the Sync write");
    flusher.join().expect("flusher").expect("flush");

    assert!(rotated, "the rotation waited for the Sync writer's fdatasync (60 s)");
    assert!(still_held, "the fdatasync was not held while the rotation ran");
    assert_eq!(db.get(b"synced").expect("get").as_deref(), Some(&b"1"[..]));
}
