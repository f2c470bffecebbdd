//! Log readers see only what the store keeps, and know which history it is.
//!
//! - A reader from `Db::read_log_from` (the commit stream, historical and resumable
//!   subscribers) gets a batch only once it is visible and durable: after a power loss
//!   the reopened store holds every batch such a reader received.
//! - A reader that asked for batches as soon as they are visible (`LogBound::Visible`)
//!   may see batches a power loss takes back; the store's epoch history then tells it
//!   which range was rewritten instead of letting it skip the new batches silently.

use std::time::Duration;

use strata_core::{Db, Durability, Epoch, HistoryCheck, LogBound, SeqNo, WalBatch, WriteBatch};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn open(fs: &SimFileSystem) -> Db {
    tiny_builder("/db", fs.shared(), 1 << 20, 1 << 20).open().expect("open")
}

fn put(db: &Db, i: u64, durability: Durability) -> SeqNo {
    let mut b = WriteBatch::new();
    b.put(format!("k{i:06}"), format!("v{i}"));
    db.write(&b, durability).expect("write")
}

fn read_all(db: &Db, from: SeqNo) -> Vec<WalBatch> {
    let mut r = db.read_log_from_with(from, LogBound::Visible).expect("reader");
    let mut out = Vec::new();
    while let Some(b) = r.next_batch().expect("batch") {
        out.push(b);
    }
    out
}

#[test]
fn a_subscriber_never_holds_a_batch_that_a_power_loss_takes_back() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    for i in 0..5 {
        put(&db, i, Durability::Sync);
    }
    let mut reader = db.read_log_from(SeqNo(1)).expect("reader");
    for i in 5..40 {
        put(&db, i, Durability::Buffered);
    }
    let mut seen = Vec::new();
    while seen.len() < 40 {
        match reader.wait_next(Duration::from_secs(10)).expect("read") {
            Some(b) => seen.push(b),
            None => panic!("reader stalled after {} batches", seen.len()),
        }
    }
    let crashed = fs.crash();
    drop(reader);
    drop(db);
    let db = open(&crashed);
    let kept = read_all(&db, SeqNo(1));
    for b in &seen {
        let same = kept.iter().find(|k| k.first_seq == b.first_seq);
        assert_eq!(
            same.map(|k| &k.payload),
            Some(&b.payload),
            "the subscriber holds batch {} which the store lost in the power loss",
            b.first_seq
        );
    }
}

#[test]
fn a_visible_bound_reader_is_told_which_range_a_crash_rewrote() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    for i in 0..5 {
        put(&db, i, Durability::Sync);
    }
    let before = db.epoch();
    for i in 5..10 {
        put(&db, i, Durability::Buffered);
    }
    let seen = read_all(&db, SeqNo(1));
    assert_eq!(seen.len(), 10, "the visible-bound reader sees unsynced batches");
    assert!(seen.iter().all(|b| b.epoch == before));
    assert_eq!(db.check_history(before, SeqNo(10)), HistoryCheck::Consistent);

    let crashed = fs.crash();
    drop(db);
    let db = open(&crashed);
    assert!(db.epoch() > before, "a new incarnation writes in a new epoch");
    assert_eq!(db.snapshot().seq(), SeqNo(5), "the unsynced batches are gone");
    for i in 100..103 {
        put(&db, i, Durability::Sync);
    }
    // The reader held 6..=10 from the old epoch; the store now has other batches there.
    match db.check_history(before, SeqNo(10)) {
        HistoryCheck::Rewritten { from, to, store_epoch } => {
            assert_eq!((from, to, store_epoch), (SeqNo(6), SeqNo(10), db.epoch()));
        }
        other => panic!("a rewritten range must be reported, got {other:?}"),
    }
    // What was durable is consistent, and a position from the future is unknown.
    assert_eq!(db.check_history(before, SeqNo(5)), HistoryCheck::Consistent);
    assert!(matches!(
        db.check_history(Epoch(db.epoch().0 + 5), SeqNo(1)),
        HistoryCheck::UnknownEpoch { .. }
    ));
    let batches = read_all(&db, SeqNo(6));
    assert_eq!(batches.first().map(|b| (b.first_seq, b.epoch)), Some((SeqNo(6), db.epoch())));
}

#[test]
fn a_durable_bound_reader_makes_what_it_hands_out_durable() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    let mut reader = db.read_log_from(SeqNo(1)).expect("reader");
    assert!(reader.next_batch().expect("empty").is_none());
    put(&db, 0, Durability::Buffered);
    assert!(db.durable_seq() < SeqNo(1), "a Buffered write is not durable by itself");
    let b = reader.next_batch().expect("read").expect("the visible batch is handed out");
    assert_eq!(b.first_seq, SeqNo(1));
    assert!(db.durable_seq() >= SeqNo(1), "a batch was handed out before it was durable");
    put(&db, 1, Durability::Buffered);
    let b = reader.wait_next(Duration::from_secs(10)).expect("wait").expect("batch");
    assert_eq!(b.first_seq, SeqNo(2));
    assert!(db.durable_seq() >= SeqNo(2), "a batch was handed out before it was durable");
    // What a reader handed out survives a power loss.
    let crashed = fs.crash();
    drop(reader);
    drop(db);
    assert_eq!(read_all(&open(&crashed), SeqNo(1)).len(), 2);
}

/// A `LogBound::Written` reader (a primary's replication) gets a `Sync` write's batch
/// while its fdatasync is still running, before readers of the store can see it; a
/// `Visible` reader waits for it.
#[test]
fn a_written_bound_reader_gets_a_batch_before_its_fdatasync_returns() {
    use strata_harness::sim_fs::CountingFileSystem;
    let sim = SimFileSystem::new();
    let fs = CountingFileSystem::new(sim.shared());
    let db = tiny_builder("/db", fs.shared(), 1 << 20, 1 << 20).open().expect("open");
    let first = put(&db, 0, Durability::Sync);
    let mut written = db.read_log_from_with(first.next(), LogBound::Written).expect("reader");
    let mut visible = db.read_log_from_with(first.next(), LogBound::Visible).expect("reader");
    /// Lets held fdatasyncs through however the test ends (the writer thread waits in one).
    struct Release<'a>(&'a CountingFileSystem);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.release_syncs();
        }
    }
    fs.hold_syncs();
    std::thread::scope(|s| {
        let _release = Release(&fs);
        let writer = s.spawn(|| put(&db, 1, Durability::Sync));
        let b = written.wait_next(Duration::from_secs(10)).expect("read").expect("the batch");
        assert_eq!(b.first_seq, first.next());
        // The batch is in the log before its writer reaches the fdatasync: wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fs.held_syncs() == 0 {
            assert!(std::time::Instant::now() < deadline, "the write never reached its fdatasync");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(db.visible_seq(), first, "visible before its fdatasync returned");
        assert!(visible.next_batch().expect("read").is_none(), "a visible-bound reader got it");
        fs.release_syncs();
        assert_eq!(writer.join().expect("writer"), first.next());
        let v = visible.wait_next(Duration::from_secs(10)).expect("read").expect("the batch");
        assert_eq!(v, b);
    });
}
