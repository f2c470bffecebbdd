//! The resumable tier: a commit-stream subscriber whose progress survives restarts.
//!
//! [`ResumableSubscriber`] keeps the sequence of the last batch it processed in a small
//! [`Checkpoint`] file (written to a temporary file, fsynced, renamed over the old one,
//! directory fsynced — so a crash leaves the old or the new value, never a torn one).
//! On start it subscribes to the live topic *first*, then reads the store's log from
//! `checkpoint + 1`, buffering live frames meanwhile. It switches to the live stream
//! when the log reader reaches the first buffered live sequence (or the log's end with
//! nothing buffered), delivering buffered frames it has not yet delivered. Every frame
//! is deduplicated by sequence (a frame whose last sequence is at or below the last
//! processed one is skipped), and a live frame that starts beyond the next expected
//! sequence (frames dropped by a slow-subscriber policy, or a batch too large for the
//! medium) first makes the subscriber read the missing batches from the log. When the
//! live stream is idle it checks the log for batches whose frames were lost at the
//! tail. A disconnected live endpoint is replaced and the subscriber catches up from
//! the log again.
//!
//! The live endpoint is opened without `resume_from`: the log serves everything before
//! the live edge, and the commit stream publishes behind the log, so a medium asked to
//! resume at a position only the log has reached yet could refuse it.
//!
//! # Positions the log does not hold
//!
//! - **Before the log's start** (its oldest segments were deleted): the subscriber
//!   replays everything the log still holds and reports only what is really gone — the
//!   range from the requested sequence up to the oldest sequence the log holds — in
//!   [`ResumableSubscriber::lost`], [`ResumeStats::lost_sequences`] and a warning log.
//!   It then moves past that range (the next checkpoint records it).
//! - **Beyond the live edge** (a checkpoint greater than the log's last sequence: a
//!   checkpoint from another store, or a store restored from an older copy): opening
//!   is refused with [`Error::ResumeBeyondLiveEdge`]; nothing is skipped silently.
//!
//! Delivery is at-least-once across crashes and exactly-once within one process: the
//! checkpoint is written after the callback returns, every
//! [`ResumeOptions::checkpoint_every`] batches (default 64) and whenever the live stream
//! is idle, so a crash replays at most that many batches on restart; dropping the
//! subscriber writes the final checkpoint.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::transport::{Delivery, SubscriberOptions, TopicSubscriber, Transport};
use strata_core::{Epoch, HistoryCheck, SeqNo, WalReader};

use crate::commit::{CommittedOp, decode_batch};
use crate::error::{Error, Result};
use crate::tiers::CommitLog;

const CHECKPOINT_MAGIC: [u8; 4] = *b"SCKP";
const CHECKPOINT_LEN: usize = 4 + 8 + 8;
/// A checkpoint that also records the epoch of the last processed batch.
const CHECKPOINT_MAGIC_V2: [u8; 4] = *b"SCK2";
const CHECKPOINT_LEN_V2: usize = CHECKPOINT_LEN + 8 + 8;

/// A durable "last processed sequence" in a small file.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    /// The checkpoint stored at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored sequence, 0 when the file does not exist. A damaged file is an error.
    pub fn load(&self) -> Result<u64> {
        Ok(self.load_position()?.0)
    }

    /// The stored sequence and the epoch of the batch that ended there (0: not
    /// recorded — a checkpoint written before epochs, or nothing processed yet).
    pub fn load_position(&self) -> Result<(u64, u64)> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        };
        let v2 = bytes.len() == CHECKPOINT_LEN_V2 && bytes[..4] == CHECKPOINT_MAGIC_V2;
        if !v2 && (bytes.len() != CHECKPOINT_LEN || bytes[..4] != CHECKPOINT_MAGIC) {
            return Err(Error::decode(
                "checkpoint",
                format!("{} is not a checkpoint file ({} bytes)", self.path.display(), bytes.len()),
            ));
        }
        let word = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let (seq, epoch) = (word(4), if v2 { word(20) } else { 0 });
        if word(12) != !seq || (v2 && word(28) != !epoch) {
            return Err(Error::decode(
                "checkpoint",
                format!("{}: check word does not match the position", self.path.display()),
            ));
        }
        Ok((seq, epoch))
    }

    /// Durably replaces the stored sequence with `seq` (no epoch recorded).
    pub fn store(&self, seq: u64) -> Result<()> {
        self.store_position(seq, 0)
    }

    /// Durably replaces the stored position with `seq`, written in `epoch`.
    pub fn store_position(&self, seq: u64, epoch: u64) -> Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut buf = Vec::with_capacity(CHECKPOINT_LEN_V2);
        buf.extend_from_slice(&CHECKPOINT_MAGIC_V2);
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&(!seq).to_le_bytes());
        buf.extend_from_slice(&epoch.to_le_bytes());
        buf.extend_from_slice(&(!epoch).to_le_bytes());
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            f.write_all(&buf).map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename", &self.path, e))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync directory", &dir, e))?;
        Ok(())
    }
}

/// Options of a [`ResumableSubscriber`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResumeOptions {
    /// Write the checkpoint after this many delivered batches (1: after every batch;
    /// each write costs two fsyncs). It is also written when the live stream is idle
    /// and when the subscriber is dropped; a crash replays at most this many batches.
    pub checkpoint_every: u32,
    /// Live frames buffered while catching up; beyond it the oldest are dropped (the
    /// log still serves them, the switch to live just happens later).
    pub max_buffered: usize,
    /// After this long without live frames, check the log for batches lost at the tail.
    pub idle_log_check: Duration,
    /// Options of the live endpoint (`resume_from` is set by the subscriber).
    pub subscriber: SubscriberOptions,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: 64,
            max_buffered: 65_536,
            idle_log_check: Duration::from_millis(100),
            subscriber: SubscriberOptions::default(),
        }
    }
}

impl ResumeOptions {
    /// Sets [`ResumeOptions::checkpoint_every`] (at least 1).
    pub fn with_checkpoint_every(mut self, n: u32) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// Sets the live endpoint's options.
    pub fn with_subscriber(mut self, options: SubscriberOptions) -> Self {
        self.subscriber = options;
        self
    }
}

/// Where a delivered batch came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from the store's log (catching up or filling a gap).
    Log,
    /// Received on the live topic.
    Live,
}

/// One committed batch handed to the callback.
#[derive(Clone, Copy, Debug)]
pub struct CommittedFrame<'a> {
    /// The batch's first sequence.
    pub first_seq: u64,
    /// Its number of operations.
    pub count: u32,
    /// The operations in the WAL's encoded form.
    pub payload: &'a [u8],
    /// Where it came from.
    pub source: Source,
}

impl CommittedFrame<'_> {
    /// The batch's last sequence.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count.max(1)) - 1
    }

    /// Decodes the batch's operations.
    pub fn ops(&self) -> Result<Vec<CommittedOp>> {
        decode_batch(self.first_seq, self.payload)
    }
}

/// Counters of a [`ResumableSubscriber`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResumeStats {
    /// Batches delivered from the log.
    pub from_log: u64,
    /// Batches delivered from the live topic.
    pub from_live: u64,
    /// Frames skipped because they were already processed.
    pub duplicates: u64,
    /// Live gaps filled from the log.
    pub gaps_filled: u64,
    /// Times the subscriber switched from catching up to live.
    pub switches: u64,
    /// Times the live endpoint was replaced after a disconnect.
    pub resubscribes: u64,
    /// Ranges the log no longer held when the subscriber needed them (see
    /// [`ResumableSubscriber::lost`]).
    pub lost_ranges: u64,
    /// Sequences in those ranges: lost to this subscriber for good.
    pub lost_sequences: u64,
    /// Ranges the subscriber had processed that the store rewrote since (see
    /// [`ResumableSubscriber::rewritten`]).
    pub rewritten_ranges: u64,
    /// Sequences in those ranges, delivered again as the store holds them now.
    pub rewritten_sequences: u64,
    /// Live frames skipped because an older epoch wrote them than the batch before
    /// them that was processed: frames of a tail the store truncated (a rewind
    /// follows them), never in the log as it is.
    pub stale: u64,
}

enum Mode {
    CatchingUp { reader: Box<dyn WalReader>, buffer: VecDeque<(u64, u32, u64, Vec<u8>)> },
    Live,
}

/// The resumable tier; see the module docs.
pub struct ResumableSubscriber {
    log: Arc<dyn CommitLog>,
    transport: Arc<dyn Transport>,
    topic: String,
    options: ResumeOptions,
    checkpoint: Checkpoint,
    live: Box<dyn TopicSubscriber>,
    mode: Mode,
    processed: u64,
    /// Epoch of the batch that ended at `processed` (0: unknown).
    epoch: u64,
    checkpointed: u64,
    since_checkpoint: u32,
    last_live: Instant,
    stats: ResumeStats,
    lost: Vec<(u64, u64)>,
    rewritten: Vec<(u64, u64)>,
}

impl std::fmt::Debug for ResumableSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumableSubscriber")
            .field("topic", &self.topic)
            .field("processed", &self.processed)
            .field("live", &matches!(self.mode, Mode::Live))
            .finish()
    }
}

/// Progress of one delivery attempt.
struct Cursor<'a> {
    processed: &'a mut u64,
    epoch: &'a mut u64,
    since_checkpoint: &'a mut u32,
    stats: &'a mut ResumeStats,
    checkpoint: &'a Checkpoint,
    checkpointed: &'a mut u64,
    every: u32,
    lost: &'a mut Vec<(u64, u64)>,
    rewritten: &'a mut Vec<(u64, u64)>,
}

impl Cursor<'_> {
    /// Delivers the batch unless already processed; returns whether it did.
    fn deliver(
        &mut self,
        first_seq: u64,
        count: u32,
        payload: &[u8],
        epoch: u64,
        source: Source,
        on: &mut dyn FnMut(&CommittedFrame<'_>),
    ) -> Result<bool> {
        let frame = CommittedFrame { first_seq, count, payload, source };
        // Epochs never decrease along a log's sequences, so with the epoch of the last
        // processed batch known (not 0; a frame's 0 is unknown too: a publisher that
        // stamps none), a frame of a newer epoch that starts at or
        // below it is a rewind (the store truncated what followed `first_seq - 1`
        // and the newer epoch wrote there), and one of an older epoch past it is a
        // leftover of the truncated tail.
        if self.is_stale(first_seq, epoch) {
            self.stats.stale += 1;
            return Ok(false);
        }
        if *self.epoch != 0 && epoch > *self.epoch && first_seq <= *self.processed {
            self.rewind(first_seq);
        }
        if frame.last_seq() <= *self.processed {
            self.stats.duplicates += 1;
            return Ok(false);
        }
        on(&frame);
        *self.processed = frame.last_seq();
        *self.epoch = epoch;
        *self.since_checkpoint += 1;
        match source {
            Source::Log => self.stats.from_log += 1,
            Source::Live => self.stats.from_live += 1,
        }
        if *self.since_checkpoint >= self.every {
            self.checkpoint.store_position(*self.processed, *self.epoch)?;
            *self.checkpointed = *self.processed;
            *self.since_checkpoint = 0;
        }
        Ok(true)
    }

    /// Delivers a batch read from the log unless already processed.
    fn deliver_log(
        &mut self,
        b: &strata_core::WalBatch,
        on: &mut dyn FnMut(&CommittedFrame<'_>),
    ) -> Result<bool> {
        self.deliver(b.first_seq.0, b.count, &b.payload, b.epoch.0, Source::Log, on)
    }

    /// Whether a frame at `first_seq` written in `epoch` is a leftover of a tail the
    /// store truncated (see [`Cursor::deliver`]): never to be delivered, nor a gap to
    /// fill from the log.
    fn is_stale(&self, first_seq: u64, epoch: u64) -> bool {
        epoch != 0 && epoch < *self.epoch && first_seq > *self.processed
    }

    /// The store rewrote what was processed from `from` on (a truncated tail replaced
    /// by a newer epoch): records it and moves back to deliver it again.
    fn rewind(&mut self, from: u64) {
        if from == 0 || from > *self.processed {
            return;
        }
        let to = *self.processed + 1;
        tracing::warn!(
            from,
            to,
            "resumable subscriber: the store truncated sequences it had delivered and a \
             newer epoch rewrote them; they are delivered again as the store holds them now"
        );
        self.stats.rewritten_ranges += 1;
        self.stats.rewritten_sequences += to - from;
        self.rewritten.push((from, to));
        *self.processed = from - 1;
        *self.since_checkpoint = (*self.since_checkpoint).max(1);
    }

    /// A log reader failed with `error`: when the log was truncated under it
    /// (`Diverged`), what was delivered past the cut is rewound and a reader from the
    /// next sequence to process is returned; any other error is passed on.
    fn reread_after(
        &mut self,
        log: &dyn CommitLog,
        error: strata_core::Error,
    ) -> Result<Box<dyn WalReader>> {
        match error {
            strata_core::Error::Diverged { seq, .. } => {
                self.rewind(seq.0);
                self.open_log(log)
            }
            e => Err(e.into()),
        }
    }

    /// Records that the log no longer holds `from .. to` and moves past it.
    fn skip_lost(&mut self, from: u64, to: u64) {
        record_lost(self.processed, self.since_checkpoint, self.stats, self.lost, from, to);
    }

    /// A log reader from the next sequence to process; a range the log no longer holds
    /// is recorded as lost and skipped.
    fn open_log(&mut self, log: &dyn CommitLog) -> Result<Box<dyn WalReader>> {
        let (reader, lost) = open_log(log, *self.processed + 1)?;
        if let Some((from, to)) = lost {
            self.skip_lost(from, to);
        }
        Ok(reader)
    }
}

fn record_lost(
    processed: &mut u64,
    since_checkpoint: &mut u32,
    stats: &mut ResumeStats,
    lost: &mut Vec<(u64, u64)>,
    from: u64,
    to: u64,
) {
    if to <= from {
        return;
    }
    tracing::warn!(
        from,
        to,
        "resumable subscriber: sequences {from} .. {to} are no longer in the log; they are lost to this subscriber"
    );
    stats.lost_ranges += 1;
    stats.lost_sequences += to - from;
    lost.push((from, to));
    *processed = (*processed).max(to - 1);
    // Make the move past the hole durable at the next checkpoint, so a restart does not
    // report it again.
    *since_checkpoint = (*since_checkpoint).max(1);
}

/// A range `from .. to` (end exclusive) the log no longer holds.
type LostRange = (u64, u64);

/// Opens a reader at `from`. When the log's oldest segments holding `from` were
/// deleted, the reader starts at the oldest sequence the log still holds and the range
/// lost (`from .. oldest`) is returned with it.
fn open_log(log: &dyn CommitLog, from: u64) -> Result<(Box<dyn WalReader>, Option<LostRange>)> {
    let mut at = from;
    // Segments may be deleted between the two reads; a few attempts cover that race.
    for _ in 0..8 {
        match log.read_from(SeqNo(at)) {
            Ok(r) => return Ok((r, (at > from).then_some((from, at)))),
            Err(strata_core::Error::SequenceUnavailable { oldest, .. }) if oldest.0 > at => {
                at = oldest.0;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::InvalidArgument(format!(
        "the log's oldest sequence kept moving while opening a reader at {from} (last tried {at})"
    )))
}

/// Refuses a resume at `from` when the log does not hold `from - 1` yet: the position
/// is beyond the live edge (last sequence + 1).
fn check_within_log(log: &dyn CommitLog, from: u64) -> Result<()> {
    if from <= 1 {
        return Ok(());
    }
    match log.read_from(SeqNo(from - 1)) {
        Ok(mut r) => match r.next_batch() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::ResumeBeyondLiveEdge { requested: from }),
            // Deleted under the reader: it was held, so it is not beyond the edge.
            Err(strata_core::Error::SequenceUnavailable { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        },
        // The oldest segment starts at most at the last sequence + 1, so a position
        // before it is not beyond the live edge (its lost part is reported when read).
        Err(strata_core::Error::SequenceUnavailable { oldest, .. }) if oldest.0 >= from - 1 => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

impl ResumableSubscriber {
    /// Opens the subscriber: loads the checkpoint, checks the log holds it (a
    /// checkpoint beyond the log's live edge is [`Error::ResumeBeyondLiveEdge`]),
    /// subscribes to `topic` on `transport`, then starts reading `log` from
    /// `checkpoint + 1` (or from the log's oldest sequence, reporting the range before it
    /// as lost; see the module docs).
    pub fn open(
        log: Arc<dyn CommitLog>,
        transport: Arc<dyn Transport>,
        topic: &str,
        checkpoint: Checkpoint,
        options: ResumeOptions,
    ) -> Result<Self> {
        let (loaded, epoch) = checkpoint.load_position()?;
        let mut processed = loaded;
        let (mut since_checkpoint, mut stats, mut lost) = (0, ResumeStats::default(), Vec::new());
        let mut rewritten = Vec::new();
        if epoch != 0 && processed > 0 {
            let check = match log.check_history(Epoch(epoch), SeqNo(processed)) {
                // The store is behind what was processed (a replica that lost an unsynced
                // tail it will get again): the reader must start within the log, so that
                // range is delivered again once the store holds it, and said so, as for
                // a rewrite.
                HistoryCheck::Behind { log_last } => HistoryCheck::Rewritten {
                    from: log_last.next(),
                    to: SeqNo(processed),
                    store_epoch: Epoch(epoch),
                },
                other => other,
            };
            match check {
                HistoryCheck::Consistent | HistoryCheck::Behind { .. } => {}
                HistoryCheck::Rewritten { from, to, store_epoch } => {
                    // What was processed for `from ..= to` is not what the store holds
                    // now (a crash took it back, a later incarnation wrote other batches
                    // there): deliver the store's batches for that range again, and say so.
                    tracing::warn!(
                        from = from.0,
                        to = to.0,
                        %store_epoch,
                        "resumable subscriber: the store rewrote sequences it had processed; \
                         they are delivered again as the store holds them now"
                    );
                    stats.rewritten_ranges += 1;
                    stats.rewritten_sequences += to.0 + 1 - from.0;
                    rewritten.push((from.0, to.0 + 1));
                    processed = from.0 - 1;
                    since_checkpoint = 1;
                }
                HistoryCheck::UnknownEpoch { store_epoch } => {
                    return Err(Error::UnknownHistory { epoch, store_epoch: store_epoch.0 });
                }
            }
        }
        check_within_log(&*log, processed + 1)?;
        let live = Self::subscribe(&*transport, topic, &options)?;
        let (reader, lost_range) = open_log(&*log, processed + 1)?;
        if let Some((from, to)) = lost_range {
            record_lost(&mut processed, &mut since_checkpoint, &mut stats, &mut lost, from, to);
        }
        Ok(Self {
            log,
            transport,
            topic: topic.to_owned(),
            options,
            checkpoint,
            live,
            mode: Mode::CatchingUp { reader, buffer: VecDeque::new() },
            processed,
            epoch,
            checkpointed: loaded,
            since_checkpoint,
            last_live: Instant::now(),
            stats,
            lost,
            rewritten,
        })
    }

    fn subscribe(
        transport: &dyn Transport,
        topic: &str,
        options: &ResumeOptions,
    ) -> Result<Box<dyn TopicSubscriber>> {
        let mut sub = options.subscriber.clone();
        // The log serves everything before the live edge (see the module docs).
        sub.resume_from = None;
        Ok(transport.subscriber(topic, &sub)?)
    }

    /// The last sequence delivered to the callback.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Whether the subscriber has caught up and follows the live topic.
    pub fn is_live(&self) -> bool {
        matches!(self.mode, Mode::Live)
    }

    /// Counters so far.
    pub fn stats(&self) -> ResumeStats {
        self.stats
    }

    /// The ranges `from .. to` (end exclusive) this subscriber needed but the log no
    /// longer held (its oldest segments were deleted), in the order they were found.
    /// Every other sequence was delivered.
    pub fn lost(&self) -> &[(u64, u64)] {
        &self.lost
    }

    /// Ranges `from .. to` (end exclusive) this subscriber had processed that the
    /// store rewrote since — in an earlier run, batches a crash took back before they
    /// were durable, whose sequences a later incarnation reused (possible only with a
    /// commit stream publishing before durability, `LogBound::Visible`); while running,
    /// a tail the store truncated and a newer epoch replaced (a replica, or an old
    /// primary that rejoined its cluster, seen through the commit stream's rewind or a
    /// log reader's `Diverged`). They were delivered again, as the store holds them
    /// now; what was derived from the old ones is stale.
    pub fn rewritten(&self) -> &[(u64, u64)] {
        &self.rewritten
    }

    /// Writes the checkpoint now (if anything was processed since the last one).
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.processed > self.checkpointed || self.since_checkpoint > 0 {
            self.checkpoint.store_position(self.processed, self.epoch)?;
            self.checkpointed = self.processed;
        }
        self.since_checkpoint = 0;
        Ok(())
    }

    fn resubscribe(&mut self) -> Result<()> {
        self.stats.resubscribes += 1;
        self.live = Self::subscribe(&*self.transport, &self.topic, &self.options)?;
        let (reader, lost) = open_log(&*self.log, self.processed + 1)?;
        if let Some((from, to)) = lost {
            record_lost(
                &mut self.processed,
                &mut self.since_checkpoint,
                &mut self.stats,
                &mut self.lost,
                from,
                to,
            );
        }
        self.mode = Mode::CatchingUp { reader, buffer: VecDeque::new() };
        Ok(())
    }

    /// Makes progress: while catching up, delivers up to a few hundred batches from the
    /// log (buffering live frames); once live, waits up to `timeout` for live frames and
    /// delivers them (filling gaps from the log). Returns the batches delivered.
    pub fn step(
        &mut self,
        timeout: Duration,
        mut on: impl FnMut(&CommittedFrame<'_>),
    ) -> Result<usize> {
        let n = if matches!(self.mode, Mode::Live) {
            self.step_live(timeout, &mut on)?
        } else {
            self.step_catch_up(timeout, &mut on)?
        };
        if n == 0 && self.since_checkpoint > 0 {
            // Idle: make the progress so far durable.
            self.checkpoint()?;
        }
        Ok(n)
    }

    /// Runs [`ResumableSubscriber::step`] until `until` returns true for the processed
    /// sequence or `timeout` passes; returns whether `until` was satisfied.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut until: impl FnMut(u64) -> bool,
        mut on: impl FnMut(&CommittedFrame<'_>),
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        while !until(self.processed) {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.step((deadline - now).min(Duration::from_millis(50)), &mut on)?;
        }
        Ok(true)
    }

    fn step_catch_up(
        &mut self,
        timeout: Duration,
        on: &mut dyn FnMut(&CommittedFrame<'_>),
    ) -> Result<usize> {
        let Mode::CatchingUp { reader, buffer } = &mut self.mode else { return Ok(0) };
        // Buffer what the live topic has now.
        let max = self.options.max_buffered;
        let polled = self.live.poll(&mut |d| {
            if let Delivery::Frame { header, payload } = d {
                if buffer.len() == max {
                    buffer.pop_front();
                }
                buffer.push_back((header.seq, header.span, header.epoch, payload.to_vec()));
            }
        });
        if let Err(e) = polled {
            if matches!(e, strata_core::Error::Disconnected { .. }) {
                self.resubscribe()?;
                return Ok(0);
            }
            return Err(e.into());
        }
        let mut cursor = Cursor {
            processed: &mut self.processed,
            epoch: &mut self.epoch,
            since_checkpoint: &mut self.since_checkpoint,
            stats: &mut self.stats,
            checkpoint: &self.checkpoint,
            checkpointed: &mut self.checkpointed,
            every: self.options.checkpoint_every,
            lost: &mut self.lost,
            rewritten: &mut self.rewritten,
        };
        let mut delivered = 0;
        let mut log_end = false;
        for _ in 0..256 {
            if buffer.front().is_some_and(|f| *cursor.processed + 1 >= f.0) {
                break;
            }
            match reader.next_batch() {
                Ok(Some(b)) => {
                    if cursor.deliver_log(&b, on)? {
                        delivered += 1;
                    }
                }
                Ok(None) => {
                    log_end = true;
                    break;
                }
                Err(strata_core::Error::SequenceUnavailable { .. }) => {
                    // Segments were deleted under the reader: go on from what the log
                    // still holds, reporting the rest as lost.
                    *reader = cursor.open_log(&*self.log)?;
                }
                Err(e) => *reader = cursor.reread_after(&*self.log, e)?,
            }
        }
        let reached_live = buffer.front().is_some_and(|f| *cursor.processed + 1 >= f.0);
        if reached_live || (log_end && buffer.is_empty()) {
            for (seq, span, epoch, payload) in buffer.drain(..) {
                if seq > *cursor.processed + 1 && !cursor.is_stale(seq, epoch) {
                    // A hole inside the buffer (the live endpoint lost frames): fill it
                    // from the log first.
                    delivered += fill_from_log(&*self.log, &mut cursor, seq, on)?;
                }
                if cursor.deliver(seq, span, &payload, epoch, Source::Live, on)? {
                    delivered += 1;
                }
            }
            self.stats.switches += 1;
            self.mode = Mode::Live;
            self.last_live = Instant::now();
        } else if log_end && delivered == 0 {
            // Live frames are buffered beyond what the log shows yet: wait for the log.
            if let Mode::CatchingUp { reader, .. } = &mut self.mode {
                let mut cursor = Cursor {
                    processed: &mut self.processed,
                    epoch: &mut self.epoch,
                    since_checkpoint: &mut self.since_checkpoint,
                    stats: &mut self.stats,
                    checkpoint: &self.checkpoint,
                    checkpointed: &mut self.checkpointed,
                    every: self.options.checkpoint_every,
                    lost: &mut self.lost,
                    rewritten: &mut self.rewritten,
                };
                match reader.wait_next(timeout) {
                    Ok(Some(b)) => {
                        if cursor.deliver_log(&b, on)? {
                            delivered += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => *reader = cursor.reread_after(&*self.log, e)?,
                }
            }
        }
        Ok(delivered)
    }

    fn step_live(
        &mut self,
        timeout: Duration,
        on: &mut dyn FnMut(&CommittedFrame<'_>),
    ) -> Result<usize> {
        let log = Arc::clone(&self.log);
        let mut cursor = Cursor {
            processed: &mut self.processed,
            epoch: &mut self.epoch,
            since_checkpoint: &mut self.since_checkpoint,
            stats: &mut self.stats,
            checkpoint: &self.checkpoint,
            checkpointed: &mut self.checkpointed,
            every: self.options.checkpoint_every,
            lost: &mut self.lost,
            rewritten: &mut self.rewritten,
        };
        let mut delivered = 0;
        let mut failure: Option<Error> = None;
        let received = self.live.wait(timeout, &mut |d| {
            if failure.is_some() {
                return;
            }
            if let Delivery::Frame { header, payload } = d {
                if header.seq > *cursor.processed + 1 && !cursor.is_stale(header.seq, header.epoch)
                {
                    match fill_from_log(&*log, &mut cursor, header.seq, on) {
                        Ok(n) => delivered += n,
                        Err(e) => {
                            failure = Some(e);
                            return;
                        }
                    }
                }
                match cursor.deliver(
                    header.seq,
                    header.span,
                    payload,
                    header.epoch,
                    Source::Live,
                    on,
                ) {
                    Ok(true) => delivered += 1,
                    Ok(false) => {}
                    Err(e) => failure = Some(e),
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match received {
            Ok(0) => {
                if self.last_live.elapsed() >= self.options.idle_log_check {
                    // Idle: batches whose frames were lost at the tail are in the log.
                    let mut reader = cursor.open_log(&*log)?;
                    loop {
                        let b = match reader.next_batch() {
                            Ok(Some(b)) => b,
                            Ok(None) => break,
                            Err(e) => {
                                reader = cursor.reread_after(&*log, e)?;
                                continue;
                            }
                        };
                        if cursor.deliver_log(&b, on)? {
                            delivered += 1;
                        }
                    }
                    self.last_live = Instant::now();
                }
            }
            Ok(_) => self.last_live = Instant::now(),
            Err(strata_core::Error::Disconnected { .. }) => self.resubscribe()?,
            Err(e) => return Err(e.into()),
        }
        Ok(delivered)
    }
}

/// Delivers from the log every batch before `until` not yet processed.
fn fill_from_log(
    log: &dyn CommitLog,
    cursor: &mut Cursor<'_>,
    until: u64,
    on: &mut dyn FnMut(&CommittedFrame<'_>),
) -> Result<usize> {
    cursor.stats.gaps_filled += 1;
    let mut reader = cursor.open_log(log)?;
    let mut delivered = 0;
    while *cursor.processed + 1 < until {
        // A published batch is in the log; waiting covers a reader that has not yet
        // seen the newest append.
        let next = match reader.wait_next(Duration::from_secs(5)) {
            Ok(next) => next,
            Err(e) => {
                reader = cursor.reread_after(log, e)?;
                continue;
            }
        };
        match next {
            Some(b) => {
                if cursor.deliver_log(&b, on)? {
                    delivered += 1;
                }
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "the log does not hold sequences {} .. {until} announced by the live stream",
                    *cursor.processed + 1
                )));
            }
        }
    }
    Ok(delivered)
}

impl Drop for ResumableSubscriber {
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "resumable subscriber: final checkpoint failed");
        }
    }
}
