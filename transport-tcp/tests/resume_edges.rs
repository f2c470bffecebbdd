//! Resume positions at the edges of what the server holds: before its history (only
//! what is really gone is a gap; a frame spanning the position is replayed whole) and
//! beyond the live edge (refused with the reason, never answered with frames below it).

mod common;

use common::{Got, blocking, resume, seqs_without_gap, until_seq};
use strata_core::StreamId;
use strata_transport_tcp::TcpTransport;

#[test]
fn resume_beyond_the_live_edge_is_refused_with_the_reason() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("edge", &blocking(4, 100)).expect("publisher");
    for seq in 1..=10u64 {
        strata_core::TopicPublisher::publish(&mut p, seq, 1, &seq.to_le_bytes()).expect("publish");
    }
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    // The next frame starts at 11: 12 and later are beyond the live edge.
    for beyond in [12u64, 13, 1_000_000] {
        match client.tcp_subscriber("edge", &resume(beyond)) {
            Ok(_) => panic!("resume_from {beyond} past the live edge 11 was accepted"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("beyond the live edge"), "{text}");
                assert!(text.contains("starts at 11"), "{text}");
            }
        }
    }
    // The live edge itself is a valid resume: the next frame, with no gap.
    let mut at_edge = client.tcp_subscriber("edge", &resume(11)).expect("resume at the edge");
    strata_core::TopicPublisher::publish(&mut p, 11, 1, &11u64.to_le_bytes()).expect("publish");
    assert_eq!(seqs_without_gap(&until_seq(&mut at_edge, 11)), vec![11]);
}

#[test]
fn resume_before_the_history_gaps_only_what_is_gone() {
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let mut p = server.tcp_publisher("spans", &blocking(4, 4)).expect("publisher");
    // Ten frames of three sequences each: 1..=3, 4..=6, ..., 28..=30. The history
    // keeps the last four: 19, 22, 25 and 28.
    for i in 0..10u64 {
        let seq = 1 + 3 * i;
        strata_core::TopicPublisher::publish(&mut p, seq, 3, &seq.to_le_bytes()).expect("publish");
    }
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    let frames = |got: &[Got]| -> Vec<u64> {
        got.iter()
            .filter_map(|g| if let Got::Frame(h, _) = g { Some(h.seq) } else { None })
            .collect()
    };

    // From 2, before the history: a gap for 2..19 (really gone), then all it holds.
    let mut early = client.tcp_subscriber("spans", &resume(2)).expect("sub");
    let got = until_seq(&mut early, 28);
    assert_eq!(got[0], Got::Gap(StreamId(4), 2, 19));
    assert_eq!(frames(&got), vec![19, 22, 25, 28]);
    assert_eq!(got.len(), 5);

    // From 20, inside the held frame 19..=21: that frame is replayed whole, no gap.
    let mut inside = client.tcp_subscriber("spans", &resume(20)).expect("sub");
    let got = until_seq(&mut inside, 28);
    assert_eq!(seqs_without_gap(&got), vec![19, 22, 25, 28], "{got:?}");
}
