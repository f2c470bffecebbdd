//! The gateway over loopback with a real WebSocket client (tokio-tungstenite).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Client, STEP, Server, connect, hb, next, next_json, serve};
use futures_util::SinkExt;
use serde_json::Value;
use strata_core::{
    Db, Durability, PublisherOptions, SeqNo, SlowSubscriberPolicy, StreamId, SubscriberOptions,
    TopicPublisher, Transport, WriteBatch,
};
use strata_gateway_ws::frame::parse_binary;
use strata_gateway_ws::{Gateway, GatewayConfig, PayloadFormat, TopicSpec, ValueFormat};
use strata_stream::messages::{MessageFrame, encode_frame};
use strata_stream::{CommitStream, LocalTransport, MarketL2, Message, PriceLevel};
use tokio_tungstenite::tungstenite::Message as Ws;

fn big(n: u64, levels: usize) -> Message {
    let level = PriceLevel { price: n as i64, qty: n };
    Message::L2(MarketL2 {
        symbol: "BTC-USD".into(),
        bids: vec![level; levels],
        asks: vec![level; levels],
        ts_nanos: n,
    })
}

/// Reads until the close frame; returns its code and reason.
async fn expect_close(ws: &mut Client) -> (u16, String) {
    loop {
        match next(ws).await {
            Ws::Close(Some(f)) => return (u16::from(f.code), f.reason.to_string()),
            Ws::Close(None) => panic!("closed without a reason"),
            _ => {}
        }
    }
}

fn messages_topic(
    config: GatewayConfig,
    policy: SlowSubscriberPolicy,
) -> (Gateway, Box<dyn TopicPublisher>) {
    let transport = LocalTransport::new();
    let gateway = Gateway::new(config).unwrap();
    let sub = SubscriberOptions { queue_depth: 64, max_payload: 1 << 20, resume_from: None };
    gateway
        .add_topic(
            Arc::new(transport.clone()),
            TopicSpec::new("feed", PayloadFormat::Messages),
            sub,
        )
        .unwrap();
    let publisher = transport
        .publisher(
            "feed",
            &PublisherOptions {
                stream: StreamId(9),
                max_payload: 1 << 20,
                queue_depth: 64,
                policy,
                ..PublisherOptions::default()
            },
        )
        .unwrap();
    (gateway, publisher)
}

fn publish(p: &mut Box<dyn TopicPublisher>, seq: u64, messages: &[Message]) {
    let frame = encode_frame(messages).unwrap();
    p.publish(seq, messages.len() as u32, &frame).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arrive_in_order_as_json_and_binary() {
    let (gateway, mut publisher) =
        messages_topic(GatewayConfig::default(), SlowSubscriberPolicy::Block);
    let server = serve(gateway).await;
    let mut json = connect(server.addr, "topic=feed").await;
    let mut binary = connect(server.addr, "topic=feed&format=binary").await;
    // Subscribing by command instead of the query string.
    let mut by_command = connect(server.addr, "").await;
    by_command
        .send(Ws::Text(r#"{"op":"subscribe","topic":"feed","format":"json"}"#.into()))
        .await
        .unwrap();
    for ws in [&mut json, &mut binary, &mut by_command] {
        let hello = next_json(ws).await;
        assert_eq!(hello["subscribed"]["topic"], "feed", "{hello}");
    }
    let mut seq = 1;
    for i in 0..100u64 {
        let n = 1 + (i % 3) as usize;
        let msgs: Vec<Message> = (0..n as u64).map(|k| hb(seq + k)).collect();
        publish(&mut publisher, seq, &msgs);
        seq += n as u64;
    }
    for ws in [&mut json, &mut by_command] {
        let mut expect = 1;
        while expect < seq {
            let f = next_json(ws).await;
            assert_eq!(f["seq"], expect, "{f}");
            let msgs = f["messages"].as_array().unwrap();
            assert_eq!(msgs.len() as u64, f["span"].as_u64().unwrap());
            for (k, m) in msgs.iter().enumerate() {
                assert_eq!(m["type"], "heartbeat");
                assert_eq!(m["last_seq"], expect + k as u64);
            }
            expect += msgs.len() as u64;
        }
    }
    let mut expect = 1;
    while expect < seq {
        let Ws::Binary(b) = next(&mut binary).await else { panic!("expected binary") };
        let (h, payload) = parse_binary(&b).unwrap();
        assert_eq!((h.stream, h.seq), (StreamId(9), expect));
        let decoded = MessageFrame::parse(payload).unwrap().decode_all().unwrap();
        assert_eq!(decoded.len() as u32, h.span);
        assert_eq!(decoded[0], hb(expect));
        expect += u64::from(h.span);
    }
    // Ping gets a pong.
    json.send(Ws::Text(r#"{"op":"ping"}"#.into())).await.unwrap();
    assert!(next_json(&mut json).await.get("pong").is_some());
    let stats = server.gateway.topics();
    assert_eq!(stats[0].frames, 100);
    assert_eq!(stats[0].last_seq, seq - 1);
}

fn open_db(dir: &std::path::Path) -> Db {
    strata_plugins::default_builder(dir).open().unwrap()
}

fn commit(db: &Db, n: u64, ops: u64) -> u64 {
    let mut b = WriteBatch::new();
    for k in 0..ops {
        b.put(format!("trade/{n:06}/{k}"), hb(n * 10 + k).encode().unwrap().as_slice());
    }
    db.write(&b, Durability::Buffered).unwrap().0
}

/// Reads commit frames until `last` is covered; checks every sequence arrives exactly
/// once, in order, from `from`, with no gap notice.
async fn expect_commits(ws: &mut Client, mut expect: u64, last: u64) -> u64 {
    while expect <= last {
        let f = next_json(ws).await;
        assert!(f.get("gap").is_none() && f.get("invalid").is_none(), "{f}");
        let seq = f["seq"].as_u64().unwrap();
        assert_eq!(seq, expect, "{f}");
        for (k, op) in f["ops"].as_array().unwrap().iter().enumerate() {
            assert_eq!(op["seq"], seq + k as u64);
            assert_eq!(op["message"]["type"], "heartbeat");
        }
        expect += f["span"].as_u64().unwrap();
    }
    expect
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_log_ring_and_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    // History before the gateway exists: only in the log.
    let mut last = 0;
    for n in 0..40 {
        last = commit(&db, n, 1 + n % 3);
    }
    let transport = LocalTransport::new();
    let gateway = Gateway::new(GatewayConfig::default().with_ring_frames(8)).unwrap();
    let log: Arc<dyn strata_gateway_ws::CommitLog> = Arc::new(db.clone());
    gateway
        .add_topic(
            Arc::new(transport.clone()),
            TopicSpec::new("commits", PayloadFormat::Commits { values: ValueFormat::Message })
                .with_log(log, StreamId(1)),
            SubscriberOptions { queue_depth: 4096, ..SubscriberOptions::default() },
        )
        .unwrap();
    let publisher = transport
        .publisher(
            "commits",
            &PublisherOptions { stream: StreamId(1), ..PublisherOptions::default() },
        )
        .unwrap();
    let stream = CommitStream::start(Arc::new(db.clone()), publisher, SeqNo(last + 1)).unwrap();
    let server = serve(gateway).await;
    // More history, published live (the ring keeps only the last 8 frames).
    for n in 40..80 {
        last = commit(&db, n, 1 + n % 3);
    }
    assert!(stream.wait_published(last, STEP));

    // From the very start: the log, then the ring, then live.
    let mut from_start = connect(server.addr, "topic=commits&from=1").await;
    assert_eq!(next_json(&mut from_start).await["subscribed"]["from"], 1);
    // From inside the range the ring still holds.
    let ring_first = server.gateway.topics()[0].ring_first_seq.unwrap();
    let mut from_ring = connect(server.addr, &format!("topic=commits&from={ring_first}")).await;
    next_json(&mut from_ring).await;
    let mut expect_a = expect_commits(&mut from_start, 1, last).await;
    let mut expect_b = expect_commits(&mut from_ring, ring_first, last).await;

    // Live commits reach both, still with no gap or duplicate.
    for n in 80..120 {
        last = commit(&db, n, 1 + n % 3);
    }
    expect_a = expect_commits(&mut from_start, expect_a, last).await;
    expect_b = expect_commits(&mut from_ring, expect_b, last).await;
    assert_eq!(expect_a, last + 1);
    assert_eq!(expect_b, last + 1);

    // A resume from the middle of old history, while commits keep coming.
    let mut middle = connect(server.addr, "topic=commits&from=30").await;
    next_json(&mut middle).await;
    for n in 120..140 {
        last = commit(&db, n, 2);
    }
    // Batch boundaries: 30 may fall inside a batch, which is then sent whole.
    let f = next_json(&mut middle).await;
    let first = f["seq"].as_u64().unwrap();
    let end = first + f["span"].as_u64().unwrap();
    assert!(first <= 30 && end > 30, "{f}");
    assert_eq!(expect_commits(&mut middle, end, last).await, last + 1);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holes_in_the_transport_are_filled_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let transport = LocalTransport::new();
    let gateway = Gateway::new(GatewayConfig::default()).unwrap();
    gateway
        .add_topic(
            Arc::new(transport.clone()),
            TopicSpec::new("commits", PayloadFormat::Commits { values: ValueFormat::Message })
                .with_log(Arc::new(db.clone()), StreamId(1)),
            SubscriberOptions::default(),
        )
        .unwrap();
    let mut publisher = transport
        .publisher(
            "commits",
            &PublisherOptions { stream: StreamId(1), ..PublisherOptions::default() },
        )
        .unwrap();
    let server = serve(gateway).await;
    let mut ws = connect(server.addr, "topic=commits").await;
    next_json(&mut ws).await;
    // Publish by hand, skipping every third batch (as a lossy medium would).
    let mut reader = db.read_log_from(SeqNo(1)).unwrap();
    let mut last = 0;
    for n in 0..30 {
        last = commit(&db, n, 2);
        let b = reader.next_batch().unwrap().unwrap();
        if n % 3 != 1 {
            publisher.publish(b.first_seq.0, b.count, &b.payload).unwrap();
        }
    }
    // The first frame the client sees is seq 1; every later hole comes from the log.
    assert_eq!(expect_commits(&mut ws, 1, last).await, last + 1);
}

/// Reads a slow client's backlog: frames and gaps must account for every sequence, in
/// order, up to `last`. Returns (frames, gaps). `progress` is set to the next sequence
/// expected as frames arrive.
async fn drain_accounting(
    ws: &mut Client,
    first: u64,
    last: u64,
    progress: &AtomicU64,
) -> (u64, u64) {
    let (mut frames, mut gaps, mut expect) = (0, 0, first);
    while expect <= last {
        match next(ws).await {
            Ws::Binary(b) => {
                let (h, _) = parse_binary(&b).unwrap();
                assert_eq!(h.seq, expect);
                expect += u64::from(h.span);
                frames += 1;
                progress.store(expect, Ordering::Release);
            }
            Ws::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let g = &v["gap"];
                assert_eq!(g["from"], expect, "{v}");
                let to = g["to"].as_u64().unwrap();
                assert!(to > expect);
                expect = to;
                gaps += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (frames, gaps)
}

const SLOW_FRAMES: u64 = 300;

async fn flood(policy: SlowSubscriberPolicy) -> (Server, Client, u64) {
    let (gateway, mut publisher) = messages_topic(
        GatewayConfig::default().with_client_queue_frames(4).with_policy(policy),
        SlowSubscriberPolicy::Block,
    );
    let server = serve(gateway).await;
    let mut slow = connect(server.addr, "topic=feed&format=binary").await;
    let mut fast = connect(server.addr, "topic=feed&format=binary").await;
    next_json(&mut slow).await;
    next_json(&mut fast).await;
    // ~100 KB per frame: far more than the socket buffers hold in total. The publisher
    // keeps pace with the fast client (at most 2 frames ahead of it, under its queue of
    // 4), so only the client that does not read can fall behind.
    let progress = Arc::new(AtomicU64::new(1));
    let seen = Arc::clone(&progress);
    let fast_reader = tokio::spawn(async move {
        let r = drain_accounting(&mut fast, 1, SLOW_FRAMES, &seen).await;
        (fast, r)
    });
    let pub_task = tokio::task::spawn_blocking(move || {
        for seq in 1..=SLOW_FRAMES {
            while progress.load(Ordering::Acquire) + 2 < seq {
                std::thread::sleep(Duration::from_millis(1));
            }
            publish(&mut publisher, seq, &[big(seq, 3000)]);
        }
        publisher
    });
    let _publisher = pub_task.await.unwrap();
    let (_fast, (frames, gaps)) = fast_reader.await.unwrap();
    assert_eq!((frames, gaps), (SLOW_FRAMES, 0), "the fast client loses nothing");
    (server, slow, SLOW_FRAMES)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_under_drop_oldest_gets_gaps_others_get_everything() {
    let (_server, mut slow, last) = flood(SlowSubscriberPolicy::DropOldest).await;
    let (frames, gaps) = drain_accounting(&mut slow, 1, last, &AtomicU64::new(0)).await;
    assert!(gaps >= 1, "a client that did not read for {last} large frames lost some");
    assert!(frames < last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_under_disconnect_is_closed_with_a_reason() {
    let (_server, mut slow, _) = flood(SlowSubscriberPolicy::Disconnect).await;
    let (code, reason) = expect_close(&mut slow).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("slow consumer"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_input_closes_only_that_connection() {
    let (gateway, mut publisher) = messages_topic(
        GatewayConfig::default().with_max_client_message_bytes(1024),
        SlowSubscriberPolicy::Block,
    );
    let server = serve(gateway).await;
    let mut good = connect(server.addr, "topic=feed").await;
    next_json(&mut good).await;

    let mut garbage = connect(server.addr, "topic=feed").await;
    next_json(&mut garbage).await;
    garbage.send(Ws::Text("hello{".into())).await.unwrap();
    let (code, reason) = expect_close(&mut garbage).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("not a command"), "{reason}");

    let mut oversized = connect(server.addr, "topic=feed").await;
    next_json(&mut oversized).await;
    oversized.send(Ws::Text("x".repeat(8192).into())).await.unwrap();
    let (code, reason) = expect_close(&mut oversized).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("exceeds the limit of 1024"), "{reason}");

    let mut binary = connect(server.addr, "topic=feed").await;
    next_json(&mut binary).await;
    binary.send(Ws::Binary(vec![0xde, 0xad].into())).await.unwrap();
    assert_eq!(expect_close(&mut binary).await.0, 1003);

    let mut unknown = connect(server.addr, "topic=nope").await;
    let (code, reason) = expect_close(&mut unknown).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown topic"), "{reason}");

    let mut bad_query = connect(server.addr, "topic=feed&from=minus-one").await;
    assert_eq!(expect_close(&mut bad_query).await.0, 1008);

    // An invalid rkyv frame injected through the transport: reported, skipped, and the
    // stream goes on.
    publish(&mut publisher, 1, &[hb(1)]);
    let mut corrupt = encode_frame(&[hb(2)]).unwrap().to_vec();
    let magic = corrupt.windows(4).position(|w| w == b"SMSG").unwrap();
    corrupt[magic] ^= 0xff;
    publisher.publish(2, 1, &corrupt).unwrap();
    publisher.publish(3, 1, b"definitely not rkyv").unwrap();
    publish(&mut publisher, 4, &[hb(4)]);

    assert_eq!(next_json(&mut good).await["seq"], 1);
    for seq in [2, 3] {
        let v = next_json(&mut good).await;
        assert_eq!(v["invalid"]["seq"], seq, "{v}");
    }
    let v = next_json(&mut good).await;
    assert_eq!(v["seq"], 4, "{v}");
    assert_eq!(v["messages"][0]["last_seq"], 4);
    assert_eq!(server.gateway.topics()[0].invalid, 2);
}
