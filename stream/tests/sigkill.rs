//! Crash tests with SIGKILL: a child process owns the store, writes to it, runs the
//! commit stream into a LocalTransport and a resumable subscriber on that topic, and
//! appends every batch it processes to a file. The parent SIGKILLs it at random
//! moments, restarts it (the store is reopened, the subscriber resumes from its
//! checkpoint and the log), and finally checks that the processed batches, after
//! dropping replays, are exactly the log's batches in order — no gap, no reordering —
//! and that each kill replayed at most `CHECKPOINT_EVERY` batches.
//!
//! The child is this test binary re-executed with an environment variable naming its
//! role (see `child_entry`).

#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use strata_core::transport::{
    PublisherOptions, SlowSubscriberPolicy, SubscriberOptions, Transport,
};
use strata_core::{Db, Durability, SeqNo, WriteBatch};
use strata_stream::{Checkpoint, CommitStream, LocalTransport, ResumableSubscriber, ResumeOptions};

const ROLE: &str = "STRATA_STREAM_SIGKILL_ROLE";
const DIR: &str = "STRATA_STREAM_SIGKILL_DIR";
/// Batches between durable checkpoints: a kill replays at most this many.
const CHECKPOINT_EVERY: u32 = 32;

fn open_db(dir: &Path) -> Arc<Db> {
    Arc::new(common::builder_retaining(&dir.join("db")).open().expect("open store"))
}

/// Runs the child's work: `run` writes and subscribes until killed; `finish` only
/// subscribes until it has processed everything the log holds, then returns.
fn child(role: &str, dir: &Path) {
    let db = open_db(dir);
    let transport = Arc::new(LocalTransport::new());
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("processed"))
        .expect("open processed file");
    let options = ResumeOptions::default()
        .with_checkpoint_every(CHECKPOINT_EVERY)
        .with_subscriber(SubscriberOptions { queue_depth: 256, ..Default::default() });
    let mut sub = ResumableSubscriber::open(
        Arc::clone(&db) as _,
        Arc::clone(&transport) as _,
        "commits",
        Checkpoint::new(dir.join("checkpoint")),
        options,
    )
    .expect("open subscriber");
    let committed = db.snapshot().seq().0;
    let publisher = transport
        .publisher(
            "commits",
            &PublisherOptions {
                queue_depth: 256,
                policy: SlowSubscriberPolicy::DropOldest,
                ..Default::default()
            },
        )
        .expect("publisher");
    let _stream = CommitStream::start(Arc::clone(&db), publisher, SeqNo(committed + 1))
        .expect("commit stream");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = (role == "run").then(|| {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = committed;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let mut b = WriteBatch::new();
                for j in 0..(i % 3 + 1) {
                    b.put(format!("k{i:08}-{j}"), i.to_le_bytes());
                }
                db.write(&b, Durability::Buffered).expect("write");
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    });
    let mut record = |first: u64, last: u64| {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&first.to_le_bytes());
        rec[8..].copy_from_slice(&last.to_le_bytes());
        out.write_all(&rec).expect("append processed record");
    };
    match role {
        "run" => loop {
            sub.step(Duration::from_millis(10), |f| record(f.first_seq, f.last_seq()))
                .expect("step");
        },
        _ => {
            let done = sub
                .run_until(
                    Duration::from_secs(30),
                    |p| p >= committed,
                    |f| record(f.first_seq, f.last_seq()),
                )
                .expect("catch up");
            assert!(done, "finish run stopped at {} of {committed}", sub.processed());
            stop.store(true, Ordering::Relaxed);
            if let Some(w) = writer {
                w.join().expect("writer");
            }
        }
    }
}

/// The entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let (Ok(role), Ok(dir)) = (std::env::var(ROLE), std::env::var(DIR)) else { return };
    child(&role, Path::new(&dir));
}

fn spawn(role: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn read_records(path: &PathBuf) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert_eq!(bytes.len() % 16, 0, "a processed record was torn");
    bytes
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().unwrap()),
                u64::from_le_bytes(c[8..].try_into().unwrap()),
            )
        })
        .collect()
}

#[test]
fn sigkilled_store_and_subscriber_resume_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("STRATA_SIGKILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        });
    eprintln!("sigkill test seed {seed} (set STRATA_SIGKILL_SEED to replay)");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let rounds = 20;
    let started = Instant::now();
    for round in 0..rounds {
        let mut c = spawn("run", dir.path());
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..450)));
        // SIGKILL: no destructor, no final checkpoint, no flush.
        c.kill().unwrap();
        let status = c.wait().unwrap();
        assert!(!status.success(), "round {round}: the child exited on its own: {status}");
    }
    let status = spawn("finish", dir.path()).wait().unwrap();
    assert!(status.success(), "the finishing child failed: {status}");

    // Verify against the log.
    let db = open_db(dir.path());
    let mut log = Vec::new();
    let mut r = db.read_log_from(SeqNo(1)).unwrap();
    while let Some(b) = r.next_batch().unwrap() {
        log.push((b.first_seq.0, b.last_seq().0));
    }
    let records = read_records(&dir.path().join("processed"));
    let mut upto = 0;
    let mut replays = 0;
    let mut delivered = Vec::new();
    for (first, last) in records {
        if last <= upto {
            replays += 1;
            continue;
        }
        assert_eq!(first, upto + 1, "gap or reordering: after {upto} came {first}..={last}");
        upto = last;
        delivered.push((first, last));
    }
    assert_eq!(delivered, log, "the deduplicated processed batches are the log's batches");
    assert!(upto > 0);
    assert!(
        replays <= rounds * CHECKPOINT_EVERY as usize,
        "{replays} replayed batches for {rounds} kills"
    );
    eprintln!(
        "{rounds} SIGKILL rounds in {:.1?}: {} batches, {upto} sequences processed gapless; {replays} batches replayed after kills",
        started.elapsed(),
        log.len()
    );
}
