//! Test support shared by the replication tests: the harness's fault-injecting TCP
//! proxy between nodes, and the waits and comparisons of stores.
#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strata_core::{Db, SeqNo, WalBatch};

use strata_harness::proxy::FaultProxy;

/// A fault-injecting proxy in front of `upstream` (a node's replication port), with no
/// fault yet.
pub fn start_proxy(upstream: SocketAddr) -> FaultProxy {
    FaultProxy::start(upstream).expect("start the proxy")
}

/// Any free loopback port.
pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Polls `cond` until it holds; fails the test after a minute.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every key and value of the store.
pub fn contents(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.iter().map(|kv| kv.expect("scan")).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// Every batch of the store's log.
pub fn log_of(db: &Db) -> Vec<WalBatch> {
    let mut r = db.read_log_from(SeqNo(1)).expect("read log");
    let mut out = Vec::new();
    while let Some(b) = r.next_batch().expect("next batch") {
        out.push(b);
    }
    out
}
