//! The resumable tier over the commit stream: stopped at random points and restarted,
//! it delivers every committed sequence exactly once, in order; live frames lost by a
//! slow-subscriber policy are filled from the log.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata_core::transport::{
    PublisherOptions, SlowSubscriberPolicy, SubscriberOptions, Transport,
};
use strata_core::{Db, Durability, SeqNo, WriteBatch};
use strata_stream::{Checkpoint, CommitStream, LocalTransport, ResumableSubscriber, ResumeOptions};

fn batch(i: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..(i % 3 + 1) {
        b.put(format!("k{i:06}-{j}"), i.to_le_bytes());
    }
    b
}

/// Checks that `seqs` (in delivery order) is exactly `1..=last`.
fn assert_gapless_once(seqs: &[u64], last: u64) {
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as u64 + 1, "delivery {i} is seq {s}");
    }
    assert_eq!(seqs.len() as u64, last);
}

fn last_committed(db: &Db) -> u64 {
    let mut r = db.read_log_from(SeqNo(1)).unwrap();
    let mut last = 0;
    while let Some(b) = r.next_batch().unwrap() {
        last = b.last_seq().0;
    }
    last
}

fn run_rounds(policy: SlowSubscriberPolicy, queue_depth: usize, rounds: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(common::builder_retaining(&dir.path().join("db")).open().unwrap());
    let transport = Arc::new(LocalTransport::new());
    let popts = PublisherOptions { queue_depth, policy, ..Default::default() };
    let stream = CommitStream::start(
        Arc::clone(&db),
        transport.publisher("commits", &popts).unwrap(),
        SeqNo(1),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0;
            // Bounded, so a slow subscriber (a durable checkpoint per batch) is not buried.
            while !stop.load(Ordering::Relaxed) && i < 6000 {
                i += 1;
                db.write(&batch(i), Durability::Buffered).unwrap();
                if i.is_multiple_of(4) {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        })
    };
    let ckpt = Checkpoint::new(dir.path().join("sub.ckpt"));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut seqs: Vec<u64> = Vec::new();
    let mut stats = Vec::new();
    let options = ResumeOptions::default()
        .with_subscriber(SubscriberOptions { queue_depth, ..Default::default() });
    for _ in 0..rounds {
        let mut sub = ResumableSubscriber::open(
            Arc::clone(&db) as _,
            Arc::clone(&transport) as _,
            "commits",
            ckpt.clone(),
            options.clone(),
        )
        .unwrap();
        assert_eq!(sub.processed(), seqs.last().copied().unwrap_or(0));
        let steps = rng.gen_range(1..40);
        for _ in 0..steps {
            sub.step(Duration::from_millis(5), |f| {
                seqs.extend(f.first_seq..=f.last_seq());
                assert_eq!(f.ops().unwrap().len() as u32, f.count);
            })
            .unwrap();
        }
        stats.push(sub.stats());
        drop(sub); // an in-process stop at a random point
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Readers see durable batches; make all of them durable so `last` is final.
    db.sync_wal().unwrap();
    let last = last_committed(&db);
    let mut sub = ResumableSubscriber::open(
        Arc::clone(&db) as _,
        Arc::clone(&transport) as _,
        "commits",
        ckpt.clone(),
        options,
    )
    .unwrap();
    let done = sub
        .run_until(
            Duration::from_secs(30),
            |p| p >= last,
            |f| seqs.extend(f.first_seq..=f.last_seq()),
        )
        .unwrap();
    assert!(done, "final subscriber stopped at {} of {last}", sub.processed());
    stats.push(sub.stats());
    drop(sub);
    assert_eq!(ckpt.load().unwrap(), last);
    assert_gapless_once(&seqs, last);
    let live: u64 = stats.iter().map(|s| s.from_live).sum();
    let log: u64 = stats.iter().map(|s| s.from_log).sum();
    let switches: u64 = stats.iter().map(|s| s.switches).sum();
    let filled: u64 = stats.iter().map(|s| s.gaps_filled).sum();
    eprintln!(
        "{policy:?} depth {queue_depth}: {last} seqs over {} runs; batches from log {log}, live {live}, switches {switches}, gaps filled {filled}",
        rounds + 1
    );
    assert!(switches > 0, "the subscriber never joined the live stream");
    stream.stop().unwrap();
}

#[test]
fn resumes_gapless_and_duplicate_free_after_random_stops() {
    run_rounds(SlowSubscriberPolicy::Block, 1024, 12, 1);
}

#[test]
fn live_frames_dropped_by_the_policy_are_filled_from_the_log() {
    run_rounds(SlowSubscriberPolicy::DropOldest, 4, 8, 2);
}

#[test]
fn a_disconnected_live_endpoint_is_replaced() {
    run_rounds(SlowSubscriberPolicy::Disconnect, 4, 6, 3);
}

#[test]
fn checkpoint_round_trips_and_rejects_damage() {
    let dir = tempfile::tempdir().unwrap();
    let c = Checkpoint::new(dir.path().join("c"));
    assert_eq!(c.load().unwrap(), 0);
    c.store(42).unwrap();
    assert_eq!(c.load().unwrap(), 42);
    c.store(u64::MAX - 1).unwrap();
    assert_eq!(c.load().unwrap(), u64::MAX - 1);
    let mut bytes = std::fs::read(c.path()).unwrap();
    bytes[5] ^= 1;
    std::fs::write(c.path(), &bytes).unwrap();
    assert!(c.load().is_err());
    std::fs::write(c.path(), b"short").unwrap();
    assert!(c.load().is_err());
}

/// A checkpoint 1,000 sequences before the log's oldest segment: everything the log
/// still holds is replayed, and only the 1,000 deleted sequences are reported lost.
#[test]
fn resume_from_before_the_logs_start_replays_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(common::builder_pruning(&dir.path().join("db")).open().unwrap());
    for i in 0..3000 {
        db.write(&batch(i), Durability::Buffered).unwrap();
    }
    let oldest = common::flush_until_log_starts_after(&db, 1001);
    for i in 3000..3200 {
        db.write(&batch(i), Durability::Buffered).unwrap();
    }
    // Log readers see what is durable.
    db.sync_wal().unwrap();
    let last = last_committed_from(&db, oldest);
    let ckpt = Checkpoint::new(dir.path().join("sub.ckpt"));
    let requested = oldest - 1000;
    ckpt.store(requested - 1).unwrap();
    let transport = Arc::new(LocalTransport::new());
    let mut sub = ResumableSubscriber::open(
        Arc::clone(&db) as _,
        transport as _,
        "commits",
        ckpt.clone(),
        ResumeOptions::default(),
    )
    .expect("a resume from before the log's start replays what the log holds");
    let mut seqs = Vec::new();
    let done = sub
        .run_until(
            Duration::from_secs(30),
            |p| p >= last,
            |f| seqs.extend(f.first_seq..=f.last_seq()),
        )
        .unwrap();
    assert!(done, "stopped at {} of {last}", sub.processed());
    assert_eq!(seqs.first(), Some(&oldest), "the first delivery is the log's oldest sequence");
    assert_eq!(seqs, (oldest..=last).collect::<Vec<_>>(), "every held sequence, once, in order");
    assert_eq!(sub.lost(), &[(requested, oldest)], "only the deleted range is reported lost");
    assert_eq!(sub.stats().lost_sequences, 1000);
    assert_eq!(sub.stats().lost_ranges, 1);
    drop(sub);
    assert_eq!(ckpt.load().unwrap(), last, "the checkpoint moved past the lost range");
}

/// A checkpoint beyond the log's live edge (last + 1) is refused with a clear error
/// instead of silently skipping what the store commits up to it; the edge itself is fine.
#[test]
fn resume_from_beyond_the_live_edge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(&dir.path().join("db"));
    for i in 0..50 {
        db.write(&batch(i), Durability::Buffered).unwrap();
    }
    // Log readers see what is durable.
    db.sync_wal().unwrap();
    let last = last_committed(&db);
    assert!(last > 50);
    let transport = Arc::new(LocalTransport::new());
    let open = |at: u64| {
        let ckpt = Checkpoint::new(dir.path().join(format!("sub-{at}.ckpt")));
        ckpt.store(at).unwrap();
        ResumableSubscriber::open(
            Arc::clone(&db) as _,
            Arc::clone(&transport) as _,
            "commits",
            ckpt,
            ResumeOptions::default(),
        )
    };
    for beyond in [last + 1, last + 5, last + 1_000_000] {
        match open(beyond) {
            Err(strata_stream::Error::ResumeBeyondLiveEdge { requested }) => {
                assert_eq!(requested, beyond + 1);
            }
            Err(e) => panic!("checkpoint {beyond}: unexpected error {e}"),
            Ok(s) => panic!("checkpoint {beyond} past the log's last {last} was accepted: {s:?}"),
        }
    }
    // Resuming at the live edge itself waits for the next commit and delivers it.
    let mut at_edge = open(last).unwrap();
    let next = db.write(&batch(50), Durability::Sync).unwrap().0;
    let mut got = Vec::new();
    let done = at_edge
        .run_until(Duration::from_secs(10), |p| p >= next, |f| got.push(f.first_seq))
        .unwrap();
    assert!(
        done,
        "at the edge: stopped at {} of {next}: {:?}",
        at_edge.processed(),
        at_edge.stats()
    );
    assert_eq!(got, vec![last + 1], "one batch, starting right after the checkpoint");
}

fn last_committed_from(db: &Db, from: u64) -> u64 {
    let mut r = db.read_log_from(SeqNo(from)).unwrap();
    let mut last = 0;
    while let Some(b) = r.next_batch().unwrap() {
        last = b.last_seq().0;
    }
    last
}

/// A subscriber that processed batches a power loss then took back (published before
/// their fdatasync with `LogBound::Visible`) resumes against a store whose next
/// incarnation wrote other batches under the same sequences: the rewritten range is
/// reported and delivered again as the store holds it now — never skipped silently.
#[test]
fn a_range_the_store_rewrote_is_reported_and_delivered_again() {
    use strata_core::LogBound;
    use strata_harness::sim_fs::SimFileSystem;
    let open_db = |fs: &SimFileSystem| {
        Arc::new(
            common::builder(std::path::Path::new("/db"))
                .with_file_system(fs.shared())
                .open()
                .unwrap(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = || Checkpoint::new(dir.path().join("sub.ckpt"));
    let fs = SimFileSystem::new();
    let db = open_db(&fs);
    for i in 0..5 {
        db.write(&batch(i), Durability::Sync).unwrap();
    }
    let durable = db.snapshot().seq().0;
    let transport = Arc::new(LocalTransport::new());
    let publisher = transport.publisher("commits", &PublisherOptions::default()).unwrap();
    let stream =
        CommitStream::start_with(Arc::clone(&db), publisher, SeqNo(1), LogBound::Visible).unwrap();
    let mut sub = ResumableSubscriber::open(
        Arc::clone(&db) as _,
        Arc::clone(&transport) as _,
        "commits",
        ckpt(),
        ResumeOptions::default(),
    )
    .unwrap();
    assert!(sub.run_until(Duration::from_secs(10), |p| p >= durable, |_| {}).unwrap());
    for i in 5..10 {
        db.write(&batch(i), Durability::Buffered).unwrap();
    }
    let seen = db.snapshot().seq().0;
    assert!(sub.run_until(Duration::from_secs(10), |p| p >= seen, |_| {}).unwrap());
    drop(sub); // checkpoints (epoch, seen)
    assert_eq!(ckpt().load().unwrap(), seen);

    // Power loss: the unsynced batches are gone; the next incarnation writes others.
    let crashed = fs.crash();
    drop(stream);
    drop(db);
    let db = open_db(&crashed);
    assert_eq!(db.snapshot().seq().0, durable, "the unsynced batches were lost");
    let mut new = Vec::new();
    for i in 100..110 {
        // `write` returns the batch's last sequence.
        let last = db.write(&batch(i), Durability::Sync).unwrap().0;
        new.push((last, i));
    }
    let mut sub = ResumableSubscriber::open(
        Arc::clone(&db) as _,
        Arc::new(LocalTransport::new()) as _,
        "commits",
        ckpt(),
        ResumeOptions::default(),
    )
    .unwrap();
    assert_eq!(sub.rewritten(), &[(durable + 1, seen + 1)], "the rewritten range is reported");
    let mut got = Vec::new();
    let last = db.snapshot().seq().0;
    assert!(
        sub.run_until(
            Duration::from_secs(10),
            |p| p >= last,
            |f| { got.push((f.last_seq(), f.payload.to_vec())) }
        )
        .unwrap()
    );
    let lasts: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = new.iter().map(|(s, _)| *s).collect();
    assert_eq!(lasts, expected, "every batch of the new history, from the rewritten range on");
    for ((_, payload), (_, i)) in got.iter().zip(&new) {
        assert_eq!(payload, batch(*i).as_bytes(), "the store's batch, not the lost one");
    }
    assert_eq!(sub.stats().rewritten_sequences, seen - durable);
}
