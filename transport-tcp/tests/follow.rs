//! A cluster client follows its topic across servers: when its server goes away it
//! resumes on the next one after the last frame it received, and a server that knows
//! the topic's epoch history moves a resume into a rewritten range back to the cut (the
//! client then receives a rewind: frames of a newer epoch at or below its position) and
//! refuses an epoch it does not know yet, which sends the client on to the next server.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{blocking, epoch_frames, fast_reconnect, nothing_more, until_seq};
use strata_core::{Epoch, EpochStart, SeqNo, SubscriberOptions, TopicPublisher, history_check};
use strata_transport_tcp::{TcpPublisher, TcpTransport};

const TOPIC: &str = "commits";

/// Publishes one-sequence frames `seqs` in `epoch`; the payload names both.
fn publish(p: &mut TcpPublisher, epoch: u64, seqs: std::ops::RangeInclusive<u64>) {
    p.set_epoch(epoch);
    for seq in seqs {
        p.publish(seq, 1, format!("{seq}@{epoch}").as_bytes()).expect("publish");
    }
}

/// A server whose topic's log has the epoch `history` and ends at `last`.
fn server(history: Vec<(u64, u64)>, last: u64) -> (TcpTransport, TcpPublisher) {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let p = server.tcp_publisher(TOPIC, &blocking(3, 1000)).expect("publisher");
    let history: Vec<EpochStart> = history
        .into_iter()
        .map(|(epoch, first)| EpochStart { epoch: Epoch(epoch), first_seq: SeqNo(first) })
        .collect();
    server
        .set_history_check(
            TOPIC,
            Arc::new(move |epoch, seq| history_check(&history, SeqNo(last), epoch, seq)),
        )
        .expect("history check");
    (server, p)
}

#[test]
fn a_cluster_client_resumes_on_the_next_server_without_gap_or_duplicate() {
    common::logs();
    let (a, mut pa) = server(vec![(1, 1)], 10);
    let (b, mut pb) = server(vec![(1, 1)], 10);
    // Both nodes hold the same history (a primary and its replica).
    publish(&mut pa, 1, 1..=10);
    publish(&mut pb, 1, 1..=10);
    let client =
        TcpTransport::cluster_client_with([a.remote_addr(), b.remote_addr()], fast_reconnect())
            .unwrap();
    assert_eq!(client.remote_addrs(), &[a.remote_addr(), b.remote_addr()]);
    let from1 = SubscriberOptions { resume_from: Some(1), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber(TOPIC, &from1).expect("subscribe");
    let got = until_seq(&mut sub, 10);
    assert_eq!(epoch_frames(&got), (1..=10).map(|s| (s, 1)).collect::<Vec<_>>());

    // The first node dies; the second goes on (a new primary at epoch 2 from 11).
    drop(pa);
    drop(a);
    publish(&mut pb, 2, 11..=15);
    let got = until_seq(&mut sub, 15);
    assert_eq!(epoch_frames(&got), (11..=15).map(|s| (s, 2)).collect::<Vec<_>>());
    nothing_more(&mut sub);
    common::wait_for_warning("moving on to the next server").expect("the move is logged");
}

#[test]
fn a_resume_after_a_rewritten_tail_rewinds_to_where_the_new_history_starts() {
    // The old primary wrote 6..=10 in epoch 2, which never reached the new primary:
    // that one was promoted at epoch 3 from sequence 6.
    let (old, mut p_old) = server(vec![(1, 1), (2, 6)], 10);
    let (new, mut p_new) = server(vec![(1, 1), (3, 6)], 8);
    publish(&mut p_old, 1, 1..=5);
    publish(&mut p_old, 2, 6..=10);
    publish(&mut p_new, 1, 1..=5);
    publish(&mut p_new, 3, 6..=8);
    let client =
        TcpTransport::cluster_client_with([old.remote_addr(), new.remote_addr()], fast_reconnect())
            .unwrap();
    let from1 = SubscriberOptions { resume_from: Some(1), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber(TOPIC, &from1).expect("subscribe");
    let got = until_seq(&mut sub, 10);
    assert_eq!(epoch_frames(&got)[5..], [(6, 2), (7, 2), (8, 2), (9, 2), (10, 2)]);

    drop(p_old);
    drop(old);
    // Resumed at 11 after a frame of epoch 2, which the new history does not hold from
    // 6 on: the server starts at 6, and the first frame (epoch 3, below 11) is the
    // rewind the client can tell by its epoch.
    let got = until_seq(&mut sub, 8);
    assert_eq!(epoch_frames(&got), [(6, 3), (7, 3), (8, 3)]);
    publish(&mut p_new, 3, 9..=9);
    assert_eq!(epoch_frames(&until_seq(&mut sub, 9)), [(9, 3)]);
    nothing_more(&mut sub);
}

#[test]
fn without_a_history_check_a_resume_is_served_by_sequence_alone() {
    let plain = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = plain.tcp_publisher(TOPIC, &blocking(3, 1000)).expect("publisher");
    publish(&mut p, 1, 1..=5);
    publish(&mut p, 3, 6..=8);
    let client = TcpTransport::client_with(plain.remote_addr(), fast_reconnect()).unwrap();
    let at8 = SubscriberOptions { resume_from: Some(8), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber_after(TOPIC, &at8, 2).expect("subscribe");
    assert_eq!(epoch_frames(&until_seq(&mut sub, 8)), [(8, 3)]);
}

#[test]
fn an_epoch_the_server_does_not_know_is_refused_and_the_next_server_serves_it() {
    // `behind` has not yet seen epoch 4, which `ahead` (the new primary) started at 9.
    let (behind, mut p_behind) = server(vec![(1, 1), (3, 6)], 8);
    publish(&mut p_behind, 1, 1..=5);
    publish(&mut p_behind, 3, 6..=8);
    let (ahead, mut p_ahead) = server(vec![(1, 1), (3, 6), (4, 9)], 12);
    publish(&mut p_ahead, 1, 1..=5);
    publish(&mut p_ahead, 3, 6..=8);
    publish(&mut p_ahead, 4, 9..=12);
    let at11 = SubscriberOptions { resume_from: Some(11), ..SubscriberOptions::default() };

    // Alone, the node that is behind refuses the position, saying why.
    let only_behind = TcpTransport::client_with(behind.remote_addr(), fast_reconnect()).unwrap();
    let err = only_behind.tcp_subscriber_after(TOPIC, &at11, 4).unwrap_err().to_string();
    assert!(
        err.contains("resume_epoch 4") && err.contains("newer than this server's history"),
        "{err}"
    );

    // In a cluster client the refusal sends the subscriber on to the node that knows.
    let both = TcpTransport::cluster_client_with(
        [behind.remote_addr(), ahead.remote_addr()],
        fast_reconnect(),
    )
    .unwrap();
    let mut sub = both.tcp_subscriber_after(TOPIC, &at11, 4).expect("subscribe");
    assert_eq!(epoch_frames(&until_seq(&mut sub, 12)), [(11, 4), (12, 4)]);
    nothing_more(&mut sub);
}

#[test]
fn a_server_behind_in_the_same_epoch_refuses_instead_of_calling_it_rewritten() {
    // `behind` (a replica) holds 1..=5 of epoch 1; the client saw up to 8 elsewhere.
    let (behind, mut p_behind) = server(vec![(1, 1)], 5);
    publish(&mut p_behind, 1, 1..=5);
    let (ahead, mut p_ahead) = server(vec![(1, 1)], 10);
    publish(&mut p_ahead, 1, 1..=10);
    let at9 = SubscriberOptions { resume_from: Some(9), ..SubscriberOptions::default() };
    let only_behind = TcpTransport::client_with(behind.remote_addr(), fast_reconnect()).unwrap();
    let err = only_behind.tcp_subscriber_after(TOPIC, &at9, 1).unwrap_err().to_string();
    assert!(err.contains("ends at 5 in the same epoch 1: it is behind"), "{err}");

    let both = TcpTransport::cluster_client_with(
        [behind.remote_addr(), ahead.remote_addr()],
        fast_reconnect(),
    )
    .unwrap();
    let mut sub = both.tcp_subscriber_after(TOPIC, &at9, 1).expect("subscribe");
    assert_eq!(epoch_frames(&until_seq(&mut sub, 10)), [(9, 1), (10, 1)]);
    nothing_more(&mut sub);
}

#[test]
fn a_first_address_that_refuses_connections_is_skipped() {
    let (live, mut p) = server(vec![(1, 1)], 3);
    publish(&mut p, 1, 1..=3);
    // A port nothing listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client =
        TcpTransport::cluster_client_with([dead, live.remote_addr()], fast_reconnect()).unwrap();
    let from1 = SubscriberOptions { resume_from: Some(1), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber(TOPIC, &from1).expect("subscribe");
    assert_eq!(epoch_frames(&until_seq(&mut sub, 3)), [(1, 1), (2, 1), (3, 1)]);

    // With no server answering at all, creating the subscriber fails naming each.
    let none = TcpTransport::cluster_client_with([dead, dead], fast_reconnect()).unwrap();
    let err = none.tcp_subscriber(TOPIC, &from1).unwrap_err().to_string();
    assert_eq!(err.matches("cannot connect").count(), 2, "{err}");
    assert!(TcpTransport::cluster_client(Vec::<std::net::SocketAddr>::new()).is_err());
    assert!(live.set_history_check(TOPIC, Arc::new(|_, _| unreachable!())).is_ok());
    assert!(none.set_history_check(TOPIC, Arc::new(|_, _| unreachable!())).is_err());
}
