//! Damage to the raft directory: a checksum mismatch in the middle of the raft log (or in
//! the metadata) stops the node from starting with an error naming the file and offset,
//! and leaves the files untouched; a torn final record (an append that never completed)
//! is cut off and the node starts with everything it had acknowledged.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use common::{TestNode, cas, read};
use strata_failover_raft::{Error, Member, Versioned};

/// A single-voter group that wrote five versions, stopped cleanly. Returns its node.
fn written_node(dir: &Path) -> TestNode {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let mut node = TestNode::start(1, any, dir.to_path_buf(), 1000).expect("a fresh node starts");
    let members = BTreeMap::from([(1, Member::data(node.addr))]);
    node.run(node.reg().initialize(members)).expect("initialize");
    for v in 0..5 {
        cas(&node, v, format!("v{}", v + 1).as_bytes()).expect("cas");
    }
    node.stop();
    node
}

fn expect_corruption(node: &mut TestNode, file: &str) -> (u64, String) {
    match node.restart() {
        Err(Error::Storage(strata_core::Error::Corruption { file: f, offset, reason })) => {
            assert!(f.ends_with(file), "the error names {}, expected {file}", f.display());
            (offset, reason)
        }
        Err(other) => panic!("expected a corruption error in {file}, got {other}"),
        Ok(()) => panic!("a node with a damaged {file} must not start"),
    }
}

#[test]
fn a_checksum_mismatch_in_the_middle_of_the_log_is_an_error_naming_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = written_node(tmp.path());
    let log = node.dir.join("raft_log");
    let mut bytes = std::fs::read(&log).expect("read the log");
    // Inside the body of the first record (header 16 bytes, record prefix 8 bytes).
    bytes[16 + 8 + 3] ^= 0x20;
    std::fs::write(&log, &bytes).expect("write the damaged log");

    let (offset, reason) = expect_corruption(&mut node, "raft_log");
    assert_eq!(offset, 16, "the damaged record starts right after the header");
    assert!(reason.contains("checksum"), "reason: {reason}");
    assert_eq!(
        std::fs::read(&log).expect("read the log again"),
        bytes,
        "a failed start changes nothing"
    );
}

#[test]
fn damaged_metadata_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = written_node(tmp.path());
    let meta = node.dir.join("raft_meta");
    let mut bytes = std::fs::read(&meta).expect("read the metadata");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&meta, &bytes).expect("write the damaged metadata");
    expect_corruption(&mut node, "raft_meta");
}

#[test]
fn a_torn_final_record_is_cut_off_and_the_node_starts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = written_node(tmp.path());
    let log = node.dir.join("raft_log");
    let intact = std::fs::read(&log).expect("read the log");
    let mut torn = intact.clone();
    // A record prefix claiming 200 bytes, of which only 30 arrived.
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&[0xAB; 4]);
    torn.extend_from_slice(&[b'{'; 30]);
    std::fs::write(&log, &torn).expect("write the torn log");

    node.restart().expect("a torn tail does not stop the node");
    assert_eq!(read(&node).expect("read"), Versioned { version: 5, value: b"v5".to_vec() });
    node.stop();
    let after = std::fs::read(&log).expect("read the log again");
    assert!(after.starts_with(&intact), "every intact record is kept");
    assert!(!after.windows(30).any(|w| w == [b'{'; 30]), "the torn bytes are gone");
}
