//! Reconnect and resume: a client subscriber whose server goes away reconnects by
//! itself and resumes after the last frame it received, without gap or duplicate; a
//! subscriber resuming from a sequence the publisher no longer holds is told the gap;
//! the async API delivers the same stream.

mod common;

use std::time::Duration;

use common::{Got, blocking, seqs_without_gap, until_seq};
use strata_core::{
    Delivery, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher,
    TopicSubscriber,
};
use strata_transport_tcp::{AsyncTopicSubscriber, OwnedDelivery, TcpConfig, TcpTransport};

fn publish(p: &mut dyn TopicPublisher, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        p.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
    }
}

#[test]
fn client_reconnects_after_server_restart_and_resumes_without_gap() {
    common::logs();
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let addr = server.remote_addr();
    let mut p = server.tcp_publisher("orders", &blocking(9, 100)).expect("publisher");
    let config =
        TcpConfig::default().with_backoff(Duration::from_millis(5), Duration::from_millis(50));
    let client = TcpTransport::client_with(addr, config).expect("client");
    let mut sub = client.tcp_subscriber("orders", &SubscriberOptions::default()).expect("sub");
    publish(&mut p, 0..10);
    let mut got = until_seq(&mut sub, 9);

    // Kill the server side: its runtime, listener and every connection go away.
    drop(p);
    drop(server);
    let server = TcpTransport::server(addr).expect("restart on the same port");
    let mut p = server.tcp_publisher("orders", &blocking(9, 100)).expect("publisher again");
    // Published while the client may still be reconnecting: served from history.
    publish(&mut p, 10..20);
    got.extend(until_seq(&mut sub, 19));
    // And the live stream continues.
    publish(&mut p, 20..30);
    got.extend(until_seq(&mut sub, 29));
    assert_eq!(seqs_without_gap(&got), (0..30).collect::<Vec<_>>());
    for g in &got {
        if let Got::Frame(h, payload) = g {
            assert_eq!(payload, &h.seq.to_le_bytes());
            assert_eq!(h.stream, StreamId(9));
        }
    }
    let mut extra = 0;
    sub.wait(Duration::from_millis(50), &mut |_| extra += 1).expect("wait");
    assert_eq!(extra, 0, "no duplicate after the resume");
    common::wait_for_warning("reconnecting").expect("the lost connection is logged");
}

#[test]
fn resume_beyond_history_reports_the_gap() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("log", &blocking(9, 3)).expect("publisher");
    publish(&mut p, 0..10);
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    // Frames 5 and 6 fell out of the 3-frame history.
    let resume = SubscriberOptions { resume_from: Some(5), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber("log", &resume).expect("sub");
    let got = until_seq(&mut sub, 9);
    assert_eq!(got[0], Got::Gap(StreamId(9), 5, 7));
    assert_eq!(seqs_without_gap(&got[1..]), vec![7, 8, 9]);

    // Resuming inside the history replays exactly from there.
    let resume = SubscriberOptions { resume_from: Some(8), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber("log", &resume).expect("sub");
    publish(&mut p, 10..11);
    assert_eq!(seqs_without_gap(&until_seq(&mut sub, 10)), vec![8, 9, 10]);

    // Without history at all, a resume from the past is one gap up to the live edge.
    let mut q = server.tcp_publisher("live", &blocking(9, 0)).expect("publisher");
    publish(&mut q, 0..4);
    let resume = SubscriberOptions { resume_from: Some(1), ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber("live", &resume).expect("sub");
    publish(&mut q, 4..5);
    let got = until_seq(&mut sub, 4);
    assert_eq!(
        got,
        vec![Got::Gap(StreamId(9), 1, 4), Got::Frame(got_header(4), 4u64.to_le_bytes().to_vec())]
    );
}

fn got_header(seq: u64) -> strata_core::FrameHeader {
    strata_core::FrameHeader { stream: StreamId(9), seq, span: 1, epoch: 0 }
}

#[test]
fn disconnect_policy_cuts_off_a_slow_subscriber_never_silently() {
    common::logs();
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let popts = PublisherOptions {
        queue_depth: 2,
        max_payload: 64 * 1024,
        policy: SlowSubscriberPolicy::Disconnect,
        ..blocking(9, 0)
    };
    let mut p = server.tcp_publisher("slow", &popts).expect("publisher");
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    let sopts = SubscriberOptions { queue_depth: 2, max_payload: 64 * 1024, resume_from: None };
    let mut sub = client.tcp_subscriber("slow", &sopts).expect("sub");
    let big = vec![7u8; 60 * 1024];
    // Far more than the kernel buffers while the subscriber does not read.
    for seq in 0..2000u64 {
        p.publish(seq, 1, &big).expect("publish never blocks or fails");
    }
    common::wait_for_warning("slow subscriber").expect("the cut-off is logged");
    // Whatever the subscriber then sees is either the end of its subscription or a
    // stream whose losses are reported: never a silent hole.
    let mut expected: Option<u64> = None;
    let mut outcome = None;
    for _ in 0..400 {
        let r = sub.wait(Duration::from_millis(20), &mut |d| match d {
            Delivery::Frame { header, .. } => {
                if let Some(e) = expected {
                    assert_eq!(header.seq, e, "a frame arrived after a silent hole");
                }
                expected = Some(header.next_seq());
            }
            Delivery::Gap { from, to, .. } => {
                if let Some(e) = expected {
                    assert_eq!(from, e, "gap does not start at the next due frame");
                }
                expected = Some(to);
            }
        });
        match r {
            Err(e) => {
                outcome = Some(format!("{e}"));
                break;
            }
            Ok(_) if expected == Some(2000) => {
                outcome = Some("resumed to the end".to_owned());
                break;
            }
            Ok(_) => {}
        }
    }
    eprintln!("disconnect outcome: {outcome:?}");
    assert!(
        outcome.is_some(),
        "the subscriber saw neither the cut-off nor the end; at {expected:?}"
    );
}

#[test]
fn async_api_publishes_and_receives() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("async", &blocking(9, 0)).expect("publisher");
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    let sopts = SubscriberOptions { queue_depth: 4, ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber("async", &sopts).expect("sub");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async move {
        let reader = tokio::spawn(async move {
            let mut seqs = Vec::new();
            while seqs.len() < 200 {
                match AsyncTopicSubscriber::recv(&mut sub).await.expect("recv") {
                    OwnedDelivery::Frame { header, payload } => {
                        assert_eq!(&payload[..], &header.seq.to_le_bytes());
                        seqs.push(header.seq);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            seqs
        });
        for seq in 0..200u64 {
            p.publish_async(seq, 1, &seq.to_le_bytes()).await.expect("publish");
        }
        let seqs = reader.await.expect("reader");
        assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    });
}

#[test]
fn subscriber_of_a_dropped_server_transport_reports_disconnected() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("own", &blocking(9, 0)).expect("publisher");
    let mut sub = server.tcp_subscriber("own", &SubscriberOptions::default()).expect("sub");
    publish(&mut p, 0..3);
    assert_eq!(seqs_without_gap(&until_seq(&mut sub, 2)), vec![0, 1, 2]);
    drop(server);
    match sub.wait(Duration::from_millis(200), &mut |d| panic!("unexpected {d:?}")) {
        Err(strata_core::Error::Disconnected { reason, .. }) => {
            assert!(reason.contains("shut down"), "{reason}")
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // The async API notices too, instead of waiting forever.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), sub.recv()).await });
    assert!(
        matches!(r, Ok(Err(strata_core::Error::Disconnected { .. }))),
        "expected Disconnected from recv, got {r:?}"
    );
}
