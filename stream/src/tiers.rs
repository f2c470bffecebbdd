//! Subscriber tiers: real-time, delayed (windowed) and historical.
//!
//! * [`RealtimeSubscriber`] hands every message to a callback as soon as its frame is
//!   received, as a validated [`ArchivedMessage`] read in place (copied into a reused
//!   aligned buffer only when the medium delivered a misaligned payload).
//! * [`DelayedSubscriber`] collects messages into fixed windows aligned to the wall-clock
//!   grid (`[k·w, (k+1)·w)` since the Unix epoch, default 100 ms) and delivers each
//!   window as one batch when it ends; it measures how late after the window boundary
//!   each delivery happens ([`DelayedSubscriber::accuracy`]).
//! * [`HistoricalSubscriber`] reads the store's commit log from a sequence and yields
//!   each committed batch with its sequence.
//!
//! The resumable tier lives in [`crate::resume`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rkyv::util::AlignedVec;
use strata_core::transport::{Delivery, TopicSubscriber};
use strata_core::{Epoch, HistoryCheck, SeqNo, WalBatch, WalReader};

use crate::error::Result;
use crate::messages::{ALIGN, ArchivedMessage, Message, MessageFrame, access_or_copy};

/// What the real-time tier hands its callback.
#[derive(Debug)]
pub enum Event<'a> {
    /// One message and its sequence.
    Message {
        /// The message's sequence in its stream.
        seq: u64,
        /// The validated message, read in place.
        message: &'a ArchivedMessage,
    },
    /// Sequences `from .. to` were lost before the next message.
    Gap {
        /// First missing sequence.
        from: u64,
        /// One past the last missing sequence.
        to: u64,
    },
    /// A frame (or a message in it) failed validation; it is skipped.
    Invalid {
        /// The frame's (or message's) sequence.
        seq: u64,
        /// Why it was refused.
        reason: String,
    },
}

/// Counters of a [`RealtimeSubscriber`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealtimeStats {
    /// Messages read in place.
    pub zero_copy: u64,
    /// Messages that had to be copied to an aligned buffer first.
    pub copied: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Invalid frames or messages skipped.
    pub invalid: u64,
}

/// The real-time tier: a callback per message, as frames arrive.
pub struct RealtimeSubscriber {
    inner: Box<dyn TopicSubscriber>,
    scratch: AlignedVec<ALIGN>,
    stats: RealtimeStats,
}

impl std::fmt::Debug for RealtimeSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeSubscriber").field("stats", &self.stats).finish()
    }
}

/// Decodes one delivery into events (shared by the tiers).
fn dispatch(
    d: Delivery<'_>,
    scratch: &mut AlignedVec<ALIGN>,
    stats: &mut RealtimeStats,
    on: &mut dyn FnMut(Event<'_>),
) {
    match d {
        Delivery::Gap { from, to, .. } => {
            stats.gaps += 1;
            on(Event::Gap { from, to });
        }
        Delivery::Frame { header, payload } => match MessageFrame::parse(payload) {
            Err(e) => {
                stats.invalid += 1;
                on(Event::Invalid { seq: header.seq, reason: e.to_string() });
            }
            Ok(frame) => {
                for (i, bytes) in frame.messages().enumerate() {
                    let seq = header.seq + i as u64;
                    match access_or_copy(bytes, scratch, |m| on(Event::Message { seq, message: m }))
                    {
                        Ok(((), true)) => stats.copied += 1,
                        Ok(((), false)) => stats.zero_copy += 1,
                        Err(e) => {
                            stats.invalid += 1;
                            on(Event::Invalid { seq, reason: e.to_string() });
                        }
                    }
                }
            }
        },
    }
}

impl RealtimeSubscriber {
    /// The tier over `inner`.
    pub fn new(inner: Box<dyn TopicSubscriber>) -> Self {
        Self { inner, scratch: AlignedVec::new(), stats: RealtimeStats::default() }
    }

    /// Delivers every message available now; returns the number of transport
    /// deliveries (frames and gaps).
    pub fn poll(&mut self, mut on: impl FnMut(Event<'_>)) -> Result<usize> {
        let (scratch, stats) = (&mut self.scratch, &mut self.stats);
        Ok(self.inner.poll(&mut |d| dispatch(d, scratch, stats, &mut on))?)
    }

    /// Waits up to `timeout` for frames, then delivers what is available.
    pub fn wait(&mut self, timeout: Duration, mut on: impl FnMut(Event<'_>)) -> Result<usize> {
        let (scratch, stats) = (&mut self.scratch, &mut self.stats);
        Ok(self.inner.wait(timeout, &mut |d| dispatch(d, scratch, stats, &mut on))?)
    }

    /// Counters so far.
    pub fn stats(&self) -> RealtimeStats {
        self.stats
    }
}

/// One window delivered by the [`DelayedSubscriber`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Window start (inclusive), since the Unix epoch.
    pub start: Duration,
    /// Window end (exclusive), since the Unix epoch.
    pub end: Duration,
    /// The messages received during the window, with their sequence and receive time
    /// (since the Unix epoch), in arrival order.
    pub messages: Vec<(u64, Message, Duration)>,
    /// Gaps reported during the window.
    pub gaps: Vec<(u64, u64)>,
    /// Frames or messages refused during the window.
    pub invalid: u64,
    /// How long after `end` the window was handed to the callback.
    pub lateness: Duration,
}

/// How close to the window boundary the delayed tier delivers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowAccuracy {
    /// Windows delivered.
    pub windows: u64,
    /// Mean lateness after the boundary.
    pub mean: Duration,
    /// Median lateness.
    pub p50: Duration,
    /// 99th percentile lateness.
    pub p99: Duration,
    /// Largest lateness.
    pub max: Duration,
}

/// The delayed tier; see the module docs.
pub struct DelayedSubscriber {
    inner: Box<dyn TopicSubscriber>,
    window: Duration,
    scratch: AlignedVec<ALIGN>,
    stats: RealtimeStats,
    /// Lateness samples in microseconds (the last 100 000).
    lateness_us: Vec<u64>,
    windows: u64,
    empty_windows: bool,
    /// Messages received after their window's end while it was drained.
    carry: Vec<(u64, Message, Duration)>,
}

impl std::fmt::Debug for DelayedSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedSubscriber").field("window", &self.window).finish()
    }
}

/// The default window of the delayed tier.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(100);

const MAX_SAMPLES: usize = 100_000;

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

impl DelayedSubscriber {
    /// The tier over `inner` with windows of `window` (use [`DEFAULT_WINDOW`]); a zero
    /// window is raised to 1 ms.
    pub fn new(inner: Box<dyn TopicSubscriber>, window: Duration) -> Self {
        Self {
            inner,
            window: window.max(Duration::from_millis(1)),
            scratch: AlignedVec::new(),
            stats: RealtimeStats::default(),
            lateness_us: Vec::new(),
            windows: 0,
            empty_windows: false,
            carry: Vec::new(),
        }
    }

    /// Also deliver windows in which nothing arrived (default: skipped).
    pub fn deliver_empty_windows(mut self, yes: bool) -> Self {
        self.empty_windows = yes;
        self
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Collects until the end of the current grid window, then delivers it to `on`
    /// (unless it is empty and empty windows are skipped). Returns the window.
    pub fn next_window(&mut self, mut on: impl FnMut(&Window)) -> Result<Window> {
        let w = self.window.as_nanos();
        // Messages that arrived after the previous window closed (while it was being
        // drained) open the next window: the one their receive time falls in.
        let anchor = self.carry.first().map_or_else(since_epoch, |(_, _, at)| *at);
        let k = anchor.as_nanos() / w;
        let start = nanos(k * w);
        let end = nanos((k + 1) * w);
        let mut win = Window {
            start,
            end,
            messages: Vec::new(),
            gaps: Vec::new(),
            invalid: 0,
            lateness: Duration::ZERO,
        };
        let carried = std::mem::take(&mut self.carry);
        let (inside, later): (Vec<_>, Vec<_>) = carried.into_iter().partition(|m| m.2 < end);
        win.messages = inside;
        self.carry = later;
        if self.carry.is_empty() {
            loop {
                let now = since_epoch();
                if now >= end {
                    break;
                }
                let (scratch, stats) = (&mut self.scratch, &mut self.stats);
                let (win_ref, carry) = (&mut win, &mut self.carry);
                self.inner.wait(end - now, &mut |d| {
                    let at = since_epoch();
                    dispatch(d, scratch, stats, &mut |e| match e {
                        Event::Message { seq, message } => match message.to_owned_message() {
                            Ok(m) if at < end => win_ref.messages.push((seq, m, at)),
                            Ok(m) => carry.push((seq, m, at)),
                            Err(_) => win_ref.invalid += 1,
                        },
                        Event::Gap { from, to } => win_ref.gaps.push((from, to)),
                        Event::Invalid { .. } => win_ref.invalid += 1,
                    })
                })?;
            }
        }
        win.lateness = since_epoch().saturating_sub(end);
        if !win.messages.is_empty() || !win.gaps.is_empty() || self.empty_windows {
            on(&win);
        }
        self.windows += 1;
        if self.lateness_us.len() == MAX_SAMPLES {
            self.lateness_us.remove(0);
        }
        self.lateness_us.push(win.lateness.as_micros() as u64);
        Ok(win)
    }

    /// Runs windows until `duration` has passed, delivering each to `on`.
    pub fn run_for(&mut self, duration: Duration, mut on: impl FnMut(&Window)) -> Result<()> {
        let stop = since_epoch() + duration;
        while since_epoch() < stop {
            self.next_window(&mut on)?;
        }
        Ok(())
    }

    /// Lateness of deliveries after their window boundary, over the windows so far.
    pub fn accuracy(&self) -> WindowAccuracy {
        let mut s = self.lateness_us.clone();
        if s.is_empty() {
            return WindowAccuracy::default();
        }
        s.sort_unstable();
        let pct = |p: usize| Duration::from_micros(s[(s.len() - 1) * p / 100]);
        WindowAccuracy {
            windows: self.windows,
            mean: Duration::from_micros(s.iter().sum::<u64>() / s.len() as u64),
            p50: pct(50),
            p99: pct(99),
            max: Duration::from_micros(s[s.len() - 1]),
        }
    }

    /// Message counters so far.
    pub fn stats(&self) -> RealtimeStats {
        self.stats
    }
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

/// A source of committed batches by sequence: the store's log.
pub trait CommitLog: Send + Sync {
    /// A reader over the committed batches from the one holding `from`.
    fn read_from(&self, from: SeqNo) -> strata_core::Result<Box<dyn WalReader>>;

    /// What the log's epoch history says about a reader holding every batch up to
    /// `last` as written in `epoch` (see [`strata_core::Db::check_history`]). A log
    /// that keeps no epochs cannot tell and answers `Consistent` (the default).
    fn check_history(&self, epoch: Epoch, last: SeqNo) -> HistoryCheck {
        let _ = (epoch, last);
        HistoryCheck::Consistent
    }
}

impl CommitLog for strata_core::Db {
    fn read_from(&self, from: SeqNo) -> strata_core::Result<Box<dyn WalReader>> {
        self.read_log_from(from)
    }

    fn check_history(&self, epoch: Epoch, last: SeqNo) -> HistoryCheck {
        strata_core::Db::check_history(self, epoch, last)
    }
}

impl<T: CommitLog + ?Sized> CommitLog for std::sync::Arc<T> {
    fn read_from(&self, from: SeqNo) -> strata_core::Result<Box<dyn WalReader>> {
        (**self).read_from(from)
    }

    fn check_history(&self, epoch: Epoch, last: SeqNo) -> HistoryCheck {
        (**self).check_history(epoch, last)
    }
}

/// The historical tier: the store's committed batches from a sequence, in commit order.
pub struct HistoricalSubscriber {
    reader: Box<dyn WalReader>,
}

impl std::fmt::Debug for HistoricalSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoricalSubscriber").finish_non_exhaustive()
    }
}

impl HistoricalSubscriber {
    /// Reads `log` from the batch holding `from` (its `first_seq` may be lower when
    /// `from` is inside a batch: batches are delivered whole).
    pub fn new(log: &dyn CommitLog, from: u64) -> Result<Self> {
        Ok(Self { reader: log.read_from(SeqNo(from))? })
    }

    /// The next committed batch, or `None` when caught up with the store.
    pub fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        Ok(self.reader.next_batch()?)
    }

    /// Like [`HistoricalSubscriber::next_batch`], waiting up to `timeout` for a commit.
    pub fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
        Ok(self.reader.wait_next(timeout)?)
    }

    /// Delivers every batch committed so far to `on`; returns how many.
    pub fn drain(&mut self, mut on: impl FnMut(&WalBatch)) -> Result<usize> {
        let mut n = 0;
        while let Some(b) = self.reader.next_batch()? {
            on(&b);
            n += 1;
        }
        Ok(n)
    }
}
