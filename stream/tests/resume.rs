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
