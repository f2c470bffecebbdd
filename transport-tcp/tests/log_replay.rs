//! A server with a history source replays a resume its history ring no longer holds
//! from the topic's log: the log's frames, then the ring, then live frames, with no gap
//! and no duplicate. Where the source stops early or fails, the client gets a gap for
//! what it did not read, as without a source.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Got, blocking, epoch_frames, fast_reconnect, nothing_more, resume, until_seq};
use strata_core::{Epoch, EpochStart, SeqNo, StreamId, TopicPublisher, history_check};
use strata_transport_tcp::{LoggedFrame, TcpPublisher, TcpTransport};

const TOPIC: &str = "commits";

/// The model log: frames of two sequences each, `(seq, epoch)`; the payload names both.
fn logged(frames: &[(u64, u64)]) -> Vec<LoggedFrame> {
    frames
        .iter()
        .map(|&(seq, epoch)| LoggedFrame {
            seq,
            span: 2,
            epoch,
            payload: Bytes::from(format!("{seq}@{epoch}")),
        })
        .collect()
}

fn publish(p: &mut TcpPublisher, frames: &[LoggedFrame]) {
    for f in frames {
        p.set_epoch(f.epoch);
        p.publish(f.seq, f.span, &f.payload).expect("publish");
    }
}

/// A source over `log` that counts its calls and stops after `limit` frames.
fn source(
    log: Vec<LoggedFrame>,
    limit: usize,
    calls: Arc<AtomicUsize>,
) -> strata_transport_tcp::HistorySourceFn {
    Arc::new(move |from, to, _max_bytes| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(log
            .iter()
            .filter(|f| f.seq + u64::from(f.span) > from && f.seq < to)
            .take(limit)
            .cloned()
            .collect())
    })
}

#[test]
fn a_resume_below_the_ring_is_served_from_the_log_then_the_ring_then_live() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher(TOPIC, &blocking(3, 3)).expect("publisher");
    // Frames at 1, 3, .., 39 (each two sequences); the ring holds 35, 37 and 39.
    let log = logged(&(0..20).map(|i| (1 + 2 * i, 1)).collect::<Vec<_>>());
    publish(&mut p, &log);
    let calls = Arc::new(AtomicUsize::new(0));
    server.set_history_source(TOPIC, source(log, usize::MAX, Arc::clone(&calls))).unwrap();

    let client = TcpTransport::client_with(server.remote_addr(), fast_reconnect()).unwrap();
    // 8 lies inside the frame at 7, which is replayed whole.
    let mut sub = client.tcp_subscriber(TOPIC, &resume(8)).expect("subscribe");
    let got = until_seq(&mut sub, 39);
    let want: Vec<(u64, u64)> = (3..20).map(|i| (1 + 2 * i, 1)).collect();
    assert_eq!(epoch_frames(&got), want, "log frames 7..=33, then the ring's 35..=39");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Live frames follow, once each.
    publish(&mut p, &logged(&[(41, 1), (43, 1)]));
    assert_eq!(epoch_frames(&until_seq(&mut sub, 43)), [(41, 1), (43, 1)]);
    nothing_more(&mut sub);

    // A resume the ring holds never asks the source.
    let mut held = client.tcp_subscriber(TOPIC, &resume(40)).expect("subscribe");
    assert_eq!(epoch_frames(&until_seq(&mut held, 43)), [(39, 1), (41, 1), (43, 1)]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_source_that_stops_early_leaves_a_gap_for_the_rest_only() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher(TOPIC, &blocking(3, 2)).expect("publisher");
    let log = logged(&(0..10).map(|i| (1 + 2 * i, 1)).collect::<Vec<_>>());
    publish(&mut p, &log);
    // The ring holds 17 and 19; the source reads two frames (as if at its byte limit).
    let calls = Arc::new(AtomicUsize::new(0));
    server.set_history_source(TOPIC, source(log, 2, calls)).unwrap();
    let client = TcpTransport::client_with(server.remote_addr(), fast_reconnect()).unwrap();
    let mut sub = client.tcp_subscriber(TOPIC, &resume(5)).expect("subscribe");
    let got = until_seq(&mut sub, 19);
    assert_eq!(epoch_frames(&got[..2]), [(5, 1), (7, 1)]);
    assert!(matches!(got[2], Got::Gap(StreamId(3), 9, 17)), "the unread rest is a gap: {got:?}");
    assert_eq!(epoch_frames(&got[3..]), [(17, 1), (19, 1)]);
}

#[test]
fn a_failing_source_gives_the_gap_a_server_without_one_gives() {
    common::logs();
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher(TOPIC, &blocking(3, 2)).expect("publisher");
    publish(&mut p, &logged(&(0..10).map(|i| (1 + 2 * i, 1)).collect::<Vec<_>>()));
    server
        .set_history_source(TOPIC, Arc::new(|_, _, _| Err("the disk is gone".to_owned())))
        .unwrap();
    let client = TcpTransport::client_with(server.remote_addr(), fast_reconnect()).unwrap();
    let mut sub = client.tcp_subscriber(TOPIC, &resume(5)).expect("subscribe");
    let got = until_seq(&mut sub, 19);
    assert!(matches!(got[0], Got::Gap(StreamId(3), 5, 17)), "{got:?}");
    assert_eq!(epoch_frames(&got[1..]), [(17, 1), (19, 1)]);
    common::wait_for_warning("reading a resume from the topic's log failed")
        .expect("the failure is logged");
}

#[test]
fn after_a_failover_a_rewritten_range_the_new_ring_dropped_comes_from_its_log() {
    common::logs();
    // The old primary wrote 11..=20 in epoch 2; the new one was promoted at epoch 3
    // from 11 and wrote 11..=20 again. Its ring holds only its last frame.
    let old_log = logged(&[(1, 1), (3, 1), (5, 1), (7, 1), (9, 1), (11, 2), (13, 2), (15, 2)]);
    let new_log = logged(&[(1, 1), (3, 1), (5, 1), (7, 1), (9, 1), (11, 3), (13, 3), (15, 3)]);
    let old = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p_old = old.tcp_publisher(TOPIC, &blocking(3, 100)).expect("publisher");
    publish(&mut p_old, &old_log);
    let new = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p_new = new.tcp_publisher(TOPIC, &blocking(3, 1)).expect("publisher");
    publish(&mut p_new, &new_log);
    let history = vec![
        EpochStart { epoch: Epoch(1), first_seq: SeqNo(1) },
        EpochStart { epoch: Epoch(3), first_seq: SeqNo(11) },
    ];
    new.set_history_check(
        TOPIC,
        Arc::new(move |epoch, seq| history_check(&history, SeqNo(16), epoch, seq)),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    new.set_history_source(TOPIC, source(new_log, usize::MAX, Arc::clone(&calls))).unwrap();

    let client =
        TcpTransport::cluster_client_with([old.remote_addr(), new.remote_addr()], fast_reconnect())
            .unwrap();
    let mut sub = client.tcp_subscriber(TOPIC, &resume(1)).expect("subscribe");
    let got = until_seq(&mut sub, 15);
    assert_eq!(epoch_frames(&got)[5..], [(11, 2), (13, 2), (15, 2)]);
    drop(p_old);
    drop(old);
    // Resumed at 17 after epoch 2: the new history rewrote from 11, which its ring no
    // longer holds (only 15): 11 and 13 come from its log, 15 from the ring, no gap.
    let got = until_seq(&mut sub, 15);
    assert_eq!(epoch_frames(&got), [(11, 3), (13, 3), (15, 3)]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    publish(&mut p_new, &logged(&[(17, 3)]));
    assert_eq!(epoch_frames(&until_seq(&mut sub, 17)), [(17, 3)]);
    nothing_more(&mut sub);
}
