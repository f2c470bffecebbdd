//! One topic inside the gateway: the thread that reads it from the transport, the ring
//! of recent frames, and the bounded queue of every connected client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_core::{
    Delivery, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicSubscriber, Transport,
};
use tokio::sync::Notify;

use crate::TopicSpec;
use crate::frame::{GatewayFrame, PayloadFormat};

/// How long the reader thread waits for a frame before checking for a stop request.
const WAIT: Duration = Duration::from_millis(50);
/// How long the reader thread waits before re-creating a failed subscriber.
const RETRY: Duration = Duration::from_millis(200);

/// An item of a client's queue.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// A frame to send (or to report invalid).
    Frame(Arc<GatewayFrame>),
    /// Frames dropped under the drop-oldest policy: `from .. to` of `stream`.
    Gap { stream: StreamId, from: u64, to: u64 },
    /// A control message (a pong).
    Text(String),
}

/// Most control messages queued for one client.
const MAX_CONTROL: usize = 16;

#[derive(Debug, Default)]
struct ClientState {
    queue: VecDeque<Out>,
    /// Frames (not gaps) in `queue`.
    frames: usize,
    /// Control messages in `queue`.
    controls: usize,
    /// Set when the client must be closed: (close code, reason).
    closing: Option<(u16, String)>,
}

/// A connected client's bounded queue; the topic thread fills it, the connection task
/// drains it.
#[derive(Debug)]
pub(crate) struct ClientQueue {
    capacity: usize,
    policy: SlowSubscriberPolicy,
    state: Mutex<ClientState>,
    pub(crate) notify: Notify,
    /// Frames dropped for this client under drop-oldest.
    pub(crate) dropped: AtomicU64,
}

impl ClientQueue {
    pub(crate) fn new(capacity: usize, policy: SlowSubscriberPolicy) -> Self {
        Self {
            capacity: capacity.max(1),
            policy,
            state: Mutex::new(ClientState::default()),
            notify: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a frame under the policy; returns false when the client is (now) closed.
    fn push(&self, frame: &Arc<GatewayFrame>) -> bool {
        let mut st = self.state.lock();
        if st.closing.is_some() {
            return false;
        }
        if st.frames >= self.capacity {
            match self.policy {
                SlowSubscriberPolicy::Disconnect => {
                    st.queue.clear();
                    st.frames = 0;
                    st.controls = 0;
                    st.closing = Some((
                        crate::CLOSE_POLICY,
                        format!(
                            "slow consumer: {} frames queued, the limit; resubscribe with from=SEQ",
                            self.capacity
                        ),
                    ));
                    drop(st);
                    self.notify.notify_one();
                    return false;
                }
                // Block is refused by the configuration; treat anything else as drop-oldest.
                _ => self.drop_oldest(&mut st),
            }
        }
        st.queue.push_back(Out::Frame(Arc::clone(frame)));
        st.frames += 1;
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Drops the oldest queued frame and records it as a gap, merged with an earlier
    /// gap of the same stream (every gap sits before the first queued frame).
    fn drop_oldest(&self, st: &mut ClientState) {
        let Some(i) = st.queue.iter().position(|o| matches!(o, Out::Frame(_))) else { return };
        let Some(Out::Frame(f)) = st.queue.remove(i) else { return };
        st.frames -= 1;
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let (stream, from, to) = (f.header.stream, f.header.seq, f.header.next_seq());
        let merged = st.queue.range_mut(..i).rev().any(|o| match o {
            Out::Gap { stream: s, to: t, .. } if *s == stream && *t <= from => {
                *t = to;
                true
            }
            _ => false,
        });
        if !merged {
            st.queue.insert(i, Out::Gap { stream, from, to });
        }
    }

    /// Queues a control message (a pong); at most [`MAX_CONTROL`] wait at once, more
    /// are dropped.
    pub(crate) fn control(&self, text: String) {
        let mut st = self.state.lock();
        if st.closing.is_some() || st.controls >= MAX_CONTROL {
            return;
        }
        st.controls += 1;
        st.queue.push_back(Out::Text(text));
        drop(st);
        self.notify.notify_one();
    }

    /// Closes the client with a reason (bad input, shutdown).
    pub(crate) fn close(&self, code: u16, reason: String) {
        let mut st = self.state.lock();
        if st.closing.is_none() {
            st.closing = Some((code, reason));
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Takes up to `max` items, or the close request.
    pub(crate) fn take(&self, max: usize, into: &mut Vec<Out>) -> Option<(u16, String)> {
        let mut st = self.state.lock();
        if let Some(c) = &st.closing {
            return Some(c.clone());
        }
        for _ in 0..max {
            match st.queue.pop_front() {
                Some(item) => {
                    match item {
                        Out::Frame(_) => st.frames -= 1,
                        Out::Text(_) => st.controls -= 1,
                        Out::Gap { .. } => {}
                    }
                    into.push(item);
                }
                None => break,
            }
        }
        None
    }
}

#[derive(Debug, Default)]
struct HubState {
    ring: VecDeque<Arc<GatewayFrame>>,
    ring_bytes: usize,
    clients: Vec<Arc<ClientQueue>>,
    /// Per stream, the newest frame's end (`next_seq`) and epoch.
    streams: Vec<(StreamId, u64, u64)>,
}

/// Counters of one topic.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[non_exhaustive]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// The payload format (`messages`, `commits`, `commits-raw`).
    pub format: &'static str,
    /// Frames received from the transport.
    pub frames: u64,
    /// Frames that failed validation.
    pub invalid: u64,
    /// Highest sequence received (`next_seq - 1` of the newest frame; 0 before any).
    pub last_seq: u64,
    /// Frames held in the ring.
    pub ring_frames: usize,
    /// Oldest sequence held in the ring (`None` when empty).
    pub ring_first_seq: Option<u64>,
    /// Clients connected.
    pub clients: usize,
    /// Whether the topic can serve history from the store's log.
    pub has_log: bool,
}

/// A topic: its ring, its clients and its reader thread's counters.
pub(crate) struct Hub {
    pub(crate) spec: TopicSpec,
    ring_frames: usize,
    ring_max_bytes: usize,
    state: Mutex<HubState>,
    frames: AtomicU64,
    invalid: AtomicU64,
    last_seq: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("topic", &self.spec.name).finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(spec: TopicSpec, ring_frames: usize, ring_max_bytes: usize) -> Self {
        Self {
            spec,
            ring_frames,
            ring_max_bytes,
            state: Mutex::new(HubState::default()),
            frames: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn format(&self) -> PayloadFormat {
        self.spec.format
    }

    /// Takes in one frame: ring, then every client's queue.
    pub(crate) fn push(&self, frame: GatewayFrame) {
        if let Err(reason) = &frame.rendered {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic = %self.spec.name,
                stream = frame.header.stream.0,
                seq = frame.header.seq,
                %reason,
                "gateway: frame failed validation; skipped and reported to clients"
            );
        }
        self.frames.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(frame);
        let h = frame.header;
        let mut st = self.state.lock();
        if self.rewinds(&mut st, &h) {
            // A newer epoch rewrote the stream from `h.seq` (the store truncated a
            // diverged tail): the ring no longer serves the withdrawn frames, and the
            // live edge moves back. Clients learn it from the frame itself.
            tracing::warn!(
                topic = %self.spec.name,
                stream = h.stream.0,
                from = h.seq,
                epoch = h.epoch,
                "gateway: the stream was rewritten by a newer epoch; withdrawn frames leave the ring"
            );
            let before = st.ring.len();
            st.ring.retain(|f| f.header.stream != h.stream || f.header.seq < h.seq);
            if st.ring.len() != before {
                st.ring_bytes = st.ring.iter().map(|f| f.cost()).sum();
            }
            self.last_seq.store(h.seq - 1, Ordering::Relaxed);
        }
        self.last_seq.fetch_max(h.next_seq() - 1, Ordering::Relaxed);
        if self.ring_frames > 0 {
            st.ring_bytes += frame.cost();
            st.ring.push_back(Arc::clone(&frame));
            while st.ring.len() > self.ring_frames
                || (st.ring_bytes > self.ring_max_bytes && st.ring.len() > 1)
            {
                if let Some(old) = st.ring.pop_front() {
                    st.ring_bytes -= old.cost();
                }
            }
        }
        st.clients.retain(|c| c.push(&frame));
    }

    /// Records `h` as its stream's newest frame; returns whether it rewinds the stream:
    /// it starts below the previous frame's end and a newer epoch wrote it (see
    /// `TopicPublisher`).
    fn rewinds(&self, st: &mut HubState, h: &strata_core::FrameHeader) -> bool {
        match st.streams.iter_mut().find(|(s, ..)| *s == h.stream) {
            Some((_, next, epoch)) => {
                let rewind = h.seq < *next && *epoch != 0 && h.epoch > *epoch && h.seq >= 1;
                if rewind || h.next_seq() >= *next {
                    *next = h.next_seq();
                    *epoch = h.epoch;
                }
                rewind
            }
            None => {
                st.streams.push((h.stream, h.next_seq(), h.epoch));
                false
            }
        }
    }

    /// The oldest sequence of `stream` the ring holds.
    pub(crate) fn ring_first(&self, stream: StreamId) -> Option<u64> {
        let st = self.state.lock();
        st.ring.iter().find(|f| f.header.stream == stream).map(|f| f.header.seq)
    }

    /// Registers a client; returns the ring frames covering `from` onwards (none when
    /// `from` is `None`: a live client starts with the next frame).
    pub(crate) fn register(
        &self,
        client: &Arc<ClientQueue>,
        from: Option<u64>,
    ) -> Vec<Arc<GatewayFrame>> {
        let mut st = self.state.lock();
        st.clients.push(Arc::clone(client));
        match from {
            Some(from) => st.ring.iter().filter(|f| f.header.next_seq() > from).cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Removes a client.
    pub(crate) fn unregister(&self, client: &Arc<ClientQueue>) {
        self.state.lock().clients.retain(|c| !Arc::ptr_eq(c, client));
    }

    /// Closes every client (gateway shutdown).
    pub(crate) fn close_all(&self, reason: &str) {
        let clients = std::mem::take(&mut self.state.lock().clients);
        for c in clients {
            c.close(crate::CLOSE_AWAY, reason.to_owned());
        }
    }

    pub(crate) fn stats(&self) -> TopicStats {
        let st = self.state.lock();
        TopicStats {
            topic: self.spec.name.clone(),
            format: self.spec.format.name(),
            frames: self.frames.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            last_seq: self.last_seq.load(Ordering::Relaxed),
            ring_frames: st.ring.len(),
            ring_first_seq: st.ring.front().map(|f| f.header.seq),
            clients: st.clients.len(),
            has_log: self.spec.log.is_some(),
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }
}

/// Runs the topic's reader: receives from the transport until `stop`, re-creating the
/// subscriber (resuming after the last sequence seen) when it fails.
pub(crate) fn run_reader(
    hub: Arc<Hub>,
    transport: Arc<dyn Transport>,
    options: SubscriberOptions,
    stop: Arc<AtomicBool>,
    first: Box<dyn TopicSubscriber>,
) {
    let topic = hub.spec.name.clone();
    let format = hub.format();
    let mut sub = Some(first);
    while !stop.load(Ordering::Acquire) {
        let Some(s) = sub.as_mut() else {
            std::thread::sleep(RETRY);
            let mut opts = options.clone();
            let last = hub.last_seq();
            if last > 0 {
                opts.resume_from = Some(last + 1);
            }
            match transport.subscriber(&topic, &opts) {
                Ok(s) => {
                    tracing::info!(%topic, resume_from = ?opts.resume_from, "gateway: resubscribed");
                    sub = Some(s);
                }
                Err(e) => tracing::warn!(%topic, error = %e, "gateway: resubscribe failed"),
            }
            continue;
        };
        let mut on = |d: Delivery<'_>| match d {
            Delivery::Frame { header, payload } => {
                hub.push(GatewayFrame::new(header, Bytes::copy_from_slice(payload), format));
            }
            // Clients find holes themselves (and fill them from the log when they can).
            Delivery::Gap { stream, from, to } => {
                tracing::debug!(%topic, stream = stream.0, from, to, "gateway: transport gap");
            }
        };
        if let Err(e) = s.wait(WAIT, &mut on) {
            tracing::warn!(%topic, error = %e, "gateway: subscriber failed; resubscribing");
            sub = None;
        }
    }
}
