//! The server side: the listener, per-connection send queues and publishers.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use strata_core::{
    Admission, Epoch, Error, FrameHeader, HistoryCheck, PublishOrder, PublisherOptions, Result,
    SeqNo, SlowSubscriberPolicy, StreamId, TopicPublisher,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::format::{self, Hello, HelloAck};
use crate::{HistoryCheckFn, HistorySourceFn, LoggedFrame, NAME, Rt, TcpConfig};

/// Everything a server knows: its topics.
pub(crate) struct ServerState {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    /// Per topic: what its log's epoch history says about a resuming client's position.
    histories: Mutex<HashMap<String, HistoryCheckFn>>,
    /// Per topic: how to read frames the history ring no longer holds from its log.
    sources: Mutex<HashMap<String, HistorySourceFn>>,
    local: SocketAddr,
    next_conn: AtomicU64,
}

impl ServerState {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn set_history_check(&self, topic: &str, check: HistoryCheckFn) {
        self.histories.lock().insert(topic.to_owned(), check);
    }

    pub(crate) fn set_history_source(&self, topic: &str, source: HistorySourceFn) {
        self.sources.lock().insert(topic.to_owned(), source);
    }

    pub(crate) fn publisher(
        &self,
        topic: &str,
        options: &PublisherOptions,
    ) -> Result<TcpPublisher> {
        if topic.is_empty() || topic.len() > format::MAX_TOPIC_LEN {
            return Err(Error::InvalidArgument(format!(
                "topic name must be 1..={} bytes, got {}",
                format::MAX_TOPIC_LEN,
                topic.len()
            )));
        }
        if options.max_payload > (u32::MAX as usize) - 1 - format::FRAME_HEADER_LEN {
            return Err(Error::InvalidArgument(format!(
                "max_payload {} does not fit a u32 frame length",
                options.max_payload
            )));
        }
        let t = self
            .topics
            .lock()
            .entry(topic.to_owned())
            .or_insert_with(|| Arc::new(Topic::new(topic)))
            .clone();
        {
            let mut inner = t.inner.lock();
            inner.history_cap = options.history;
            while inner.history.len() > inner.history_cap {
                inner.history.pop_front();
            }
        }
        Ok(TcpPublisher {
            topic: t,
            options: options.clone(),
            order: PublishOrder::default(),
            epoch: 0,
        })
    }
}

/// One topic: its history ring and the connections subscribed to it.
pub(crate) struct Topic {
    name: String,
    inner: Mutex<TopicInner>,
}

struct TopicInner {
    history_cap: usize,
    history: VecDeque<(FrameHeader, Bytes)>,
    /// Copy-on-write so a publish takes a snapshot without allocating.
    conns: Arc<Vec<Arc<Conn>>>,
    last: Option<FrameHeader>,
}

impl Topic {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            inner: Mutex::new(TopicInner {
                history_cap: 0,
                history: VecDeque::new(),
                conns: Arc::new(Vec::new()),
                last: None,
            }),
        }
    }

    /// Queues the hello answer, the replay the hello asked for, and adds `conn` to the
    /// live set — atomically with respect to publishes.
    ///
    /// A resume below what the history holds gets a `GAP` for the frames really gone
    /// (up to the first frame held), then the history. A resume beyond the live edge
    /// (after the next sequence the topic expects) is refused with the reason: serving
    /// it would send frames below the position asked for, or wait silently. The edge is
    /// known once the topic published a frame on this server; before that the resume
    /// is accepted as asked.
    ///
    /// `logged` are frames read from the topic's log (see [`HistorySourceFn`]) for the
    /// part of the resume below the history: sent before the history, as far as they
    /// continue without a hole; a gap covers what they do not.
    fn register(
        &self,
        conn: &Arc<Conn>,
        hello: &Hello,
        logged: &[LoggedFrame],
    ) -> std::result::Result<(), String> {
        let mut t = self.inner.lock();
        let live_next = t.last.map(|h| h.next_seq());
        if let (Some(from), Some(next)) = (hello.resume_from, live_next)
            && from > next
        {
            return Err(format!(
                "resume_from {from} is beyond the live edge of topic {:?}: its next frame starts at {next}, so a resume may start at most there",
                self.name
            ));
        }
        let mut q = conn.q.lock();
        let ack = HelloAck { status: format::ACK_OK, live_next, reason: String::new() };
        q.items.push_back(Item::Control(format::encode_hello_ack(&ack)));
        let start = match hello.resume_from {
            None => 0,
            Some(from) => {
                // The first frame holding `from` or later (a frame spanning `from` is
                // replayed whole).
                let start = t.history.iter().position(|(h, _)| h.next_seq() > from);
                let first = start.and_then(|i| t.history.get(i));
                let (stream, first_seq) = match (first, t.last) {
                    (Some((h, _)), _) => (h.stream, h.seq),
                    (None, Some(last)) => (last.stream, last.next_seq()),
                    (None, None) => (StreamId(0), from),
                };
                let mut at = from;
                for f in logged {
                    let header = FrameHeader { stream, seq: f.seq, span: f.span, epoch: f.epoch };
                    // Up to where the history starts, without a hole or an overlap.
                    if header.next_seq() > first_seq || f.seq > at {
                        break;
                    }
                    if header.next_seq() <= at {
                        continue;
                    }
                    at = header.next_seq();
                    if f.payload.len() > conn.max_payload {
                        tracing::warn!(topic = %self.name, peer = %conn.peer, seq = f.seq,
                            max_payload = conn.max_payload,
                            "logged frame larger than the subscriber's max_payload; not replayed");
                        continue;
                    }
                    let frame = format::encode_frame_with(&header, f.payload.len(), |buf| {
                        buf.copy_from_slice(&f.payload)
                    });
                    q.items.push_back(Item::Frame(header, frame));
                }
                if first_seq > at {
                    q.items.push_back(Item::Control(format::encode_gap(stream, at, first_seq)));
                }
                start.unwrap_or(t.history.len())
            }
        };
        // Frames too large for the subscriber are reported in one line, not one per
        // frame (a history of thousands of frames would flood the log).
        let mut skipped: Option<(u64, u64, usize)> = None;
        for (h, frame) in t.history.iter().skip(start) {
            if frame.len() - format::LEN_PREFIX - 1 - format::FRAME_HEADER_LEN > conn.max_payload {
                let s = skipped.get_or_insert((h.seq, h.seq, 0));
                s.1 = h.seq;
                s.2 += 1;
                continue;
            }
            q.items.push_back(Item::Frame(*h, frame.clone()));
        }
        drop(q);
        if let Some((first, last, count)) = skipped {
            tracing::warn!(topic = %self.name, peer = %conn.peer, first, last, count,
                max_payload = conn.max_payload,
                "history frames larger than the subscriber's max_payload; not replayed");
        }
        let mut conns = (*t.conns).clone();
        conns.push(conn.clone());
        t.conns = Arc::new(conns);
        Ok(())
    }

    /// Where the history starts for a client resuming at `from`, when it starts after
    /// `from` (the client would get a gap up to there) and the topic published before.
    fn missing_below(&self, from: u64) -> Option<u64> {
        let t = self.inner.lock();
        let last = t.last?;
        let first = t.history.iter().find(|(h, _)| h.next_seq() > from).map(|(h, _)| h.seq);
        let first = first.unwrap_or(last.next_seq());
        (first > from).then_some(first)
    }

    fn unregister(&self, conn: &Arc<Conn>) {
        let mut t = self.inner.lock();
        if t.conns.iter().any(|c| Arc::ptr_eq(c, conn)) {
            let conns: Vec<_> = t.conns.iter().filter(|c| !Arc::ptr_eq(c, conn)).cloned().collect();
            t.conns = Arc::new(conns);
        }
    }
}

enum Item {
    Control(Bytes),
    Frame(FrameHeader, Bytes),
}

impl Item {
    fn bytes(&self) -> &Bytes {
        match self {
            Item::Control(b) | Item::Frame(_, b) => b,
        }
    }
}

struct Closing {
    reason: String,
    /// Tell the client with a `GOODBYE` (it then does not reconnect).
    goodbye: bool,
}

struct ConnQueue {
    items: VecDeque<Item>,
    frames: usize,
    dropped: u64,
    closing: Option<Closing>,
    /// A frame already left the queue (sent or dropped): the client knows the stream.
    frame_seen: bool,
    /// Frames were dropped before the client saw any frame: `(stream, first dropped
    /// seq)`, reported as an explicit `GAP` before the first frame written.
    lead_gap: Option<(StreamId, u64)>,
    /// The writer task holds a batch not yet flushed: publishers must queue.
    writer_busy: bool,
}

/// One subscriber connection's send queue.
pub(crate) struct Conn {
    id: u64,
    peer: SocketAddr,
    max_payload: usize,
    q: Mutex<ConnQueue>,
    room: Condvar,
    room_async: Notify,
    wake: Notify,
    kill: Notify,
    /// A second handle on the (non-blocking) socket for the publisher's direct writes.
    direct: Option<std::net::TcpStream>,
}

/// A frame on its way to the connections of a topic.
#[derive(Clone, Copy)]
struct Outgoing<'a> {
    topic: &'a str,
    header: FrameHeader,
    frame: &'a Bytes,
    len: usize,
    policy: SlowSubscriberPolicy,
    cap: usize,
}

enum Push {
    /// Queued (or refused/dropped under the policy): the writer task must look.
    Done,
    /// Written straight to the socket: nothing for the writer task to do.
    Sent,
    /// Full under the block policy: wait for room.
    Full,
}

impl Conn {
    fn push_locked(&self, q: &mut ConnQueue, out: &Outgoing<'_>) -> Push {
        let Outgoing { topic, header, frame, len: payload_len, policy, cap } = *out;
        if q.closing.is_some() {
            return Push::Done;
        }
        if payload_len > self.max_payload {
            let reason = format!(
                "frame payload of {payload_len} bytes exceeds the subscriber's max_payload {}",
                self.max_payload
            );
            self.close_locked(q, topic, reason, true);
            return Push::Done;
        }
        let cap = cap.max(1);
        if q.frames >= cap {
            match policy {
                SlowSubscriberPolicy::Block => return Push::Full,
                SlowSubscriberPolicy::Disconnect => {
                    let reason = format!(
                        "slow subscriber: its send queue of {cap} frames is full (policy disconnect)"
                    );
                    self.close_locked(q, topic, reason, true);
                    return Push::Done;
                }
                // DropOldest, and any policy added later, lose the oldest queued frame;
                // the subscriber sees the hole in the sequence numbers.
                _ => {
                    if let Some(i) = q.items.iter().position(|it| matches!(it, Item::Frame(..))) {
                        if let Some(Item::Frame(h, _)) = q.items.remove(i)
                            && !q.frame_seen
                        {
                            q.lead_gap = Some((h.stream, h.seq));
                        }
                        q.frame_seen = true;
                        q.frames -= 1;
                        q.dropped += 1;
                    }
                }
            }
        }
        // Fast path: nothing queued and the writer task idle, so writing from this
        // thread keeps the order and saves a thread hop (the writer task's wake-up).
        if q.items.is_empty()
            && !q.writer_busy
            && q.lead_gap.is_none()
            && let Some(direct) = &self.direct
        {
            match (&*direct).write(frame) {
                Ok(n) if n == frame.len() => {
                    q.frame_seen = true;
                    return Push::Sent;
                }
                Ok(n) => {
                    // The rest must follow before anything else and cannot be dropped.
                    q.frame_seen = true;
                    q.items.push_back(Item::Control(frame.slice(n..)));
                    return Push::Done;
                }
                // Full socket (WouldBlock) or an error: queue, the writer task takes
                // over (and reports a broken connection).
                Err(_) => {}
            }
        }
        q.items.push_back(Item::Frame(header, frame.clone()));
        q.frames += 1;
        Push::Done
    }

    fn close_locked(&self, q: &mut ConnQueue, topic: &str, reason: String, goodbye: bool) {
        if q.closing.is_some() {
            return;
        }
        tracing::warn!(topic, peer = %self.peer, conn = self.id, "closing subscriber connection: {reason}");
        q.items.clear();
        q.frames = 0;
        q.closing = Some(Closing { reason, goodbye });
        self.kill.notify_one();
        self.wake.notify_one();
        self.room.notify_all();
        self.room_async.notify_waiters();
    }

    fn push_blocking(&self, out: &Outgoing<'_>) {
        let mut q = self.q.lock();
        loop {
            match self.push_locked(&mut q, out) {
                Push::Full => self.room.wait(&mut q),
                Push::Sent => return,
                Push::Done => break,
            }
        }
        drop(q);
        self.wake.notify_one();
    }

    async fn push_async(&self, out: &Outgoing<'_>) {
        loop {
            let mut notified = pin!(self.room_async.notified());
            notified.as_mut().enable();
            let outcome = {
                let mut q = self.q.lock();
                self.push_locked(&mut q, out)
            };
            match outcome {
                Push::Done => break,
                Push::Sent => return,
                Push::Full => notified.await,
            }
        }
        self.wake.notify_one();
    }
}

/// Binds the listener and starts accepting.
pub(crate) fn start(rt: &Rt, addr: SocketAddr, config: TcpConfig) -> Result<Arc<ServerState>> {
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::transport(NAME, "", format!("cannot listen on {addr}: {e}")))?;
    let local = std_listener.local_addr().map_err(|e| {
        Error::transport(NAME, "", format!("cannot read the listening address: {e}"))
    })?;
    std_listener.set_nonblocking(true).map_err(|e| {
        Error::transport(NAME, "", format!("cannot make the listener non-blocking: {e}"))
    })?;
    let listener = {
        let _guard = rt.handle().enter();
        TcpListener::from_std(std_listener)
            .map_err(|e| Error::transport(NAME, "", format!("cannot register the listener: {e}")))?
    };
    let state = Arc::new(ServerState {
        topics: Mutex::new(HashMap::new()),
        histories: Mutex::new(HashMap::new()),
        sources: Mutex::new(HashMap::new()),
        local,
        next_conn: AtomicU64::new(1),
    });
    rt.handle().spawn(accept_loop(listener, state.clone(), config));
    tracing::debug!(%local, "tcp transport listening");
    Ok(state)
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>, config: TcpConfig) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                tokio::spawn(serve_conn(state.clone(), sock, peer, config.clone()));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(local = %state.local, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn read_hello(sock: &mut TcpStream) -> std::result::Result<Hello, String> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)
        .await
        .map_err(|e| format!("no complete hello length received: {e}"))?;
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > format::MAX_CONTROL_LEN {
        return Err(format!(
            "hello length {len} is outside 1..={} (garbage or oversized message)",
            format::MAX_CONTROL_LEN
        ));
    }
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match sock.read(&mut body[got..]).await {
            Ok(0) => {
                return Err(format!("truncated hello: the peer closed after {got} of {len} bytes"));
            }
            Ok(n) => got += n,
            Err(e) => {
                return Err(format!("reading the hello failed after {got} of {len} bytes: {e}"));
            }
        }
    }
    if body[0] != format::KIND_HELLO {
        return Err(format!(
            "expected a hello (kind {}), got kind {}",
            format::KIND_HELLO,
            body[0]
        ));
    }
    format::decode_hello(&body[1..]).map_err(|e| format!("malformed hello: {e}"))
}

async fn refuse(sock: &mut TcpStream, status: u8, reason: &str) {
    let ack = HelloAck { status, live_next: None, reason: reason.to_owned() };
    let msg = format::encode_hello_ack(&ack);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = sock.write_all(&msg).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

async fn serve_conn(
    state: Arc<ServerState>,
    mut sock: TcpStream,
    peer: SocketAddr,
    config: TcpConfig,
) {
    if let Err(e) = sock.set_nodelay(true) {
        tracing::warn!(%peer, "cannot set TCP_NODELAY: {e}");
    }
    let hello = match tokio::time::timeout(config.hello_timeout, read_hello(&mut sock)).await {
        Ok(Ok(h)) => h,
        Ok(Err(reason)) => {
            tracing::warn!(%peer, "closing connection: {reason}");
            refuse(&mut sock, format::ACK_BAD_HELLO, &reason).await;
            return;
        }
        Err(_) => {
            let reason = format!("no hello within {:?}", config.hello_timeout);
            tracing::warn!(%peer, "closing connection: {reason}");
            refuse(&mut sock, format::ACK_BAD_HELLO, &reason).await;
            return;
        }
    };
    if hello.max_payload == 0 {
        // Such a subscriber can receive no frame at all: accepting it would only skip
        // (and warn about) every frame of the history, then close it on the first live
        // frame. Refuse it once, saying why.
        let reason = format!(
            "hello for topic {:?} has max_payload 0: a subscriber must accept payloads of at least 1 byte",
            hello.topic
        );
        tracing::warn!(%peer, "closing connection: {reason}");
        refuse(&mut sock, format::ACK_BAD_HELLO, &reason).await;
        return;
    }
    let mut hello = hello;
    if let Err((status, reason)) = check_history(&state, &mut hello).await {
        tracing::warn!(%peer, topic = %hello.topic, "refusing a subscriber: {reason}");
        refuse(&mut sock, status, &reason).await;
        return;
    }
    let topic = state.topics.lock().get(&hello.topic).cloned();
    let Some(topic) = topic else {
        let reason = format!("unknown topic {:?}: no publisher serves it here", hello.topic);
        tracing::warn!(%peer, "closing connection: {reason}");
        refuse(&mut sock, format::ACK_UNKNOWN_TOPIC, &reason).await;
        return;
    };
    let direct = if config.direct_write {
        sock.as_fd().try_clone_to_owned().ok().map(std::net::TcpStream::from)
    } else {
        None
    };
    let conn = Arc::new(Conn {
        id: state.next_conn.fetch_add(1, Ordering::Relaxed),
        peer,
        max_payload: hello.max_payload as usize,
        q: Mutex::new(ConnQueue {
            items: VecDeque::new(),
            frames: 0,
            dropped: 0,
            closing: None,
            frame_seen: false,
            lead_gap: None,
            writer_busy: false,
        }),
        room: Condvar::new(),
        room_async: Notify::new(),
        wake: Notify::new(),
        kill: Notify::new(),
        direct,
    });
    let logged = read_logged(&state, &topic, &hello).await;
    if let Err(reason) = topic.register(&conn, &hello, &logged) {
        tracing::warn!(topic = %topic.name, %peer, "refusing a subscriber: {reason}");
        refuse(&mut sock, format::ACK_BEYOND_LIVE_EDGE, &reason).await;
        return;
    }
    tracing::debug!(topic = %topic.name, %peer, conn = conn.id, resume_from = ?hello.resume_from,
        "subscriber connected");
    let _guard = ConnGuard { conn: conn.clone(), topic: topic.clone() };
    let (r, w) = sock.into_split();
    tokio::select! {
        () = write_loop(&conn, &topic.name, w) => {}
        reason = watch_peer(r) => {
            let mut q = conn.q.lock();
            if q.closing.is_none() {
                if reason.1 {
                    tracing::warn!(topic = %topic.name, %peer, conn = conn.id, "closing subscriber connection: {}", reason.0);
                } else {
                    tracing::debug!(topic = %topic.name, %peer, conn = conn.id, "subscriber connection ended: {}", reason.0);
                }
                q.closing = Some(Closing { reason: reason.0, goodbye: false });
            }
        }
    }
}

/// For a client resuming below the topic's history: the frames its log holds there
/// (empty without a source, or when the source fails; the client then gets a gap).
async fn read_logged(state: &ServerState, topic: &Topic, hello: &Hello) -> Vec<LoggedFrame> {
    let Some(from) = hello.resume_from else { return Vec::new() };
    let Some(to) = topic.missing_below(from) else { return Vec::new() };
    let Some(source) = state.sources.lock().get(&hello.topic).cloned() else {
        return Vec::new();
    };
    let read =
        tokio::task::spawn_blocking(move || source(from, to, crate::HISTORY_SOURCE_MAX_BYTES))
            .await;
    match read {
        Ok(Ok(frames)) => frames,
        Ok(Err(reason)) => {
            tracing::warn!(topic = %hello.topic, from, to, %reason,
                "reading a resume from the topic's log failed; the subscriber gets a gap");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(topic = %hello.topic, from, to, error = %e,
                "reading a resume from the topic's log failed; the subscriber gets a gap");
            Vec::new()
        }
    }
}

/// A client resuming at `resume_from` after a frame of `resume_epoch`: when the topic's
/// log rewrote what the client saw (it followed a primary whose tail this server's
/// history replaced), the resume moves back to the first rewritten sequence, so the
/// client receives, below its position, frames of a newer epoch (a rewind, which it
/// can tell by the epoch). A position in an epoch the history does not know yet is
/// refused with the reason: this server has not caught up with that history (a replica
/// behind the new primary), or holds another one. So is a position this server's log
/// has not reached yet in the same epoch (a replica behind): nothing was rewritten, the
/// client is early.
async fn check_history(
    state: &ServerState,
    hello: &mut Hello,
) -> std::result::Result<(), (u8, String)> {
    let (Some(from), Some(epoch)) = (hello.resume_from, hello.resume_epoch) else {
        return Ok(());
    };
    if from <= 1 || epoch == 0 {
        return Ok(());
    }
    let Some(check) = state.histories.lock().get(&hello.topic).cloned() else {
        return Ok(());
    };
    // The check may read the log's epoch history from disk: off the async workers.
    let answer = tokio::task::spawn_blocking(move || check(Epoch(epoch), SeqNo(from - 1)))
        .await
        .map_err(|e| (format::ACK_BAD_HELLO, format!("the history check failed: {e}")))?;
    match answer {
        HistoryCheck::Consistent => Ok(()),
        HistoryCheck::Behind { log_last } => Err((
            format::ACK_BEYOND_LIVE_EDGE,
            format!(
                "resume_from {from} of topic {:?} is beyond this server's log, which ends at {} in the same epoch {epoch}: it is behind",
                hello.topic, log_last.0
            ),
        )),
        HistoryCheck::Rewritten { from: start, to, store_epoch } => {
            tracing::info!(topic = %hello.topic, from = start.0, to = to.0, %store_epoch,
                "a resuming subscriber saw sequences this history rewrote; resuming at the cut");
            hello.resume_from = Some(start.0);
            Ok(())
        }
        HistoryCheck::UnknownEpoch { store_epoch } => Err((
            format::ACK_UNKNOWN_EPOCH,
            format!(
                "resume_epoch {epoch} of topic {:?} is newer than this server's history (epoch {store_epoch}): it has not caught up with that history yet, or holds another",
                hello.topic
            ),
        )),
    }
}

/// Unregisters a connection however its task ends (including runtime shutdown) and
/// releases publishers blocked on it.
struct ConnGuard {
    conn: Arc<Conn>,
    topic: Arc<Topic>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(direct) = &self.conn.direct {
            // The duplicate handle would keep the connection open: end it for good.
            let _ = direct.shutdown(std::net::Shutdown::Both);
        }
        {
            let mut q = self.conn.q.lock();
            if q.closing.is_none() {
                q.closing =
                    Some(Closing { reason: "the server shut down".to_owned(), goodbye: false });
            }
            q.items.clear();
            q.frames = 0;
            if q.dropped > 0 {
                tracing::debug!(topic = %self.topic.name, conn = self.conn.id, dropped = q.dropped,
                    "connection dropped frames under the drop-oldest policy");
            }
        }
        self.conn.room.notify_all();
        self.conn.room_async.notify_waiters();
        self.topic.unregister(&self.conn);
    }
}

/// Reads from the subscriber, which must send nothing after its hello. Returns the
/// reason the connection ended and whether it is a protocol violation.
async fn watch_peer(mut r: OwnedReadHalf) -> (String, bool) {
    let mut buf = [0u8; 256];
    match r.read(&mut buf).await {
        Ok(0) => ("the subscriber closed the connection".to_owned(), false),
        Ok(n) => (format!("the subscriber sent {n} unexpected bytes after its hello"), true),
        Err(e) => (format!("reading from the subscriber failed: {e}"), false),
    }
}

async fn write_loop(conn: &Conn, topic: &str, w: OwnedWriteHalf) {
    let mut out = BufWriter::with_capacity(64 * 1024, w);
    let mut batch: Vec<Item> = Vec::new();
    loop {
        let closing = {
            let mut q = conn.q.lock();
            let start = batch.len();
            batch.extend(q.items.drain(..));
            q.frames = 0;
            q.writer_busy = !batch.is_empty();
            if let Some((stream, from)) = q.lead_gap.take() {
                let first = batch[start..].iter().position(|it| matches!(it, Item::Frame(..)));
                if let Some(i) = first
                    && let Item::Frame(h, _) = &batch[start + i]
                {
                    let gap = Item::Control(format::encode_gap(stream, from, h.seq));
                    batch.insert(start + i, gap);
                }
            }
            if batch[start..].iter().any(|it| matches!(it, Item::Frame(..))) {
                q.frame_seen = true;
            }
            q.closing.as_ref().map(|c| (c.reason.clone(), c.goodbye))
        };
        if !batch.is_empty() {
            conn.room.notify_all();
            conn.room_async.notify_waiters();
        }
        if batch.is_empty() && closing.is_none() {
            conn.wake.notified().await;
            continue;
        }
        let mut interrupted = false;
        if !batch.is_empty() {
            let write = async {
                for item in &batch {
                    out.write_all(item.bytes()).await?;
                }
                out.flush().await
            };
            tokio::select! {
                r = write => {
                    if let Err(e) = r {
                        let mut q = conn.q.lock();
                        conn.close_locked(&mut q, topic, format!("writing to the subscriber failed: {e}"), false);
                        return;
                    }
                }
                () = conn.kill.notified() => interrupted = true,
            }
            batch.clear();
        }
        let closing = match closing {
            Some(c) => Some(c),
            None if interrupted => {
                conn.q.lock().closing.as_ref().map(|c| (c.reason.clone(), c.goodbye))
            }
            None => None,
        };
        if let Some((reason, goodbye)) = closing {
            if goodbye && !interrupted {
                let msg = format::encode_goodbye(&reason);
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    let _ = out.write_all(&msg).await;
                    let _ = out.flush().await;
                    let _ = out.shutdown().await;
                })
                .await;
            }
            return;
        }
    }
}

/// Publishes on one topic of a [`TcpTransport`](crate::TcpTransport) server.
pub struct TcpPublisher {
    topic: Arc<Topic>,
    options: PublisherOptions,
    order: PublishOrder,
    epoch: u64,
}

impl std::fmt::Debug for TcpPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpPublisher")
            .field("topic", &self.topic.name)
            .field("stream", &self.options.stream)
            .field("next", &self.order.next())
            .finish()
    }
}

impl TcpPublisher {
    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic.name
    }

    fn check(&self, seq: u64, span: u32, len: usize) -> Result<(FrameHeader, Admission)> {
        if span == 0 {
            return Err(Error::InvalidArgument(format!(
                "topic {:?}: frame span must be at least 1",
                self.topic.name
            )));
        }
        let admission = self.order.admit(seq, self.epoch).map_err(|next| {
            Error::InvalidArgument(format!(
                "topic {:?}: sequence went backwards: {seq} is below the next expected {next} \
                 (only a newer epoch may rewind)",
                self.topic.name
            ))
        })?;
        if len > self.options.max_payload {
            return Err(Error::FrameTooLarge {
                topic: self.topic.name.clone(),
                len: len as u64,
                max: self.options.max_payload as u64,
            });
        }
        Ok((FrameHeader { stream: self.options.stream, seq, span, epoch: self.epoch }, admission))
    }

    /// Records the frame in the history (dropping the frames a rewind withdraws) and
    /// returns the connections to send it to.
    fn enqueue_history(
        &mut self,
        header: FrameHeader,
        admission: Admission,
        frame: &Bytes,
    ) -> Arc<Vec<Arc<Conn>>> {
        self.order.record(&header);
        let mut t = self.topic.inner.lock();
        if let Admission::Rewind { from } = admission {
            let stream = header.stream;
            t.history.retain(|(h, _)| h.stream != stream || h.seq < from);
        }
        if t.history_cap > 0 {
            if t.history.len() >= t.history_cap {
                t.history.pop_front();
            }
            t.history.push_back((header, frame.clone()));
        }
        t.last = Some(header);
        t.conns.clone()
    }

    fn send(&mut self, header: FrameHeader, admission: Admission, frame: Bytes, len: usize) {
        let conns = self.enqueue_history(header, admission, &frame);
        let out = Outgoing {
            topic: &self.topic.name,
            header,
            frame: &frame,
            len,
            policy: self.options.policy,
            cap: self.options.queue_depth,
        };
        for c in conns.iter() {
            c.push_blocking(&out);
        }
    }

    /// [`TopicPublisher::publish`] for async code: under
    /// [`SlowSubscriberPolicy::Block`] it awaits room instead of blocking the thread.
    pub async fn publish_async(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()> {
        let (header, admission) = self.check(seq, span, payload.len())?;
        let frame =
            format::encode_frame_with(&header, payload.len(), |b| b.copy_from_slice(payload));
        let conns = self.enqueue_history(header, admission, &frame);
        let out = Outgoing {
            topic: &self.topic.name,
            header,
            frame: &frame,
            len: payload.len(),
            policy: self.options.policy,
            cap: self.options.queue_depth,
        };
        for c in conns.iter() {
            c.push_async(&out).await;
        }
        Ok(())
    }
}

impl TopicPublisher for TcpPublisher {
    fn stream(&self) -> StreamId {
        self.options.stream
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()> {
        let (header, admission) = self.check(seq, span, payload.len())?;
        let frame =
            format::encode_frame_with(&header, payload.len(), |b| b.copy_from_slice(payload));
        self.send(header, admission, frame, payload.len());
        Ok(())
    }

    fn publish_with(
        &mut self,
        seq: u64,
        span: u32,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<()> {
        let (header, admission) = self.check(seq, span, len)?;
        let frame = format::encode_frame_with(&header, len, fill);
        self.send(header, admission, frame, len);
        Ok(())
    }

    fn subscriber_count(&self) -> usize {
        self.topic.inner.lock().conns.len()
    }
}
