//! The client side: subscribers, their reader tasks and reconnection.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};
use strata_core::{
    Delivery, Error, FrameHeader, GapTracker, Result, StreamId, SubscriberOptions, TopicSubscriber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::format::{self, Hello, ServerMessage};
use crate::{NAME, Rt, TcpConfig};

/// How the reader task reports the outcome of its first connection attempt.
type Started = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// A subscriber's own single-threaded runtime, driven by the thread that calls its
/// `poll`/`wait` ([`TcpConfig::inline_read`]): the kernel wakes that thread when the
/// socket has data, and it runs the reader task itself.
struct InlineRt {
    rt: Option<Runtime>,
}

impl InlineRt {
    fn new(topic: &str) -> Result<Self> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                Error::transport(NAME, topic, format!("cannot start the subscriber's runtime: {e}"))
            })?;
        Ok(Self { rt: Some(rt) })
    }

    fn runtime(&self) -> &Runtime {
        // Only drop takes the runtime out, and nothing runs after drop.
        self.rt.as_ref().expect("the inline runtime is present until drop")
    }

    /// Runs `fut` to completion on this thread, driving the reader task meanwhile.
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let rt = self.runtime();
        if Handle::try_current().is_ok() {
            // Async code must not block its runtime's thread on another runtime (tokio
            // forbids it): drive ours from a helper thread for this one call.
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut)).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            rt.block_on(fut)
        }
    }

    /// Drives the reader task until a delivery is queued, the task ended, or `deadline`.
    fn drive_until(&self, shared: &Shared, deadline: Instant) {
        self.block_on(async {
            let ready = async {
                loop {
                    let mut notified = pin!(shared.ready_async.notified());
                    notified.as_mut().enable();
                    if !shared.q.lock().is_empty()
                        || shared.ended.load(std::sync::atomic::Ordering::Acquire)
                    {
                        return;
                    }
                    notified.await;
                }
            };
            let _ = tokio::time::timeout_at(deadline.into(), ready).await;
        });
    }

    /// Lets the reader task take in what the socket holds now, without waiting.
    fn drive_once(&self) {
        self.block_on(async {
            // Each yield lets the runtime poll the socket without blocking and run the
            // reader task it woke.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        });
    }
}

impl Drop for InlineRt {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Allowed anywhere, including inside async code (a plain drop is not).
            rt.shutdown_background();
        }
    }
}

enum Item {
    Frame(FrameHeader, Bytes),
    Gap(StreamId, u64, u64),
    Error(Error),
    Disconnected(String),
}

struct Shared {
    q: Mutex<VecDeque<Item>>,
    cap: usize,
    ready: Condvar,
    ready_async: Notify,
    space: Notify,
    /// The reader task is gone.
    ended: std::sync::atomic::AtomicBool,
}

impl Shared {
    async fn push(&self, item: Item) {
        let mut item = Some(item);
        loop {
            let mut notified = pin!(self.space.notified());
            notified.as_mut().enable();
            {
                let mut q = self.q.lock();
                if q.len() < self.cap
                    && let Some(it) = item.take()
                {
                    q.push_back(it);
                    drop(q);
                    self.ready.notify_one();
                    self.ready_async.notify_one();
                    return;
                }
            }
            notified.await;
        }
    }
}

/// A delivery that owns its payload (what the async API returns).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnedDelivery {
    /// One frame.
    Frame {
        /// The frame's numbering.
        header: FrameHeader,
        /// The payload (a slice of the received buffer, no copy).
        payload: Bytes,
    },
    /// Sequence numbers `from .. to` of `stream` were lost before the next frame.
    Gap {
        /// The stream with the hole.
        stream: StreamId,
        /// First missing sequence.
        from: u64,
        /// One past the last missing sequence.
        to: u64,
    },
}

/// Receiving from a topic in async code.
pub trait AsyncTopicSubscriber: Send {
    /// Waits for the next delivery (a frame, or the gap before one).
    fn recv(&mut self) -> impl Future<Output = Result<OwnedDelivery>> + Send;
}

/// A subscriber to one topic of a TCP server; reconnects and resumes by itself.
pub struct TcpSubscriber {
    topic: String,
    shared: Arc<Shared>,
    local: VecDeque<Item>,
    tracker: GapTracker,
    disconnected: Option<String>,
    task: AbortHandle,
    /// Set when this subscriber's own thread reads its socket
    /// ([`TcpConfig::inline_read`]).
    inline: Option<Arc<InlineRt>>,
    rt: Arc<Rt>,
}

impl std::fmt::Debug for TcpSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSubscriber").field("topic", &self.topic).finish()
    }
}

impl Drop for TcpSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn subscribe(
    rt: Arc<Rt>,
    addrs: Vec<SocketAddr>,
    topic: &str,
    options: &SubscriberOptions,
    resume_epoch: Option<u64>,
    config: &TcpConfig,
) -> Result<TcpSubscriber> {
    if topic.is_empty() || topic.len() > format::MAX_TOPIC_LEN {
        return Err(Error::InvalidArgument(format!(
            "topic name must be 1..={} bytes, got {}",
            format::MAX_TOPIC_LEN,
            topic.len()
        )));
    }
    if options.max_payload == 0 {
        // The server refuses such a hello anyway: say so here, before connecting.
        return Err(Error::InvalidArgument(format!(
            "topic {topic:?}: max_payload 0 would accept no frame; it must be at least 1"
        )));
    }
    let shared = Arc::new(Shared {
        q: Mutex::new(VecDeque::new()),
        cap: options.queue_depth.max(1),
        ready: Condvar::new(),
        ready_async: Notify::new(),
        space: Notify::new(),
        ended: std::sync::atomic::AtomicBool::new(false),
    });
    let max_payload = options.max_payload.min(u32::MAX as usize - 1 - format::FRAME_HEADER_LEN);
    // A runtime cannot be driven from inside another one's async code, so a subscriber
    // created there is read by the transport's runtime.
    let inline = match config.inline_read && Handle::try_current().is_err() {
        true => Some(Arc::new(InlineRt::new(topic)?)),
        false => None,
    };
    // The first connection may try every address in turn.
    let answer_within = config.connect_timeout * addrs.len().max(1) as u32 + Duration::from_secs(1);
    let no_answer = || format!("no answer from {addrs:?} within {answer_within:?}");
    let reader = |started: Started| {
        run(
            addrs.clone(),
            topic.to_owned(),
            Position { resume: options.resume_from, epoch: resume_epoch.filter(|&e| e != 0) },
            max_payload,
            shared.clone(),
            config.clone(),
            started,
        )
    };
    let (task, started) = match &inline {
        None => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let task = rt
                .handle()
                .spawn(reader(Box::new(move |r| {
                    let _ = tx.send(r);
                })))
                .abort_handle();
            (task, rx.recv_timeout(answer_within).unwrap_or_else(|_| Err(no_answer())))
        }
        Some(inline) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = inline
                .runtime()
                .spawn(reader(Box::new(move |r| {
                    let _ = tx.send(r);
                })))
                .abort_handle();
            let answer = inline.block_on(async {
                match tokio::time::timeout(answer_within, rx).await {
                    Ok(Ok(r)) => r,
                    _ => Err(no_answer()),
                }
            });
            (task, answer)
        }
    };
    if let Err(reason) = started {
        task.abort();
        return Err(Error::transport(NAME, topic, reason));
    }
    Ok(TcpSubscriber {
        topic: topic.to_owned(),
        shared,
        local: VecDeque::new(),
        tracker: GapTracker::default(),
        disconnected: None,
        task,
        inline,
        rt,
    })
}

async fn connect(
    addr: SocketAddr,
    hello: &Hello,
) -> std::result::Result<(BufReader<TcpStream>, format::HelloAck), String> {
    let mut sock =
        TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    sock.set_nodelay(true).map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    sock.write_all(&format::encode_hello(hello))
        .await
        .map_err(|e| format!("cannot send the hello to {addr}: {e}"))?;
    let mut r = BufReader::with_capacity(64 * 1024, sock);
    let len =
        r.read_u32_le().await.map_err(|e| format!("no hello answer from {addr}: {e}"))? as usize;
    if !(2..=format::MAX_CONTROL_LEN).contains(&len) {
        return Err(format!("hello answer length {len} is invalid"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| format!("truncated hello answer from {addr}: {e}"))?;
    if body[0] != format::KIND_HELLO_ACK {
        return Err(format!("expected a hello answer, got message kind {}", body[0]));
    }
    let ack = format::decode_hello_ack(&body[1..])?;
    if ack.status != format::ACK_OK {
        return Err(format!("the server refused the subscription: {}", ack.reason));
    }
    Ok((r, ack))
}

enum End {
    Goodbye(String),
    Lost(String),
    Protocol(String),
}

/// Where a subscriber is: the sequence it resumes from, and the epoch of the frame
/// that ended just before it (unknown after a gap, or before any frame).
#[derive(Clone, Copy, Debug, Default)]
struct Position {
    resume: Option<u64>,
    epoch: Option<u64>,
}

async fn read_loop(
    r: &mut BufReader<TcpStream>,
    shared: &Shared,
    at: &mut Position,
    max_payload: usize,
) -> End {
    let max_len = (1 + format::FRAME_HEADER_LEN + max_payload).max(format::MAX_CONTROL_LEN);
    loop {
        let len = match r.read_u32_le().await {
            Ok(l) => l as usize,
            Err(e) => return End::Lost(format!("connection lost: {e}")),
        };
        if len == 0 || len > max_len {
            return End::Protocol(format!(
                "message length {len} is outside 1..={max_len} (max_payload {max_payload})"
            ));
        }
        let mut buf = BytesMut::zeroed(len);
        if let Err(e) = r.read_exact(&mut buf).await {
            return End::Lost(format!("connection lost inside a {len}-byte message: {e}"));
        }
        match format::decode_server_message(buf.freeze()) {
            Ok(ServerMessage::Frame(h, payload)) => {
                if payload.len() > max_payload {
                    return End::Protocol(format!(
                        "frame seq {} has a {}-byte payload, above max_payload {max_payload}",
                        h.seq,
                        payload.len()
                    ));
                }
                at.resume = Some(h.next_seq());
                // Epoch 0 is "no epoch" (a topic that is not a store's log).
                at.epoch = (h.epoch != 0).then_some(h.epoch);
                shared.push(Item::Frame(h, payload)).await;
            }
            Ok(ServerMessage::Gap(stream, from, to)) => {
                at.resume = Some(to);
                at.epoch = None;
                shared.push(Item::Gap(stream, from, to)).await;
            }
            Ok(ServerMessage::Goodbye(reason)) => return End::Goodbye(reason),
            Err(reason) => return End::Protocol(reason),
        }
    }
}

/// Connects, reads, and reconnects — to the next address when there are several —
/// until the subscriber is dropped or the server says goodbye.
async fn run(
    addrs: Vec<SocketAddr>,
    topic: String,
    mut at: Position,
    max_payload: usize,
    shared: Arc<Shared>,
    config: TcpConfig,
    started: Started,
) {
    let _wake_on_exit = WakeOnExit(shared.clone());
    let mut started = Some(started);
    let mut first_failures: Vec<String> = Vec::new();
    let mut backoff = config.min_backoff;
    let mut next = 0usize;
    loop {
        let addr = addrs[next % addrs.len()];
        let hello = Hello {
            topic: topic.clone(),
            resume_from: at.resume,
            resume_epoch: at.epoch.filter(|_| at.resume.is_some()),
            max_payload: max_payload as u32,
        };
        let attempt = match tokio::time::timeout(config.connect_timeout, connect(addr, &hello))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                Err(format!("connecting to {addr} timed out after {:?}", config.connect_timeout))
            }
        };
        match attempt {
            Ok((mut reader, ack)) => {
                if let Some(tell) = started.take() {
                    tell(Ok(()));
                } else {
                    tracing::info!(topic, %addr, resume_from = ?at.resume, epoch = ?at.epoch,
                        "subscriber reconnected");
                }
                backoff = config.min_backoff;
                if at.resume.is_none() {
                    at.resume = ack.live_next;
                }
                let moving_on =
                    if addrs.len() > 1 { " (moving on to the next server)" } else { "" };
                match read_loop(&mut reader, &shared, &mut at, max_payload).await {
                    End::Goodbye(reason) => {
                        tracing::warn!(topic, %addr, "the server closed the subscription: {reason}");
                        shared.push(Item::Disconnected(reason)).await;
                        return;
                    }
                    End::Lost(reason) => {
                        tracing::warn!(topic, %addr, "{reason}; reconnecting{moving_on}");
                    }
                    End::Protocol(reason) => {
                        tracing::warn!(topic, %addr, "closing the connection: {reason}; reconnecting{moving_on}");
                        shared
                            .push(Item::Error(Error::transport(NAME, topic.clone(), reason)))
                            .await;
                    }
                }
            }
            Err(reason) => {
                if let Some(tell) = started.take() {
                    first_failures.push(reason);
                    if first_failures.len() >= addrs.len() {
                        tell(Err(first_failures.join("; ")));
                        return;
                    }
                    // Not subscribed yet: try the next address at once.
                    started = Some(tell);
                    next += 1;
                    continue;
                }
                tracing::debug!(topic, %addr, "reconnect failed: {reason}");
            }
        }
        next += 1;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Wakes an async receiver when the reader task ends however it ends (including a
/// runtime shutdown that drops it), so it notices instead of waiting forever.
struct WakeOnExit(Arc<Shared>);

impl Drop for WakeOnExit {
    fn drop(&mut self) {
        self.0.ended.store(true, std::sync::atomic::Ordering::Release);
        self.0.ready_async.notify_one();
    }
}

impl TcpSubscriber {
    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn refill(&mut self) {
        if self.local.is_empty() {
            let mut q = self.shared.q.lock();
            if q.is_empty() {
                return;
            }
            std::mem::swap(&mut *q, &mut self.local);
            drop(q);
            self.shared.space.notify_one();
        }
    }

    /// A reader task that ended without saying why was stopped from outside (its
    /// transport's runtime shut down, e.g. the server transport it belonged to was
    /// dropped): report that instead of waiting forever.
    fn check_task(&mut self) {
        if self.disconnected.is_none()
            && (self.shared.ended.load(std::sync::atomic::Ordering::Acquire)
                || self.task.is_finished()
                || (self.inline.is_some() && self.rt.is_shut_down()))
            && self.shared.q.lock().is_empty()
        {
            self.disconnected = Some("the transport's runtime shut down".to_owned());
        }
    }

    fn disconnected_error(&self, reason: &str) -> Error {
        Error::Disconnected { topic: self.topic.clone(), reason: reason.to_owned() }
    }

    /// Takes the next delivery as an owned value, if one is available now.
    fn next_owned(&mut self) -> Result<Option<OwnedDelivery>> {
        self.refill();
        let Some(item) = self.local.pop_front() else {
            self.check_task();
            return match &self.disconnected {
                Some(r) => Err(self.disconnected_error(r)),
                None => Ok(None),
            };
        };
        match item {
            Item::Frame(header, payload) => {
                if let Some((from, to)) = self.tracker.observe(&header) {
                    // Deliver the gap now and the frame next time; the tracker already
                    // advanced, so re-observing the frame must not report again.
                    self.local.push_front(Item::Frame(header, payload));
                    self.tracker.expect(header.stream, header.seq);
                    return Ok(Some(OwnedDelivery::Gap { stream: header.stream, from, to }));
                }
                Ok(Some(OwnedDelivery::Frame { header, payload }))
            }
            Item::Gap(stream, from, to) => {
                self.tracker.expect(stream, to);
                Ok(Some(OwnedDelivery::Gap { stream, from, to }))
            }
            Item::Error(e) => Err(e),
            Item::Disconnected(r) => {
                let e = self.disconnected_error(&r);
                self.disconnected = Some(r);
                Err(e)
            }
        }
    }

    /// Waits for the next delivery without blocking the async runtime.
    pub async fn recv(&mut self) -> Result<OwnedDelivery> {
        if let Some(inline) = self.inline.clone() {
            return self.recv_inline(inline).await;
        }
        loop {
            let shared = self.shared.clone();
            let mut notified = pin!(shared.ready_async.notified());
            notified.as_mut().enable();
            if let Some(d) = self.next_owned()? {
                return Ok(d);
            }
            notified.await;
        }
    }

    /// [`TcpSubscriber::recv`] for a subscriber that reads its socket itself: the
    /// driving happens on a blocking-pool thread so the caller's runtime is not held.
    async fn recv_inline(&mut self, inline: Arc<InlineRt>) -> Result<OwnedDelivery> {
        loop {
            if let Some(d) = self.next_owned()? {
                return Ok(d);
            }
            let (rt, shared) = (inline.clone(), self.shared.clone());
            let slice = move || rt.drive_until(&shared, Instant::now() + RECV_SLICE);
            if Handle::try_current().is_ok() {
                tokio::task::spawn_blocking(slice).await.map_err(|e| {
                    Error::transport(NAME, self.topic.clone(), format!("reader thread: {e}"))
                })?;
            } else {
                // Not on tokio (another executor): blocking here is all there is.
                slice();
            }
        }
    }

    /// Hands what is queued to `on`.
    fn deliver(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        self.refill();
        let mut n = 0;
        while let Some(item) = self.local.pop_front() {
            match item {
                Item::Frame(header, payload) => {
                    if let Some((from, to)) = self.tracker.observe(&header) {
                        on(Delivery::Gap { stream: header.stream, from, to });
                        n += 1;
                    }
                    on(Delivery::Frame { header, payload: &payload });
                    n += 1;
                }
                Item::Gap(stream, from, to) => {
                    self.tracker.expect(stream, to);
                    on(Delivery::Gap { stream, from, to });
                    n += 1;
                }
                Item::Error(e) => {
                    if n == 0 {
                        return Err(e);
                    }
                    self.local.push_front(Item::Error(e));
                    return Ok(n);
                }
                Item::Disconnected(r) => {
                    self.disconnected = Some(r);
                    break;
                }
            }
        }
        if n == 0 {
            self.check_task();
            if let Some(r) = &self.disconnected {
                return Err(self.disconnected_error(r));
            }
        }
        Ok(n)
    }

    fn nothing_queued(&self) -> bool {
        self.local.is_empty() && self.disconnected.is_none() && self.shared.q.lock().is_empty()
    }
}

/// How long one blocking-pool slice of an inline subscriber's async `recv` drives
/// the socket before it checks again (bounds how long a cancelled `recv` lingers).
const RECV_SLICE: Duration = Duration::from_millis(100);

impl AsyncTopicSubscriber for TcpSubscriber {
    fn recv(&mut self) -> impl Future<Output = Result<OwnedDelivery>> + Send {
        TcpSubscriber::recv(self)
    }
}

impl TopicSubscriber for TcpSubscriber {
    fn poll(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        if let Some(inline) = &self.inline
            && self.nothing_queued()
        {
            inline.drive_once();
        }
        self.deliver(on)
    }

    fn wait(&mut self, timeout: Duration, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        // Both ways of waiting look at the shared queue themselves before they sleep.
        if self.local.is_empty() && self.disconnected.is_none() {
            let deadline = Instant::now() + timeout;
            match &self.inline {
                Some(inline) => inline.drive_until(&self.shared, deadline),
                None => {
                    let mut q = self.shared.q.lock();
                    while q.is_empty() {
                        if self.shared.ready.wait_until(&mut q, deadline).timed_out() {
                            break;
                        }
                    }
                }
            }
        }
        self.deliver(on)
    }
}
