//! A subscriber that reads its socket on its own thread (`TcpConfig::inline_read`, the
//! default for subscribers made outside async code): `poll` alone takes frames in,
//! it keeps working when called from async code (where its runtime cannot be entered
//! directly), it can be dropped there; one made inside async code works there too.

mod common;

use std::time::{Duration, Instant};

use common::{blocking, seqs_without_gap, until_seq};
use strata_core::{Delivery, SubscriberOptions, TopicPublisher, TopicSubscriber};
use strata_transport_tcp::{OwnedDelivery, TcpConfig, TcpTransport};

fn publish(p: &mut dyn TopicPublisher, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        p.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
    }
}

/// Calls `poll` only (never `wait`) until `n` frames arrived or 10 s passed.
fn poll_only(sub: &mut dyn TopicSubscriber, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seqs = Vec::new();
    while seqs.len() < n && Instant::now() < deadline {
        sub.poll(&mut |d| match d {
            Delivery::Frame { header, payload } => {
                assert_eq!(payload, &header.seq.to_le_bytes());
                seqs.push(header.seq);
            }
            other => panic!("unexpected {other:?}"),
        })
        .expect("poll");
        std::thread::yield_now();
    }
    seqs
}

#[test]
fn poll_alone_takes_in_what_the_socket_holds() {
    for inline in [true, false] {
        let config = TcpConfig::default().with_inline_read(inline);
        let server = TcpTransport::server_with("127.0.0.1:0", config.clone()).expect("server");
        let mut p = server.tcp_publisher("poll", &blocking(3, 0)).expect("publisher");
        let client = TcpTransport::client_with(server.remote_addr(), config).expect("client");
        let mut sub = client.tcp_subscriber("poll", &SubscriberOptions::default()).expect("sub");
        publish(&mut p, 0..500);
        assert_eq!(poll_only(&mut sub, 500), (0..500).collect::<Vec<_>>(), "inline_read={inline}");
    }
}

#[test]
fn an_inline_subscriber_works_and_drops_inside_async_code() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("async", &blocking(3, 0)).expect("publisher");
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    // Made outside async code: it reads its own socket.
    let mut sub = client.tcp_subscriber("async", &SubscriberOptions::default()).expect("sub");
    publish(&mut p, 0..10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async move {
        // The synchronous API from async code: tokio forbids entering a runtime here,
        // so the subscriber drives its own from a helper thread.
        let got = until_seq(&mut sub, 9);
        assert_eq!(seqs_without_gap(&got), (0..10).collect::<Vec<_>>());
        publish(&mut p, 10..15);
        assert_eq!(poll_only(&mut sub, 5), vec![10, 11, 12, 13, 14]);
        // The async API on the same subscriber.
        publish(&mut p, 15..17);
        for want in 15..17u64 {
            let d = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .expect("recv in time")
                .expect("recv");
            match d {
                OwnedDelivery::Frame { header, .. } => assert_eq!(header.seq, want),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Dropping a runtime inside async code panics in tokio; the subscriber's must not.
        drop(sub);
    });
}

#[test]
fn a_subscriber_made_inside_async_code_works_there() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("made-async", &blocking(3, 0)).expect("publisher");
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let mut sub =
            client.tcp_subscriber("made-async", &SubscriberOptions::default()).expect("sub");
        publish(&mut p, 0..20);
        let mut seqs = Vec::new();
        while seqs.len() < 20 {
            match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
                Ok(Ok(OwnedDelivery::Frame { header, .. })) => seqs.push(header.seq),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seqs, (0..20).collect::<Vec<_>>());
        assert_eq!(poll_only(&mut sub, 0), Vec::<u64>::new());
        drop(sub);
    });
}
