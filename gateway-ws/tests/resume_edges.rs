//! Resume positions at the edges of what the store's log holds, over loopback with a
//! real WebSocket client: a resume from before the log's start replays what the log
//! holds after one gap notice for the deleted range; a resume beyond the live edge is
//! closed with the reason (it used to get nothing at all).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Client, STEP, connect, hb, next, next_json, serve};
use strata_core::fs::OsFileSystem;
use strata_core::{
    Db, Durability, PublisherOptions, SeqNo, StreamId, SubscriberOptions, TopicPublisher,
    Transport, WriteBatch,
};
use strata_gateway_ws::{Gateway, GatewayConfig, PayloadFormat, TopicSpec, ValueFormat};
use strata_stream::messages::encode_frame;
use strata_stream::{CommitStream, LocalTransport};
use tokio_tungstenite::tungstenite::Message as Ws;

/// The first message must be a close frame: its code and reason.
async fn expect_close_first(ws: &mut Client) -> (u16, String) {
    match next(ws).await {
        Ws::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("expected a close frame first, got {other:?}"),
    }
}

fn commit(db: &Db, n: u64) -> u64 {
    let mut b = WriteBatch::new();
    for k in 0..(1 + n % 3) {
        b.put(format!("trade/{n:06}/{k}"), hb(n * 10 + k).encode().unwrap().as_slice());
    }
    db.write(&b, Durability::Buffered).unwrap().0
}

/// One batch of a single heartbeat under `key` (values must decode as messages).
fn one(key: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key, hb(0).encode().unwrap().as_slice());
    b
}

fn oldest_in_log(db: &Db) -> u64 {
    match db.read_log_from(SeqNo(1)) {
        Ok(_) => 1,
        Err(strata_core::Error::SequenceUnavailable { oldest, .. }) => oldest.0,
        Err(e) => panic!("reading the log: {e}"),
    }
}

/// A commits topic served from `db`'s log, its commit stream publishing from `from`.
fn commits_gateway(db: &Db, from: u64) -> (Gateway, CommitStream) {
    let transport = LocalTransport::new();
    let gateway = Gateway::new(GatewayConfig::default().with_ring_frames(8)).unwrap();
    gateway
        .add_topic(
            Arc::new(transport.clone()),
            TopicSpec::new("commits", PayloadFormat::Commits { values: ValueFormat::Message })
                .with_log(Arc::new(db.clone()), StreamId(1)),
            SubscriberOptions { queue_depth: 4096, ..SubscriberOptions::default() },
        )
        .unwrap();
    let publisher = transport
        .publisher(
            "commits",
            &PublisherOptions { stream: StreamId(1), ..PublisherOptions::default() },
        )
        .unwrap();
    let stream = CommitStream::start(Arc::new(db.clone()), publisher, SeqNo(from)).unwrap();
    (gateway, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_before_the_logs_start_replays_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Small WAL segments, deleted as soon as a flush checkpoints them.
    let db =
        strata_harness::stack::tiny_builder(dir.path(), OsFileSystem::shared(), 64 << 20, 1 << 20)
            .open()
            .unwrap();
    for n in 0..3000 {
        commit(&db, n);
    }
    db.flush().unwrap();
    let deadline = Instant::now() + STEP;
    let oldest = loop {
        // The checkpoint that deletes segments runs right after the flush.
        let oldest = oldest_in_log(&db);
        if oldest > 1001 {
            break oldest;
        }
        assert!(Instant::now() < deadline, "the log still starts at {oldest}");
        tokio::task::yield_now().await;
    };
    let mut last = 0;
    for n in 3000..3100 {
        last = commit(&db, n);
    }
    db.sync_wal().unwrap();
    let (gateway, stream) = commits_gateway(&db, last + 1);
    let server = serve(gateway).await;

    let requested = oldest - 1000;
    let mut ws = connect(server.addr, &format!("topic=commits&from={requested}")).await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], requested);
    // A live commit while the client catches up: it must not hide the log's history.
    last = db.write(&one("live"), Durability::Sync).unwrap().0;
    let gap = next_json(&mut ws).await;
    assert_eq!(gap["gap"]["from"], requested, "{gap}");
    assert_eq!(gap["gap"]["to"], oldest, "only the deleted range is a gap: {gap}");
    let mut expect = oldest;
    while expect <= last {
        let f = next_json(&mut ws).await;
        assert!(f.get("gap").is_none(), "a second gap at {expect}: {f}");
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        expect += f["span"].as_u64().unwrap();
    }
    assert!(stream.wait_published(last, STEP));
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_beyond_the_live_edge_is_closed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = strata_plugins::default_builder(dir.path()).open().unwrap();
    let mut last = 0;
    for n in 0..20 {
        last = commit(&db, n);
    }
    db.sync_wal().unwrap();
    let (gateway, stream) = commits_gateway(&db, last + 1);
    let server = serve(gateway).await;
    for beyond in [last + 2, last + 100, u64::MAX] {
        let mut ws = connect(server.addr, &format!("topic=commits&from={beyond}")).await;
        let (code, reason) = expect_close_first(&mut ws).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("beyond the live edge"), "{reason}");
    }
    // The edge itself: subscribed, then the next commit.
    let mut ws = connect(server.addr, &format!("topic=commits&from={}", last + 1)).await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], last + 1);
    let next_seq = db.write(&one("k"), Durability::Sync).unwrap().0;
    let f = next_json(&mut ws).await;
    assert_eq!(f["seq"].as_u64().unwrap(), next_seq, "{f}");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_beyond_the_live_edge_of_a_topic_without_log_is_closed() {
    let transport = LocalTransport::new();
    let gateway = Gateway::new(GatewayConfig::default()).unwrap();
    gateway
        .add_topic(
            Arc::new(transport.clone()),
            TopicSpec::new("feed", PayloadFormat::Messages),
            SubscriberOptions::default(),
        )
        .unwrap();
    let mut publisher: Box<dyn TopicPublisher> = transport
        .publisher("feed", &PublisherOptions { stream: StreamId(9), ..PublisherOptions::default() })
        .unwrap();
    for seq in 1..=5u64 {
        publisher.publish(seq, 1, &encode_frame(&[hb(seq)]).unwrap()).unwrap();
    }
    let server = serve(gateway).await;
    // Wait until the gateway received the five frames (it then knows the edge).
    let deadline = Instant::now() + STEP;
    while server.gateway.topics()[0].last_seq < 5 {
        assert!(Instant::now() < deadline, "the gateway did not receive the frames");
        tokio::task::yield_now().await;
    }
    let mut ws = connect(server.addr, "topic=feed&from=7").await;
    let (code, reason) = expect_close_first(&mut ws).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("last sequence is 5"), "{reason}");
    let mut ws = connect(server.addr, "topic=feed&from=6").await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], 6);
    publisher.publish(6, 1, &encode_frame(&[hb(6)]).unwrap()).unwrap();
    assert_eq!(next_json(&mut ws).await["seq"], 6);
}

/// A client resuming with the epoch of the batch it saw last, against a store that
/// rewrote that range since (a power loss took back unsynced batches, the next
/// incarnation wrote others there), is told the range and gets the store's batches for
/// it; a position from a history the store does not know is closed with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_into_a_rewritten_history_is_told_the_range() {
    use strata_harness::sim_fs::SimFileSystem;
    let open = |fs: &SimFileSystem| {
        strata_harness::stack::tiny_builder("/db", fs.shared(), 64 << 20, 1 << 20).open().unwrap()
    };
    let fs = SimFileSystem::new();
    let db = open(&fs);
    let mut durable = 0;
    for n in 0..5 {
        durable = commit(&db, n);
    }
    db.sync_wal().unwrap();
    let mut seen = durable;
    for n in 5..10 {
        seen = commit(&db, n);
    }
    // A client saw everything up to `seen` (it subscribed as soon as visible).
    let old_epoch = db.epoch();
    let crashed = fs.crash();
    drop(db);
    let db = open(&crashed);
    let new_epoch = db.epoch();
    let mut last = 0;
    for n in 100..140 {
        last = db.write(&one(&format!("new/{n}")), Durability::Sync).unwrap().0;
    }
    assert!(last > seen);
    let (gateway, stream) = commits_gateway(&db, last + 1);
    let server = serve(gateway).await;

    let query = format!("topic=commits&from={}&epoch={}", seen + 1, old_epoch.get());
    let mut ws = connect(server.addr, &query).await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], durable + 1);
    let notice = next_json(&mut ws).await;
    assert_eq!(notice["rewritten"]["from"], durable + 1, "{notice}");
    assert_eq!(notice["rewritten"]["to"], seen + 1, "{notice}");
    assert_eq!(notice["rewritten"]["epoch"], new_epoch.get(), "{notice}");
    let mut expect = durable + 1;
    while expect <= last {
        let f = next_json(&mut ws).await;
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        assert_eq!(f["epoch"], new_epoch.get(), "frames carry the epoch that wrote them: {f}");
        expect += f["span"].as_u64().unwrap();
    }

    // The same position with its own epoch is consistent for a store that kept it.
    let query = format!("topic=commits&from={}&epoch={}", durable + 1, old_epoch.get());
    let mut ws = connect(server.addr, &query).await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], durable + 1);
    let f = next_json(&mut ws).await;
    assert_eq!(f["seq"].as_u64().unwrap(), durable + 1, "no rewritten notice: {f}");

    let query = format!("topic=commits&from=2&epoch={}", new_epoch.get() + 5);
    let mut ws = connect(server.addr, &query).await;
    let (code, reason) = expect_close_first(&mut ws).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("another store or history"), "{reason}");
    drop(stream);
}

/// The store behind a topic truncates a tail while clients are connected — an old
/// primary that stepped down and rejoined its cluster, dropping batches the new primary
/// never had — and follows on with the newer epoch's batches. A connected client is
/// told the range it held that was rewritten and then gets the batches as the store
/// holds them now; a client joining afterwards from the start never sees a withdrawn
/// batch; one resuming from the old tail with its epoch is told too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_truncates_a_diverged_tail_tells_connected_clients() {
    let dir = tempfile::tempdir().unwrap();
    let db = strata_plugins::default_builder(dir.path().join("db")).open().unwrap();
    let (gateway, stream) = commits_gateway(&db, 1);
    let server = serve(gateway).await;
    let mut ws = connect(server.addr, "topic=commits&from=1").await;
    assert_eq!(next_json(&mut ws).await["subscribed"]["from"], 1);
    let old_epoch = db.epoch().get();
    let mut starts = Vec::new();
    let mut old_last = 0;
    for n in 0..20 {
        old_last = db.write(&one(&format!("old/{n}")), Durability::Sync).unwrap().0;
        starts.push(old_last);
    }
    let mut expect = 1;
    while expect <= old_last {
        let f = next_json(&mut ws).await;
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        assert_eq!(f["epoch"], old_epoch, "{f}");
        expect += f["span"].as_u64().unwrap();
    }

    let keep = starts[11];
    let new_epoch = old_epoch + 1;
    db.demote("new-primary:1");
    db.truncate_after(SeqNo(keep)).unwrap();
    let mut new_last = keep;
    // Shorter than the old tail: the topic's live edge must move back.
    for n in 0..5 {
        let b = one(&format!("new/{n}"));
        let batch = strata_core::WalBatch {
            first_seq: SeqNo(new_last + 1),
            count: b.count(),
            payload: bytes::Bytes::copy_from_slice(b.as_bytes()),
            epoch: strata_core::Epoch(new_epoch),
        };
        db.apply_replicated(&batch, Durability::Sync).unwrap();
        new_last += u64::from(b.count());
    }

    let notice = next_json(&mut ws).await;
    assert_eq!(notice["rewritten"]["from"], keep + 1, "{notice}");
    assert_eq!(notice["rewritten"]["to"], old_last + 1, "{notice}");
    assert_eq!(notice["rewritten"]["epoch"], new_epoch, "{notice}");
    let mut expect = keep + 1;
    while expect <= new_last {
        let f = next_json(&mut ws).await;
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        assert_eq!(f["epoch"], new_epoch, "{f}");
        let key = f["ops"][0]["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("new/"), "a batch of the newer epoch: {f}");
        expect += f["span"].as_u64().unwrap();
    }

    assert!(new_last < old_last);
    let topic = server.gateway.topics().into_iter().find(|t| t.topic == "commits").unwrap();
    assert_eq!(topic.last_seq, new_last, "the live edge moved back to the newer history's");

    // From the cut without an epoch, served from the ring: the newer batches only.
    let mut cut = connect(server.addr, &format!("topic=commits&from={}", keep + 1)).await;
    assert_eq!(next_json(&mut cut).await["subscribed"]["from"], keep + 1);
    let mut expect = keep + 1;
    while expect <= new_last {
        let f = next_json(&mut cut).await;
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        assert_eq!(f["epoch"], new_epoch, "no withdrawn frame from the ring: {f}");
        expect += f["span"].as_u64().unwrap();
    }

    // From the start: the old history up to the cut, then the newer one, nothing else.
    let mut late = connect(server.addr, "topic=commits&from=1").await;
    assert_eq!(next_json(&mut late).await["subscribed"]["from"], 1);
    let mut expect = 1;
    while expect <= new_last {
        let f = next_json(&mut late).await;
        assert_eq!(f["seq"].as_u64().unwrap(), expect, "{f}");
        let want = if expect <= keep { old_epoch } else { new_epoch };
        assert_eq!(f["epoch"], want, "{f}");
        expect += f["span"].as_u64().unwrap();
    }

    // Resuming after the old tail with the epoch it was written in.
    let query = format!("topic=commits&from={}&epoch={old_epoch}", old_last + 1);
    let mut back = connect(server.addr, &query).await;
    assert_eq!(next_json(&mut back).await["subscribed"]["from"], keep + 1);
    let notice = next_json(&mut back).await;
    assert_eq!(notice["rewritten"]["from"], keep + 1, "{notice}");
    let f = next_json(&mut back).await;
    assert_eq!(f["seq"].as_u64().unwrap(), keep + 1, "{f}");
    assert_eq!(f["epoch"], new_epoch, "{f}");
    assert!(!stream.is_finished(), "the commit stream keeps running");
    drop(stream);
}
