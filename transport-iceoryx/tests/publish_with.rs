//! `publish_with` hands `fill` a buffer loaned from shared memory, whose chunks iceoryx2
//! reuses once subscribers released them. A `fill` that writes less than the loan must
//! not leak an earlier frame's bytes to subscribers: the rest of the buffer is zeros.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_core::{
    Delivery, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicSubscriber,
    Transport,
};
use strata_transport_iceoryx::IceoryxTransport;

static N: AtomicU64 = AtomicU64::new(0);

fn topic(what: &str) -> String {
    format!("test-{}-{}-{what}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

const LEN: usize = 512;
const FRAMES: u64 = 64;
/// What the frames of the first pass are filled with.
const SECRET: u8 = 0xa5;
/// Bytes `fill` writes in the second pass.
const WRITTEN: usize = 8;

/// Receives `want` frames (fails after 10 s); returns `(seq, payload)` of each.
fn receive(sub: &mut dyn TopicSubscriber, want: usize) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < want {
        assert!(start.elapsed() < Duration::from_secs(10), "got {} of {want} frames", got.len());
        sub.wait(Duration::from_millis(50), &mut |d| match d {
            Delivery::Frame { header, payload } => got.push((header.seq, payload.to_vec())),
            Delivery::Gap { from, to, .. } => panic!("unexpected gap {from}..{to}"),
        })
        .expect("wait");
    }
    got
}

#[test]
fn under_writing_fill_never_shows_an_earlier_frames_bytes() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("underwrite");
    let popts = PublisherOptions {
        stream: StreamId(4),
        max_payload: LEN,
        queue_depth: 8,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let mut p = t.publisher(&name, &popts).expect("publisher");
    let sopts = SubscriberOptions { queue_depth: 8, max_payload: LEN, resume_from: None };
    let mut s = t.subscriber(&name, &sopts).expect("subscriber");

    // First pass: every chunk of the pool gets filled with SECRET, in batches the
    // subscriber's queue holds; each batch is received (and its chunks released).
    let mut seq = 0;
    for _ in 0..FRAMES / 4 {
        for _ in 0..4 {
            p.publish_with(seq, 1, LEN, &mut |buf| buf.fill(SECRET)).expect("publish");
            seq += 1;
        }
        for (_, payload) in receive(&mut *s, 4) {
            assert!(payload.iter().all(|b| *b == SECRET));
        }
    }

    // Second pass over the same (reused) chunks: fill writes only the first bytes.
    for _ in 0..FRAMES / 4 {
        for _ in 0..4 {
            p.publish_with(seq, 1, LEN, &mut |buf| {
                buf[..WRITTEN].copy_from_slice(&seq.to_le_bytes());
            })
            .expect("publish");
            seq += 1;
        }
        for (got_seq, payload) in receive(&mut *s, 4) {
            assert_eq!(payload.len(), LEN);
            assert_eq!(payload[..WRITTEN], got_seq.to_le_bytes());
            let leaked = payload[WRITTEN..].iter().filter(|b| **b != 0).count();
            assert_eq!(
                leaked, 0,
                "frame {got_seq}: {leaked} bytes not written by fill are not zero (an earlier frame's)"
            );
        }
    }
}
