//! The commit stream: every batch the store commits, published in commit order.
//!
//! [`CommitStream::start`] runs a thread that tails the store's log
//! ([`Db::read_log_from`] then [`WalReader::wait_next`](strata_core::WalReader)) and
//! publishes each committed batch — once it is visible and durable, or with
//! [`CommitStream::start_with`] and `LogBound::Visible` as soon as it is visible — as one
//! frame: `seq` = the batch's first sequence, `epoch` = the store's epoch that wrote it,
//! `span` = its entry count, payload = the batch's operations in the WAL's encoded form
//! (the bytes of [`WriteBatch::as_bytes`](strata_core::WriteBatch::as_bytes); decode
//! them with [`BatchIter`](strata_core::BatchIter) or [`decode_batch`]). Subscribers
//! therefore receive exactly what the log holds, in order, with its sequence, and a
//! subscriber that missed frames can read them from the log by sequence.
//!
//! A batch larger than the endpoint's maximum payload is not published (it is logged);
//! subscribers see the hole as a gap and read the batch from the log. The thread stops
//! when the [`CommitStream`] is dropped or [`CommitStream::stop`] is called.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use strata_core::transport::TopicPublisher;
use strata_core::{BatchIter, Db, LogBound, SeqNo, ValueKind, WalReader};

use crate::error::{Error, Result};

/// How long the tailing thread waits for a commit before checking for a stop request.
const POLL: Duration = Duration::from_millis(20);

/// The running commit stream; see the module docs.
#[derive(Debug)]
pub struct CommitStream {
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl CommitStream {
    /// Starts publishing every batch from the one holding `from` (use `SeqNo(1)` for
    /// the whole retained log, or `SeqNo(db_last + 1)` for new commits only), each once
    /// it is visible and durable: subscribers never hold a batch the store may lose.
    pub fn start(db: Arc<Db>, publisher: Box<dyn TopicPublisher>, from: SeqNo) -> Result<Self> {
        Self::start_with(db, publisher, from, LogBound::Durable)
    }

    /// Like [`start`](Self::start), publishing each batch as soon as `bound` allows:
    /// `LogBound::Visible` publishes before the batch's fdatasync (lowest latency; a
    /// power loss may take back published batches, which resuming subscribers learn
    /// from the store's epoch history).
    pub fn start_with(
        db: Arc<Db>,
        mut publisher: Box<dyn TopicPublisher>,
        from: SeqNo,
        bound: LogBound,
    ) -> Result<Self> {
        let mut reader = db.read_log_from_with(from, bound)?;
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let (stop2, published2) = (Arc::clone(&stop), Arc::clone(&published));
        let thread = std::thread::Builder::new()
            .name("strata-commit-stream".into())
            .spawn(move || -> Result<()> {
                // The store must outlive the reader; the thread keeps it open.
                let reopen = |at: SeqNo| db.read_log_from_with(at, bound);
                let outcome =
                    publish_loop(&mut reader, &reopen, &mut *publisher, &stop2, &published2);
                // Said when it happens, not only when the owner stops the stream:
                // subscribers get no live frames from here on.
                if let Err(e) = &outcome {
                    tracing::error!(
                        error = %e,
                        published_up_to = published2.load(Ordering::Acquire),
                        "commit stream stopped; subscribers must resume from the log"
                    );
                }
                outcome
            })
            .map_err(|e| Error::io("spawn commit stream thread", "", e))?;
        Ok(Self { stop, published, thread: Some(thread) })
    }

    /// The last sequence published (0 before the first batch).
    pub fn published_seq(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Whether the publishing thread has ended (an error stopped it, or it was asked
    /// to stop); [`stop`](Self::stop) returns how it ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until everything up to `seq` is published or `timeout` passes; returns
    /// whether it was. (For tests and orderly shutdowns.)
    pub fn wait_published(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.published_seq() < seq {
            if std::time::Instant::now() >= deadline
                || self.thread.as_ref().is_none_or(|t| t.is_finished())
            {
                return self.published_seq() >= seq;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Stops the thread and returns its outcome (an error that ended it early).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::InvalidArgument("the commit stream thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for CommitStream {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::error!(error = %e, "commit stream ended with an error");
        }
    }
}

/// Publishes every batch the reader yields until `stop` is set or something fails.
///
/// A log truncated under the reader (`Error::Diverged`: a replica, or an old primary
/// that rejoined, dropped a tail a newer epoch replaced) is read again from the cut
/// with a reader from `reopen`; the first batch there carries the newer epoch, so it
/// is published as a rewind (see `TopicPublisher`) and subscribers learn that what
/// they held from there on was rewritten.
fn publish_loop(
    reader: &mut Box<dyn WalReader>,
    reopen: &dyn Fn(SeqNo) -> strata_core::Result<Box<dyn WalReader>>,
    publisher: &mut dyn TopicPublisher,
    stop: &AtomicBool,
    published: &AtomicU64,
) -> Result<()> {
    let mut epoch = None;
    while !stop.load(Ordering::Acquire) {
        let batch = match reader.wait_next(POLL) {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(strata_core::Error::Diverged { seq, reason }) => {
                tracing::warn!(
                    from = seq.0,
                    published_up_to = published.load(Ordering::Acquire),
                    %reason,
                    "commit stream: the log was truncated under it; publishing again from \
                     the cut (subscribers are told the rest was rewritten)"
                );
                *reader = reopen(seq)?;
                published.store(seq.0.saturating_sub(1), Ordering::Release);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if epoch != Some(batch.epoch) {
            // Frames carry the epoch that wrote their batch, so a subscriber holds
            // `(epoch, seq)` to resume with.
            publisher.set_epoch(batch.epoch.0);
            epoch = Some(batch.epoch);
        }
        let count = batch.count.max(1);
        match publisher.publish(batch.first_seq.0, count, &batch.payload) {
            Ok(()) => {}
            Err(strata_core::Error::FrameTooLarge { len, max, .. }) => {
                tracing::warn!(
                    seq = batch.first_seq.0,
                    len,
                    max,
                    "commit stream: batch exceeds the transport's frame limit; subscribers read it from the log"
                );
            }
            Err(e) => return Err(e.into()),
        }
        publisher.flush()?;
        published.store(batch.last_seq().0, Ordering::Release);
    }
    Ok(())
}

/// One operation of a committed batch, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOp {
    /// The operation's sequence.
    pub seq: u64,
    /// Put or delete.
    pub kind: ValueKind,
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for deletes).
    pub value: Vec<u8>,
}

/// Decodes a commit-stream payload whose frame starts at `first_seq`.
pub fn decode_batch(first_seq: u64, payload: &[u8]) -> Result<Vec<CommittedOp>> {
    BatchIter::new(payload)
        .enumerate()
        .map(|(i, op)| {
            let op = op.map_err(|e| {
                Error::decode("committed batch", format!("at byte {}: {}", e.offset, e.reason))
            })?;
            Ok(CommittedOp {
                seq: first_seq + i as u64,
                kind: op.kind,
                key: op.key.to_vec(),
                value: op.value.to_vec(),
            })
        })
        .collect()
}
