//! Test support shared by the replication tests: a TCP proxy between nodes, and the
//! waits and comparisons of stores.
#![allow(dead_code)] // each test binary uses part of it

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_core::{Db, SeqNo, WalBatch};

use parking_lot::Mutex;

/// Forwards connections to `upstream`. The first connection's primary→replica
/// direction is cut after `cut_after` bytes; every chunk towards the replica waits
/// `delay` (a slow link).
pub struct Proxy {
    /// Where replicas connect.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy that cuts every connection towards the replica after a pseudo-random
    /// number of bytes between `min` and `max` (a flapping link).
    pub fn flapping(upstream: SocketAddr, min: u64, max: u64, seed: u64) -> Proxy {
        Self::start_with(upstream, move |n| {
            let x = (seed ^ (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (Some(min + (x >> 7) % (max - min + 1)), Duration::ZERO)
        })
    }

    pub fn start(upstream: SocketAddr, cut_after: Option<u64>, delay: Duration) -> Proxy {
        Self::start_with(
            upstream,
            move |n| {
                if n == 0 { (cut_after, delay) } else { (None, Duration::ZERO) }
            },
        )
    }

    /// `plan(n)` gives the n-th connection's cut point and per-chunk delay.
    fn start_with(
        upstream: SocketAddr,
        plan: impl Fn(u64) -> (Option<u64>, Duration) + Send + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let conns = Arc::new(Mutex::new(Vec::new()));
        let conns2 = Arc::clone(&conns);
        std::thread::spawn(move || {
            let mut n = 0u64;
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                let Ok(down) = conn else { continue };
                let Ok(up) = TcpStream::connect(upstream) else { continue };
                if let (Ok(a), Ok(b)) = (down.try_clone(), up.try_clone()) {
                    conns2.lock().extend([a, b]);
                }
                let (cut, delay) = plan(n);
                n += 1;
                let (d2, u2) = (down.try_clone().expect("clone"), up.try_clone().expect("clone"));
                std::thread::spawn(move || pump(d2, u2, None, Duration::ZERO));
                std::thread::spawn(move || pump(up, down, cut, delay));
            }
        });
        Proxy { addr, stop, conns }
    }

    /// Cuts every connection at once and accepts no more: the host behind it is gone,
    /// with whatever it had not delivered yet.
    pub fn sever(&self) {
        self.stop.store(true, Ordering::Release);
        for c in self.conns.lock().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: Option<u64>, delay: Duration) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match cut {
            Some(c) if sent + n as u64 >= c => {
                let _ = to.write_all(&buf[..(c - sent) as usize]);
                break;
            }
            _ => n,
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
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
