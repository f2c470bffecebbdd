//! Reliable delivery: acknowledgements from subscribers and redelivery by the publisher.
//!
//! A [`ReliableSubscriber`] acknowledges the last sequence it processed in order by
//! publishing an ACK frame on `<topic>/ack` (payload: subscriber id, acknowledged
//! sequence; both u64 little endian). The [`ReliablePublisher`] — a [`TopicPublisher`]
//! wrapper, so it also carries the [`CommitStream`](crate::CommitStream) — keeps every
//! frame not yet acknowledged by all known subscribers in a bounded buffer. Frames
//! pushed out of a full buffer are served from the store's log instead (when the
//! publisher was given a [`CommitLog`]; without one they are no longer redeliverable
//! and counted in [`ReliableStats::unrecoverable`]).
//!
//! [`ReliableHandle::service`] (call it periodically, or run
//! [`ReliableHandle::spawn_service`]) reads ACKs and, for each subscriber whose
//! acknowledgement has not reached the last published sequence and has not moved for
//! [`ReliableOptions::redelivery_timeout`], republishes up to
//! [`ReliableOptions::redelivery_burst`] frames after its acknowledged sequence on
//! `<topic>/redelivery`. The subscriber merges both topics: it delivers frames in
//! sequence order exactly once, holding frames that arrive after a hole until the hole
//! is filled.
//!
//! A subscriber is known to the publisher from its first ACK on; it sends one when it
//! is created, naming the sequence it starts after, and one on every
//! [`ReliableSubscriber::wait`] (also when nothing arrived), so a silent subscriber is a
//! gone one.
//!
//! # Dead and lost subscribers
//!
//! - **Eviction.** A subscriber that sent no ACK for [`ReliableOptions::evict_after`]
//!   (its process died, its endpoint was dropped, it stopped calling `wait`) is evicted:
//!   it no longer holds frames in the buffer and gets no redelivery. Counted in
//!   [`ReliableStats::evicted`] and logged. An ACK from it later admits it again.
//! - **Cut-off.** A subscriber whose next sequence is neither in the buffer nor in the
//!   log any more (the log's oldest segments were deleted, or there is no log) is cut
//!   off: the publisher stops redelivering to it, sends it a notice on
//!   `<topic>/cutoff` (payload: id, requested sequence, oldest available sequence; u64
//!   little endian each), counts it in [`ReliableStats::cut_off`] and logs it. Its
//!   [`ReliableSubscriber::wait`] then returns
//!   [`strata_core::Error::SequenceUnavailable`] naming both. The other subscribers are
//!   served as before; ACKs from the cut-off subscriber are ignored until it resumes at
//!   a sequence the publisher can serve.
//!
//! # Locking
//!
//! The publishing path ([`TopicPublisher::publish`]) and the service share only the
//! buffer, under a lock held for in-memory work. The service copies what it needs from
//! the buffer (shared payloads), releases that lock, and reads the log without it: a
//! slow log read delays redelivery, never a publish.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::SeqNo;
use strata_core::transport::{
    Delivery, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher,
    TopicSubscriber, Transport,
};

use crate::error::{Error, Result};
use crate::tiers::CommitLog;

/// The ACK topic of `topic`.
pub fn ack_topic(topic: &str) -> String {
    format!("{topic}/ack")
}

/// The redelivery topic of `topic`.
pub fn redelivery_topic(topic: &str) -> String {
    format!("{topic}/redelivery")
}

/// The cut-off notice topic of `topic` (see the module docs).
pub fn cutoff_topic(topic: &str) -> String {
    format!("{topic}/cutoff")
}

/// Options of a [`ReliablePublisher`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReliableOptions {
    /// Unacknowledged frames kept in memory; older ones are served from the log.
    pub buffer_frames: usize,
    /// How long a subscriber's acknowledgement may stand still, behind the last
    /// published sequence, before frames are redelivered to it.
    pub redelivery_timeout: Duration,
    /// Most frames redelivered per subscriber per timeout.
    pub redelivery_burst: usize,
    /// A subscriber that sent no ACK for this long is evicted (see the module docs).
    pub evict_after: Duration,
    /// Options of the data endpoint (the redelivery endpoint uses the same, with a
    /// queue of at least `redelivery_burst` frames).
    pub publisher: PublisherOptions,
}

impl Default for ReliableOptions {
    fn default() -> Self {
        Self {
            buffer_frames: 4096,
            redelivery_timeout: Duration::from_millis(50),
            redelivery_burst: 64,
            evict_after: Duration::from_secs(10),
            publisher: PublisherOptions::default(),
        }
    }
}

impl ReliableOptions {
    /// Sets [`ReliableOptions::buffer_frames`].
    pub fn with_buffer_frames(mut self, n: usize) -> Self {
        self.buffer_frames = n.max(1);
        self
    }

    /// Sets [`ReliableOptions::redelivery_timeout`].
    pub fn with_redelivery_timeout(mut self, t: Duration) -> Self {
        self.redelivery_timeout = t;
        self
    }

    /// Sets [`ReliableOptions::evict_after`].
    pub fn with_evict_after(mut self, t: Duration) -> Self {
        self.evict_after = t;
        self
    }

    /// Sets the data endpoint's options.
    pub fn with_publisher(mut self, p: PublisherOptions) -> Self {
        self.publisher = p;
        self
    }
}

/// Counters of a [`ReliablePublisher`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReliableStats {
    /// ACK frames received.
    pub acks: u64,
    /// Frames redelivered from the in-memory buffer.
    pub redelivered_from_buffer: u64,
    /// Batches redelivered from the log.
    pub redelivered_from_log: u64,
    /// Frames pushed out of the buffer with no log to serve them.
    pub unrecoverable: u64,
    /// Subscribers known (that sent an ACK and were neither evicted nor cut off).
    pub subscribers: u64,
    /// Subscribers evicted for sending no ACK within [`ReliableOptions::evict_after`].
    pub evicted: u64,
    /// Subscribers cut off because their next sequence left the buffer and the log.
    pub cut_off: u64,
}

struct SubscriberState {
    acked: u64,
    progressed_at: Instant,
    heard_at: Instant,
    redelivered_at: Option<Instant>,
}

type Buffered = (u64, u32, Arc<[u8]>);

/// What the publishing path owns; its lock is never held across a log read.
struct PubState {
    data: Box<dyn TopicPublisher>,
    buffer: VecDeque<Buffered>,
    buffer_frames: usize,
    last_published: u64,
    /// The lowest sequence acknowledged by every known subscriber (set by the service).
    min_acked: Option<u64>,
    has_log: bool,
    unrecoverable: u64,
}

/// What the service owns: ACKs, subscribers, the redelivery and cut-off endpoints.
struct ServiceState {
    topic: String,
    transport: Arc<dyn Transport>,
    options: ReliableOptions,
    redelivery: Box<dyn TopicPublisher>,
    redelivery_next: u64,
    cutoff: Box<dyn TopicPublisher>,
    cutoff_seq: u64,
    acks: Box<dyn TopicSubscriber>,
    log: Option<Arc<dyn CommitLog>>,
    subscribers: HashMap<u64, SubscriberState>,
    /// Cut-off subscribers and the oldest sequence available when they were cut off.
    cut: HashMap<u64, u64>,
    stats: ReliableStats,
}

struct Shared {
    publish: Mutex<PubState>,
    service: Mutex<ServiceState>,
}

/// A publisher that keeps unacknowledged frames and redelivers them; see the module docs.
pub struct ReliablePublisher {
    shared: Arc<Shared>,
    stream: StreamId,
}

/// Shared access to a [`ReliablePublisher`] for servicing ACKs and redelivery from
/// another thread.
#[derive(Clone)]
pub struct ReliableHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReliablePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliablePublisher").field("stream", &self.stream).finish()
    }
}

impl std::fmt::Debug for ReliableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliableHandle").finish_non_exhaustive()
    }
}

fn redelivery_options(options: &ReliableOptions) -> PublisherOptions {
    let mut o = options.publisher.clone();
    o.queue_depth = o.queue_depth.max(options.redelivery_burst);
    o.history = 0;
    o.policy = SlowSubscriberPolicy::DropOldest;
    o
}

fn cutoff_options(options: &ReliableOptions) -> PublisherOptions {
    PublisherOptions {
        stream: options.publisher.stream,
        max_payload: CUTOFF_LEN,
        queue_depth: 64,
        history: 0,
        // A subscriber that does not read its notices must never stall the service.
        policy: SlowSubscriberPolicy::DropOldest,
        ..PublisherOptions::default()
    }
}

impl ReliablePublisher {
    /// A reliable publisher for `topic` on `transport`. `log` serves frames pushed out
    /// of the buffer (pass the store for the commit stream, `None` otherwise).
    pub fn new(
        transport: Arc<dyn Transport>,
        topic: &str,
        log: Option<Arc<dyn CommitLog>>,
        options: ReliableOptions,
    ) -> Result<Self> {
        let data = transport.publisher(topic, &options.publisher)?;
        let redelivery =
            transport.publisher(&redelivery_topic(topic), &redelivery_options(&options))?;
        let cutoff = transport.publisher(&cutoff_topic(topic), &cutoff_options(&options))?;
        let acks = transport.subscriber(
            &ack_topic(topic),
            &SubscriberOptions { queue_depth: 65_536, ..Default::default() },
        )?;
        let stream = data.stream();
        Ok(Self {
            stream,
            shared: Arc::new(Shared {
                publish: Mutex::new(PubState {
                    data,
                    buffer: VecDeque::new(),
                    buffer_frames: options.buffer_frames,
                    last_published: 0,
                    min_acked: None,
                    has_log: log.is_some(),
                    unrecoverable: 0,
                }),
                service: Mutex::new(ServiceState {
                    topic: topic.to_owned(),
                    transport,
                    options,
                    redelivery,
                    redelivery_next: 0,
                    cutoff,
                    cutoff_seq: 0,
                    acks,
                    log,
                    subscribers: HashMap::new(),
                    cut: HashMap::new(),
                    stats: ReliableStats::default(),
                }),
            }),
        })
    }

    /// A handle to service ACKs and redelivery from any thread.
    pub fn handle(&self) -> ReliableHandle {
        ReliableHandle { shared: Arc::clone(&self.shared) }
    }
}

impl PubState {
    fn trim(&mut self) {
        if let Some(min) = self.min_acked {
            while self
                .buffer
                .front()
                .is_some_and(|(seq, span, _)| seq + u64::from(*span) - 1 <= min)
            {
                self.buffer.pop_front();
            }
        }
        while self.buffer.len() > self.buffer_frames {
            self.buffer.pop_front();
            if !self.has_log {
                self.unrecoverable += 1;
            }
        }
    }

    /// Up to `max` buffered frames holding `from` or later (shared payloads: a copy of
    /// the references, not of the bytes).
    fn frames_from(&self, from: u64, max: usize) -> Vec<Buffered> {
        let idx = self.buffer.partition_point(|(seq, span, _)| seq + u64::from(*span) <= from);
        self.buffer.range(idx..).take(max).cloned().collect()
    }
}

/// One subscriber due for redelivery, with what the buffer held for it.
struct Due {
    id: u64,
    from: u64,
    buffered: Vec<Buffered>,
}

/// Why redelivery to one subscriber stopped.
enum Unavailable {
    /// Its next sequence is gone: `(requested, oldest available)`.
    Gone(u64, u64),
    /// Another failure (logged; the subscriber is retried next time).
    Failed(Error),
}

impl ServiceState {
    fn read_acks(&mut self) -> Result<()> {
        let mut acks = Vec::new();
        self.acks.poll(&mut |d| {
            if let Delivery::Frame { payload, .. } = d
                && let Some(ack) = decode_ack(payload)
            {
                acks.push(ack);
            }
        })?;
        let now = Instant::now();
        for (id, seq) in acks {
            self.stats.acks += 1;
            if let Some(&oldest) = self.cut.get(&id) {
                if seq + 1 < oldest {
                    // Still behind what was gone when it was cut off: a stale ACK.
                    continue;
                }
                self.cut.remove(&id);
            }
            let s = self.subscribers.entry(id).or_insert(SubscriberState {
                acked: seq,
                progressed_at: now,
                heard_at: now,
                redelivered_at: None,
            });
            s.heard_at = now;
            if seq > s.acked {
                s.acked = seq;
                s.progressed_at = now;
            }
        }
        Ok(())
    }

    /// Evicts subscribers silent for longer than `evict_after`.
    fn evict_silent(&mut self, now: Instant) {
        let limit = self.options.evict_after;
        let silent: Vec<u64> = self
            .subscribers
            .iter()
            .filter(|(_, s)| now.duration_since(s.heard_at) >= limit)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            if let Some(s) = self.subscribers.remove(&id) {
                self.stats.evicted += 1;
                tracing::warn!(topic = %self.topic, subscriber = id, acked = s.acked,
                    silent_ms = now.duration_since(s.heard_at).as_millis() as u64,
                    "reliable publisher: evicting a subscriber that sent no ACK within evict_after");
            }
        }
    }

    fn send_redelivery(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()> {
        if seq < self.redelivery_next {
            // The endpoint only accepts increasing sequences: start a fresh one.
            self.redelivery = self
                .transport
                .publisher(&redelivery_topic(&self.topic), &redelivery_options(&self.options))?;
        }
        self.redelivery.publish(seq, span, payload)?;
        self.redelivery_next = seq + u64::from(span.max(1));
        Ok(())
    }

    /// Redelivers to one subscriber: from what the buffer held for it, and from the
    /// log (read with no publish lock held) where the buffer does not hold `next`.
    fn redeliver(&mut self, due: &Due, last_published: u64) -> Result<(), Unavailable> {
        let burst = self.options.redelivery_burst.max(1);
        let mut sent = 0;
        let mut next = due.from;
        let mut buffered = due.buffered.iter().peekable();
        // A log reader positioned at `next` while consecutive sequences come from the log.
        let mut reader: Option<Box<dyn strata_core::WalReader>> = None;
        while sent < burst && next <= last_published {
            while buffered.peek().is_some_and(|(seq, span, _)| seq + u64::from(*span) <= next) {
                buffered.next();
            }
            if let Some((seq, span, payload)) = buffered.peek()
                && *seq <= next
            {
                self.send_redelivery(*seq, *span, payload).map_err(Unavailable::Failed)?;
                self.stats.redelivered_from_buffer += 1;
                next = seq + u64::from((*span).max(1));
                reader = None;
                sent += 1;
                continue;
            }
            // `next` is not in memory (pushed out, or never published because the
            // medium refused it): the log serves it.
            let Some(log) = self.log.clone() else {
                let oldest = buffered.peek().map_or(last_published + 1, |(seq, ..)| *seq);
                return Err(Unavailable::Gone(next, oldest));
            };
            if reader.is_none() {
                match log.read_from(SeqNo(next)) {
                    Ok(r) => reader = Some(r),
                    Err(strata_core::Error::SequenceUnavailable { oldest, .. }) => {
                        return Err(Unavailable::Gone(next, oldest.0));
                    }
                    Err(e) => return Err(Unavailable::Failed(e.into())),
                }
            }
            let Some(r) = reader.as_mut() else { break };
            let b = match r.next_batch() {
                Ok(Some(b)) => b,
                // Not readable yet (the log bounds readers to durable batches): next time.
                Ok(None) => break,
                Err(strata_core::Error::SequenceUnavailable { oldest, .. }) => {
                    return Err(Unavailable::Gone(next, oldest.0));
                }
                Err(e) => return Err(Unavailable::Failed(e.into())),
            };
            if b.last_seq().0 < next {
                continue;
            }
            self.send_redelivery(b.first_seq.0, b.count.max(1), &b.payload)
                .map_err(Unavailable::Failed)?;
            self.stats.redelivered_from_log += 1;
            next = b.last_seq().0 + 1;
            sent += 1;
        }
        Ok(())
    }

    /// Cuts subscriber `id` off: no more redelivery, a notice on the cut-off topic.
    fn cut_off(&mut self, id: u64, requested: u64, oldest: u64) {
        self.subscribers.remove(&id);
        self.cut.insert(id, oldest);
        self.stats.cut_off += 1;
        tracing::warn!(topic = %self.topic, subscriber = id, requested, oldest,
            "reliable publisher: cutting off a subscriber whose next sequence is no longer held; the others continue");
        self.cutoff_seq += 1;
        let notice = encode_cutoff(id, requested, oldest);
        if let Err(e) =
            self.cutoff.publish(self.cutoff_seq, 1, &notice).and_then(|()| self.cutoff.flush())
        {
            tracing::warn!(topic = %self.topic, subscriber = id, error = %e,
                "reliable publisher: cannot send the cut-off notice");
        }
    }
}

impl ReliableHandle {
    /// Reads ACKs, evicts silent subscribers, cuts off those whose position is gone and
    /// redelivers to the others that are behind; see the module docs. A failure serving
    /// one subscriber does not stop the others: the first such error is returned after
    /// all were served.
    pub fn service(&self) -> Result<()> {
        let mut svc = self.shared.service.lock();
        svc.read_acks()?;
        let now = Instant::now();
        svc.evict_silent(now);
        let timeout = svc.options.redelivery_timeout;
        let burst = svc.options.redelivery_burst.max(1);
        let last_published = self.shared.publish.lock().last_published;
        let due: Vec<(u64, u64)> = svc
            .subscribers
            .iter_mut()
            .filter(|(_, s)| {
                s.acked < last_published
                    && now.duration_since(s.progressed_at) >= timeout
                    && s.redelivered_at.is_none_or(|t| now.duration_since(t) >= timeout)
            })
            .map(|(id, s)| {
                s.redelivered_at = Some(now);
                (*id, s.acked + 1)
            })
            .collect();
        let due: Vec<Due> = {
            // In-memory work only: the publish lock is released before any log read.
            let p = self.shared.publish.lock();
            due.into_iter()
                .map(|(id, from)| Due { id, from, buffered: p.frames_from(from, burst) })
                .collect()
        };
        let mut first_error = None;
        for d in &due {
            match svc.redeliver(d, last_published) {
                Ok(()) => {}
                Err(Unavailable::Gone(requested, oldest)) => svc.cut_off(d.id, requested, oldest),
                Err(Unavailable::Failed(e)) => {
                    tracing::warn!(topic = %svc.topic, subscriber = d.id, error = %e,
                        "reliable publisher: redelivery failed; retried at the next timeout");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = svc.redelivery.flush() {
            first_error.get_or_insert(e.into());
        }
        svc.stats.subscribers = svc.subscribers.len() as u64;
        let min_acked = svc.subscribers.values().map(|s| s.acked).min();
        drop(svc);
        let mut p = self.shared.publish.lock();
        p.min_acked = min_acked;
        p.trim();
        drop(p);
        first_error.map_or(Ok(()), Err)
    }

    /// Counters so far.
    pub fn stats(&self) -> ReliableStats {
        let unrecoverable = self.shared.publish.lock().unrecoverable;
        let mut stats = self.shared.service.lock().stats;
        stats.unrecoverable = unrecoverable;
        stats
    }

    /// The lowest sequence acknowledged by every known subscriber (`None`: none known).
    pub fn min_acked(&self) -> Option<u64> {
        self.shared.service.lock().subscribers.values().map(|s| s.acked).min()
    }

    /// Runs [`ReliableHandle::service`] every `interval` on a thread until the returned
    /// guard is dropped.
    pub fn spawn_service(&self, interval: Duration) -> Result<ServiceThread> {
        let handle = self.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strata-reliable-service".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    if let Err(e) = handle.service() {
                        tracing::warn!(error = %e, "reliable publisher: service failed");
                    }
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|e| Error::io("spawn reliable service thread", "", e))?;
        Ok(ServiceThread { stop, thread: Some(thread) })
    }
}

/// Stops the service thread when dropped.
#[derive(Debug)]
pub struct ServiceThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl TopicPublisher for ReliablePublisher {
    fn stream(&self) -> StreamId {
        self.stream
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.shared.publish.lock().data.set_epoch(epoch);
    }

    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> strata_core::Result<()> {
        let mut p = self.shared.publish.lock();
        if p.last_published > 0 && seq <= p.last_published {
            // A newer epoch's rewind (see `TopicPublisher`) would withdraw frames that
            // subscribers acknowledged and the buffer redelivers; this tier does not
            // follow that, so the rewind is refused and its owner stops publishing.
            return Err(strata_core::Error::InvalidArgument(format!(
                "the reliable tier cannot rewind to sequence {seq}: it published up to {} and \
                 its subscribers acknowledge by sequence; they must resume from the log",
                p.last_published
            )));
        }
        p.data.publish(seq, span, payload)?;
        p.last_published = seq + u64::from(span.max(1)) - 1;
        p.buffer.push_back((seq, span, Arc::from(payload)));
        p.trim();
        Ok(())
    }

    fn publish_with(
        &mut self,
        seq: u64,
        span: u32,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> strata_core::Result<()> {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        self.publish(seq, span, &buf)
    }

    fn flush(&mut self) -> strata_core::Result<()> {
        self.shared.publish.lock().data.flush()
    }

    fn subscriber_count(&self) -> usize {
        self.shared.publish.lock().data.subscriber_count()
    }
}

const CUTOFF_LEN: usize = 24;

fn encode_cutoff(id: u64, requested: u64, oldest: u64) -> [u8; CUTOFF_LEN] {
    let mut b = [0u8; CUTOFF_LEN];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b[8..16].copy_from_slice(&requested.to_le_bytes());
    b[16..].copy_from_slice(&oldest.to_le_bytes());
    b
}

fn decode_cutoff(payload: &[u8]) -> Option<(u64, u64, u64)> {
    if payload.len() != CUTOFF_LEN {
        return None;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&payload[i..i + 8]);
        u64::from_le_bytes(w)
    };
    Some((word(0), word(8), word(16)))
}

fn encode_ack(id: u64, seq: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b[8..].copy_from_slice(&seq.to_le_bytes());
    b
}

fn decode_ack(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.len() != 16 {
        return None;
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&payload[..8]);
    b.copy_from_slice(&payload[8..]);
    Some((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

/// Counters of a [`ReliableSubscriber`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReliableSubscriberStats {
    /// Frames delivered from the data topic.
    pub live: u64,
    /// Frames delivered from the redelivery topic.
    pub redelivered: u64,
    /// Frames dropped as already processed.
    pub duplicates: u64,
    /// Gaps the data topic reported.
    pub gaps: u64,
}

/// The subscribing side of reliable delivery; see the module docs.
pub struct ReliableSubscriber {
    id: u64,
    data: Box<dyn TopicSubscriber>,
    redelivery: Box<dyn TopicSubscriber>,
    cutoff: Box<dyn TopicSubscriber>,
    /// Set once the publisher cut this subscriber off: `(requested, oldest available)`.
    cut_off: Option<(u64, u64)>,
    ack: Box<dyn TopicPublisher>,
    ack_seq: u64,
    acked: u64,
    processed: u64,
    pending: BTreeMap<u64, (u32, Vec<u8>, bool)>,
    max_pending: usize,
    stats: ReliableSubscriberStats,
}

impl std::fmt::Debug for ReliableSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliableSubscriber")
            .field("id", &self.id)
            .field("processed", &self.processed)
            .finish()
    }
}

impl ReliableSubscriber {
    /// Subscribes to `topic` and its redelivery topic as subscriber `id` (unique per
    /// topic), starting after sequence `start_after`, and announces itself with an ACK.
    pub fn new(
        transport: &dyn Transport,
        topic: &str,
        id: u64,
        start_after: u64,
        options: &SubscriberOptions,
    ) -> Result<Self> {
        let data = transport.subscriber(topic, options)?;
        let redelivery_opts =
            SubscriberOptions { queue_depth: options.queue_depth.max(1024), ..options.clone() };
        let redelivery = transport.subscriber(&redelivery_topic(topic), &redelivery_opts)?;
        let cutoff = transport.subscriber(
            &cutoff_topic(topic),
            &SubscriberOptions { queue_depth: 64, max_payload: CUTOFF_LEN, resume_from: None },
        )?;
        let ack = transport.publisher(
            &ack_topic(topic),
            &PublisherOptions { stream: StreamId(id), max_payload: 16, ..Default::default() },
        )?;
        let mut s = Self {
            id,
            data,
            redelivery,
            cutoff,
            cut_off: None,
            ack,
            ack_seq: 0,
            acked: start_after,
            processed: start_after,
            pending: BTreeMap::new(),
            max_pending: 65_536,
            stats: ReliableSubscriberStats::default(),
        };
        s.send_ack()?;
        Ok(s)
    }

    fn send_ack(&mut self) -> Result<()> {
        self.ack_seq += 1;
        self.ack.publish(self.ack_seq, 1, &encode_ack(self.id, self.processed))?;
        self.ack.flush()?;
        self.acked = self.processed;
        Ok(())
    }

    /// The last sequence delivered in order.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Counters so far.
    pub fn stats(&self) -> ReliableSubscriberStats {
        self.stats
    }

    /// `Some((requested, oldest))` once the publisher cut this subscriber off because
    /// its next sequence (`requested`) is no longer held; `oldest` is the first
    /// sequence it could still serve. A new subscriber starting after `oldest - 1`
    /// (accepting the loss) is served again.
    pub fn cut_off(&self) -> Option<(u64, u64)> {
        self.cut_off
    }

    fn unavailable(requested: u64, oldest: u64) -> Error {
        Error::Core(strata_core::Error::SequenceUnavailable {
            requested: SeqNo(requested),
            oldest: SeqNo(oldest),
        })
    }

    /// Looks for a cut-off notice naming this subscriber.
    fn check_cut_off(&mut self) -> Result<()> {
        if self.cut_off.is_none() {
            let id = self.id;
            let mut found = None;
            self.cutoff.poll(&mut |d| {
                if let Delivery::Frame { payload, .. } = d
                    && let Some((who, requested, oldest)) = decode_cutoff(payload)
                    && who == id
                {
                    found = Some((requested, oldest));
                }
            })?;
            self.cut_off = found;
        }
        match self.cut_off {
            Some((requested, oldest)) => Err(Self::unavailable(requested, oldest)),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for frames on either topic, delivers every frame that is
    /// next in sequence to `on(seq, span, payload)` and acknowledges progress. Returns
    /// the frames delivered. Once the publisher cut this subscriber off (its next
    /// sequence is no longer held; see the module docs) it returns
    /// [`strata_core::Error::SequenceUnavailable`], on this and every later call.
    pub fn wait(
        &mut self,
        timeout: Duration,
        mut on: impl FnMut(u64, u32, &[u8]),
    ) -> Result<usize> {
        self.check_cut_off()?;
        let mut got: Vec<(u64, u32, Vec<u8>, bool)> = Vec::new();
        let mut gaps = 0;
        // Redelivered frames only arrive when the data topic lags, so wait on it in
        // short slices and look at the redelivery topic between them.
        let slice = timeout.min(Duration::from_millis(5));
        let deadline = Instant::now() + timeout;
        loop {
            self.redelivery.poll(&mut |d| {
                if let Delivery::Frame { header, payload } = d {
                    got.push((header.seq, header.span, payload.to_vec(), true));
                }
            })?;
            self.data.wait(
                if got.is_empty() { slice } else { Duration::ZERO },
                &mut |d| match d {
                    Delivery::Frame { header, payload } => {
                        got.push((header.seq, header.span, payload.to_vec(), false))
                    }
                    Delivery::Gap { .. } => gaps += 1,
                },
            )?;
            if !got.is_empty() || Instant::now() >= deadline {
                break;
            }
        }
        self.stats.gaps += gaps;
        let mut delivered = 0;
        for (seq, span, payload, redelivered) in got {
            let last = seq + u64::from(span.max(1)) - 1;
            if last <= self.processed || self.pending.contains_key(&seq) {
                self.stats.duplicates += 1;
                continue;
            }
            if self.pending.len() >= self.max_pending {
                // Keep the earliest frames: they unblock delivery first.
                if let Some((&max, _)) = self.pending.iter().next_back()
                    && seq < max
                {
                    self.pending.remove(&max);
                } else {
                    continue;
                }
            }
            self.pending.insert(seq, (span, payload, redelivered));
        }
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            let (span, _, _) = entry.get();
            let last = seq + u64::from((*span).max(1)) - 1;
            if last <= self.processed {
                entry.remove();
                self.stats.duplicates += 1;
                continue;
            }
            if seq > self.processed + 1 {
                break;
            }
            let (span, payload, redelivered) = entry.remove();
            on(seq, span, &payload);
            self.processed = last;
            delivered += 1;
            if redelivered {
                self.stats.redelivered += 1;
            } else {
                self.stats.live += 1;
            }
        }
        // Acknowledge progress (and keep announcing a standstill, so a publisher that
        // started after us learns about us).
        if self.processed > self.acked || delivered == 0 {
            self.send_ack()?;
        }
        Ok(delivered)
    }
}
