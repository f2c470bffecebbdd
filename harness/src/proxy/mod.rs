//! A fault-injecting TCP proxy to put between nodes in tests.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1` (a port the OS picks, [`ProxyHandle::addr`])
//! and, for every connection it accepts, opens one to the upstream address and forwards
//! both directions: [`Direction::Up`] (client → upstream) and [`Direction::Down`]
//! (upstream → client). Faults are set at run time through a cloneable [`ProxyHandle`]
//! (a [`FaultProxy`] derefs to one), per direction where that makes sense, and apply at
//! once to live connections as well as to new ones:
//!
//! | fault | what the two ends see |
//! |---|---|
//! | [`delay`](ProxyHandle::delay) | each chunk (up to 16 KiB) waits before it is written, and the next is read only after, so a delay is also a slow link |
//! | [`drop_bytes`](ProxyHandle::drop_bytes) | a black hole: the sender's writes succeed, the bytes vanish, the connection stays open (the receiver's stream has a gap) |
//! | [`cut`](ProxyHandle::cut) | a one-way partition: that direction delivers nothing and the proxy stops reading it (it buffers nothing, so the sender backs up as behind a real partition); the other direction keeps working |
//! | [`hold`](ProxyHandle::hold) / [`release`](ProxyHandle::release) | the proxy keeps reading and buffers without limit, in order; a release delivers every held byte |
//! | [`sever`](ProxyHandle::sever) | every live connection is closed, both ends, now; what was not delivered is lost |
//! | [`sever_after`](ProxyHandle::sever_after) | the first connection to forward that many more bytes is severed at exactly that byte, once |
//! | [`refuse`](ProxyHandle::refuse) | new connections are accepted and closed at once |
//! | [`flapping`](ProxyHandle::flapping) / [`flapping_for`](ProxyHandle::flapping_for) | each connection is severed after a pseudo-random number of bytes (or milliseconds) drawn from a seed |
//! | [`heal`](ProxyHandle::heal) | clean forwarding again; held and stalled bytes are delivered |
//!
//! Counters ([`ProxyHandle::stats`]) say how many connections were accepted, refused and
//! severed and how many bytes each direction forwarded, dropped or still has in flight,
//! so a test can wait for a fault to have taken effect instead of sleeping.
//!
//! The proxy runs on plain threads (an accept loop and two per connection). Dropping the
//! [`FaultProxy`] closes every connection and joins them all; handles that outlive it
//! keep answering but control nothing.
//!
//! ```no_run
//! use strata_harness::proxy::{Direction, FaultProxy};
//! # fn main() -> std::io::Result<()> {
//! # let server: std::net::SocketAddr = "127.0.0.1:7000".parse().expect("addr");
//! let proxy = FaultProxy::start(server)?;
//! // ... point the client at proxy.addr() ...
//! proxy.cut(Direction::Up); // the server stops hearing the client
//! proxy.heal();
//! # Ok(())
//! # }
//! ```

mod pump;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// One direction of the traffic through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → upstream: what the side that connected to the proxy sends.
    Up,
    /// Upstream → client: what the server behind the proxy sends back.
    Down,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }
}

/// Counters of one direction, see [`ProxyStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Bytes written to the receiving side.
    pub forwarded: u64,
    /// Bytes read and discarded by [`ProxyHandle::drop_bytes`].
    pub dropped: u64,
    /// Bytes read and not yet written: held, waiting out a delay, or the chunk a cut
    /// caught in the middle.
    pub in_flight: u64,
}

/// A snapshot of the proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted, refused ones included.
    pub accepted: u64,
    /// Connections closed at once by [`ProxyHandle::refuse`].
    pub refused: u64,
    /// Connections closed by a fault: [`ProxyHandle::sever`], [`ProxyHandle::sever_after`]
    /// or flapping.
    pub severed: u64,
    /// Connections whose forwarding threads are still running.
    pub live: u64,
    /// The proxy's threads still running (the accept loop, two per connection): 0 once
    /// the [`FaultProxy`] is dropped.
    pub threads: u64,
    /// Client → upstream.
    pub up: DirStats,
    /// Upstream → client.
    pub down: DirStats,
}

impl ProxyStats {
    /// The counters of `dir`.
    pub fn dir(&self, dir: Direction) -> DirStats {
        match dir {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }
}

/// How long a blocked thread waits before looking at the faults again when nothing
/// woke it (deadlines of time-based flapping, reads).
const TICK: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a direction does with the bytes it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Action {
    #[default]
    Forward,
    Drop,
    Cut,
    Hold,
}

#[derive(Clone, Copy, Debug, Default)]
struct DirFaults {
    action: Action,
    delay: Duration,
}

/// A connection's lifetime under flapping.
#[derive(Clone, Copy, Debug)]
enum Lifetime {
    Bytes,
    Millis,
}

#[derive(Clone, Copy, Debug)]
struct Flap {
    min: u64,
    max: u64,
    seed: u64,
    unit: Lifetime,
    /// Index of the next connection to be given a lifetime.
    next: u64,
}

impl Flap {
    fn arm(&mut self, conn: &mut Conn, now: Instant) {
        let life = pick(self.seed, self.next, self.min, self.max);
        self.next += 1;
        match self.unit {
            Lifetime::Bytes => conn.bytes_left = Some(life),
            Lifetime::Millis => conn.deadline = now.checked_add(Duration::from_millis(life)),
        }
    }
}

/// The `n`-th value in `[min, max]` of the sequence of `seed` (splitmix64).
fn pick(seed: u64, n: u64, min: u64, max: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let x = mix(seed ^ mix(n));
    match (max - min).checked_add(1) {
        Some(span) => min + x % span,
        None => x,
    }
}

/// A live connection as the control side sees it.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    closed: bool,
    /// Forwarding threads still running.
    pumps: u8,
    /// Flapping by bytes: what this connection may still forward (both directions).
    bytes_left: Option<u64>,
    /// Flapping by time: when it is severed.
    deadline: Option<Instant>,
    /// [`ProxyHandle::sever_after`]: what it may still forward before the one-shot fires.
    once_left: Option<u64>,
}

impl Conn {
    /// Shuts both sockets down; the forwarding threads notice and end.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }
}

struct State {
    dirs: [DirFaults; 2],
    refuse: bool,
    flap: Option<Flap>,
    sever_after: Option<u64>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    stopped: bool,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct DirCounters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: Mutex<State>,
    /// Notified on every change of the faults.
    changed: Condvar,
    accepted: AtomicU64,
    refused: AtomicU64,
    severed: AtomicU64,
    threads: AtomicU64,
    dirs: [DirCounters; 2],
}

impl Shared {
    fn dir(&self, dir: Direction) -> &DirCounters {
        &self.dirs[dir.index()]
    }

    /// Closes connection `id` as a fault (counted in [`ProxyStats::severed`]).
    fn sever_conn(&self, state: &mut State, id: u64) {
        if let Some(c) = state.conns.get_mut(&id)
            && !c.closed
        {
            // Counted first, so that whoever sees the connection close sees the count.
            self.severed.fetch_add(1, Ordering::AcqRel);
            c.close();
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.state.lock();
        if st.stopped {
            return;
        }
        f(&mut st);
        drop(st);
        self.changed.notify_all();
    }

    fn set_action(&self, dir: Direction, action: Action) {
        self.update(|st| st.dirs[dir.index()].action = action);
    }
}

/// Counts a running proxy thread for [`ProxyStats::threads`] until dropped.
struct ThreadGuard(Arc<Shared>);

impl ThreadGuard {
    fn new(shared: &Arc<Shared>) -> ThreadGuard {
        shared.threads.fetch_add(1, Ordering::AcqRel);
        ThreadGuard(Arc::clone(shared))
    }
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        self.0.threads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A fault-injecting TCP proxy in front of an upstream address (see the [module
/// docs](self)). Dropping it closes every connection and stops its threads.
pub struct FaultProxy {
    handle: ProxyHandle,
    accept: Option<JoinHandle<()>>,
}

/// Controls a [`FaultProxy`] from anywhere: clone it into the threads of a test.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1`, on a port the OS picks, forwarding every
    /// connection to `upstream` with no fault. A connection the upstream refuses is
    /// closed at once.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            upstream,
            state: Mutex::new(State {
                dirs: [DirFaults::default(); 2],
                refuse: false,
                flap: None,
                sever_after: None,
                conns: HashMap::new(),
                next_id: 0,
                stopped: false,
                threads: Vec::new(),
            }),
            changed: Condvar::new(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            severed: AtomicU64::new(0),
            threads: AtomicU64::new(0),
            dirs: Default::default(),
        });
        let guard = ThreadGuard::new(&shared);
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || pump::accept_loop(guard, listener))?;
        Ok(FaultProxy { handle: ProxyHandle { shared }, accept: Some(accept) })
    }

    /// A handle to control the proxy from elsewhere; it does not keep the proxy alive.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }
}

impl Deref for FaultProxy {
    type Target = ProxyHandle;

    fn deref(&self) -> &ProxyHandle {
        &self.handle
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        {
            let mut st = shared.state.lock();
            st.stopped = true;
            for c in st.conns.values_mut() {
                c.close();
            }
        }
        shared.changed.notify_all();
        // Wakes the accept loop, which sees `stopped` and returns. Should the connect
        // fail, the loop stays parked in accept() rather than this drop hanging.
        let woke = TcpStream::connect_timeout(&shared.addr, CONNECT_TIMEOUT).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
        // No thread is started after `stopped`; every one left ends within a tick.
        let threads = std::mem::take(&mut shared.state.lock().threads);
        for t in threads {
            let _ = t.join();
        }
    }
}

impl ProxyHandle {
    /// Where clients connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Every chunk read in `dir` waits `delay` before it is written, and the next chunk
    /// is read only after (a slow link: at most 16 KiB per `delay`). `Duration::ZERO`
    /// removes the delay; a changed delay applies to the chunk already waiting.
    pub fn delay(&self, dir: Direction, delay: Duration) {
        self.shared.update(|st| st.dirs[dir.index()].delay = delay);
    }

    /// Reads and discards everything in `dir`, including what was held or delayed: the
    /// sender's writes succeed, nothing arrives, the connection stays open.
    pub fn drop_bytes(&self, dir: Direction) {
        self.shared.set_action(dir, Action::Drop);
    }

    /// Cuts `dir` one way: it delivers nothing and the proxy stops reading it, so the
    /// proxy buffers nothing (beyond a chunk it was in the middle of) and the sender
    /// backs up as behind a real partition. The other direction keeps working. After
    /// [`heal`](Self::heal) or [`clear`](Self::clear), what the sockets still hold is
    /// delivered, like after a partition heals; [`sever`](Self::sever) to lose it.
    pub fn cut(&self, dir: Direction) {
        self.shared.set_action(dir, Action::Cut);
    }

    /// Holds `dir`: the proxy keeps reading and buffers everything, in order, until
    /// [`release`](Self::release).
    pub fn hold(&self, dir: Direction) {
        self.shared.set_action(dir, Action::Hold);
    }

    /// Ends a [`hold`](Self::hold) of `dir`: every held byte is delivered, in order (after
    /// the direction's delay, if any), then forwarding goes on. Does nothing when `dir` is
    /// not held.
    pub fn release(&self, dir: Direction) {
        self.shared.update(|st| {
            let d = &mut st.dirs[dir.index()];
            if d.action == Action::Hold {
                d.action = Action::Forward;
            }
        });
    }

    /// Clears every fault of `dir` (drop, cut, hold, delay): it forwards cleanly again.
    pub fn clear(&self, dir: Direction) {
        self.shared.update(|st| st.dirs[dir.index()] = DirFaults::default());
    }

    /// Closes every live connection, both ends, now. What the proxy had not delivered
    /// is lost. New connections are still accepted (see [`refuse`](Self::refuse)).
    pub fn sever(&self) {
        let shared = &self.shared;
        shared.update(|st| {
            let ids: Vec<u64> = st.conns.keys().copied().collect();
            for id in ids {
                shared.sever_conn(st, id);
            }
        });
    }

    /// Arms a one-shot fault: the first connection (live or new) to forward `bytes` more
    /// bytes, both directions counted, is severed right after its `bytes`-th byte, then
    /// the fault is disarmed.
    pub fn sever_after(&self, bytes: u64) {
        self.shared.update(|st| {
            st.sever_after = Some(bytes);
            for c in st.conns.values_mut() {
                c.once_left = Some(bytes);
            }
        });
    }

    /// While `refuse` is true, new connections are accepted and closed at once (the
    /// upstream never hears of them). Live connections are not affected.
    pub fn refuse(&self, refuse: bool) {
        self.shared.update(|st| st.refuse = refuse);
    }

    /// A flapping link: every connection, the live ones included, is severed after
    /// forwarding a number of bytes (both directions counted) in `[min, max]`. The
    /// numbers are a sequence fixed by `seed`: the n-th connection since this call gets
    /// the n-th, so a run is reproducible.
    pub fn flapping(&self, min: u64, max: u64, seed: u64) {
        self.start_flapping(min, max, seed, Lifetime::Bytes);
    }

    /// Like [`flapping`](Self::flapping) with lifetimes in time: every connection is
    /// severed a number of milliseconds in `[min, max]` after it was accepted (or after
    /// this call, for the live ones), drawn from `seed`.
    pub fn flapping_for(&self, min: Duration, max: Duration, seed: u64) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.start_flapping(ms(min), ms(max), seed, Lifetime::Millis);
    }

    fn start_flapping(&self, min: u64, max: u64, seed: u64, unit: Lifetime) {
        let (min, max) = (min.min(max), min.max(max));
        self.shared.update(|st| {
            let mut flap = Flap { min, max, seed, unit, next: 0 };
            let now = Instant::now();
            let mut ids: Vec<u64> = st.conns.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                if let Some(c) = st.conns.get_mut(&id) {
                    c.bytes_left = None;
                    c.deadline = None;
                    flap.arm(c, now);
                }
            }
            st.flap = Some(flap);
        });
    }

    /// Back to clean forwarding: no delay, drop, cut, hold, refusal, flapping or armed
    /// [`sever_after`](Self::sever_after). Held bytes are delivered, cut directions
    /// resume.
    pub fn heal(&self) {
        self.shared.update(|st| {
            st.dirs = [DirFaults::default(); 2];
            st.refuse = false;
            st.flap = None;
            st.sever_after = None;
            for c in st.conns.values_mut() {
                c.bytes_left = None;
                c.deadline = None;
                c.once_left = None;
            }
        });
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        let dir = |d: Direction| {
            let c = s.dir(d);
            DirStats {
                forwarded: c.forwarded.load(Ordering::Acquire),
                dropped: c.dropped.load(Ordering::Acquire),
                in_flight: c.in_flight.load(Ordering::Acquire),
            }
        };
        ProxyStats {
            accepted: s.accepted.load(Ordering::Acquire),
            refused: s.refused.load(Ordering::Acquire),
            severed: s.severed.load(Ordering::Acquire),
            live: s.state.lock().conns.len() as u64,
            threads: s.threads.load(Ordering::Acquire),
            up: dir(Direction::Up),
            down: dir(Direction::Down),
        }
    }
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FaultProxy").field(&self.handle).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn lifetimes_stay_in_range_and_follow_the_seed() {
        for n in 0..1000 {
            let v = pick(7, n, 100, 200);
            assert!((100..=200).contains(&v), "{v}");
            assert_eq!(v, pick(7, n, 100, 200));
        }
        assert_eq!(pick(3, 0, 5, 5), 5);
        let _ = pick(3, 0, 0, u64::MAX);
        let a: Vec<u64> = (0..20).map(|n| pick(1, n, 0, 1 << 40)).collect();
        let b: Vec<u64> = (0..20).map(|n| pick(2, n, 0, 1 << 40)).collect();
        assert_ne!(a, b, "different seeds give different sequences");
    }
}
