//! Publisher, real-time, delayed and historical tiers, and the commit stream.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_core::transport::{PublisherOptions, StreamId, SubscriberOptions, Transport};
use strata_core::{Durability, SeqNo, WriteBatch};
use strata_stream::{
    CommitStream, DelayedSubscriber, Event, HistoricalSubscriber, LocalTransport, Message,
    Publisher, PublisherConfig, RealtimeSubscriber, Side, TradeEvent, decode_batch,
};

fn trade(id: u64) -> Message {
    Message::Trade(TradeEvent {
        trade_id: id,
        symbol: format!("SYM{}", id % 7),
        price: 100 + id as i64,
        qty: id,
        side: if id.is_multiple_of(2) { Side::Buy } else { Side::Sell },
        buy_order_id: 2 * id,
        sell_order_id: 2 * id + 1,
        buy_account: 1,
        sell_account: 2,
        ts_nanos: id,
        venue_ref: String::new(),
    })
}

#[test]
fn publisher_sequences_batches_and_heartbeats_reach_the_realtime_tier() {
    let t = LocalTransport::new();
    let mut sub =
        RealtimeSubscriber::new(t.subscriber("feed", &SubscriberOptions::default()).unwrap());
    let opts = PublisherOptions { stream: StreamId(9), ..Default::default() };
    let mut p = Publisher::new(
        t.publisher("feed", &opts).unwrap(),
        PublisherConfig::default().with_heartbeat_interval(Some(Duration::ZERO)),
    );
    for i in 1..=10 {
        assert_eq!(p.publish(&trade(i)).unwrap(), i);
    }
    let batch: Vec<Message> = (11..=15).map(trade).collect();
    assert_eq!(p.publish_batch(&batch).unwrap(), 11);
    assert!(p.tick().unwrap(), "an interval of zero always beats");
    assert_eq!(p.last_seq(), 16);

    let mut got = Vec::new();
    sub.poll(|e| match e {
        Event::Message { seq, message } => got.push((seq, message.to_owned_message().unwrap())),
        other => panic!("unexpected {other:?}"),
    })
    .unwrap();
    assert_eq!(got.len(), 16);
    for (i, (seq, m)) in got.iter().enumerate().take(15) {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*m, trade(i as u64 + 1));
    }
    match &got[15] {
        (16, Message::Heartbeat(hb)) => {
            assert_eq!(hb.last_seq, 15);
            assert_eq!(hb.stream, 9);
        }
        other => panic!("expected the heartbeat, got {other:?}"),
    }
    let s = sub.stats();
    assert_eq!(s.zero_copy + s.copied, 16);
    assert_eq!((s.gaps, s.invalid), (0, 0));
    assert!(p.publish_batch(&[]).is_err());
}

#[test]
fn realtime_tier_reports_gaps_and_skips_invalid_frames() {
    let t = LocalTransport::new();
    let mut sub =
        RealtimeSubscriber::new(t.subscriber("feed", &SubscriberOptions::default()).unwrap());
    let mut raw = t.publisher("feed", &PublisherOptions::default()).unwrap();
    let frame = strata_stream::messages::encode_frame(&[trade(1)]).unwrap();
    raw.publish(1, 1, &frame).unwrap();
    raw.publish(2, 1, b"not a frame").unwrap();
    raw.publish(5, 1, &frame).unwrap();
    let mut events = Vec::new();
    sub.poll(|e| {
        events.push(match e {
            Event::Message { seq, .. } => format!("m{seq}"),
            Event::Gap { from, to } => format!("g{from}-{to}"),
            Event::Invalid { seq, .. } => format!("x{seq}"),
        })
    })
    .unwrap();
    assert_eq!(events, vec!["m1", "x2", "g3-5", "m5"]);
}

#[test]
fn delayed_tier_delivers_grid_aligned_windows() {
    let window = strata_stream::DEFAULT_WINDOW;
    let t = LocalTransport::new();
    let mut sub = DelayedSubscriber::new(
        t.subscriber("feed", &SubscriberOptions::default()).unwrap(),
        window,
    );
    let mut p = Publisher::new(
        t.publisher("feed", &PublisherOptions::default()).unwrap(),
        PublisherConfig::default(),
    );
    let n = 60u64;
    let h = std::thread::spawn(move || {
        for i in 1..=n {
            p.publish(&trade(i)).unwrap();
            std::thread::sleep(Duration::from_millis(4));
        }
    });
    let mut windows = Vec::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen < n && std::time::Instant::now() < deadline {
        sub.next_window(|w| {
            seen += w.messages.len() as u64;
            windows.push(w.clone());
        })
        .unwrap();
    }
    h.join().unwrap();
    let mut seqs = Vec::new();
    for w in &windows {
        assert_eq!(w.end - w.start, window);
        assert_eq!(w.start.as_nanos() % window.as_nanos(), 0, "windows sit on the grid");
        for (seq, m, at) in &w.messages {
            assert!(
                w.start <= *at && *at < w.end,
                "message {seq} received at {at:?} outside its window"
            );
            assert_eq!(*m, trade(*seq));
            seqs.push(*seq);
        }
    }
    for pair in windows.windows(2) {
        assert!(pair[0].end <= pair[1].start);
    }
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let acc = sub.accuracy();
    assert!(acc.windows >= windows.len() as u64);
    eprintln!(
        "delayed tier, {}ms windows: {} windows, lateness after the boundary mean {:?} p50 {:?} p99 {:?} max {:?}",
        window.as_millis(),
        acc.windows,
        acc.mean,
        acc.p50,
        acc.p99,
        acc.max
    );
}

fn batch(i: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..(i % 4 + 1) {
        b.put(format!("k{i:05}-{j}"), format!("v{i}"));
    }
    if i.is_multiple_of(5) {
        b.delete(format!("k{:05}-0", i - 1));
    }
    b
}

#[test]
fn historical_tier_reads_committed_batches_with_their_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path());
    let mut firsts = Vec::new();
    for i in 1..=30 {
        let b = batch(i);
        let last = db.write(&b, Durability::Buffered).unwrap();
        firsts.push((last.0 + 1 - u64::from(b.count()), b));
    }
    // Log readers hand out durable batches only.
    db.sync_wal().unwrap();
    let mut h = HistoricalSubscriber::new(&*db, 1).unwrap();
    let mut got = Vec::new();
    h.drain(|b| got.push((b.first_seq.0, b.count, b.payload.clone()))).unwrap();
    assert_eq!(got.len(), 30);
    for ((first, count, payload), (want_first, want)) in got.iter().zip(&firsts) {
        assert_eq!((*first, *count), (*want_first, want.count()));
        assert_eq!(&payload[..], want.as_bytes());
    }
    // From the middle of the log: the batch holding the sequence comes first.
    let (mid, _) = firsts[10];
    let mut h = HistoricalSubscriber::new(&*db, mid + 1).unwrap();
    let first = h.next_batch().unwrap().unwrap();
    assert_eq!(first.first_seq.0, mid);
    assert!(h.wait_next(Duration::from_millis(10)).unwrap().is_some());
}

#[test]
fn commit_stream_publishes_exactly_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path());
    for i in 1..=5 {
        db.write(&batch(i), Durability::Buffered).unwrap();
    }
    let t = LocalTransport::new();
    let mut sub = t
        .subscriber("commits", &SubscriberOptions { queue_depth: 4096, ..Default::default() })
        .unwrap();
    let publisher = t
        .publisher("commits", &PublisherOptions { queue_depth: 4096, ..Default::default() })
        .unwrap();
    let stream = CommitStream::start(Arc::clone(&db), publisher, SeqNo(1)).unwrap();
    let writer = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            for i in 6..=200 {
                db.write(&batch(i), Durability::Buffered).unwrap();
            }
        })
    };
    writer.join().unwrap();
    // Log readers hand out durable batches only.
    db.sync_wal().unwrap();
    let mut log = Vec::new();
    let mut r = db.read_log_from(SeqNo(1)).unwrap();
    while let Some(b) = r.next_batch().unwrap() {
        log.push(b);
    }
    let end = log.last().unwrap().last_seq().0;
    assert!(stream.wait_published(end, Duration::from_secs(10)));
    let mut frames = Vec::new();
    while frames.len() < log.len() {
        let n = sub
            .wait(Duration::from_secs(5), &mut |d| match d {
                strata_core::transport::Delivery::Frame { header, payload } => {
                    frames.push((header.seq, header.span, payload.to_vec()))
                }
                other => panic!("unexpected {other:?}"),
            })
            .unwrap();
        assert!(n > 0, "commit stream stalled at {} of {} frames", frames.len(), log.len());
    }
    assert_eq!(frames.len(), log.len());
    for (f, b) in frames.iter().zip(&log) {
        assert_eq!((f.0, f.1), (b.first_seq.0, b.count));
        assert_eq!(&f.2[..], &b.payload[..]);
        let ops = decode_batch(f.0, &f.2).unwrap();
        assert_eq!(ops.len() as u32, f.1);
        assert_eq!(ops[0].seq, f.0);
    }
    stream.stop().unwrap();
}
