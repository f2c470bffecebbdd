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

#![allow(clippy::unwrap_used)]
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
const PORT: &str = "STRATA_STREAM_SIGKILL_PORT";
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
                if i.is_multiple_of(4) {
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

/// The publisher child of the TCP test: owns the store, writes to it (`tcp-run`; not
/// in `tcp-final`, which records the store's last sequence instead) and serves its
/// commit stream on TCP from the start of the log, with history holding all of it, so
/// a subscriber that reconnects resumes after the last frame it received.
fn tcp_child(role: &str, dir: &Path, port: u16) {
    let db = open_db(dir);
    let server = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match strata_transport_tcp::TcpTransport::server(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("bind {port}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("bind {port}: {e}"),
            }
        }
    };
    let opts = PublisherOptions {
        stream: strata_core::transport::StreamId(1),
        history: 1 << 20,
        queue_depth: 1 << 16,
        policy: SlowSubscriberPolicy::Block,
        ..Default::default()
    };
    let publisher = server.publisher("commits", &opts).expect("publisher");
    let _stream = CommitStream::start(Arc::clone(&db), publisher, SeqNo(1)).expect("commit stream");
    if role == "tcp-final" {
        let last = db.snapshot().seq().0;
        std::fs::write(dir.join("final_seq.tmp"), last.to_le_bytes()).expect("write final seq");
        std::fs::rename(dir.join("final_seq.tmp"), dir.join("final_seq")).expect("rename");
        loop {
            std::thread::park();
        }
    }
    let mut i = db.snapshot().seq().0;
    loop {
        i += 1;
        let mut b = WriteBatch::new();
        for j in 0..(i % 3 + 1) {
            b.put(format!("k{i:08}-{j}"), i.to_le_bytes());
        }
        db.write(&b, Durability::Buffered).expect("write");
        if i.is_multiple_of(4) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let (Ok(role), Ok(dir)) = (std::env::var(ROLE), std::env::var(DIR)) else { return };
    if role.starts_with("tcp") {
        let port = std::env::var(PORT).ok().and_then(|p| p.parse().ok()).expect("port");
        tcp_child(&role, Path::new(&dir), port);
    } else {
        child(&role, Path::new(&dir));
    }
}

fn spawn(role: &str, dir: &Path) -> Child {
    spawn_with(role, dir, 0)
}

fn spawn_with(role: &str, dir: &Path, port: u16) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(PORT, port.to_string())
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
    let seed = seed();
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

fn seed() -> u64 {
    std::env::var("STRATA_SIGKILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    })
}

/// The publisher killed: a child owning the store and serving its commit stream over
/// TCP is SIGKILLed at random moments and restarted (reopening the store) while this
/// process stays subscribed. The TCP client reconnects and resumes after the last
/// frame it received; the subscriber deduplicates by sequence. In the end the batches
/// it accepted are exactly the log's, in order, without a gap.
#[test]
fn sigkilled_publisher_subscriber_ends_gapless_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let seed = seed();
    eprintln!("tcp publisher-kill test seed {seed}, port {port}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut child = spawn_with("tcp-run", dir.path(), port);
    let client = strata_transport_tcp::TcpTransport::client_with(
        ("127.0.0.1", port),
        strata_transport_tcp::TcpConfig::default()
            .with_backoff(Duration::from_millis(5), Duration::from_millis(50)),
    )
    .unwrap();
    let sub_opts =
        SubscriberOptions { queue_depth: 1 << 16, resume_from: Some(1), ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sub = loop {
        match client.subscriber("commits", &sub_opts) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot subscribe: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut rx = Rx::default();
    let receive = |sub: &mut Box<dyn strata_core::transport::TopicSubscriber>, rx: &mut Rx, d| {
        rx.receive(sub, d)
    };
    let rounds = 20;
    for _ in 0..rounds {
        receive(&mut sub, &mut rx, Duration::from_millis(rng.gen_range(150..400)));
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn_with("tcp-run", dir.path(), port);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(dir.path().join("final_seq"));
    let mut child = spawn_with("tcp-final", dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let final_seq = loop {
        if let Ok(b) = std::fs::read(dir.path().join("final_seq")) {
            break u64::from_le_bytes(b[..8].try_into().unwrap());
        }
        assert!(Instant::now() < deadline, "the final publisher did not start");
        receive(&mut sub, &mut rx, Duration::from_millis(20));
    };
    while rx.upto < final_seq {
        assert!(Instant::now() < deadline, "subscriber stuck at {} of {final_seq}", rx.upto);
        receive(&mut sub, &mut rx, Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(sub);
    let db = open_db(dir.path());
    let mut log = Vec::new();
    let mut r = db.read_log_from(SeqNo(1)).unwrap();
    while let Some(b) = r.next_batch().unwrap() {
        log.push((b.first_seq.0, b.last_seq().0));
    }
    assert_eq!(rx.accepted, log, "the accepted frames are exactly the log's batches");
    eprintln!(
        "{rounds} publisher SIGKILLs: {} batches, {} sequences received gapless over TCP; {} duplicate frames dropped",
        log.len(),
        rx.upto,
        rx.duplicates
    );
}

/// What the TCP subscriber accepted: frames deduplicated by sequence, checked gapless.
#[derive(Default)]
struct Rx {
    accepted: Vec<(u64, u64)>,
    upto: u64,
    duplicates: u64,
}

impl Rx {
    fn receive(
        &mut self,
        sub: &mut Box<dyn strata_core::transport::TopicSubscriber>,
        for_: Duration,
    ) {
        let end = Instant::now() + for_;
        while Instant::now() < end {
            // Errors while the server is down are expected; the client reconnects.
            let _ = sub.wait(Duration::from_millis(10), &mut |d| {
                if let strata_core::transport::Delivery::Frame { header, .. } = d {
                    let last = header.next_seq() - 1;
                    if last <= self.upto {
                        self.duplicates += 1;
                    } else {
                        assert_eq!(
                            header.seq,
                            self.upto + 1,
                            "gap: after {} came {}",
                            self.upto,
                            header.seq
                        );
                        self.upto = last;
                        self.accepted.push((header.seq, last));
                    }
                }
            });
        }
    }
}
