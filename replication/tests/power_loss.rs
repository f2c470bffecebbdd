//! Power loss on a replica at every sync point of applying shipped batches (WAL
//! appends, segment rotations, epoch history, flushes and their manifest edits) and of
//! a truncation: the reopened replica holds a prefix of the primary's log, byte for
//! byte, with everything it acknowledged, and following on from there gives the
//! primary's log exactly.

use std::path::Path;
use std::sync::Arc;

mod common;

use common::log_of;
use strata_core::fs::FileSystem;
use strata_core::{Db, Durability, SeqNo, WalBatch, WriteBatch};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

const DIR: &str = "/replica";

fn open(fs: Arc<dyn FileSystem>, dir: &str, replica: bool) -> strata_core::Result<Db> {
    let mut b = tiny_builder(Path::new(dir), fs, 4 * 1024, 16 * 1024);
    b.options_mut().replica_of = replica.then(|| "primary".to_owned());
    b.open()
}

/// 150 batches as a primary writes them (its log from sequence 1).
fn primary_batches() -> Vec<WalBatch> {
    let fs = SimFileSystem::new();
    let db = open(fs.shared(), "/primary", false).expect("primary");
    let mut batches = Vec::new();
    for n in 0..150u64 {
        let mut b = WriteBatch::new();
        b.put(format!("k{:04}", n % 41), format!("v{n}-{}", "q".repeat((n % 70) as usize)));
        if n.is_multiple_of(5) {
            b.delete(format!("k{:04}", (n * 3) % 41));
        }
        let last = db.write(&b, Durability::Buffered).expect("write");
        batches.push(WalBatch {
            first_seq: SeqNo(last.0 + 1 - u64::from(b.count())),
            count: b.count(),
            payload: bytes::Bytes::copy_from_slice(b.as_bytes()),
            epoch: db.epoch(),
        });
    }
    batches
}

/// Applies `batches` from where the replica stands, syncing after every 7 as the
/// acknowledging thread does; returns the last sequence acknowledged before an error.
fn apply(db: &Db, batches: &[WalBatch]) -> (SeqNo, Option<strata_core::Error>) {
    let mut acked = db.durable_seq();
    let from = db.visible_seq().next();
    for (i, b) in batches.iter().filter(|b| b.first_seq >= from).enumerate() {
        if let Err(e) = db.apply_replicated(b, Durability::Buffered) {
            return (acked, Some(e));
        }
        if i % 7 == 6 {
            if let Err(e) = db.sync_wal() {
                return (acked, Some(e));
            }
            acked = db.durable_seq();
        }
    }
    if let Err(e) = db.sync_wal() {
        return (acked, Some(e));
    }
    (db.durable_seq(), None)
}

#[test]
fn power_loss_at_every_sync_point_of_apply_keeps_a_prefix_with_everything_acknowledged() {
    let batches = primary_batches();
    let mut k = 1u64;
    loop {
        let sim = SimFileSystem::new();
        sim.create_dir_all(Path::new(DIR)).expect("mkdir");
        let replica = open(sim.shared(), DIR, true).expect("open the replica");
        sim.fail_sync_after(k);
        let (acked, err) = apply(&replica, &batches);
        drop(replica);
        let after = sim.crash();
        let reopened = open(after.shared(), DIR, true)
            .unwrap_or_else(|e| panic!("sync point {k}: the replica does not reopen: {e}"));
        let held = log_of(&reopened);
        assert!(
            held.len() <= batches.len() && held[..] == batches[..held.len()],
            "sync point {k}: the replica's log is not a prefix of the primary's"
        );
        assert!(
            reopened.visible_seq() >= acked,
            "sync point {k}: acknowledged {acked} but holds only {}",
            reopened.visible_seq()
        );
        // Following on from where it stands gives the primary's log exactly.
        let (_, again) = apply(&reopened, &batches);
        assert!(again.is_none(), "sync point {k}: applying the rest failed: {again:?}");
        assert_eq!(log_of(&reopened), batches, "sync point {k}: the logs differ after catching up");
        if err.is_none() {
            break;
        }
        k += 1;
        assert!(k < 2000, "apply never finished without a fault");
    }
    assert!(k > 5, "only {k} sync points were exercised");
}

#[test]
fn a_truncation_of_an_unflushed_tail_survives_power_loss_and_the_replica_follows_on() {
    let batches = primary_batches();
    let keep = batches[batches.len() / 2].last_seq();
    let sim = SimFileSystem::new();
    sim.create_dir_all(Path::new(DIR)).expect("mkdir");
    // Big memtables: the tail stays in memory, so it can be taken back.
    let open_big = |fs: Arc<dyn FileSystem>| {
        let mut b = tiny_builder(Path::new(DIR), fs, 64 << 20, 16 * 1024);
        b.options_mut().replica_of = Some("primary".into());
        b.open()
    };
    let replica = open_big(sim.shared()).expect("open");
    let (_, err) = apply(&replica, &batches);
    assert!(err.is_none(), "{err:?}");
    replica.truncate_after(keep).expect("truncate");
    assert_eq!(replica.visible_seq(), keep);
    drop(replica);
    let after = sim.crash();
    let reopened = open_big(after.shared()).expect("reopen");
    assert_eq!(reopened.visible_seq(), keep, "the truncation is durable");
    let held = log_of(&reopened);
    assert_eq!(held[..], batches[..held.len()], "the kept log is the primary's prefix");
    let (_, err) = apply(&reopened, &batches);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(log_of(&reopened), batches);
}
