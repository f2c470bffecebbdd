//! Bad input over TCP: raw clients sending garbage, an oversized length, a truncated
//! hello, a hello for an unknown topic, or bytes after their hello each get their
//! connection closed with a logged reason, while a well-behaved subscriber on the same
//! server keeps receiving. And a client subscriber facing a misbehaving server reports
//! the protocol error instead of delivering the bad frame.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use common::{Got, seqs_without_gap, until_seq, wait_for_warning};
use strata_core::{
    Error, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher,
    TopicSubscriber,
};
use strata_transport_tcp::TcpTransport;
use strata_transport_tcp::format::{self, Hello};

/// Reads everything until the server closes; returns the bytes received.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the server did not close the connection: {e} (got {out:?})"),
        }
    }
}

/// Decodes a `HELLO_ACK` refusal from the bytes the server sent.
fn refusal(bytes: &[u8]) -> format::HelloAck {
    assert!(bytes.len() >= 5, "expected a hello answer, got {bytes:?}");
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(bytes.len(), 4 + len, "exactly one message, then the close");
    assert_eq!(bytes[4], format::KIND_HELLO_ACK);
    let ack = format::decode_hello_ack(&bytes[5..]).expect("ack");
    assert_ne!(ack.status, format::ACK_OK);
    ack
}

struct Fixture {
    server: TcpTransport,
    publisher: Box<dyn TopicPublisher>,
    good: Box<dyn TopicSubscriber>,
    _client: TcpTransport,
    next: u64,
}

impl Fixture {
    fn new() -> Self {
        common::logs();
        let server = TcpTransport::server("127.0.0.1:0").expect("server");
        let opts = PublisherOptions {
            stream: StreamId(5),
            policy: SlowSubscriberPolicy::Block,
            ..PublisherOptions::default()
        };
        let publisher = Box::new(server.tcp_publisher("good", &opts).expect("publisher"));
        let client = TcpTransport::client(server.remote_addr()).expect("client");
        let good =
            Box::new(client.tcp_subscriber("good", &SubscriberOptions::default()).expect("sub"));
        let mut f = Self { server, publisher, good, _client: client, next: 0 };
        f.still_serving();
        f
    }

    /// Publishes a few frames and checks the good subscriber gets exactly them.
    fn still_serving(&mut self) {
        let from = self.next;
        for seq in from..from + 5 {
            self.publisher.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
        }
        self.next = from + 5;
        let got = until_seq(&mut *self.good, from + 4);
        assert_eq!(seqs_without_gap(&got), (from..from + 5).collect::<Vec<_>>());
        for g in &got {
            if let Got::Frame(h, p) = g {
                assert_eq!(p, &h.seq.to_le_bytes());
            }
        }
    }

    fn raw(&self) -> TcpStream {
        TcpStream::connect(self.server.remote_addr()).expect("connect")
    }
}

#[test]
fn garbage_closes_that_connection_only() {
    let mut f = Fixture::new();
    let mut s = f.raw();
    s.write_all(b"GET / HTTP/1.1\r\nHost: strata\r\n\r\n").expect("write");
    let ack = refusal(&read_until_closed(&mut s));
    assert_eq!(ack.status, format::ACK_BAD_HELLO);
    assert!(ack.reason.contains("garbage or oversized"), "{}", ack.reason);
    wait_for_warning("garbage or oversized").expect("logged");
    f.still_serving();

    // A small length but a body that is not a hello.
    let mut s = f.raw();
    s.write_all(&[6, 0, 0, 0, 99, 1, 2, 3, 4, 5]).expect("write");
    let ack = refusal(&read_until_closed(&mut s));
    assert!(ack.reason.contains("expected a hello"), "{}", ack.reason);
    wait_for_warning("got kind 99").expect("logged");
    f.still_serving();

    // A hello with the right kind but a bad magic.
    let mut s = f.raw();
    let mut msg = format::encode_hello(&Hello {
        topic: "good".into(),
        resume_from: None,
        resume_epoch: None,
        max_payload: 64,
    })
    .to_vec();
    msg[5] ^= 0xff;
    s.write_all(&msg).expect("write");
    let ack = refusal(&read_until_closed(&mut s));
    assert!(ack.reason.contains("bad hello magic"), "{}", ack.reason);
    f.still_serving();
}

#[test]
fn oversized_length_closes_that_connection_only() {
    let mut f = Fixture::new();
    let mut s = f.raw();
    s.write_all(&0x7fff_ffff_u32.to_le_bytes()).expect("write");
    let ack = refusal(&read_until_closed(&mut s));
    assert!(ack.reason.contains("hello length 2147483647"), "{}", ack.reason);
    wait_for_warning("hello length 2147483647").expect("logged");
    f.still_serving();
}

#[test]
fn truncated_hello_then_close_is_logged() {
    let mut f = Fixture::new();
    let mut s = f.raw();
    let msg = format::encode_hello(&Hello {
        topic: "good".into(),
        resume_from: None,
        resume_epoch: None,
        max_payload: 64,
    });
    s.write_all(&msg[..msg.len() - 3]).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let ack = refusal(&read_until_closed(&mut s));
    assert!(ack.reason.contains("truncated hello"), "{}", ack.reason);
    wait_for_warning("truncated hello").expect("logged");
    f.still_serving();
}

#[test]
fn unknown_topic_is_refused() {
    let mut f = Fixture::new();
    let mut s = f.raw();
    let msg = format::encode_hello(&Hello {
        topic: "nope".into(),
        resume_from: None,
        resume_epoch: None,
        max_payload: 64,
    });
    s.write_all(&msg).expect("write");
    let ack = refusal(&read_until_closed(&mut s));
    assert_eq!(ack.status, format::ACK_UNKNOWN_TOPIC);
    assert!(ack.reason.contains("unknown topic \"nope\""), "{}", ack.reason);
    wait_for_warning("unknown topic \"nope\"").expect("logged");
    f.still_serving();

    // Through the client API the same refusal is an error naming the reason.
    let client = TcpTransport::client(f.server.remote_addr()).expect("client");
    match client.tcp_subscriber("nope", &SubscriberOptions::default()) {
        Err(Error::Transport { reason, .. }) => {
            assert!(reason.contains("unknown topic"), "{reason}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    f.still_serving();
}

#[test]
fn bytes_after_the_hello_close_that_connection() {
    let mut f = Fixture::new();
    let mut s = f.raw();
    let msg = format::encode_hello(&Hello {
        topic: "good".into(),
        resume_from: None,
        resume_epoch: None,
        max_payload: 64,
    });
    s.write_all(&msg).expect("write");
    s.write_all(b"unexpected").expect("write");
    let bytes = read_until_closed(&mut s);
    // The server accepted the hello (its answer may or may not have gone out before
    // the extra bytes were seen), then closed.
    if bytes.len() > 4 {
        assert_eq!(bytes[4], format::KIND_HELLO_ACK);
    }
    wait_for_warning("unexpected bytes after its hello").expect("logged");
    f.still_serving();
}

/// A fake server: accepts one subscriber, answers its hello, then sends `bad`.
fn misbehaving_server(bad: Vec<u8>) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("hello len");
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut body).expect("hello");
        let ack =
            format::HelloAck { status: format::ACK_OK, live_next: None, reason: String::new() };
        s.write_all(&format::encode_hello_ack(&ack)).expect("ack");
        let good = format::encode_frame_with(
            &strata_core::FrameHeader { stream: StreamId(1), seq: 0, span: 1, epoch: 0 },
            3,
            |b| b.copy_from_slice(b"abc"),
        );
        s.write_all(&good).expect("frame");
        s.write_all(&bad).expect("bad");
        // Keep the socket open until the client closes it.
        let mut sink = [0u8; 16];
        let _ = s.read(&mut sink);
    });
    (addr, handle)
}

fn expect_client_error(bad: Vec<u8>, needle: &str) {
    common::logs();
    let (addr, server) = misbehaving_server(bad);
    let client = TcpTransport::client(addr).expect("client");
    let opts = SubscriberOptions { max_payload: 1024, ..SubscriberOptions::default() };
    let mut sub = client.tcp_subscriber("t", &opts).expect("subscribe");
    let mut frames = Vec::new();
    let err = loop {
        match sub.wait(Duration::from_secs(5), &mut |d| frames.push(format!("{d:?}"))) {
            Ok(0) => panic!("no error reported; deliveries: {frames:?}"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(frames.len(), 1, "only the good frame is delivered: {frames:?}");
    match err {
        Error::Transport { reason, .. } => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected a transport error, got {other}"),
    }
    drop(sub);
    drop(client);
    server.join().expect("server thread");
}

#[test]
fn client_rejects_a_corrupt_frame() {
    let mut frame = format::encode_frame_with(
        &strata_core::FrameHeader { stream: StreamId(1), seq: 1, span: 1, epoch: 0 },
        4,
        |b| b.copy_from_slice(b"wxyz"),
    )
    .to_vec();
    let last = frame.len() - 1;
    frame[last] ^= 0x40;
    expect_client_error(frame, "checksum mismatch");
}

#[test]
fn client_rejects_an_oversized_length() {
    expect_client_error(0x4000_0000_u32.to_le_bytes().to_vec(), "outside 1..=");
}

#[test]
fn client_rejects_an_unknown_message_kind() {
    expect_client_error(vec![3, 0, 0, 0, 77, 0, 0], "unknown message kind 77");
}
