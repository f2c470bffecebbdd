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
//! is created, naming the sequence it starts after.

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
    /// Subscribers known (that sent an ACK).
    pub subscribers: u64,
}

struct SubscriberState {
    acked: u64,
    progressed_at: Instant,
    redelivered_at: Option<Instant>,
}

struct Inner {
    topic: String,
    transport: Arc<dyn Transport>,
    options: ReliableOptions,
    data: Box<dyn TopicPublisher>,
    redelivery: Box<dyn TopicPublisher>,
    redelivery_next: u64,
    acks: Box<dyn TopicSubscriber>,
    log: Option<Arc<dyn CommitLog>>,
    buffer: VecDeque<(u64, u32, Arc<[u8]>)>,
    last_published: u64,
    subscribers: HashMap<u64, SubscriberState>,
    stats: ReliableStats,
}

/// A publisher that keeps unacknowledged frames and redelivers them; see the module docs.
pub struct ReliablePublisher {
    inner: Arc<Mutex<Inner>>,
    stream: StreamId,
}

/// Shared access to a [`ReliablePublisher`] for servicing ACKs and redelivery from
/// another thread.
#[derive(Clone)]
pub struct ReliableHandle {
    inner: Arc<Mutex<Inner>>,
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
        let acks = transport.subscriber(
            &ack_topic(topic),
            &SubscriberOptions { queue_depth: 65_536, ..Default::default() },
        )?;
        let stream = data.stream();
        Ok(Self {
            stream,
            inner: Arc::new(Mutex::new(Inner {
                topic: topic.to_owned(),
                transport,
                options,
                data,
                redelivery,
                redelivery_next: 0,
                acks,
                log,
                buffer: VecDeque::new(),
                last_published: 0,
                subscribers: HashMap::new(),
                stats: ReliableStats::default(),
            })),
        })
    }

    /// A handle to service ACKs and redelivery from any thread.
    pub fn handle(&self) -> ReliableHandle {
        ReliableHandle { inner: Arc::clone(&self.inner) }
    }
}

impl Inner {
    fn trim(&mut self) {
        let min_acked = self.subscribers.values().map(|s| s.acked).min();
        if let Some(min) = min_acked {
            while self
                .buffer
                .front()
                .is_some_and(|(seq, span, _)| seq + u64::from(*span) - 1 <= min)
            {
                self.buffer.pop_front();
            }
        }
        while self.buffer.len() > self.options.buffer_frames {
            self.buffer.pop_front();
            if self.log.is_none() {
                self.stats.unrecoverable += 1;
            }
        }
    }

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
            let s = self.subscribers.entry(id).or_insert(SubscriberState {
                acked: seq,
                progressed_at: now,
                redelivered_at: None,
            });
            if seq > s.acked {
                s.acked = seq;
                s.progressed_at = now;
            }
        }
        self.stats.subscribers = self.subscribers.len() as u64;
        Ok(())
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

    fn redeliver(&mut self, from: u64) -> Result<()> {
        let burst = self.options.redelivery_burst.max(1);
        let mut sent = 0;
        let mut next = from;
        // A log reader positioned at `next` while consecutive sequences come from the log.
        let mut reader: Option<Box<dyn strata_core::WalReader>> = None;
        while sent < burst && next <= self.last_published {
            let idx = self.buffer.partition_point(|(seq, span, _)| seq + u64::from(*span) <= next);
            if let Some((seq, span, payload)) = self.buffer.get(idx).cloned()
                && seq <= next
            {
                self.send_redelivery(seq, span, &payload)?;
                self.stats.redelivered_from_buffer += 1;
                next = seq + u64::from(span.max(1));
                reader = None;
                sent += 1;
                continue;
            }
            // `next` is not in memory (pushed out, or never published because the
            // medium refused it): the log serves it.
            let Some(log) = self.log.clone() else { break };
            if reader.is_none() {
                reader = Some(log.read_from(SeqNo(next))?);
            }
            let Some(r) = reader.as_mut() else { break };
            let Some(b) = r.next_batch()? else { break };
            if b.last_seq().0 < next {
                continue;
            }
            self.send_redelivery(b.first_seq.0, b.count.max(1), &b.payload)?;
            self.stats.redelivered_from_log += 1;
            next = b.last_seq().0 + 1;
            sent += 1;
        }
        self.redelivery.flush()?;
        Ok(())
    }

    fn service(&mut self) -> Result<()> {
        self.read_acks()?;
        let now = Instant::now();
        let timeout = self.options.redelivery_timeout;
        let due: Vec<u64> = self
            .subscribers
            .iter_mut()
            .filter(|(_, s)| {
                s.acked < self.last_published
                    && now.duration_since(s.progressed_at) >= timeout
                    && s.redelivered_at.is_none_or(|t| now.duration_since(t) >= timeout)
            })
            .map(|(_, s)| {
                s.redelivered_at = Some(now);
                s.acked + 1
            })
            .collect();
        for from in due {
            self.redeliver(from)?;
        }
        self.trim();
        Ok(())
    }
}

impl ReliableHandle {
    /// Reads ACKs and redelivers to subscribers that are behind; see the module docs.
    pub fn service(&self) -> Result<()> {
        self.inner.lock().service()
    }

    /// Counters so far.
    pub fn stats(&self) -> ReliableStats {
        self.inner.lock().stats
    }

    /// The lowest sequence acknowledged by every known subscriber (`None`: none known).
    pub fn min_acked(&self) -> Option<u64> {
        self.inner.lock().subscribers.values().map(|s| s.acked).min()
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

    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> strata_core::Result<()> {
        let mut inner = self.inner.lock();
        inner.data.publish(seq, span, payload)?;
        inner.last_published = seq + u64::from(span.max(1)) - 1;
        inner.buffer.push_back((seq, span, Arc::from(payload)));
        inner.trim();
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
        self.inner.lock().data.flush()
    }

    fn subscriber_count(&self) -> usize {
        self.inner.lock().data.subscriber_count()
    }
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
        let ack = transport.publisher(
            &ack_topic(topic),
            &PublisherOptions { stream: StreamId(id), max_payload: 16, ..Default::default() },
        )?;
        let mut s = Self {
            id,
            data,
            redelivery,
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

    /// Waits up to `timeout` for frames on either topic, delivers every frame that is
    /// next in sequence to `on(seq, span, payload)` and acknowledges progress. Returns
    /// the frames delivered.
    pub fn wait(
        &mut self,
        timeout: Duration,
        mut on: impl FnMut(u64, u32, &[u8]),
    ) -> Result<usize> {
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
