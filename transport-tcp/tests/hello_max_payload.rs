//! A hello that accepts no payload at all (`max_payload = 0`) can never receive a
//! frame: the server refuses it once, with the reason, instead of accepting it and then
//! warning about every frame of its history it cannot replay (4,096 warnings for a
//! history of 4,096 frames). The client API refuses such options before connecting. A
//! max_payload below the history's frames gets one warning for all of them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use strata_core::{
    Error, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher,
};
use strata_transport_tcp::TcpTransport;
use strata_transport_tcp::format::{self, Hello};

const HISTORY: usize = 4096;

/// Reads everything until the server closes; returns the bytes received.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => {
                panic!("the server did not close the connection: {e} (got {} bytes)", out.len())
            }
        }
    }
}

/// Lines of the captured log that mention `needle`.
fn logged(needle: &str) -> Vec<String> {
    let logs = common::logs().lock().expect("logs");
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_hello_with_max_payload_zero_is_refused_once() {
    common::logs();
    let server = TcpTransport::server("127.0.0.1:0").expect("server");
    let opts = PublisherOptions {
        stream: StreamId(3),
        history: HISTORY,
        policy: SlowSubscriberPolicy::DropOldest,
        ..PublisherOptions::default()
    };
    let mut publisher = server.tcp_publisher("zero", &opts).expect("publisher");
    for seq in 0..HISTORY as u64 {
        publisher.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
    }

    let mut s = TcpStream::connect(server.remote_addr()).expect("connect");
    let hello =
        Hello { topic: "zero".into(), resume_from: None, resume_epoch: None, max_payload: 0 };
    s.write_all(&format::encode_hello(&hello)).expect("write");
    let bytes = read_until_closed(&mut s);

    // Exactly one message, a refusal naming the reason, then the close.
    assert!(bytes.len() >= 5, "expected a hello answer, got {bytes:?}");
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(bytes.len(), 4 + len, "a refusal and nothing else ({} bytes)", bytes.len());
    assert_eq!(bytes[4], format::KIND_HELLO_ACK);
    let ack = format::decode_hello_ack(&bytes[5..]).expect("ack");
    assert_eq!(ack.status, format::ACK_BAD_HELLO, "{ack:?}");
    assert!(ack.reason.contains("max_payload 0"), "{}", ack.reason);

    // The server logged the refusal once and nothing per history frame. The refusal is
    // logged before it is sent, so it is in the log by now.
    let mentions = logged("max_payload");
    assert_eq!(
        mentions.len(),
        1,
        "expected one log line, got {}: {:?}",
        mentions.len(),
        &mentions[..mentions.len().min(3)]
    );
    assert!(mentions[0].contains("WARN"), "{}", mentions[0]);

    // The client API refuses the options before connecting, with the reason.
    let client = TcpTransport::client(server.remote_addr()).expect("client");
    let options = SubscriberOptions { max_payload: 0, ..SubscriberOptions::default() };
    match client.tcp_subscriber("zero", &options) {
        Err(Error::InvalidArgument(reason)) => {
            assert!(reason.contains("max_payload"), "{reason}")
        }
        other => panic!("expected an invalid-argument error, got {other:?}"),
    }
    assert_eq!(logged("max_payload").len(), 1, "the client's refusal reached no server");

    // A hello whose max_payload is below every history frame (8 bytes each) is accepted;
    // the frames it cannot take are reported in one line, not one per frame.
    let mut s = TcpStream::connect(server.remote_addr()).expect("connect");
    let hello =
        Hello { topic: "zero".into(), resume_from: None, resume_epoch: None, max_payload: 4 };
    s.write_all(&format::encode_hello(&hello)).expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("ack length");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).expect("ack");
    assert_eq!(body[0], format::KIND_HELLO_ACK);
    let ack = format::decode_hello_ack(&body[1..]).expect("ack");
    assert_eq!(ack.status, format::ACK_OK, "{ack:?}");
    // The replay is prepared (and reported) before the answer is sent.
    let skipped = logged("history frames larger");
    assert_eq!(skipped.len(), 1, "{:?}", &skipped[..skipped.len().min(3)]);
    assert!(skipped[0].contains(&format!("count={HISTORY}")), "{}", skipped[0]);
}
