//! A store that truncates a tail a newer epoch replaced while its commit stream runs —
//! an old primary that stepped down and rejoined its cluster as a replica: the stream
//! keeps publishing (from the cut, as a rewind in the newer epoch), a connected
//! resumable subscriber records the rewritten range and ends up holding exactly what
//! the store's log holds, and a raw subscriber sees the withdrawn frames followed by
//! the rewinding one. Over the in-process transport and TCP on loopback, with the
//! subscriber live and with it still catching up from the log when the cut happens.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::transport::{Delivery, PublisherOptions, SubscriberOptions, Transport};
use strata_core::{Db, Durability, Epoch, SeqNo, WalBatch, WriteBatch};
use strata_stream::{Checkpoint, CommitStream, LocalTransport, ResumableSubscriber, ResumeOptions};
use strata_transport_tcp::TcpTransport;

const TOPIC: &str = "commits";

fn batch(i: u64, tag: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..(i % 3 + 1) {
        b.put(format!("k{i:06}-{j}"), format!("{tag}-{i}"));
    }
    b
}

/// The store's log: first sequence → (epoch, payload).
fn log_of(db: &Db) -> BTreeMap<u64, (u64, Vec<u8>)> {
    let mut r = db.read_log_from(SeqNo(1)).unwrap();
    let mut out = BTreeMap::new();
    while let Some(b) = r.next_batch().unwrap() {
        out.insert(b.first_seq.0, (b.epoch.0, b.payload.to_vec()));
    }
    out
}

/// What a subscriber holds: a delivery at `first_seq` replaces everything from there on
/// (a redelivery after a rewind), as a consumer that applies batches in order would.
#[derive(Default)]
struct Held(BTreeMap<u64, Vec<u8>>);

impl Held {
    fn deliver(&mut self, first_seq: u64, payload: &[u8]) {
        let _ = self.0.split_off(&first_seq);
        self.0.insert(first_seq, payload.to_vec());
    }
}

/// A medium by name: where the commit stream publishes, where subscribers subscribe.
type Medium = (&'static str, Arc<dyn Transport>, Arc<dyn Transport>);

fn transports() -> Vec<Medium> {
    let local = Arc::new(LocalTransport::new());
    let server = TcpTransport::server("127.0.0.1:0").unwrap();
    let client = TcpTransport::client(server.remote_addr()).unwrap();
    vec![
        ("local", local.clone() as _, local as _),
        ("tcp", Arc::new(server) as _, Arc::new(client) as _),
    ]
}

/// Writes `n` batches as the primary (each durable, so the stream publishes it).
fn write_as_primary(db: &Db, from: u64, n: u64) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        last = db.write(&batch(i, "old"), Durability::Sync).unwrap().0;
    }
    last
}

/// Steps back: demotes `db`, truncates after `keep`, and applies `n` batches of the
/// newer epoch from there as a replica; returns the new last sequence.
fn rejoin(db: &Db, keep: u64, n: u64) -> u64 {
    let epoch = Epoch(db.epoch().0 + 1);
    db.demote("new-primary:1");
    db.truncate_after(SeqNo(keep)).unwrap();
    let mut next = keep + 1;
    for i in 0..n {
        let b = batch(1000 + i, "new");
        let wal = WalBatch {
            first_seq: SeqNo(next),
            count: b.count(),
            payload: bytes::Bytes::copy_from_slice(b.as_bytes()),
            epoch,
        };
        db.apply_replicated(&wal, Durability::Sync).unwrap();
        next += u64::from(b.count());
    }
    db.sync_wal().unwrap();
    next - 1
}

/// A resumable subscriber of `db` following `topic`, its checkpoint in `dir`.
fn subscribe(
    db: &Arc<Db>,
    transport: &Arc<dyn Transport>,
    topic: &str,
    dir: &std::path::Path,
) -> ResumableSubscriber {
    ResumableSubscriber::open(
        Arc::clone(db) as _,
        Arc::clone(transport),
        topic,
        Checkpoint::new(dir.join("sub.ckpt")),
        ResumeOptions::default(),
    )
    .unwrap()
}

fn wait_published(stream: &CommitStream, seq: u64, what: &str) {
    assert!(
        stream.wait_published(seq, Duration::from_secs(20)),
        "{what}: the commit stream published up to {} (wanted {seq}; finished: {})",
        stream.published_seq(),
        stream.is_finished()
    );
}

/// Steps `sub` until it processed `last`, recording what it holds.
fn follow(sub: &mut ResumableSubscriber, held: &mut Held, last: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sub.processed() < last {
        assert!(
            Instant::now() < deadline,
            "{what}: the subscriber stopped at {} (wanted {last}; stats {:?})",
            sub.processed(),
            sub.stats()
        );
        sub.step(Duration::from_millis(20), |f| held.deliver(f.first_seq, f.payload)).unwrap();
    }
}

fn assert_holds_the_log(held: &Held, db: &Db, what: &str) {
    let log: BTreeMap<u64, Vec<u8>> = log_of(db).into_iter().map(|(s, (_, p))| (s, p)).collect();
    assert_eq!(
        held.0.keys().collect::<Vec<_>>(),
        log.keys().collect::<Vec<_>>(),
        "{what}: batch starts held vs in the log"
    );
    assert!(held.0 == log, "{what}: the subscriber holds other bytes than the log");
}

#[test]
fn a_live_subscriber_is_told_of_the_rewrite_and_ends_with_the_log() {
    for (name, publisher_side, subscriber_side) in transports() {
        let dir = tempfile::tempdir().unwrap();
        let db = common::open(&dir.path().join("db"));
        let popts = PublisherOptions { history: 256, ..Default::default() };
        let stream = CommitStream::start(
            Arc::clone(&db),
            publisher_side.publisher(TOPIC, &popts).unwrap(),
            SeqNo(1),
        )
        .unwrap();
        let mut raw = subscriber_side.subscriber(TOPIC, &SubscriberOptions::default()).unwrap();
        let mut sub = subscribe(&db, &subscriber_side, TOPIC, dir.path());
        let mut held = Held::default();
        let old_epoch = db.epoch().0;
        let old_last = write_as_primary(&db, 1, 20);
        wait_published(&stream, old_last, name);
        follow(&mut sub, &mut held, old_last, name);
        assert!(sub.rewritten().is_empty(), "{name}: nothing rewritten yet");

        let keep = log_of(&db).range(..).nth(11).map(|(s, _)| s - 1).unwrap();
        let new_last = rejoin(&db, keep, 15);
        wait_published(&stream, new_last, name);
        assert!(!stream.is_finished(), "{name}: the commit stream must keep running");
        follow(&mut sub, &mut held, new_last, name);

        assert_eq!(
            sub.rewritten(),
            &[(keep + 1, old_last + 1)],
            "{name}: the rewritten range (stats {:?})",
            sub.stats()
        );
        assert_eq!(sub.stats().rewritten_sequences, old_last - keep);
        assert_holds_the_log(&held, &db, name);

        // The raw subscriber: every old frame, then the rewind in the newer epoch.
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while frames.last().is_none_or(|&(s, _, span)| s + u64::from(span) - 1 < new_last) {
            assert!(Instant::now() < deadline, "{name}: raw frames so far {frames:?}");
            raw.wait(Duration::from_millis(20), &mut |d| {
                if let Delivery::Frame { header, .. } = d {
                    frames.push((header.seq, header.epoch, header.span));
                }
            })
            .unwrap();
        }
        let cut = frames.iter().position(|&(s, e, _)| s == keep + 1 && e > old_epoch).unwrap();
        assert!(frames[..cut].iter().all(|&(_, e, _)| e == old_epoch), "{name}: {frames:?}");
        assert!(frames[cut..].iter().all(|&(_, e, _)| e == old_epoch + 1), "{name}: {frames:?}");
        assert_eq!(
            frames[cut - 1].0 + u64::from(frames[cut - 1].2) - 1,
            old_last,
            "{name}: the whole old tail was published before the rewind"
        );

        // A subscriber resuming later from its checkpoint (at the new last sequence,
        // epoch of the newer history) is consistent: nothing is delivered again.
        drop(sub);
        let sub = subscribe(&db, &subscriber_side, TOPIC, dir.path());
        assert_eq!(sub.processed(), new_last, "{name}");
        assert!(sub.rewritten().is_empty(), "{name}");
        stream.stop().unwrap();
    }
}

#[test]
fn a_subscriber_catching_up_from_the_log_rereads_from_the_cut() {
    for (name, publisher_side, subscriber_side) in transports() {
        catching_up(name, &publisher_side, &subscriber_side, TOPIC);
    }
    // With no live frames at all, only the log reader's `Diverged` tells the subscriber.
    let local: Arc<dyn Transport> = Arc::new(LocalTransport::new());
    catching_up("log only", &local, &local, "silent");
}

fn catching_up(
    name: &str,
    publisher_side: &Arc<dyn Transport>,
    subscriber_side: &Arc<dyn Transport>,
    live_topic: &str,
) {
    {
        let dir = tempfile::tempdir().unwrap();
        let db = common::open(&dir.path().join("db"));
        let stream = CommitStream::start(
            Arc::clone(&db),
            publisher_side.publisher(TOPIC, &PublisherOptions::default()).unwrap(),
            SeqNo(1),
        )
        .unwrap();
        // Everything is written before the subscriber exists: it catches up from the
        // log, 256 batches per step.
        let old_last = write_as_primary(&db, 1, 600);
        wait_published(&stream, old_last, name);
        let mut sub = subscribe(&db, subscriber_side, live_topic, dir.path());
        let mut held = Held::default();
        sub.step(Duration::from_millis(20), |f| held.deliver(f.first_seq, f.payload)).unwrap();
        let reached = sub.processed();
        assert!(!sub.is_live() && reached > 200, "{name}: one step read {reached} from the log");

        let keep = log_of(&db).range(..).nth(100).map(|(s, _)| s - 1).unwrap();
        assert!(keep < reached);
        // The newer history ends past where the subscriber read the old one.
        let new_last = rejoin(&db, keep, 400);
        assert!(new_last > reached);
        wait_published(&stream, new_last, name);
        follow(&mut sub, &mut held, new_last, name);

        assert_eq!(
            sub.rewritten().first(),
            Some(&(keep + 1, reached + 1)),
            "{name}: stats {:?}",
            sub.stats()
        );
        assert_holds_the_log(&held, &db, name);
        assert!(!stream.is_finished(), "{name}: the commit stream must keep running");
        stream.stop().unwrap();
    }
}
