//! The reader side: sequential iteration over committed batches, and tailing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_core::fs::{File, OpenMode, read_exact_at};
use strata_core::{Error, Result, SeqNo, WalBatch, WalReader};

use crate::format::{HEADER_LEN, RECORD_PREFIX_LEN, RecordAt, decode_header, decode_record};
use crate::wal::{Inner, ReaderPin, SegmentInfo};

/// Bytes read from a segment at a time.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Reads committed batches in order; see [`strata_core::WalReader`].
#[derive(Debug)]
pub(crate) struct FileWalReader {
    inner: Arc<Inner>,
    segment: SegmentInfo,
    file: Option<Arc<dyn File>>,
    /// File offset of the next record.
    offset: u64,
    /// Sequence the next record must start at.
    expected: SeqNo,
    /// Batches ending before this are skipped (the caller asked to start mid-log).
    from: SeqNo,
    /// Bytes of `segment` starting at file offset `buf_at`.
    buf: Bytes,
    buf_at: u64,
    /// Offset of the record read last (for errors).
    record_at: u64,
    /// This reader's position, which keeps `checkpoint` from deleting what it needs.
    pin: Arc<ReaderPin>,
}

impl FileWalReader {
    pub(crate) fn new(
        inner: Arc<Inner>,
        segment: SegmentInfo,
        from: SeqNo,
        pin: Arc<ReaderPin>,
    ) -> Self {
        let expected = segment.start;
        Self {
            inner,
            segment,
            file: None,
            offset: HEADER_LEN as u64,
            expected,
            from,
            buf: Bytes::new(),
            buf_at: 0,
            record_at: 0,
            pin,
        }
    }

    fn file(&mut self) -> Result<Arc<dyn File>> {
        if let Some(f) = &self.file {
            return Ok(Arc::clone(f));
        }
        let mut opened = self.inner.fs.open(&self.segment.path, OpenMode::ReadOnly);
        if matches!(&opened, Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound)
            && self.segment.path.extension().is_some_and(|e| e == "tmp")
        {
            // A new segment a rotation had not renamed into place when this reader took
            // its path (`wal_….log.tmp`) has been renamed since (to `wal_….log`).
            self.segment.path = self.segment.path.with_extension("");
            opened = self.inner.fs.open(&self.segment.path, OpenMode::ReadOnly);
        }
        let f = opened.map_err(|e| {
            match e {
                // Deleted by a checkpoint while we were behind.
                Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::SequenceUnavailable { requested: self.expected, oldest: self.oldest() }
                }
                other => other,
            }
        })?;
        let mut header = [0u8; HEADER_LEN];
        read_exact_at(&*f, &mut header, 0)?;
        self.segment.version = decode_header(&header, &self.segment.path)?.version;
        self.file = Some(Arc::clone(&f));
        Ok(f)
    }

    fn oldest(&self) -> SeqNo {
        self.inner.segments.lock().first().map_or(SeqNo(1), |s| s.start)
    }

    /// Reads at least `want` bytes (if the file has them) starting at `self.offset`.
    fn refill(&mut self, want: usize) -> Result<()> {
        let file = self.file()?;
        let mut chunk = vec![0u8; want.max(self.chunk_len())];
        let mut filled = 0;
        while filled < chunk.len() {
            let n = file.read_at(&mut chunk[filled..], self.offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        chunk.truncate(filled);
        self.buf = Bytes::from(chunk);
        self.buf_at = self.offset;
        Ok(())
    }

    /// How much to read at once: a chunk, or in the segment being appended to only up
    /// to where its records end (so a reader at the tail does not read a megabyte of
    /// preallocated zeros for every batch).
    fn chunk_len(&self) -> usize {
        let inner = &self.inner;
        let before = inner.tail_segment.load(Ordering::SeqCst);
        let end = inner.tail_end.load(Ordering::SeqCst);
        let after = inner.tail_segment.load(Ordering::SeqCst);
        if before != after || before != self.segment.start.0 {
            return CHUNK_BYTES;
        }
        usize::try_from(end.saturating_sub(self.offset)).map_or(CHUNK_BYTES, |n| n.min(CHUNK_BYTES))
    }

    fn buffered(&self) -> &[u8] {
        let start = (self.offset - self.buf_at) as usize;
        self.buf.get(start..).unwrap_or_default()
    }

    fn buffer_covers_offset(&self) -> bool {
        self.offset >= self.buf_at && self.offset <= self.buf_at + self.buf.len() as u64
    }

    /// The record at `self.offset`, or `None` at the end of the segment's data.
    fn read_record(&mut self) -> Result<Option<WalBatch>> {
        let mut fresh = false;
        let mut reread = false;
        if !self.buffer_covers_offset() {
            self.refill(RECORD_PREFIX_LEN)?;
            fresh = true;
        }
        loop {
            let decoded = match decode_record(self.buffered(), self.segment.version) {
                RecordAt::Valid { first, count, meta, payload, size } => {
                    Ok((first, count, meta.epoch, payload.len(), size))
                }
                // A seal ends the segment's records like the zeros after them do; the
                // next segment starts at the sequence it names, which `next_segment`
                // checks against the segment list.
                RecordAt::Seal { .. } | RecordAt::End => Err(None),
                RecordAt::Incomplete => Err(None),
                // A buffer read while the writer was mid-append can hold a record's
                // length with only part of its body (the rest still zero in a
                // preallocated segment): only a fresh read may call a record damaged.
                RecordAt::Damaged(_) if !fresh => Err(None),
                // The same for a seal a rotation is writing at the end of a segment
                // readers have moved past: read once more before calling it damage.
                RecordAt::Damaged(reason) if reread => Err(Some(reason)),
                RecordAt::Damaged(_) => {
                    reread = true;
                    fresh = false;
                    Err(None)
                }
            };
            match decoded {
                Ok((first, count, epoch, payload_len, size)) => {
                    let start = (self.offset - self.buf_at) as usize + size - payload_len;
                    let payload = self.buf.slice(start..start + payload_len);
                    self.record_at = self.offset;
                    self.offset += size as u64;
                    return Ok(Some(WalBatch { first_seq: first, count, payload, epoch }));
                }
                Err(Some(reason)) => {
                    return Err(Error::corruption(&self.segment.path, self.offset, reason));
                }
                Err(None) if !fresh => {
                    // The buffer may predate the writer's latest appends, or hold only
                    // part of a long record: read again from this record's start.
                    let want = self.claimed_record_len().unwrap_or(RECORD_PREFIX_LEN);
                    self.refill(want)?;
                    fresh = true;
                }
                Err(None) => {
                    let rest = self.buffered();
                    if rest.len() >= RECORD_PREFIX_LEN || rest.iter().all(|b| *b == 0) {
                        return Ok(None);
                    }
                    return Err(Error::corruption(
                        &self.segment.path,
                        self.offset,
                        "the segment ends inside a record prefix",
                    ));
                }
            }
        }
    }

    fn claimed_record_len(&self) -> Option<usize> {
        let b = self.buffered().get(..4)?;
        let len = u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?) as usize;
        Some(RECORD_PREFIX_LEN + len.min(crate::format::MAX_BODY_LEN))
    }

    /// `truncate_after(keep)` ran since the last call: a reader that already read past
    /// `keep` handed out batches that no longer exist and fails; one that did not drops
    /// what it buffered (the bytes past the cut changed) and carries on.
    fn after_truncation(&mut self, keep: SeqNo) -> Result<()> {
        if self.expected.0 > keep.0 + 1 {
            return Err(Error::Diverged {
                seq: keep.next(),
                reason: format!(
                    "the log was truncated after sequence {keep} while this reader was at {}: \
                     what it read past {keep} no longer exists; read again from {}",
                    self.expected,
                    keep.next()
                ),
            });
        }
        let refreshed =
            self.inner.segments.lock().iter().find(|s| s.start == self.segment.start).cloned();
        if let Some(segment) = refreshed {
            self.segment = segment;
        }
        self.file = None;
        self.buf = Bytes::new();
        self.buf_at = 0;
        Ok(())
    }

    /// Moves to the segment that starts at `self.expected`.
    fn next_segment(&mut self) -> Result<()> {
        // NOTE: never the current segment: one whose data ends before its first record
        // would otherwise be re-read forever.
        let current = self.segment.start;
        let next = self
            .inner
            .segments
            .lock()
            .iter()
            .find(|s| s.start == self.expected && s.start != current)
            .cloned();
        let Some(next) = next else {
            let oldest = self.oldest();
            if self.expected < oldest {
                return Err(Error::SequenceUnavailable { requested: self.expected, oldest });
            }
            return Err(Error::corruption(
                &self.segment.path,
                self.offset,
                format!(
                    "segment data ends before sequence {} and no segment starts there",
                    self.expected
                ),
            ));
        };
        self.segment = next;
        self.file = None;
        self.offset = HEADER_LEN as u64;
        self.buf = Bytes::new();
        self.buf_at = 0;
        Ok(())
    }
}

impl WalReader for FileWalReader {
    fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        loop {
            let truncated = self.pin.truncated_at.swap(u64::MAX, Ordering::AcqRel);
            if truncated != u64::MAX {
                self.after_truncation(SeqNo(truncated))?;
            }
            if self.pin.cut.load(Ordering::Acquire) {
                // Cut off by `checkpoint`: the segments it needed are gone.
                return Err(Error::SequenceUnavailable {
                    requested: self.expected.max(self.from),
                    oldest: self.oldest(),
                });
            }
            if self.expected.0 > self.inner.written_seq.load(Ordering::Acquire) {
                return Ok(None);
            }
            let Some(batch) = self.read_record()? else {
                self.next_segment()?;
                continue;
            };
            if batch.first_seq != self.expected {
                return Err(Error::corruption(
                    &self.segment.path,
                    self.record_at,
                    format!(
                        "record starts at sequence {}, expected {}",
                        batch.first_seq, self.expected
                    ),
                ));
            }
            self.expected = batch.last_seq().next();
            if batch.last_seq() >= self.from {
                self.pin.next.store(self.expected.0, Ordering::Release);
                return Ok(Some(batch));
            }
        }
    }

    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(batch) = self.next_batch()? {
                return Ok(Some(batch));
            }
            let expected = self.expected.0;
            let inner = Arc::clone(&self.inner);
            let ready = inner
                .tail
                .wait_until(deadline, || inner.written_seq.load(Ordering::Acquire) >= expected);
            if !ready {
                return Ok(None);
            }
        }
    }
}
