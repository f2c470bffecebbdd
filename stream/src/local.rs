//! An in-process [`Transport`]: topics shared by the threads of one process.
//!
//! Every subscriber owns a bounded queue (the smaller of its own
//! [`SubscriberOptions::queue_depth`] and the publisher's
//! [`PublisherOptions::queue_depth`]). A publisher pushes each frame into every
//! subscriber queue of the topic; when a queue is full the publisher's
//! [`SlowSubscriberPolicy`] decides: `Block` waits (on a condition variable) until the
//! subscriber makes room or goes away, `DropOldest` drops the oldest queued frame (the
//! subscriber later sees a [`Delivery::Gap`], computed by a [`GapTracker`] over what it
//! actually received), `Disconnect` cuts the subscriber off (its next receive returns
//! [`Error::Disconnected`]). Payloads are shared between subscribers (one copy per
//! publish). `wait` blocks on a condition variable, never sleeps in a loop.
//!
//! A publisher configured with `history > 0` keeps its last `history` frames; a
//! subscriber created while that publisher lives receives them first (only those
//! covering `resume_from` and later, when the subscriber asks to resume).
//!
//! Endpoints of one [`LocalTransport`] value (and of its clones) see each other;
//! separate `LocalTransport::new()` values are separate worlds.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use strata_core::Error;
use strata_core::error::Result;
use strata_core::transport::{
    Admission, Delivery, FrameHeader, GapTracker, PublishOrder, PublisherOptions,
    SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher, TopicSubscriber, Transport,
};

const NAME: &str = "local";

#[derive(Clone, Debug)]
struct Frame {
    header: FrameHeader,
    payload: Arc<[u8]>,
}

#[derive(Debug)]
struct QueueState {
    frames: VecDeque<Frame>,
    /// Per stream, the sequence of the first frame ever queued here, handed to the
    /// subscriber's gap tracker so frames dropped before it saw any still count.
    first_queued: Vec<(StreamId, u64)>,
    disconnected: Option<String>,
    closed: bool,
}

#[derive(Debug)]
struct SubQueue {
    id: u64,
    depth: usize,
    max_payload: usize,
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
}

#[derive(Debug)]
struct PublisherSlot {
    id: u64,
    history: VecDeque<Frame>,
    history_cap: usize,
}

#[derive(Debug, Default)]
struct TopicState {
    subscribers: Vec<Arc<SubQueue>>,
    publishers: Vec<PublisherSlot>,
}

#[derive(Debug, Default)]
struct Topic {
    state: Mutex<TopicState>,
}

#[derive(Debug, Default)]
struct Registry {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    next_id: AtomicU64,
    /// Publishers waiting for room in a full queue (`Block` policy) right now.
    blocked_publishers: AtomicUsize,
    /// Subscribers inside `wait` with nothing to deliver yet, right now.
    waiting_subscribers: AtomicUsize,
}

/// Counts a thread as waiting for as long as it lives (decremented however the wait
/// ends).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Registry {
    fn topic(&self, name: &str) -> Arc<Topic> {
        Arc::clone(self.topics.lock().entry(name.to_owned()).or_default())
    }
}

/// The in-process transport. Cloning it shares its topics.
#[derive(Clone, Default)]
pub struct LocalTransport {
    registry: Arc<Registry>,
}

impl fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTransport")
            .field("topics", &self.registry.topics.lock().len())
            .finish()
    }
}

impl LocalTransport {
    /// A new, empty set of topics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishers of this transport blocked right now on a full subscriber queue
    /// (`Block` policy). For monitoring, and for tests that must act while a publisher
    /// is blocked rather than guess when it is.
    pub fn blocked_publishers(&self) -> usize {
        self.registry.blocked_publishers.load(Ordering::Acquire)
    }

    /// Subscribers of this transport inside `wait` with nothing to deliver yet, right
    /// now. For monitoring, and for tests that must publish while a subscriber waits.
    pub fn waiting_subscribers(&self) -> usize {
        self.registry.waiting_subscribers.load(Ordering::Acquire)
    }
}

impl Transport for LocalTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn publisher(
        &self,
        topic: &str,
        options: &PublisherOptions,
    ) -> Result<Box<dyn TopicPublisher>> {
        if options.queue_depth == 0 {
            return Err(Error::InvalidArgument("queue_depth must be at least 1".into()));
        }
        let t = self.registry.topic(topic);
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        t.state.lock().publishers.push(PublisherSlot {
            id,
            history: VecDeque::new(),
            history_cap: options.history,
        });
        Ok(Box::new(LocalPublisher {
            registry: Arc::clone(&self.registry),
            topic_name: topic.to_owned(),
            topic: t,
            id,
            options: options.clone(),
            order: PublishOrder::default(),
            epoch: 0,
        }))
    }

    fn subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<Box<dyn TopicSubscriber>> {
        if options.queue_depth == 0 {
            return Err(Error::InvalidArgument("queue_depth must be at least 1".into()));
        }
        let t = self.registry.topic(topic);
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frames = VecDeque::new();
        let queue;
        {
            let mut st = t.state.lock();
            for p in &st.publishers {
                for f in &p.history {
                    let wanted = options.resume_from.is_none_or(|from| f.header.next_seq() > from);
                    if wanted && f.payload.len() <= options.max_payload {
                        frames.push_back(f.clone());
                    }
                }
            }
            // History beyond the queue keeps its newest frames (the queue is bounded).
            while frames.len() > options.queue_depth {
                frames.pop_front();
            }
            queue = Arc::new(SubQueue {
                id,
                depth: options.queue_depth,
                max_payload: options.max_payload,
                state: Mutex::new(QueueState {
                    first_queued: first_queued(&frames),
                    frames,
                    disconnected: None,
                    closed: false,
                }),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
            });
            st.subscribers.push(Arc::clone(&queue));
        }
        let mut gaps = GapTracker::default();
        let mut known = Vec::new();
        if let Some(from) = options.resume_from {
            let st = queue.state.lock();
            if let Some(first) = st.frames.front() {
                gaps.expect(first.header.stream, from);
                known.push(first.header.stream);
            }
        }
        Ok(Box::new(LocalSubscriber {
            registry: Arc::clone(&self.registry),
            topic_name: topic.to_owned(),
            topic: t,
            queue,
            gaps,
            known,
        }))
    }
}

fn first_queued(frames: &VecDeque<Frame>) -> Vec<(StreamId, u64)> {
    let mut out: Vec<(StreamId, u64)> = Vec::new();
    for f in frames {
        if !out.iter().any(|(s, _)| *s == f.header.stream) {
            out.push((f.header.stream, f.header.seq));
        }
    }
    out
}

struct LocalPublisher {
    registry: Arc<Registry>,
    topic_name: String,
    topic: Arc<Topic>,
    id: u64,
    options: PublisherOptions,
    order: PublishOrder,
    epoch: u64,
}

impl LocalPublisher {
    /// Sends `frame`; `admission` says whether it withdraws frames of its history.
    fn send(&mut self, frame: Frame, admission: Admission) -> Result<()> {
        self.order.record(&frame.header);
        let subs = {
            let mut st = self.topic.state.lock();
            if let Some(slot) = st.publishers.iter_mut().find(|p| p.id == self.id)
                && slot.history_cap > 0
            {
                if let Admission::Rewind { from } = admission {
                    slot.history.retain(|f| f.header.seq < from);
                }
                if slot.history.len() == slot.history_cap {
                    slot.history.pop_front();
                }
                slot.history.push_back(frame.clone());
            }
            st.subscribers.clone()
        };
        let depth_cap = self.options.queue_depth;
        let mut cut = Vec::new();
        for sub in &subs {
            let depth = sub.depth.min(depth_cap);
            let mut q = sub.state.lock();
            if q.closed || q.disconnected.is_some() {
                continue;
            }
            if frame.payload.len() > sub.max_payload {
                q.disconnected = Some(format!(
                    "a frame of {} bytes exceeds the subscriber's max_payload of {}",
                    frame.payload.len(),
                    sub.max_payload
                ));
                q.frames.clear();
                sub.not_empty.notify_all();
                cut.push(sub.id);
                continue;
            }
            while q.frames.len() >= depth {
                match self.options.policy {
                    SlowSubscriberPolicy::Block => {
                        let _blocked = Waiting::new(&self.registry.blocked_publishers);
                        sub.not_full.wait(&mut q);
                        if q.closed {
                            break;
                        }
                    }
                    SlowSubscriberPolicy::DropOldest => {
                        q.frames.pop_front();
                    }
                    _ => {
                        q.disconnected = Some(format!(
                            "its queue of {depth} frames was full (slow-subscriber policy disconnect)"
                        ));
                        q.frames.clear();
                        cut.push(sub.id);
                        break;
                    }
                }
            }
            if q.closed || q.disconnected.is_some() {
                sub.not_empty.notify_all();
                continue;
            }
            if !q.first_queued.iter().any(|(s, _)| *s == frame.header.stream) {
                q.first_queued.push((frame.header.stream, frame.header.seq));
            }
            q.frames.push_back(frame.clone());
            sub.not_empty.notify_all();
        }
        if !cut.is_empty() {
            self.topic.state.lock().subscribers.retain(|s| !cut.contains(&s.id));
        }
        Ok(())
    }

    fn check(&self, seq: u64, span: u32, len: usize) -> Result<Admission> {
        if span == 0 {
            return Err(Error::InvalidArgument("a frame's span must be at least 1".into()));
        }
        if len > self.options.max_payload {
            return Err(Error::FrameTooLarge {
                topic: self.topic_name.clone(),
                len: len as u64,
                max: self.options.max_payload as u64,
            });
        }
        self.order.admit(seq, self.epoch).map_err(|next| {
            Error::InvalidArgument(format!(
                "sequence {seq} on topic {:?} is below the stream's next sequence {next} \
                 (only a newer epoch may rewind)",
                self.topic_name
            ))
        })
    }
}

impl TopicPublisher for LocalPublisher {
    fn stream(&self) -> StreamId {
        self.options.stream
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()> {
        let admission = self.check(seq, span, payload.len())?;
        let header = FrameHeader { stream: self.options.stream, seq, span, epoch: self.epoch };
        self.send(Frame { header, payload: Arc::from(payload) }, admission)
    }

    fn publish_with(
        &mut self,
        seq: u64,
        span: u32,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<()> {
        let admission = self.check(seq, span, len)?;
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        let header = FrameHeader { stream: self.options.stream, seq, span, epoch: self.epoch };
        self.send(Frame { header, payload: Arc::from(buf) }, admission)
    }

    fn subscriber_count(&self) -> usize {
        let st = self.topic.state.lock();
        st.subscribers
            .iter()
            .filter(|s| {
                let q = s.state.lock();
                !q.closed && q.disconnected.is_none()
            })
            .count()
    }
}

impl Drop for LocalPublisher {
    fn drop(&mut self) {
        self.topic.state.lock().publishers.retain(|p| p.id != self.id);
    }
}

struct LocalSubscriber {
    registry: Arc<Registry>,
    topic_name: String,
    topic: Arc<Topic>,
    queue: Arc<SubQueue>,
    gaps: GapTracker,
    /// Streams whose first queued sequence was handed to `gaps`.
    known: Vec<StreamId>,
}

impl LocalSubscriber {
    fn drain(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        let frames: Vec<Frame> = {
            let mut q = self.queue.state.lock();
            if let Some(reason) = &q.disconnected {
                return Err(Error::Disconnected {
                    topic: self.topic_name.clone(),
                    reason: reason.clone(),
                });
            }
            for (stream, seq) in &q.first_queued {
                if !self.known.contains(stream) {
                    self.known.push(*stream);
                    self.gaps.expect(*stream, *seq);
                }
            }
            let taken: Vec<Frame> = q.frames.drain(..).collect();
            if !taken.is_empty() {
                self.queue.not_full.notify_all();
            }
            taken
        };
        let mut n = 0;
        for f in frames {
            if let Some((from, to)) = self.gaps.observe(&f.header) {
                on(Delivery::Gap { stream: f.header.stream, from, to });
                n += 1;
            }
            on(Delivery::Frame { header: f.header, payload: &f.payload });
            n += 1;
        }
        Ok(n)
    }
}

impl TopicSubscriber for LocalSubscriber {
    fn poll(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        self.drain(on)
    }

    fn wait(&mut self, timeout: Duration, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        {
            let mut q = self.queue.state.lock();
            if q.frames.is_empty() && q.disconnected.is_none() {
                let _waiting = Waiting::new(&self.registry.waiting_subscribers);
                while q.frames.is_empty() && q.disconnected.is_none() {
                    if self.queue.not_empty.wait_until(&mut q, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        self.drain(on)
    }
}

impl Drop for LocalSubscriber {
    fn drop(&mut self) {
        {
            let mut q = self.queue.state.lock();
            q.closed = true;
            q.frames.clear();
        }
        self.queue.not_full.notify_all();
        let id = self.queue.id;
        self.topic.state.lock().subscribers.retain(|s| s.id != id);
    }
}
