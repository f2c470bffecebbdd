//! The gateway's HTTP side over loopback: connections that never complete their
//! headers are closed, and an upgrade with a malformed `Sec-WebSocket-Key` is refused.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use strata_core::SubscriberOptions;
use strata_gateway_ws::{Gateway, GatewayConfig, PayloadFormat, TopicSpec};
use strata_stream::LocalTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Longest any single wait in these tests may take before it counts as a failure.
const DEADLINE: Duration = Duration::from_secs(20);

struct Served {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves a gateway with one topic (`feed`) through [`Gateway::serve`].
async fn serve(config: GatewayConfig) -> Served {
    let gateway = Arc::new(Gateway::new(config).unwrap());
    let transport = LocalTransport::new();
    let sub = SubscriberOptions { queue_depth: 64, max_payload: 1 << 20, resume_from: None };
    gateway
        .add_topic(Arc::new(transport), TopicSpec::new("feed", PayloadFormat::Messages), sub)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        gateway
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Served { addr, _stop: tx }
}

/// Reads until the server closes the connection; returns what it sent. Fails the test
/// if the connection is still open after [`DEADLINE`].
async fn read_until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await {
            Err(_) => panic!("the server kept a connection without complete headers open"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP response head (up to the blank line).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .expect("no response within the deadline")
            .unwrap();
        assert_eq!(n, 1, "connection closed mid-response: {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

fn upgrade_request(key: &str) -> String {
    format!(
        "GET /ws?topic=feed HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_complete_their_headers_are_closed() {
    let timeout = Duration::from_millis(300);
    let served = serve(GatewayConfig::default().with_header_timeout(timeout)).await;

    // A WebSocket client that completed its upgrade before the half-open ones time out.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?topic=feed", served.addr))
            .await
            .unwrap();

    // Silent connections and connections that stop mid-request.
    let mut half_open = Vec::new();
    for i in 0..40 {
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        if i % 2 == 1 {
            tcp.write_all(b"GET /ws?topic=feed HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        }
        half_open.push(tcp);
    }
    for tcp in &mut half_open {
        let answer = read_until_closed(tcp).await;
        // Closed silently, or with "408 Request Timeout" — never anything else.
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    // The header timeout has passed (the half-open connections are gone): the upgraded
    // connection is not subject to it and still answers.
    let hello = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap().unwrap().unwrap() {
            Ws::Text(t) => break t,
            Ws::Ping(_) | Ws::Pong(_) => {}
            other => panic!("expected the subscribe answer, got {other:?}"),
        }
    };
    assert!(hello.as_str().contains("subscribed"), "{hello}");
    ws.send(Ws::Text(r#"{"op":"ping"}"#.into())).await.unwrap();
    let pong = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap().unwrap().unwrap() {
            Ws::Text(t) => break t,
            Ws::Ping(_) | Ws::Pong(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert!(pong.as_str().contains("pong"), "{pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_sec_websocket_key_is_refused_with_400() {
    let served = serve(GatewayConfig::default()).await;
    let bad = [
        "abc",                          // far too short
        "dGhlIHNhbXBsZSBub25jZQ",       // 16 bytes without the padding
        "dGhlIHNhbXBsZSBub25j",         // 15 bytes
        "dGhlIHNhbXBsZSBub25jZSE=",     // 17 bytes
        "dGhlIHNhbXBsZSBub25jZQ==AAAA", // 16 bytes and trailing data
        "dGhlIHNhbXBsZSBub25j!Q==",     // not base64
        "dGhlIHNhbXBsZSBub25jZR==",     // non-zero bits in the padding
        "dGhlIHNhbXBsZSBub25jZQ=A",     // padding in the wrong place
    ];
    for key in bad {
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        tcp.write_all(upgrade_request(key).as_bytes()).await.unwrap();
        let head = read_head(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 400"), "key {key:?} got {head:?}");
    }
    // The RFC 6455 sample key (base64 of "the sample nonce") is accepted.
    let mut tcp = TcpStream::connect(served.addr).await.unwrap();
    tcp.write_all(upgrade_request("dGhlIHNhbXBsZSBub25jZQ==").as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head:?}");
}
