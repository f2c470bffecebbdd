//! The proxy's threads: the accept loop and one forwarding thread per direction of
//! every connection.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parking_lot::MutexGuard;

use super::{Action, CONNECT_TIMEOUT, Conn, Direction, Shared, State, TICK, ThreadGuard};

/// Size of the chunks a direction reads and writes.
const CHUNK: usize = 16 * 1024;

pub(super) fn accept_loop(guard: ThreadGuard, listener: TcpListener) {
    let shared = Arc::clone(&guard.0);
    for incoming in listener.incoming() {
        if shared.state.lock().stopped {
            return;
        }
        let client = match incoming {
            Ok(c) => c,
            Err(_) => {
                // Out of descriptors or an aborted handshake: do not spin on it.
                std::thread::sleep(TICK);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        if shared.state.lock().refuse {
            shared.refused.fetch_add(1, Ordering::AcqRel);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        // On failure the streams are dropped, which closes the connection.
        let _ = start_conn(&shared, client, upstream);
    }
}

fn start_conn(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    for s in [&client, &upstream] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TICK))?;
    }
    let up = (client.try_clone()?, upstream.try_clone()?);
    let down = (upstream.try_clone()?, client.try_clone()?);
    let mut st = shared.state.lock();
    if st.stopped {
        return Ok(());
    }
    let id = st.next_id;
    st.next_id += 1;
    let mut conn = Conn {
        client,
        upstream,
        closed: false,
        pumps: 0,
        bytes_left: None,
        deadline: None,
        once_left: st.sever_after,
    };
    if let Some(flap) = st.flap.as_mut() {
        flap.arm(&mut conn, Instant::now());
    }
    st.conns.insert(id, conn);
    st.threads.retain(|t| !t.is_finished());
    let mut pumps = 0;
    for (dir, (src, dst)) in [(Direction::Up, up), (Direction::Down, down)] {
        let pump = Pump { guard: ThreadGuard::new(shared), id, dir, src, dst };
        let name = format!("fault-proxy-{dir:?}-{id}").to_lowercase();
        match std::thread::Builder::new().name(name).spawn(move || pump.run()) {
            Ok(t) => {
                st.threads.push(t);
                pumps += 1;
            }
            Err(_) => {
                shared.sever_conn(&mut st, id);
            }
        }
    }
    match st.conns.get_mut(&id) {
        Some(c) if pumps > 0 => c.pumps = pumps,
        _ => {
            st.conns.remove(&id);
        }
    }
    Ok(())
}

/// One direction of one connection: reads `src`, writes `dst`, obeying the faults.
struct Pump {
    guard: ThreadGuard,
    id: u64,
    dir: Direction,
    src: TcpStream,
    dst: TcpStream,
}

/// What a pump does next, decided under the lock and done outside it.
enum Step {
    /// Read a chunk from the source.
    Read,
    /// Write the first `len` bytes of the oldest pending chunk, then sever the
    /// connection if `sever`.
    Write { len: usize, sever: bool },
    /// The source ended and everything was delivered: half-close the destination.
    Finish,
    /// The connection is closed or the proxy stopped.
    Exit,
}

impl Pump {
    fn shared(&self) -> &Shared {
        &self.guard.0
    }

    fn run(mut self) {
        // Chunks read and not yet written, with the time each was read.
        let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        let mut eof = false;
        let mut buf = vec![0u8; CHUNK];
        let mut finished = false;
        loop {
            let step = {
                let mut st = self.shared().state.lock();
                self.decide(&mut st, &mut pending, eof)
            };
            match step {
                Step::Exit => break,
                Step::Finish => {
                    let _ = self.dst.shutdown(Shutdown::Write);
                    finished = true;
                    break;
                }
                Step::Read => match self.src.read(&mut buf) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        pending.push_back((Instant::now(), buf[..n].to_vec()));
                        self.counters().in_flight.fetch_add(n as u64, Ordering::AcqRel);
                    }
                    Err(e) if is_transient(&e) => {}
                    Err(_) => break,
                },
                Step::Write { len, sever } => {
                    let Some((_, chunk)) = pending.pop_front() else { continue };
                    self.counters().in_flight.fetch_sub(chunk.len() as u64, Ordering::AcqRel);
                    if self.dst.write_all(&chunk[..len]).is_err() {
                        break;
                    }
                    self.counters().forwarded.fetch_add(len as u64, Ordering::AcqRel);
                    if sever {
                        let shared = Arc::clone(&self.guard.0);
                        let mut st = shared.state.lock();
                        shared.sever_conn(&mut st, self.id);
                        break;
                    }
                }
            }
        }
        let lost: u64 = pending.iter().map(|(_, c)| c.len() as u64).sum();
        self.counters().in_flight.fetch_sub(lost, Ordering::AcqRel);
        let mut st = self.shared().state.lock();
        if let Some(c) = st.conns.get_mut(&self.id) {
            if !finished {
                // An error, a sever or the proxy's end: the whole connection goes.
                c.close();
            }
            c.pumps = c.pumps.saturating_sub(1);
            if c.pumps == 0 {
                st.conns.remove(&self.id);
            }
        }
    }

    fn counters(&self) -> &super::DirCounters {
        self.shared().dir(self.dir)
    }

    /// Chooses the next step; waits (on the lock's condition variable) when there is
    /// nothing to do until the faults change.
    fn decide(
        &self,
        st: &mut MutexGuard<'_, State>,
        pending: &mut VecDeque<(Instant, Vec<u8>)>,
        eof: bool,
    ) -> Step {
        let shared = self.shared();
        loop {
            let now = Instant::now();
            let deadline = match st.conns.get(&self.id) {
                Some(c) if !c.closed && !st.stopped => c.deadline,
                _ => return Step::Exit,
            };
            if deadline.is_some_and(|d| now >= d) {
                shared.sever_conn(st, self.id);
                return Step::Exit;
            }
            // The latest a wait may last: a tick, or until the flapping deadline.
            let mut wake = now + TICK;
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let faults = st.dirs[self.dir.index()];
            match faults.action {
                Action::Cut => {
                    shared.changed.wait_until(st, wake);
                    continue;
                }
                Action::Drop => {
                    let dropped: u64 = pending.drain(..).map(|(_, c)| c.len() as u64).sum();
                    let c = self.counters();
                    c.in_flight.fetch_sub(dropped, Ordering::AcqRel);
                    c.dropped.fetch_add(dropped, Ordering::AcqRel);
                }
                Action::Hold => {}
                Action::Forward => {
                    if let Some((read_at, chunk)) = pending.front() {
                        let due = *read_at + faults.delay;
                        if now < due {
                            shared.changed.wait_until(st, wake.min(due));
                            continue;
                        }
                        let (len, sever) = self.reserve(st, chunk.len());
                        return Step::Write { len, sever };
                    }
                }
            }
            if !eof {
                return Step::Read;
            }
            if pending.is_empty() && faults.action != Action::Hold {
                return Step::Finish;
            }
            shared.changed.wait_until(st, wake);
        }
    }

    /// Takes up to `len` bytes from the connection's byte budgets (flapping,
    /// [`sever_after`](super::ProxyHandle::sever_after)); says how many may be written
    /// and whether the connection is to be severed after them.
    fn reserve(&self, st: &mut State, len: usize) -> (usize, bool) {
        let Some(c) = st.conns.get_mut(&self.id) else { return (0, true) };
        let mut allowed = len as u64;
        for left in [c.bytes_left, c.once_left].into_iter().flatten() {
            allowed = allowed.min(left);
        }
        let mut sever = false;
        if let Some(left) = c.bytes_left.as_mut() {
            *left -= allowed;
            sever |= *left == 0;
        }
        let mut fired = false;
        if let Some(left) = c.once_left.as_mut() {
            *left -= allowed;
            fired = *left == 0;
        }
        if fired {
            st.sever_after = None;
            for c in st.conns.values_mut() {
                c.once_left = None;
            }
        }
        // `allowed` is at most `len`, a usize.
        (usize::try_from(allowed).unwrap_or(len), sever || fired)
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}
