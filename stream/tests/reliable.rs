//! Reliable publisher: a subscriber whose live queue drops frames (DropOldest) gets
//! them redelivered — from the publisher's buffer, and from the store's log once the
//! buffer bound pushed them out — and ends with every sequence exactly once, in order.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::transport::{PublisherOptions, SlowSubscriberPolicy, SubscriberOptions};
use strata_core::{Durability, SeqNo, WriteBatch};
use strata_stream::{
    CommitStream, Heartbeat, LocalTransport, Message, MessageFrame, Publisher, PublisherConfig,
    ReliableOptions, ReliablePublisher, ReliableSubscriber,
};

fn small_queue() -> PublisherOptions {
    PublisherOptions {
        queue_depth: 4,
        policy: SlowSubscriberPolicy::DropOldest,
        ..Default::default()
    }
}

fn drain_until(sub: &mut ReliableSubscriber, last: u64, mut on: impl FnMut(u64, u32, &[u8])) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sub.processed() < last {
        assert!(Instant::now() < deadline, "stuck at {} of {last}", sub.processed());
        sub.wait(Duration::from_millis(10), &mut on).unwrap();
    }
}

#[test]
fn dropped_frames_are_redelivered_from_the_buffer() {
    let transport = Arc::new(LocalTransport::new());
    let reliable = ReliablePublisher::new(
        transport.clone(),
        "feed",
        None,
        ReliableOptions::default()
            .with_publisher(small_queue())
            .with_redelivery_timeout(Duration::from_millis(20)),
    )
    .unwrap();
    let handle = reliable.handle();
    let mut sub = ReliableSubscriber::new(
        &*transport,
        "feed",
        1,
        0,
        &SubscriberOptions { queue_depth: 4, ..Default::default() },
    )
    .unwrap();
    let mut publisher = Publisher::new(Box::new(reliable), PublisherConfig::default());
    let n = 500u64;
    for i in 1..=n {
        publisher
            .publish(&Message::Heartbeat(Heartbeat { stream: 0, last_seq: i, ts_nanos: i }))
            .unwrap();
    }
    let _service = handle.spawn_service(Duration::from_millis(5)).unwrap();
    let mut seqs = Vec::new();
    drain_until(&mut sub, n, |seq, span, payload| {
        let msgs = MessageFrame::parse(payload).unwrap().decode_all().unwrap();
        assert_eq!(msgs.len() as u32, span);
        assert!(
            matches!(msgs[0], Message::Heartbeat(Heartbeat { last_seq, .. }) if last_seq == seq)
        );
        seqs.push(seq);
    });
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let (ss, ps) = (sub.stats(), handle.stats());
    eprintln!("subscriber {ss:?}; publisher {ps:?}");
    assert!(ss.redelivered >= n - 4, "only the last 4 frames fit the live queue");
    assert!(ps.redelivered_from_buffer > 0);
    assert_eq!(ps.unrecoverable, 0);
}

#[test]
fn commit_stream_redelivers_from_the_log_beyond_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path());
    let transport = Arc::new(LocalTransport::new());
    let reliable = ReliablePublisher::new(
        transport.clone(),
        "commits",
        Some(db.clone() as _),
        ReliableOptions::default()
            .with_publisher(small_queue())
            .with_buffer_frames(16)
            .with_redelivery_timeout(Duration::from_millis(20)),
    )
    .unwrap();
    let handle = reliable.handle();
    let mut sub = ReliableSubscriber::new(
        &*transport,
        "commits",
        7,
        0,
        &SubscriberOptions { queue_depth: 4, ..Default::default() },
    )
    .unwrap();
    let stream = CommitStream::start(db.clone(), Box::new(reliable), SeqNo(1)).unwrap();
    let mut last = 0;
    for i in 0..300u64 {
        let mut b = WriteBatch::new();
        for j in 0..=(i % 3) {
            b.put(format!("k{i}-{j}"), b"v");
        }
        last = db.write(&b, Durability::Buffered).unwrap().0;
    }
    assert!(stream.wait_published(last, Duration::from_secs(10)));
    let _service = handle.spawn_service(Duration::from_millis(5)).unwrap();
    let mut seqs = Vec::new();
    drain_until(&mut sub, last, |seq, span, payload| {
        let ops = strata_stream::decode_batch(seq, payload).unwrap();
        assert_eq!(ops.len() as u32, span);
        seqs.extend(seq..seq + u64::from(span));
    });
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    let ps = handle.stats();
    eprintln!("subscriber {:?}; publisher {ps:?}", sub.stats());
    assert!(ps.redelivered_from_log > 0, "the 16-frame buffer cannot hold 300 batches");
    stream.stop().unwrap();
}

/// Waits (without sleeping) until `done` holds, servicing the publisher and letting
/// `tick` make the subscribers' progress in between; fails after 10 s.
fn service_until(
    handle: &strata_stream::ReliableHandle,
    mut tick: impl FnMut(),
    mut done: impl FnMut() -> bool,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tick();
        handle.service().unwrap();
    }
}

#[test]
fn a_silent_subscriber_is_evicted_and_stops_holding_the_buffer() {
    let transport = Arc::new(LocalTransport::new());
    let mut reliable = ReliablePublisher::new(
        transport.clone(),
        "feed",
        None,
        ReliableOptions::default()
            .with_redelivery_timeout(Duration::from_secs(3600))
            .with_evict_after(Duration::from_millis(100)),
    )
    .unwrap();
    let handle = reliable.handle();
    let sopts = SubscriberOptions::default();
    let gone = ReliableSubscriber::new(&*transport, "feed", 1, 0, &sopts).unwrap();
    let mut alive = ReliableSubscriber::new(&*transport, "feed", 2, 0, &sopts).unwrap();
    for seq in 1..=10u64 {
        strata_core::transport::TopicPublisher::publish(&mut reliable, seq, 1, b"x").unwrap();
    }
    handle.service().unwrap();
    assert_eq!(handle.min_acked(), Some(0), "both subscribers are known");
    drop(gone); // its process died: it never acknowledges again
    service_until(
        &handle,
        || {
            alive.wait(Duration::from_millis(1), |_, _, _| {}).unwrap();
        },
        || handle.min_acked() == Some(10),
        "the silent subscriber no longer holds the buffer back",
    );
    let stats = handle.stats();
    assert_eq!(stats.evicted, 1, "{stats:?}");
    assert_eq!(stats.subscribers, 1, "{stats:?}");
    assert_eq!(alive.processed(), 10);
}

#[test]
fn a_subscriber_whose_position_left_the_log_is_cut_off_and_the_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(common::builder_pruning(dir.path()).open().unwrap());
    for i in 0..3000u64 {
        let mut b = WriteBatch::new();
        b.put(format!("k{i}"), b"v");
        db.write(&b, Durability::Buffered).unwrap();
    }
    let oldest = common::flush_until_log_starts_after(&db, 1);
    let mut last = 0;
    for i in 3000..3300u64 {
        let mut b = WriteBatch::new();
        b.put(format!("k{i}"), b"v");
        last = db.write(&b, Durability::Buffered).unwrap().0;
    }
    db.sync_wal().unwrap();
    let transport = Arc::new(LocalTransport::new());
    let reliable = ReliablePublisher::new(
        transport.clone(),
        "commits",
        Some(db.clone() as _),
        ReliableOptions::default()
            .with_publisher(small_queue())
            .with_buffer_frames(16)
            .with_redelivery_timeout(Duration::ZERO),
    )
    .unwrap();
    let handle = reliable.handle();
    let sopts = SubscriberOptions { queue_depth: 4, ..Default::default() };
    // Position 1: long deleted from the log.
    let mut lost = ReliableSubscriber::new(&*transport, "commits", 1, 0, &sopts).unwrap();
    // Position `oldest`: the log holds everything from there.
    let mut healthy =
        ReliableSubscriber::new(&*transport, "commits", 2, oldest - 1, &sopts).unwrap();
    let stream = CommitStream::start(db.clone(), Box::new(reliable), SeqNo(oldest)).unwrap();
    assert!(stream.wait_published(last, Duration::from_secs(10)));
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthy.processed() < last {
        assert!(Instant::now() < deadline, "healthy subscriber stuck at {}", healthy.processed());
        healthy.wait(Duration::from_millis(1), |seq, _, _| seqs.push(seq)).unwrap();
        // One subscriber's lost position must not fail (and so stop) the service.
        handle.service().expect("service while one subscriber's position left the log");
    }
    assert_eq!(seqs, (oldest..=last).collect::<Vec<_>>(), "the healthy subscriber got everything");
    match lost.wait(Duration::from_millis(1), |_, _, _| {}) {
        Err(strata_stream::Error::Core(strata_core::Error::SequenceUnavailable {
            requested,
            oldest: o,
        })) => {
            assert_eq!((requested.0, o.0), (1, oldest));
        }
        other => panic!("expected SequenceUnavailable for the lost subscriber, got {other:?}"),
    }
    assert_eq!(lost.cut_off(), Some((1, oldest)));
    let stats = handle.stats();
    assert_eq!(stats.cut_off, 1, "{stats:?}");
    assert!(stats.redelivered_from_log > 0, "{stats:?}");
    stream.stop().unwrap();
}

/// A log whose `read_from` waits for the test's go-ahead, after telling it the read began.
struct GatedLog {
    db: Arc<strata_core::Db>,
    entered: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl strata_stream::CommitLog for GatedLog {
    fn read_from(&self, from: SeqNo) -> strata_core::Result<Box<dyn strata_core::WalReader>> {
        let _ = self.entered.try_send(());
        let _ = self.release.lock().unwrap().recv();
        self.db.read_log_from(from)
    }
}

#[test]
fn a_slow_log_read_does_not_block_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path());
    let mut last = 0;
    for i in 0..20u64 {
        let mut b = WriteBatch::new();
        b.put(format!("k{i}"), b"v");
        last = db.write(&b, Durability::Buffered).unwrap().0;
    }
    db.sync_wal().unwrap();
    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let log = GatedLog { db: db.clone(), entered: entered_tx, release: release_rx.into() };
    let transport = Arc::new(LocalTransport::new());
    let mut reliable = ReliablePublisher::new(
        transport.clone(),
        "commits",
        Some(Arc::new(log) as _),
        ReliableOptions::default().with_buffer_frames(1).with_redelivery_timeout(Duration::ZERO),
    )
    .unwrap();
    let handle = reliable.handle();
    let _sub = ReliableSubscriber::new(&*transport, "commits", 1, 0, &SubscriberOptions::default())
        .unwrap();
    let mut reader = db.read_log_from(SeqNo(1)).unwrap();
    while let Some(b) = reader.next_batch().unwrap() {
        strata_core::transport::TopicPublisher::publish(
            &mut reliable,
            b.first_seq.0,
            b.count,
            &b.payload,
        )
        .unwrap();
    }
    // The subscriber is at 0 and the 1-frame buffer holds only the last batch: the
    // service reads the log, and the gate holds it there.
    let service = std::thread::spawn(move || handle.service());
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("the service reads the log");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let publisher = std::thread::spawn(move || {
        let r = strata_core::transport::TopicPublisher::publish(&mut reliable, last + 1, 1, b"x");
        let _ = done_tx.send(r.is_ok());
    });
    let published = done_rx.recv_timeout(Duration::from_secs(5));
    // Let the log read finish either way, so the threads end.
    release_tx.send(()).unwrap();
    drop(release_tx);
    service.join().unwrap().unwrap();
    publisher.join().unwrap();
    assert_eq!(published, Ok(true), "publish waited for the service's log read");
}
