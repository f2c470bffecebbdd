//! The `Transport` contract: framed messages on named topics, between threads,
//! processes and hosts, each frame numbered so a receiver can tell what it missed.
//!
//! A transport hands out two kinds of endpoint for a topic: a [`TopicPublisher`] that
//! sends frames and a [`TopicSubscriber`] that receives them. Every frame carries a
//! [`FrameHeader`] — the publisher's [`StreamId`], the first sequence number the frame
//! covers and how many sequence numbers it covers (its span) — and a payload of bytes
//! the transport does not interpret. Sequence numbers are chosen by the caller (the
//! commit stream uses the store's own [`SeqNo`](crate::SeqNo)s, so a frame's sequence
//! is the key to resume from the log) and must increase along a stream.
//!
//! The hot path is synchronous: [`TopicSubscriber::poll`] busy-polls and returns at
//! once; [`TopicSubscriber::wait`] blocks until something arrives or the timeout
//! passes. Received payloads are lent to a callback as `&[u8]` — on shared memory that
//! is a view of the sample itself, with no copy. Publishing can be zero-copy too:
//! [`TopicPublisher::publish_with`] loans a buffer from the medium and lets the caller
//! write the payload in place.
//!
//! What happens when a subscriber cannot keep up is the endpoint's
//! [`SlowSubscriberPolicy`], chosen when the endpoint is made — never an accident of
//! buffer sizes.

use std::fmt;
use std::time::Duration;

use crate::error::Result;

/// Identifies one publisher's stream of frames on a topic.
///
/// A publisher that restarts and continues a stream (the commit stream of one store)
/// keeps its id, so subscribers see one contiguous stream; independent publishers on
/// one topic use different ids and are sequenced independently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {:#x}", self.0)
    }
}

/// What a publisher does when a subscriber's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowSubscriberPolicy {
    /// The publisher waits until the slow subscriber makes room. Nothing is lost; the
    /// slowest subscriber sets everyone's pace.
    Block,
    /// The oldest queued frame is dropped to make room. The subscriber is told: it sees
    /// a [`Delivery::Gap`] naming the sequence numbers it lost before the next frame.
    #[default]
    DropOldest,
    /// The slow subscriber is cut off; its next receive returns
    /// [`Error::Disconnected`](crate::Error::Disconnected) and it must resubscribe
    /// (typically resuming from the log).
    Disconnect,
}

impl SlowSubscriberPolicy {
    /// The policy's configuration name (`"block"`, `"drop-oldest"`, `"disconnect"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::DropOldest => "drop-oldest",
            Self::Disconnect => "disconnect",
        }
    }

    /// Parses a configuration name, as written by [`SlowSubscriberPolicy::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "block" => Some(Self::Block),
            "drop-oldest" | "drop_oldest" => Some(Self::DropOldest),
            "disconnect" => Some(Self::Disconnect),
            _ => None,
        }
    }
}

/// The numbering every frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The publisher stream the frame belongs to.
    pub stream: StreamId,
    /// The first sequence number the frame covers.
    pub seq: u64,
    /// How many sequence numbers the frame covers (`seq .. seq + span`); at least 1.
    /// A plain message has span 1; a committed batch of n entries has span n.
    pub span: u32,
    /// The epoch of the history the frame belongs to: for the commit stream, the
    /// store's epoch that wrote the batch ([`Epoch`](crate::Epoch)), so a subscriber
    /// holds `(epoch, seq)` and can ask the store on resume whether that history still
    /// stands. 0 when the publisher set none ([`TopicPublisher::set_epoch`]).
    pub epoch: u64,
}

impl FrameHeader {
    /// The sequence number the next frame of a gapless stream starts at.
    pub fn next_seq(&self) -> u64 {
        self.seq.saturating_add(u64::from(self.span.max(1)))
    }
}

/// What a subscriber's callback receives.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// One frame, its payload lent for the duration of the callback.
    Frame {
        /// The frame's numbering.
        header: FrameHeader,
        /// The payload; on shared memory, a view of the sample itself.
        payload: &'a [u8],
    },
    /// Sequence numbers `from .. to` of `stream` were lost before the frame that
    /// follows (dropped under [`SlowSubscriberPolicy::DropOldest`], or never received).
    Gap {
        /// The stream that has the hole.
        stream: StreamId,
        /// The first missing sequence number.
        from: u64,
        /// One past the last missing sequence number (the next frame's `seq`).
        to: u64,
    },
}

/// Options for a publisher endpoint.
#[derive(Clone, Debug)]
pub struct PublisherOptions {
    /// The stream id this publisher stamps on its frames.
    pub stream: StreamId,
    /// Largest payload, in bytes, the endpoint accepts. Larger payloads are refused
    /// with [`Error::FrameTooLarge`](crate::Error::FrameTooLarge).
    pub max_payload: usize,
    /// Frames a subscriber may have queued before the policy applies.
    pub queue_depth: usize,
    /// Frames kept for subscribers that join late (0: a late subscriber sees only what
    /// is published after it joined).
    pub history: usize,
    /// What to do when a subscriber's queue is full.
    pub policy: SlowSubscriberPolicy,
    /// Most subscribers the topic admits (shared-memory media size their segments by it).
    pub max_subscribers: usize,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            stream: StreamId(0),
            max_payload: 64 * 1024,
            queue_depth: 1024,
            history: 0,
            policy: SlowSubscriberPolicy::default(),
            max_subscribers: 16,
        }
    }
}

/// Options for a subscriber endpoint.
#[derive(Clone, Debug)]
pub struct SubscriberOptions {
    /// Frames the subscriber's own queue holds.
    pub queue_depth: usize,
    /// Largest payload the subscriber accepts; a larger frame is a protocol error that
    /// ends the connection (network media) rather than an allocation.
    pub max_payload: usize,
    /// On media that can resume (TCP), ask the publisher to start at this sequence
    /// instead of at its live edge; frames it still holds from there are replayed.
    pub resume_from: Option<u64>,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self { queue_depth: 1024, max_payload: 64 * 1024, resume_from: None }
    }
}

/// The sending end of a topic.
///
/// Contract:
/// - Frames are delivered to each subscriber in the order they were published.
/// - `seq` must be greater than or equal to the previous frame's
///   [`FrameHeader::next_seq`]; a smaller one is refused with
///   [`Error::InvalidArgument`](crate::Error::InvalidArgument). A larger one is allowed
///   and shows up at subscribers as a [`Delivery::Gap`].
/// - The one exception is a **rewind**: a frame whose epoch (set with
///   [`set_epoch`](Self::set_epoch)) is greater than the previous frame's may start at
///   any `seq` from 1. It says the log was truncated after `seq - 1` and a newer
///   epoch wrote what follows (an old primary that rejoined a cluster and dropped its
///   diverged tail); the frames of older epochs from `seq` on are withdrawn. A medium
///   that keeps history drops them from it where it can (a shared-memory history that
///   cannot be edited replays them only ahead of the rewinding frame). Subscribers
///   receive the rewinding frame in publish order and learn from its lower `seq` and
///   higher epoch that what they held from `seq` on was rewritten. [`PublishOrder`]
///   holds this rule for every medium.
/// - A payload longer than [`PublisherOptions::max_payload`] is refused with
///   [`Error::FrameTooLarge`](crate::Error::FrameTooLarge) and nothing is sent.
/// - Under [`SlowSubscriberPolicy::Block`] no frame is lost to a connected subscriber;
///   under the other policies a full subscriber loses frames (reported as a gap) or
///   its connection, never silently.
/// - Publishing with no subscriber connected succeeds (the frame is kept only as
///   history, if any).
pub trait TopicPublisher: Send {
    /// The stream id stamped on every frame.
    fn stream(&self) -> StreamId;

    /// Stamps `epoch` on every frame published from now on ([`FrameHeader::epoch`];
    /// 0 until it is called).
    fn set_epoch(&mut self, epoch: u64);

    /// Publishes one frame covering `seq .. seq + span`.
    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()>;

    /// Publishes one frame of exactly `len` bytes written in place by `fill` into a
    /// buffer loaned from the medium (zero-copy on shared memory). The buffer's
    /// initial contents are unspecified; `fill` must write all of it.
    fn publish_with(
        &mut self,
        seq: u64,
        span: u32,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<()>;

    /// Pushes anything buffered towards subscribers (network media batch small frames
    /// until this or until their buffer fills). Shared memory has nothing to flush.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Subscribers currently connected.
    fn subscriber_count(&self) -> usize;
}

/// The receiving end of a topic.
///
/// Contract:
/// - Frames of one stream arrive in publish order; when sequence numbers were skipped
///   (dropped, or published with a jump) a [`Delivery::Gap`] naming exactly the
///   missing range precedes the next frame. A frame whose `seq` is below the expected
///   one (a publisher that restarted and replays) is delivered as is: deduplication
///   belongs to the caller, who knows what it has processed.
/// - A subscriber sees frames published after it was created (plus the publisher's
///   history, if configured); it never sees a frame twice from one endpoint.
/// - A malformed frame from a network peer ends that connection with an error naming
///   the reason; it never reaches the callback and never panics.
/// - `poll` never blocks; `wait` blocks at most `timeout` (plus the callbacks' time).
pub trait TopicSubscriber: Send {
    /// Hands every frame available now to `on`, without blocking. Returns how many
    /// deliveries (frames and gaps) were made.
    fn poll(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize>;

    /// Waits up to `timeout` for at least one delivery, then behaves as [`poll`].
    /// Returns 0 when the timeout passed with nothing to deliver.
    ///
    /// [`poll`]: TopicSubscriber::poll
    fn wait(&mut self, timeout: Duration, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize>;
}

/// A medium that carries topics: shared memory, TCP, ...
///
/// Contract: endpoints for the same topic name made from equivalent transports (same
/// service name, same address) talk to each other, across threads and processes;
/// endpoints for different topics never see each other's frames.
pub trait Transport: Send + Sync + fmt::Debug {
    /// The transport's name (`"iceoryx"`, `"tcp"`).
    fn name(&self) -> &'static str;

    /// Creates a publisher for `topic`.
    fn publisher(&self, topic: &str, options: &PublisherOptions)
    -> Result<Box<dyn TopicPublisher>>;

    /// Creates a subscriber for `topic`.
    fn subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<Box<dyn TopicSubscriber>>;
}

/// The order rule of [`TopicPublisher`] (sequences never go back, except in a rewind
/// by a newer epoch), kept by each publisher so every medium accepts and refuses the
/// same frames.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishOrder {
    /// The previous frame's `next_seq` (none before the first frame).
    next: Option<u64>,
    /// The previous frame's epoch.
    epoch: u64,
}

/// Whether a frame may be published, per [`PublishOrder::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// At or after the previous frame's end.
    InOrder,
    /// Below it, from a newer epoch: frames of older epochs from this `seq` on are
    /// withdrawn.
    Rewind {
        /// The first withdrawn sequence (the rewinding frame's `seq`).
        from: u64,
    },
}

impl PublishOrder {
    /// Whether a frame at `seq`, stamped with `epoch`, may follow what was published.
    /// `Err(next)`: it would go backwards within an epoch (`next` is the previous
    /// frame's end), which the publisher refuses.
    pub fn admit(&self, seq: u64, epoch: u64) -> std::result::Result<Admission, u64> {
        match self.next {
            Some(next) if seq < next => {
                if epoch > self.epoch && seq >= 1 {
                    Ok(Admission::Rewind { from: seq })
                } else {
                    Err(next)
                }
            }
            _ => Ok(Admission::InOrder),
        }
    }

    /// Records a frame that was published.
    pub fn record(&mut self, header: &FrameHeader) {
        self.next = Some(header.next_seq());
        self.epoch = header.epoch;
    }

    /// The previous frame's end, if a frame was published.
    pub fn next(&self) -> Option<u64> {
        self.next
    }
}

/// Tracks the expected next sequence per stream and says what was skipped; shared by
/// transports so every one reports gaps the same way.
#[derive(Debug, Default, Clone)]
pub struct GapTracker {
    expected: Vec<(StreamId, u64)>,
}

impl GapTracker {
    /// Records `header` and returns the missing range `from .. to` if the frame skips
    /// sequence numbers of its stream. The first frame seen of a stream never reports a
    /// gap; a frame below the expected sequence (a replay) resets the expectation.
    pub fn observe(&mut self, header: &FrameHeader) -> Option<(u64, u64)> {
        let next = header.next_seq();
        match self.expected.iter_mut().find(|(s, _)| *s == header.stream) {
            Some((_, expected)) => {
                let gap = (header.seq > *expected).then_some((*expected, header.seq));
                *expected = next;
                gap
            }
            None => {
                self.expected.push((header.stream, next));
                None
            }
        }
    }

    /// The sequence expected next on `stream`, if a frame of it was seen or
    /// [`GapTracker::expect`] set one.
    pub fn expects(&self, stream: StreamId) -> Option<u64> {
        self.expected.iter().find(|(s, _)| *s == stream).map(|(_, e)| *e)
    }

    /// Sets the sequence expected next on `stream` (a subscriber that resumes knows it).
    pub fn expect(&mut self, stream: StreamId, seq: u64) {
        match self.expected.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, expected)) => *expected = seq,
            None => self.expected.push((stream, seq)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u64, span: u32) -> FrameHeader {
        FrameHeader { stream: StreamId(7), seq, span, epoch: 0 }
    }

    #[test]
    fn gap_tracker_reports_exact_missing_range() {
        let mut t = GapTracker::default();
        assert_eq!(t.observe(&h(10, 1)), None);
        assert_eq!(t.observe(&h(11, 3)), None);
        assert_eq!(t.observe(&h(20, 1)), Some((14, 20)));
        // A replay below the expectation is not a gap and resets it.
        assert_eq!(t.observe(&h(5, 1)), None);
        assert_eq!(t.observe(&h(7, 1)), Some((6, 7)));
        let other = FrameHeader { stream: StreamId(8), seq: 100, span: 1, epoch: 0 };
        assert_eq!(t.observe(&other), None);
    }

    #[test]
    fn publish_order_refuses_going_back_except_in_a_newer_epoch() {
        let mut o = PublishOrder::default();
        assert_eq!(o.admit(5, 1), Ok(Admission::InOrder));
        o.record(&FrameHeader { stream: StreamId(7), seq: 5, span: 3, epoch: 1 });
        assert_eq!(o.next(), Some(8));
        assert_eq!(o.admit(8, 1), Ok(Admission::InOrder));
        assert_eq!(o.admit(20, 1), Ok(Admission::InOrder));
        assert_eq!(o.admit(7, 1), Err(8));
        assert_eq!(o.admit(6, 2), Ok(Admission::Rewind { from: 6 }));
        assert_eq!(o.admit(0, 2), Err(8));
        o.record(&FrameHeader { stream: StreamId(7), seq: 6, span: 1, epoch: 2 });
        // The new epoch is now the previous frame's: no second rewind within it.
        assert_eq!(o.admit(6, 2), Err(7));
        assert_eq!(o.admit(6, 1), Err(7));
    }

    #[test]
    fn gap_tracker_honours_expect() {
        let mut t = GapTracker::default();
        assert_eq!(t.expects(StreamId(7)), None);
        t.expect(StreamId(7), 50);
        assert_eq!(t.expects(StreamId(7)), Some(50));
        assert_eq!(t.observe(&h(52, 1)), Some((50, 52)));
    }

    #[test]
    fn policy_names_round_trip() {
        for p in [
            SlowSubscriberPolicy::Block,
            SlowSubscriberPolicy::DropOldest,
            SlowSubscriberPolicy::Disconnect,
        ] {
            assert_eq!(SlowSubscriberPolicy::from_name(p.name()), Some(p));
        }
        assert_eq!(SlowSubscriberPolicy::from_name("sometimes"), None);
    }
}
