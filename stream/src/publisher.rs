//! A message publisher over any [`TopicPublisher`]: its own dense sequence, batches
//! and heartbeats.
//!
//! Every frame is a message frame (see [`crate::messages`]): [`Publisher::publish`]
//! sends a frame of one message with span 1, [`Publisher::publish_batch`] a frame of
//! `n` messages with span `n`. Sequence numbers are dense: message `i` of the stream has
//! sequence `first_seq + i`.
//!
//! # Heartbeats
//!
//! Heartbeats are driven by the caller: [`Publisher::tick`] sends a [`Heartbeat`] when
//! nothing was published for [`PublisherConfig::heartbeat_interval`] (call it from the
//! publishing loop or a timer; there is no background thread). A heartbeat is a message
//! of the stream like any other — it takes the next sequence number — and carries the
//! sequence of the last message before it, so a subscriber that lost the stream's last
//! frames learns it (as a gap) without waiting for new data.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_core::transport::{StreamId, TopicPublisher};

use crate::error::{Error, Result};
use crate::messages::{Heartbeat, Message, encode_frame};

/// Configuration of a [`Publisher`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PublisherConfig {
    /// Sequence of the first message (a publisher continuing a stream passes the next
    /// sequence it must use).
    pub first_seq: u64,
    /// Idle time after which [`Publisher::tick`] sends a heartbeat; `None` disables them.
    pub heartbeat_interval: Option<Duration>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self { first_seq: 1, heartbeat_interval: Some(Duration::from_secs(1)) }
    }
}

impl PublisherConfig {
    /// Sets [`PublisherConfig::first_seq`].
    pub fn with_first_seq(mut self, seq: u64) -> Self {
        self.first_seq = seq;
        self
    }

    /// Sets [`PublisherConfig::heartbeat_interval`].
    pub fn with_heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }
}

/// Publishes [`Message`]s with a dense sequence; see the module docs.
pub struct Publisher {
    inner: Box<dyn TopicPublisher>,
    next_seq: u64,
    heartbeat_interval: Option<Duration>,
    last_sent: Instant,
    heartbeats: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stream", &self.inner.stream())
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Publisher {
    /// A publisher sending through `inner`.
    pub fn new(inner: Box<dyn TopicPublisher>, config: PublisherConfig) -> Self {
        Self {
            inner,
            next_seq: config.first_seq.max(1),
            heartbeat_interval: config.heartbeat_interval,
            last_sent: Instant::now(),
            heartbeats: 0,
        }
    }

    /// The stream id stamped on every frame.
    pub fn stream(&self) -> StreamId {
        self.inner.stream()
    }

    /// The sequence the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence of the last message sent (`first_seq - 1` before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Heartbeats sent so far.
    pub fn heartbeats_sent(&self) -> u64 {
        self.heartbeats
    }

    /// Subscribers connected to the underlying endpoint.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscriber_count()
    }

    /// Publishes one message; returns its sequence.
    pub fn publish(&mut self, message: &Message) -> Result<u64> {
        self.publish_batch(std::slice::from_ref(message))
    }

    /// Publishes `messages` (at least one) as one frame of span `messages.len()`;
    /// returns the first message's sequence.
    pub fn publish_batch(&mut self, messages: &[Message]) -> Result<u64> {
        let frame = encode_frame(messages)?;
        let span = u32::try_from(messages.len())
            .map_err(|_| Error::InvalidArgument("too many messages for one frame".into()))?;
        let seq = self.next_seq;
        self.inner.publish(seq, span, &frame)?;
        self.inner.flush()?;
        self.next_seq += u64::from(span);
        self.last_sent = Instant::now();
        Ok(seq)
    }

    /// Sends a heartbeat if nothing was sent for the heartbeat interval; returns whether
    /// it did. Call it regularly (at least as often as the interval).
    pub fn tick(&mut self) -> Result<bool> {
        match self.heartbeat_interval {
            Some(interval) if self.last_sent.elapsed() >= interval => {
                self.heartbeat()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sends a heartbeat now; returns its sequence.
    pub fn heartbeat(&mut self) -> Result<u64> {
        let hb = Message::Heartbeat(Heartbeat {
            stream: self.inner.stream().0,
            last_seq: self.last_seq(),
            ts_nanos: now_nanos(),
        });
        let seq = self.publish(&hb)?;
        self.heartbeats += 1;
        Ok(seq)
    }

    /// Pushes anything the medium buffered.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.inner.flush()?)
    }
}
