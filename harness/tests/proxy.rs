//! The fault-injecting TCP proxy, each fault proven against a real echo server on
//! loopback. No test bounds how long anything takes: waits are for a counter or for
//! bytes, with a generous deadline only so that a broken proxy fails instead of hanging,
//! and "nothing arrives" checks can only fail if something does arrive.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_harness::proxy::{Direction, FaultProxy, ProxyStats};

const PATIENCE: Duration = Duration::from_secs(60);

/// An echo server: writes back whatever each connection sends, records it, and can push
/// bytes of its own down the latest connection.
struct Echo {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    /// What each connection received, in accept order.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let echo = Echo {
            addr: listener.local_addr().expect("addr"),
            accepted: Arc::default(),
            closed: Arc::default(),
            received: Arc::default(),
            streams: Arc::default(),
        };
        let (accepted, closed) = (Arc::clone(&echo.accepted), Arc::clone(&echo.closed));
        let (received, streams) = (Arc::clone(&echo.received), Arc::clone(&echo.streams));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let i = {
                    let mut r = received.lock();
                    r.push(Vec::new());
                    r.len() - 1
                };
                streams.lock().push(s.try_clone().expect("clone"));
                accepted.fetch_add(1, Ordering::AcqRel);
                let (received, closed) = (Arc::clone(&received), Arc::clone(&closed));
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                received.lock()[i].extend_from_slice(&buf[..n]);
                                if s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    // `streams` keeps a clone: shut down rather than wait for the drop.
                    let _ = s.shutdown(Shutdown::Both);
                    closed.fetch_add(1, Ordering::AcqRel);
                });
            }
        });
        echo
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    fn closed(&self) -> u64 {
        self.closed.load(Ordering::Acquire)
    }

    fn received(&self, conn: usize) -> Vec<u8> {
        self.received.lock().get(conn).cloned().unwrap_or_default()
    }

    /// Writes `data` down the latest connection from a thread of its own (the write
    /// may block or fail under a fault).
    fn push(&self, data: Vec<u8>) {
        let mut s = self.streams.lock().last().expect("a connection").try_clone().expect("clone");
        std::thread::spawn(move || {
            let _ = s.write_all(&data);
        });
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_stats(proxy: &FaultProxy, what: &str, cond: impl Fn(&ProxyStats) -> bool) {
    wait_until(what, || cond(&proxy.stats()));
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write");
    assert_eq!(read_n(s, msg.len()), msg);
}

/// Nothing arrives on `s` for a moment. Fails only if something does arrive, never
/// because the machine is slow.
fn nothing_arrives(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected nothing to arrive, got {other:?}"),
    }
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
}

/// Reads until the connection closes (end of stream or reset); returns what arrived.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the connection stayed open")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return out,
        }
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

#[test]
fn forwards_both_ways_and_counts() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    assert_eq!(proxy.upstream(), echo.addr);
    let mut c = connect(proxy.addr());
    let big = pattern(300_000, 1);
    let mut w = c.try_clone().expect("clone");
    let sent = big.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).expect("write"));
    assert_eq!(read_n(&mut c, big.len()), big);
    writer.join().expect("writer");
    // A counter moves just after its write, so the reader can be a hair ahead of it.
    wait_stats(&proxy, "the counters", |s| {
        s.up.forwarded == 300_000 && s.down.forwarded == 300_000
    });
    let s = proxy.stats();
    assert_eq!((s.accepted, s.live, s.refused, s.severed), (1, 1, 0, 0), "{s:?}");
    assert_eq!((s.up.in_flight, s.down.in_flight, s.up.dropped, s.down.dropped), (0, 0, 0, 0));
    assert_eq!(s.threads, 3, "the accept loop and two per connection: {s:?}");
}

#[test]
fn a_delay_holds_each_chunk_back_and_still_delivers_everything_in_order() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"before");
    // Both ways slow, set on the live connection: every message still arrives, in order.
    proxy.delay(Direction::Up, Duration::from_millis(3));
    proxy.delay(Direction::Down, Duration::from_millis(2));
    let msgs: Vec<Vec<u8>> = (0..30u8).map(|i| pattern(10 + usize::from(i) * 37, i)).collect();
    for m in &msgs {
        c.write_all(m).expect("write");
    }
    let all: Vec<u8> = msgs.concat();
    assert_eq!(read_n(&mut c, all.len()), all);
    // A delay far longer than any test: the chunk waits in the proxy ...
    proxy.delay(Direction::Down, Duration::from_secs(3600));
    c.write_all(b"late").expect("write");
    wait_stats(&proxy, "the echo to wait out the delay", |s| s.down.in_flight == 4);
    nothing_arrives(&mut c);
    // ... and a shorter one applies to it at once.
    proxy.delay(Direction::Down, Duration::ZERO);
    assert_eq!(read_n(&mut c, 4), b"late");
}

#[test]
fn dropped_bytes_vanish_but_the_connection_stays_open() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"hello");
    // Up: the server never hears it.
    proxy.drop_bytes(Direction::Up);
    c.write_all(b"lost").expect("write");
    wait_stats(&proxy, "the proxy to drop 4 bytes up", |s| s.up.dropped == 4);
    proxy.clear(Direction::Up);
    roundtrip(&mut c, b"kept");
    assert_eq!(echo.received(0), b"hellokept");
    // Down: the server hears it, the echo vanishes.
    proxy.drop_bytes(Direction::Down);
    c.write_all(b"unanswered").expect("write");
    wait_stats(&proxy, "the proxy to drop the echo", |s| s.down.dropped == 10);
    assert_eq!(echo.received(0), b"hellokeptunanswered");
    nothing_arrives(&mut c);
    proxy.clear(Direction::Down);
    roundtrip(&mut c, b"again");
    let s = proxy.stats();
    assert_eq!((s.accepted, s.live, s.severed), (1, 1, 0), "one connection throughout: {s:?}");
    assert_eq!(echo.closed(), 0);
}

#[test]
fn a_one_way_cut_stops_one_direction_while_the_other_still_delivers() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"hi");
    wait_stats(&proxy, "the counters", |s| s.down.forwarded == 2);
    // Down cut: the server still hears the client, the client hears nothing.
    proxy.cut(Direction::Down);
    c.write_all(b"ping").expect("write");
    wait_until("the server to hear the client", || echo.received(0) == b"hiping");
    nothing_arrives(&mut c);
    assert_eq!(proxy.stats().down.forwarded, 2, "{:?}", proxy.stats());
    // A cut loses nothing the sender wrote: healed, the echo comes through.
    proxy.heal();
    assert_eq!(read_n(&mut c, 4), b"ping");
    // Up cut: the client still hears the server, the server hears nothing.
    proxy.cut(Direction::Up);
    c.write_all(b"unheard").expect("write");
    echo.push(b"from the server".to_vec());
    assert_eq!(read_n(&mut c, 15), b"from the server");
    nothing_arrives(&mut c);
    assert_eq!(echo.received(0), b"hiping", "the cut direction delivered");
    proxy.clear(Direction::Up);
    assert_eq!(read_n(&mut c, 7), b"unheard");
    assert_eq!(proxy.stats().severed, 0);
}

#[test]
fn a_cut_sender_backs_up_instead_of_the_proxy_buffering() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"x");
    proxy.cut(Direction::Up);
    // Far more than the socket buffers hold: the writer blocks, the proxy holds at most
    // the one chunk it was reading.
    let mut w = c.try_clone().expect("clone");
    let data = pattern(64 << 20, 9);
    let writer = std::thread::spawn(move || w.write_all(&data).is_ok());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(10));
        let s = proxy.stats();
        assert!(s.up.in_flight <= 16 * 1024, "the proxy buffered a cut direction: {s:?}");
        assert_eq!(s.up.forwarded, 1, "{s:?}");
    }
    proxy.sever();
    assert!(!writer.join().expect("writer"), "64 MiB went through a cut");
}

#[test]
fn hold_then_release_delivers_every_held_byte_in_order() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"a");
    proxy.hold(Direction::Up);
    let msgs: Vec<Vec<u8>> = (0..50u8).map(|i| pattern(1000 + usize::from(i) * 513, i)).collect();
    let all = msgs.concat();
    for m in &msgs {
        c.write_all(m).expect("write");
    }
    wait_stats(&proxy, "the proxy to hold every byte", |s| s.up.in_flight == all.len() as u64);
    assert_eq!(echo.received(0), b"a", "held bytes reached the server");
    nothing_arrives(&mut c);
    proxy.release(Direction::Up);
    assert_eq!(read_n(&mut c, all.len()), all);
    // Down too, and a release after both ends closed their sending sides still
    // delivers, then passes the end of stream on.
    proxy.hold(Direction::Down);
    c.write_all(b"held echo").expect("write");
    wait_stats(&proxy, "the echo to be held", |s| s.down.in_flight == 9);
    c.shutdown(Shutdown::Write).expect("half-close");
    wait_until("the server to see the end of stream", || echo.closed() == 1);
    nothing_arrives(&mut c);
    proxy.release(Direction::Down);
    assert_eq!(read_to_close(&mut c), b"held echo");
    wait_stats(&proxy, "the connection to end", |s| s.live == 0 && s.down.in_flight == 0);
    assert_eq!(proxy.stats().severed, 0);
}

#[test]
fn sever_closes_both_ends_now_and_new_connections_work() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    let mut d = connect(proxy.addr());
    roundtrip(&mut c, b"one");
    roundtrip(&mut d, b"two");
    proxy.hold(Direction::Down);
    c.write_all(b"never").expect("write");
    wait_stats(&proxy, "the echo to be held", |s| s.down.in_flight == 5);
    proxy.sever();
    assert_eq!(read_to_close(&mut c), b"", "held bytes are lost with the connection");
    assert_eq!(read_to_close(&mut d), b"");
    wait_until("the server to see both connections close", || echo.closed() == 2);
    let s = proxy.stats();
    assert_eq!(s.severed, 2, "{s:?}");
    wait_stats(&proxy, "the connections to be gone", |s| s.live == 0 && s.down.in_flight == 0);
    proxy.heal();
    let mut e = connect(proxy.addr());
    roundtrip(&mut e, b"three");
}

#[test]
fn refuse_closes_new_connections_and_spares_live_ones() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut live = connect(proxy.addr());
    roundtrip(&mut live, b"live");
    proxy.refuse(true);
    for _ in 0..3 {
        let mut c = connect(proxy.addr());
        let _ = c.write_all(b"anyone?");
        assert_eq!(read_to_close(&mut c), b"");
    }
    assert_eq!(echo.accepted(), 1, "the upstream heard of a refused connection");
    let s = proxy.stats();
    assert_eq!((s.accepted, s.refused), (4, 3), "{s:?}");
    roundtrip(&mut live, b"still here");
    proxy.refuse(false);
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"welcome");
    assert_eq!(echo.accepted(), 2);
}

/// The bytes the next connection through `proxy` receives from the server before the
/// flapping link severs it.
fn life_of_next_connection(echo: &Echo, proxy: &FaultProxy) -> usize {
    let before = echo.accepted();
    let mut c = connect(proxy.addr());
    wait_until("the server to accept", || echo.accepted() > before);
    echo.push(pattern(64 * 1024, 3));
    read_to_close(&mut c).len()
}

#[test]
fn a_flapping_link_severs_each_connection_after_a_seeded_number_of_bytes() {
    let echo = Echo::start();
    let lives = |seed: u64| {
        let proxy = FaultProxy::start(echo.addr).expect("proxy");
        proxy.flapping(1000, 4000, seed);
        let lives: Vec<usize> = (0..4).map(|_| life_of_next_connection(&echo, &proxy)).collect();
        let s = proxy.stats();
        assert_eq!((s.severed, s.accepted), (4, 4), "{s:?}");
        lives
    };
    let first = lives(42);
    assert!(first.iter().all(|l| (1000..=4000).contains(l)), "{first:?}");
    assert_eq!(lives(42), first, "the same seed gives the same lifetimes");
    assert_ne!(lives(43), first, "another seed, other lifetimes");
}

#[test]
fn a_reconnect_through_a_flapping_link_works_and_heal_stops_the_flapping() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"before");
    // Applies to the live connection: it dies within 500 more bytes.
    proxy.flapping(100, 500, 5);
    let mut w = c.try_clone().expect("clone");
    std::thread::spawn(move || while w.write_all(&[7u8; 64]).is_ok() {});
    let got = read_to_close(&mut c);
    assert!(got.len() <= 500, "{}", got.len());
    assert_eq!(proxy.stats().severed, 1);
    // A reconnect gets a fresh lifetime of at least 100 bytes: enough for a request.
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"reconnected");
    proxy.heal();
    let big = pattern(100_000, 5);
    let mut w = c.try_clone().expect("clone");
    let sent = big.clone();
    std::thread::spawn(move || w.write_all(&sent).expect("write"));
    assert_eq!(read_n(&mut c, big.len()), big);
    assert_eq!(proxy.stats().severed, 1);
}

#[test]
fn time_based_flapping_severs_connections() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    proxy.flapping_for(Duration::from_millis(10), Duration::from_millis(40), 1);
    for _ in 0..3 {
        let mut c = connect(proxy.addr());
        assert_eq!(read_to_close(&mut c), b"");
    }
    assert_eq!(proxy.stats().severed, 3);
    proxy.heal();
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"stable");
}

#[test]
fn sever_after_cuts_one_connection_at_the_exact_byte_then_disarms() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    proxy.sever_after(1234);
    assert_eq!(life_of_next_connection(&echo, &proxy), 1234);
    let mut c = connect(proxy.addr());
    wait_until("the server to accept", || echo.accepted() == 2);
    echo.push(pattern(50_000, 3));
    assert_eq!(read_n(&mut c, 50_000), pattern(50_000, 3));
    assert_eq!(proxy.stats().severed, 1);
}

#[test]
fn heal_restores_clean_forwarding_and_delivers_what_was_held() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let mut c = connect(proxy.addr());
    roundtrip(&mut c, b"first");
    proxy.hold(Direction::Up);
    c.write_all(b"held").expect("write");
    wait_stats(&proxy, "the proxy to hold", |s| s.up.in_flight == 4);
    proxy.cut(Direction::Down);
    proxy.delay(Direction::Down, Duration::from_secs(3600));
    proxy.refuse(true);
    proxy.flapping(1, 2, 0);
    proxy.heal();
    assert_eq!(read_n(&mut c, 4), b"held");
    roundtrip(&mut c, b"clean again");
    let mut d = connect(proxy.addr());
    roundtrip(&mut d, &pattern(50_000, 1));
    let s = proxy.stats();
    assert_eq!((s.severed, s.refused), (0, 0), "{s:?}");
}

#[test]
fn an_unreachable_upstream_closes_the_connection() {
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let proxy = FaultProxy::start(gone).expect("proxy");
    let mut c = connect(proxy.addr());
    assert_eq!(read_to_close(&mut c), b"");
    assert_eq!(proxy.stats().accepted, 1);
}

#[test]
fn dropping_the_proxy_closes_its_connections_and_stops_its_threads() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).expect("proxy");
    let handle = proxy.handle();
    let mut c = connect(proxy.addr());
    let mut d = connect(proxy.addr());
    roundtrip(&mut c, b"x");
    proxy.cut(Direction::Down);
    proxy.hold(Direction::Up);
    d.write_all(b"held").expect("write");
    wait_stats(&proxy, "the proxy to hold", |s| s.up.in_flight == 4);
    assert_eq!(handle.stats().threads, 5);
    drop(proxy);
    let s = handle.stats();
    assert_eq!((s.threads, s.live), (0, 0), "{s:?}");
    assert_eq!(read_to_close(&mut c), b"");
    assert_eq!(read_to_close(&mut d), b"");
    wait_until("the server to see both connections close", || echo.closed() == 2);
    // Nobody listens any more; the handle still answers but controls nothing.
    assert!(TcpStream::connect(handle.addr()).is_err(), "the proxy still listens");
    handle.heal();
    handle.sever();
}
