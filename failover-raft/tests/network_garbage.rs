//! Bytes that are not frames of the raft protocol — random garbage, an oversized length,
//! a bad checksum, a truncated frame, a frame whose body is not a request — drop that
//! connection only: the node stays up and the group keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::{Cluster, cas, read};
use strata_failover_raft::Role;

fn frame(body: &[u8], crc_xor: u32) -> Vec<u8> {
    let len = (body.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(body);
    let mut out = b"SRFT".to_vec();
    out.extend_from_slice(&len);
    out.extend_from_slice(&(h.finalize() ^ crc_xor).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `bytes`, half-closes, and checks that the server closes the connection without
/// answering.
fn send_and_expect_close(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect to the raft port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("set a read timeout");
    // The server may close before everything is written; that is fine.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the server answered garbage with {n} bytes"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "the server must close the connection, got {e}"
        ),
    }
}

#[test]
fn garbage_on_the_raft_port_does_not_crash_the_node() {
    let c = Cluster::start(&[Role::Data; 3]);
    let leader = c.leader();
    cas(c.node(leader), 0, b"before").expect("cas before the garbage");

    let mut random = Vec::with_capacity(4096);
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    let mut oversized = b"SRFT".to_vec();
    oversized.extend_from_slice(&u32::MAX.to_le_bytes());
    oversized.extend_from_slice(&[0; 4]);
    let valid_request = br#"{"Vote":null}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random),
        ("an oversized length", oversized),
        ("a bad checksum", frame(b"{\"Read\":null}", 0xFFFF)),
        ("a truncated frame", frame(b"\"Read\"", 0)[..9].to_vec()),
        ("a body that is not JSON", frame(b"\x00\x01\x02 not json", 0)),
        ("JSON that is not a request", frame(valid_request, 0)),
    ];
    for n in &c.nodes {
        for (_what, bytes) in &cases {
            send_and_expect_close(n.addr, bytes);
        }
        // The node still serves (its listener and raft task are alive).
        assert_eq!(
            read(n).expect("read through a node that got garbage").version,
            1,
            "node {}",
            n.id
        );
    }

    let leader = c.leader();
    let follower = c.other_than(leader);
    assert_eq!(read(c.node(follower)).expect("read after the garbage").version, 1);
    assert_eq!(cas(c.node(follower), 1, b"after").expect("cas after the garbage").version, 2);
}
