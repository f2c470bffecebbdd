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
