//! The writer side: open/recover, append with group commit, rotation, checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_core::fs::{File, FileSystem, OpenMode, WritebackPacer, read_exact_at};
use strata_core::{
    Durability, Epoch, EpochStart, Error, Result, SeqNo, Wal, WalBatch, WalFactory, WalReader,
    WalRecovery, batch::MAX_BATCH_BYTES,
};

use crate::epochs;
use crate::format::{
    BODY_PREFIX_LEN, HEADER_LEN, RECORD_PREFIX_LEN, RecordMeta, VERSION, decode_header,
    encode_header, encode_record, encode_seal, is_spare_file_name, parse_segment_file_name,
    segment_file_name,
};
use crate::notify::TailNotify;
use crate::options::FileWalOptions;
use crate::reader::FileWalReader;
use crate::recovery::scan_last_segment;
use crate::spare::SpareSlot;

/// A scratch buffer larger than this is released after use, so one huge batch does not
/// pin its memory for the life of the log.
const KEEP_SCRATCH_BYTES: usize = 4 * 1024 * 1024;

/// One segment file of the log.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    pub start: SeqNo,
    pub path: PathBuf,
    pub size_bytes: u64,
    /// Format version of the segment's records.
    pub version: u32,
}

#[derive(Debug)]
struct Writer {
    file: Arc<dyn File>,
    offset: u64,
    next_seq: u64,
    scratch: Vec<u8>,
    /// Bytes before this offset of the current segment hold written zeros or records
    /// (see [`FileWalOptions::zero_ahead_bytes`]).
    zeroed_to: u64,
    /// Starts writeback of the current segment every `writeback_bytes`.
    writeback: WritebackPacer,
    /// Format version of the current segment (an old-format segment is never appended
    /// to: the first append rotates to a new one).
    version: u32,
    /// What open found and left for the first append to do, so that opening writes
    /// nothing: a torn tail to zero out, the segment to preallocate again.
    prep: Option<OpenPrep>,
    /// The epoch of this incarnation is in the durable history (done before the first
    /// batch of the epoch is written).
    epoch_recorded: bool,
    /// A spare segment was asked for while this segment is current (see
    /// `Inner::request_spare`).
    spare_asked: bool,
}

/// Deferred work from open (see `Writer::prep`).
#[derive(Debug)]
struct OpenPrep {
    /// Offset and length of bytes past the end of the log that are not zero.
    torn: Option<(u64, u64)>,
    /// A truncation a crash interrupted (see [`crate::truncation`]): the segments past
    /// it to delete (newest first); the history in memory is already cut, and the
    /// marker is removed once the files agree.
    truncation: Option<Vec<PathBuf>>,
    /// A new segment open adopted under its temporary name: its rotation is finished
    /// before the first append.
    adoption: Option<Adoption>,
    /// Temporary segment files no rotation will finish: removed before the first
    /// append, so none is ever taken for a later segment of the same name.
    strays: Vec<PathBuf>,
}

/// The rest of an interrupted rotation that open found (see [`PendingRotation`]).
#[derive(Debug)]
struct Adoption {
    /// The predecessor to seal; `None` when the temporary segment is the whole log (see
    /// [`lone_temporary`]).
    old: Option<Arc<dyn File>>,
    /// Where the old segment's records end and how many torn bytes follow, when it has
    /// no seal yet.
    seal_at: Option<(u64, u64)>,
    /// The epoch the seal records (the old segment's newest).
    epoch: Epoch,
    tmp: PathBuf,
    path: PathBuf,
}

impl Writer {
    /// A writer at the start of a freshly created segment whose first `zeroed_to` bytes
    /// are written (see `create_segment`).
    fn at_new_segment(
        file: Arc<dyn File>,
        next_seq: u64,
        zeroed_to: u64,
        options: &FileWalOptions,
    ) -> Self {
        let header_end = HEADER_LEN as u64;
        Self {
            file,
            offset: header_end,
            next_seq,
            scratch: Vec::new(),
            zeroed_to,
            writeback: WritebackPacer::new(options.writeback_bytes, header_end),
            version: VERSION,
            prep: None,
            epoch_recorded: false,
            spare_asked: false,
        }
    }
}

/// A spare segment is asked for once the current one is this fraction (1/n) full.
const SPARE_AT_FRACTION: u64 = 4;

/// Zero-ahead tops up in this many steps per `zero_ahead_bytes` (see `Inner::zero_ahead`).
const ZERO_AHEAD_STEPS: u64 = 16;

/// A waiter's turn, as its leader sets it: still waiting, covered (or failed: look at
/// the poison), or now the leader.
const TURN_WAIT: u8 = 0;
const TURN_DONE: u8 = 1;
const TURN_LEAD: u8 = 2;

/// The group-commit queue (see `Inner::sync_up_to`).
#[derive(Debug, Default)]
struct SyncQueue {
    /// An appender is running (or is about to run) fdatasync.
    leading: bool,
    /// Appenders waiting for their sequence to become durable, in arrival order.
    waiters: Vec<SyncWaiter>,
}

#[derive(Debug)]
struct SyncWaiter {
    target: u64,
    thread: std::thread::Thread,
    turn: Arc<AtomicU8>,
}

impl SyncWaiter {
    fn wake(self, turn: u8) {
        self.turn.store(turn, Ordering::Release);
        self.thread.unpark();
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    options: FileWalOptions,
    writer: Mutex<Writer>,
    /// Group commit: who runs fdatasync now, and who waits for it.
    sync_queue: Mutex<SyncQueue>,
    /// Last sequence whose bytes the OS holds; readers never look past it.
    pub written_seq: AtomicU64,
    /// Start sequence of the segment being appended to, and the offset where its
    /// records end: a reader at the tail reads only up to there instead of a whole
    /// chunk of preallocated zeros. Updated before `written_seq`.
    pub tail_segment: AtomicU64,
    pub tail_end: AtomicU64,
    synced_seq: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<Option<String>>,
    /// Sorted by start sequence; the last one is being appended to.
    pub segments: Mutex<Vec<SegmentInfo>>,
    checkpoint: AtomicU64,
    pub tail: TailNotify,
    recovery: WalRecovery,
    /// The epoch local appends write in (a promotion moves it on).
    epoch: AtomicU64,
    /// The durable epoch history (see [`crate::epochs`]).
    history: Mutex<Vec<EpochStart>>,
    /// The newest epoch of `history`, read on every append without its lock.
    newest: AtomicU64,
    /// Positions of live readers (see [`FileWalOptions::reader_retention_bytes`]).
    /// Locked inside `segments` only.
    pins: Mutex<Vec<std::sync::Weak<ReaderPin>>>,
    /// Readers cut off for lagging past the retention limit.
    readers_cut_off: AtomicU64,
    /// A rotation whose durable steps have not run yet (see `Inner::finish_rotation`).
    /// Lock order: `writer`, then this, then `segments`.
    rotation: Mutex<Option<PendingRotation>>,
    /// Start of the segment a pending rotation has yet to seal (`u64::MAX`: none):
    /// `checkpoint` keeps it, since the new segment is not in place before it is sealed.
    rotating_from: AtomicU64,
    /// This log, for the thread that finishes a rotation off the write path.
    me: std::sync::Weak<Inner>,
    /// The segment prepared for the next rotation (see
    /// [`FileWalOptions::spare_segment`]). Lock order: `writer`, then this.
    spare: Arc<SpareSlot>,
}

/// A rotation past its switch: appends go to the new segment, which still has its
/// temporary name, while the steps that make the switch durable are still to run.
///
/// Those steps are what a rotation used to make writers wait for — on a disk busy
/// with flushes and compactions, each fdatasync took tens of milliseconds, so every
/// 64 MiB one write took over 100 ms. They run on a thread of their own (or on whoever
/// needs them first: a `Sync` appender, a checkpoint, a truncation, a copy), in the
/// order that keeps every crash state readable:
/// 1. fdatasync the old segment (its records become durable);
/// 2. preallocate the new segment, fdatasync it (header and length) and the directory
///    (its temporary name): from here on the successor can be found;
/// 3. write the seal into the old segment and fdatasync it;
/// 4. rename the new segment into place and fdatasync the directory.
///
/// Open adopts a temporary successor whose header names the sequence after the last
/// one of the newest segment (sealed or not): so a process crash loses nothing the OS
/// holds, and after a power loss either the successor was durable before the seal was
/// written, or the seal is absent and nothing in the successor was acknowledged as
/// durable (a `Sync` append waits for these steps).
#[derive(Debug)]
struct PendingRotation {
    old: Arc<dyn File>,
    /// Where the old segment's records end: the seal goes there.
    old_end: u64,
    /// The old segment's start (to find it in the segment list).
    old_start: SeqNo,
    /// The epoch the seal records.
    epoch: Epoch,
    /// The new segment's start, open file and its temporary and final paths.
    next: SeqNo,
    new: Arc<dyn File>,
    /// The new segment is a spare: written to its full size already, nothing to
    /// preallocate.
    from_spare: bool,
    tmp: PathBuf,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A clean close leaves no rotation for the next open to adopt.
        if let Err(e) = self.finish_rotation() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "WAL rotation not finished at close");
        }
        // Nor a spare segment on disk, nor a thread writing one.
        self.spare.close(&*self.fs);
    }
}

/// A reader's position, as `checkpoint` sees it.
#[derive(Debug)]
pub(crate) struct ReaderPin {
    /// The first sequence the reader has not read yet.
    pub next: AtomicU64,
    /// Set when `checkpoint` deleted segments the reader still needed.
    pub cut: AtomicBool,
    /// The lowest sequence a `truncate_after` kept since the reader last looked
    /// (`u64::MAX`: none): what the reader buffered past it is gone.
    pub truncated_at: AtomicU64,
}

/// The segmented file WAL. See the crate docs for its guarantees.
#[derive(Debug, Clone)]
pub struct FileWal {
    inner: Arc<Inner>,
}

/// Opens [`FileWal`]s with fixed options; the factory the engine's builder takes.
#[derive(Debug, Clone, Default)]
pub struct FileWalFactory {
    options: FileWalOptions,
}

impl FileWalFactory {
    /// A factory that opens logs with `options`.
    pub fn new(options: FileWalOptions) -> Self {
        Self { options }
    }
}

impl WalFactory for FileWalFactory {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FileWal::open(fs, dir, self.options.clone())?))
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

impl FileWal {
    /// Opens the log in `dir` (creating the first segment if there is none), checks every
    /// segment header and recovers the last segment's tail.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, options: FileWalOptions) -> Result<FileWal> {
        if options.segment_size_bytes < (HEADER_LEN + RECORD_PREFIX_LEN + BODY_PREFIX_LEN) as u64 {
            return Err(Error::Config(format!(
                "WAL segment_size_bytes {} is smaller than a segment header plus one record",
                options.segment_size_bytes
            )));
        }
        fs.create_dir_all(dir)?;
        let mut starts = Vec::new();
        // `*.log.tmp` files are new segments a rotation had not renamed into place (see
        // `PendingRotation`): the successor of the newest segment is adopted, any other
        // is removed by the first append. Open changes nothing.
        let mut tmps = Vec::new();
        // Spare segments (see `FileWalOptions::spare_segment`) are not part of the log;
        // ones a crash left behind are removed with the strays.
        let mut spares = Vec::new();
        for name in fs.list_dir(dir)? {
            if is_spare_file_name(&name) {
                spares.push(dir.join(&name));
            } else if let Some(start) = parse_segment_file_name(&name) {
                starts.push(start);
            } else if let Some(start) = name.strip_suffix(".tmp").and_then(parse_segment_file_name)
            {
                tmps.push((start, dir.join(&name)));
            }
        }
        starts.sort();
        // No segment under its final name, but a temporary one: the whole log is that
        // segment (its predecessors were checkpointed before it was renamed).
        let lone = match starts.is_empty() {
            true => lone_temporary(&*fs, &mut tmps)?,
            false => None,
        };
        if let Some((start, _)) = &lone {
            starts.push(*start);
        }
        let mut history = epochs::load(&*fs, dir)?;
        // A truncation a crash interrupted: the log is the truncated one (the marker is
        // the cut's commit point); the files are brought in line at the first append.
        let keep = crate::truncation::load(&*fs, dir)?;
        let mut cut_segments = Vec::new();
        if let Some(k) = keep {
            while starts.len() > 1 && starts.last().is_some_and(|s| s.0 > k.0 + 1) {
                if let Some(s) = starts.pop() {
                    cut_segments.push(dir.join(segment_file_name(s)));
                }
            }
            history.retain(|e| e.first_seq.0 <= k.0);
        }

        let mut segments = Vec::with_capacity(starts.len());
        let mut headers = Vec::with_capacity(starts.len());
        for start in starts {
            let path = match &lone {
                Some((s, tmp)) if *s == start => tmp.clone(),
                _ => dir.join(segment_file_name(start)),
            };
            let file = fs.open(&path, OpenMode::ReadOnly)?;
            let mut header = [0u8; HEADER_LEN];
            read_exact_at(&*file, &mut header, 0)?;
            let decoded = decode_header(&header, &path)?;
            if decoded.start != start {
                return Err(Error::corruption(
                    &path,
                    16,
                    format!(
                        "header says the segment starts at {}, its name says {start}",
                        decoded.start
                    ),
                ));
            }
            segments.push(SegmentInfo {
                start,
                path,
                size_bytes: file.len()?,
                version: decoded.version,
            });
            headers.push(decoded);
        }

        let mut recovery = WalRecovery::default();
        let mut max_epoch = history.last().map_or(Epoch::ZERO, |e| e.epoch);
        let writer = match (segments.last_mut(), headers.last()) {
            (Some(last), Some(header)) => {
                let file = fs.open(&last.path, OpenMode::ReadWrite)?;
                let scan = scan_last_segment(&*file, &last.path, *header, keep)?;
                let successor = match keep {
                    Some(_) => None,
                    None => adoptable(&*fs, &tmps, &scan, OpenMode::ReadWrite)?,
                };
                let mut adopted = None;
                if let Some((tmp_path, tmp_file, tmp_header)) = successor {
                    let tmp_scan = scan_last_segment(&*tmp_file, &tmp_path, tmp_header, None)?;
                    if let Some(next) = tmp_scan.sealed {
                        return Err(Error::corruption(
                            &tmp_path,
                            tmp_scan.end,
                            format!(
                                "a segment that was never renamed into place ends in a seal \
                                 naming {next}: the log is damaged; restore it from a backup \
                                 or a replica before opening"
                            ),
                        ));
                    }
                    // The old segment is complete up to its seal (or its last record).
                    file.sync_data()?;
                    max_epoch = max_epoch.max(scan.max_epoch);
                    last.size_bytes = scan.end;
                    let seal_at = match scan.sealed {
                        Some(_) => None,
                        None => Some((scan.end, scan.torn_bytes.unwrap_or(0))),
                    };
                    let final_path = dir.join(segment_file_name(tmp_header.start));
                    adopted = Some((
                        SegmentInfo {
                            start: tmp_header.start,
                            path: tmp_path.clone(),
                            size_bytes: tmp_scan.end,
                            version: tmp_header.version,
                        },
                        tmp_header,
                        tmp_file,
                        tmp_scan,
                        Adoption {
                            old: Some(Arc::clone(&file)),
                            seal_at,
                            epoch: scan.max_epoch,
                            tmp: tmp_path,
                            path: final_path,
                        },
                    ));
                }
                let (file, scan, header, adoption) = match adopted {
                    Some((info, header, tmp_file, tmp_scan, adoption)) => {
                        segments.push(info);
                        (tmp_file, tmp_scan, header, Some(adoption))
                    }
                    None => {
                        // The lone temporary segment gets its final name at the first
                        // append, like an adopted successor (open changes nothing).
                        let adoption = lone.as_ref().map(|(start, tmp)| Adoption {
                            old: None,
                            seal_at: None,
                            epoch: scan.max_epoch,
                            tmp: tmp.clone(),
                            path: dir.join(segment_file_name(*start)),
                        });
                        (file, scan, *header, adoption)
                    }
                };
                let strays: Vec<PathBuf> = tmps
                    .iter()
                    .map(|(_, p)| p.clone())
                    .filter(|p| adoption.as_ref().is_none_or(|a| a.tmp != *p))
                    .chain(spares.drain(..))
                    .collect();
                let Some(last) = segments.last_mut() else {
                    return Err(Error::Config("WAL segment list is empty after open".into()));
                };
                if let Some(next) = scan.sealed {
                    return Err(Error::corruption(
                        &last.path,
                        scan.end,
                        format!(
                            "the newest segment was sealed when the log moved on to {}, which is missing: \
                             the newest segment was deleted or lost, and with it acknowledged \
                             writes from sequence {next} on. Restore {} from a backup or a \
                             replica before opening",
                            segment_file_name(next),
                            segment_file_name(next),
                        ),
                    ));
                }
                max_epoch = max_epoch.max(scan.max_epoch);
                if let Some(torn) = scan.torn_bytes
                    && keep.is_none()
                {
                    recovery.truncated_tail = Some((last.path.clone(), scan.end, torn));
                    recovery.dropped_unsynced_records = scan.dropped_unsynced;
                }
                recovery.pending_truncation = keep;
                // Whatever a crashed process left in the page cache becomes durable now,
                // so "written" and "synced" agree from the start. (This changes no byte.)
                file.sync_data()?;
                last.size_bytes = scan.end;
                Writer {
                    file,
                    offset: scan.end,
                    next_seq: scan.last_seq.0 + 1,
                    scratch: Vec::new(),
                    // What lies past the end is unknown (zeros, but maybe unwritten
                    // extents): the first append zeroes ahead again.
                    zeroed_to: scan.end,
                    writeback: WritebackPacer::new(options.writeback_bytes, scan.end),
                    version: header.version,
                    prep: Some(OpenPrep {
                        torn: scan.torn_bytes.filter(|n| *n > 0).map(|n| (scan.end, n)),
                        truncation: keep.map(|_| std::mem::take(&mut cut_segments)),
                        adoption,
                        strays,
                    }),
                    epoch_recorded: false,
                    spare_asked: false,
                }
            }
            _ => {
                let (file, info, zeroed_to) = create_segment(&*fs, dir, SeqNo(1), &options)?;
                segments.push(info);
                Writer::at_new_segment(file, 1, zeroed_to, &options)
            }
        };
        let epoch = Epoch(max_epoch.0 + 1);
        recovery.epoch = epoch;
        let tail_segment = segments.last().map_or(1, |s| s.start.0);
        let tail_end = writer.offset;
        let last_seq = writer.next_seq - 1;
        recovery.last_seq = SeqNo(last_seq);
        tracing::debug!(dir = %dir.display(), segments = segments.len(), last_seq, "WAL opened");
        Ok(FileWal {
            inner: Arc::new_cyclic(|me| Inner {
                me: me.clone(),
                rotation: Mutex::new(None),
                rotating_from: AtomicU64::new(u64::MAX),
                spare: Arc::new(SpareSlot::default()),
                fs,
                dir: dir.to_path_buf(),
                options,
                writer: Mutex::new(writer),
                sync_queue: Mutex::new(SyncQueue::default()),
                written_seq: AtomicU64::new(last_seq),
                tail_segment: AtomicU64::new(tail_segment),
                tail_end: AtomicU64::new(tail_end),
                synced_seq: AtomicU64::new(last_seq),
                poisoned: AtomicBool::new(false),
                poison_reason: Mutex::new(None),
                segments: Mutex::new(segments),
                checkpoint: AtomicU64::new(0),
                tail: TailNotify::default(),
                recovery,
                epoch: AtomicU64::new(epoch.0),
                newest: AtomicU64::new(history.last().map_or(0, |e| e.epoch.0)),
                history: Mutex::new(history),
                pins: Mutex::new(Vec::new()),
                readers_cut_off: AtomicU64::new(0),
            }),
        })
    }

    /// Whether a spare segment is ready for the next rotation (see
    /// [`FileWalOptions::spare_segment`]).
    pub fn spare_ready(&self) -> bool {
        self.inner.spare.is_ready()
    }

    /// Number of segment files currently held.
    pub fn segment_count(&self) -> usize {
        self.inner.segments.lock().len()
    }

    /// Readers cut off so far because they lagged past
    /// [`FileWalOptions::reader_retention_bytes`].
    pub fn readers_cut_off(&self) -> u64 {
        self.inner.readers_cut_off.load(Ordering::Acquire)
    }

    /// The oldest sequence still readable.
    pub fn oldest_seq(&self) -> SeqNo {
        self.inner.segments.lock().first().map_or(SeqNo(1), |s| s.start)
    }
}

impl Inner {
    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let reason = self.poison_reason.lock().clone();
            return Err(Error::Poisoned { reason: reason.unwrap_or_default() });
        }
        Ok(())
    }

    fn poison(&self, what: &str, err: &Error) {
        let mut reason = self.poison_reason.lock();
        if reason.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %err, "{what}; WAL poisoned");
            *reason = Some(format!("{what}: {err}"));
        }
        self.poisoned.store(true, Ordering::Release);
    }

    /// Starts a new segment at `w.next_seq` and leaves the steps that make the switch
    /// durable to [`PendingRotation`]'s thread. An old-format segment is rotated the
    /// slow way (it has no seal to write).
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        // One rotation in flight at a time: finish the previous one first.
        self.finish_rotation()?;
        if w.version != VERSION {
            return self.rotate_now(w);
        }
        let next = SeqNo(w.next_seq);
        let path = self.dir.join(segment_file_name(next));
        let tmp = self.dir.join(format!("{}.tmp", segment_file_name(next)));
        if self.fs.exists(&tmp)? {
            self.fs.remove_file(&tmp)?;
        }
        let header_end = HEADER_LEN as u64;
        let created_len = created_len(&self.options);
        let (new, zeroed_to, from_spare) = match self.spare.take(&*self.fs, next, created_len, &tmp)
        {
            Some(spare) => {
                tracing::debug!(segment = %tmp.display(), "WAL rotation onto the spare segment");
                (spare, self.options.segment_size_bytes, true)
            }
            None => {
                tracing::debug!(segment = %tmp.display(), spare = self.options.spare_segment,
                    "WAL rotation creates its segment in line (no spare ready)");
                let new = self.fs.open(&tmp, OpenMode::CreateNew)?;
                new.write_all_at(&encode_header(next, created_len), 0)?;
                // The created length at once, so a file a crashed process left behind is
                // never shorter than its header says (preallocation follows off the
                // write path).
                new.set_len(created_len)?;
                // Zeros ahead are written in steps as records arrive (`zero_ahead`), not
                // all at once here: the bytes read as zeros either way.
                let zeroed_to = (header_end + self.options.zero_ahead_bytes)
                    .saturating_sub(self.options.zero_ahead_bytes / ZERO_AHEAD_STEPS)
                    .max(header_end);
                (new, zeroed_to, false)
            }
        };
        self.rotating_from.store(self.tail_segment.load(Ordering::SeqCst), Ordering::SeqCst);
        let pending = PendingRotation {
            old: Arc::clone(&w.file),
            old_end: w.offset,
            old_start: SeqNo(self.tail_segment.load(Ordering::SeqCst)),
            epoch: Epoch(self.epoch.load(Ordering::Acquire)),
            next,
            new: Arc::clone(&new),
            from_spare,
            tmp: tmp.clone(),
            path,
        };
        {
            let mut segments = self.segments.lock();
            if let Some(last) = segments.last_mut() {
                last.size_bytes = w.offset;
            }
            segments.push(SegmentInfo {
                start: next,
                path: tmp,
                size_bytes: header_end,
                version: VERSION,
            });
        }
        *self.rotation.lock() = Some(pending);
        let scratch = std::mem::take(&mut w.scratch);
        self.tail_segment.store(next.0, Ordering::SeqCst);
        self.tail_end.store(header_end, Ordering::SeqCst);
        *w = Writer {
            scratch,
            epoch_recorded: w.epoch_recorded,
            ..Writer::at_new_segment(new, w.next_seq, zeroed_to, &self.options)
        };
        let me = self.me.clone();
        let spawned =
            std::thread::Builder::new().name("strata-wal-rotation".into()).spawn(move || {
                if let Some(inner) = me.upgrade() {
                    // A failure poisons the log; appends report it.
                    let _ = inner.finish_rotation();
                }
            });
        if spawned.is_err() {
            self.finish_rotation()?;
        }
        Ok(())
    }

    /// Asks for a spare segment (written on a thread of its own) once the current
    /// segment is a quarter full: early enough that it is usually ready when the
    /// segment fills, late enough that a log that never rotates writes none.
    fn request_spare(&self, w: &mut Writer) {
        if w.spare_asked
            || !self.options.spare_segment
            || w.offset < self.options.segment_size_bytes / SPARE_AT_FRACTION
            || self.poisoned.load(Ordering::Acquire)
        {
            return;
        }
        w.spare_asked = true;
        self.spare.start(Arc::clone(&self.fs), self.dir.clone(), self.options.clone());
    }

    /// Runs the durable steps of a pending rotation (see [`PendingRotation`]), if any;
    /// returns once they are done. A failure poisons the log.
    fn finish_rotation(&self) -> Result<()> {
        let mut slot = self.rotation.lock();
        let Some(p) = slot.as_ref() else { return Ok(()) };
        let old_last = SeqNo(p.next.0 - 1);
        let seal_len = (RECORD_PREFIX_LEN + BODY_PREFIX_LEN) as u64;
        let done = (|| {
            p.old.sync_data()?;
            self.synced_seq.fetch_max(old_last.0, Ordering::AcqRel);
            if self.options.preallocate && !p.from_spare {
                p.new.allocate(self.options.segment_size_bytes)?;
            }
            p.new.sync_data()?;
            self.fs.sync_dir(&self.dir)?;
            let mut seal = Vec::with_capacity(seal_len as usize);
            encode_seal(&mut seal, p.next, RecordMeta { epoch: p.epoch, synced_through: old_last });
            p.old.write_all_at(&seal, p.old_end)?;
            p.old.sync_data()?;
            self.fs.rename(&p.tmp, &p.path)?;
            self.fs.sync_dir(&self.dir)
        })();
        if let Err(e) = done {
            self.poison("WAL segment rotation failed", &e);
            return Err(e);
        }
        {
            let mut segments = self.segments.lock();
            for s in segments.iter_mut() {
                if s.start == p.old_start {
                    s.size_bytes = p.old_end + seal_len;
                } else if s.start == p.next {
                    s.path = p.path.clone();
                }
            }
        }
        *slot = None;
        self.rotating_from.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }

    /// Closes the current segment durably and starts a new one at `w.next_seq`, all
    /// before the next append.
    fn rotate_now(&self, w: &mut Writer) -> Result<()> {
        // IMPORTANT: the old segment must be durable before the new one exists: recovery
        // looks for a torn tail in the last segment only.
        w.file.sync_data()?;
        self.synced_seq.fetch_max(w.next_seq - 1, Ordering::AcqRel);
        let next = SeqNo(w.next_seq);
        let (file, info, zeroed_to) = create_segment(&*self.fs, &self.dir, next, &self.options)?;
        // The seal goes in only once the next segment exists durably: a newest segment
        // that ends in a seal has lost its successor, and open refuses it.
        let mut sealed_end = w.offset;
        if w.version == VERSION {
            let mut seal = Vec::with_capacity(RECORD_PREFIX_LEN + BODY_PREFIX_LEN);
            let meta = RecordMeta {
                epoch: Epoch(self.epoch.load(Ordering::Acquire)),
                synced_through: SeqNo(w.next_seq - 1),
            };
            encode_seal(&mut seal, next, meta);
            w.file.write_all_at(&seal, w.offset)?;
            w.file.sync_data()?;
            sealed_end += seal.len() as u64;
        }
        {
            let mut segments = self.segments.lock();
            match segments.last_mut() {
                // An old-format segment without records was just replaced by the new
                // one of the same name.
                Some(last) if last.start == next => *last = info,
                Some(last) => {
                    last.size_bytes = sealed_end;
                    segments.push(info);
                }
                None => segments.push(info),
            }
        }
        let scratch = std::mem::take(&mut w.scratch);
        // The new segment's start first: a reader that sees the old start around its
        // read of `tail_end` knows the end belongs to the old segment.
        self.tail_segment.store(next.0, Ordering::SeqCst);
        self.tail_end.store(HEADER_LEN as u64, Ordering::SeqCst);
        *w = Writer {
            scratch,
            epoch_recorded: w.epoch_recorded,
            ..Writer::at_new_segment(file, w.next_seq, zeroed_to, &self.options)
        };
        Ok(())
    }

    /// Keeps written zeros `zero_ahead_bytes` past `end`, topping up in steps of a
    /// sixteenth of that distance, so the file system converts extents (and commits
    /// metadata) once per step instead of on every `Sync` append's fdatasync.
    ///
    /// Small steps matter for `Sync` writers: the next fdatasync flushes the fresh zeros
    /// too. Topping up half the distance at once (512 KiB by default) made that one
    /// fdatasync take milliseconds while every group-commit waiter queued behind it.
    ///
    /// A failure fails the append before its record is written. The WAL is not
    /// poisoned: zeros past the last record change nothing a reader or recovery sees.
    fn zero_ahead(&self, w: &mut Writer, end: u64) -> Result<()> {
        let ahead = self.options.zero_ahead_bytes;
        let step = (ahead / ZERO_AHEAD_STEPS).max(4096).min(ahead);
        if ahead == 0 || end.saturating_add(ahead).saturating_sub(step) < w.zeroed_to {
            return Ok(());
        }
        let from = w.zeroed_to.max(end);
        let to = end.saturating_add(ahead).min(self.options.segment_size_bytes.max(end));
        write_zeros(&*w.file, from, to)?;
        w.zeroed_to = to.max(w.zeroed_to);
        Ok(())
    }

    /// The first write of an incarnation: finishes a truncation a crash interrupted,
    /// clears a torn tail that open found (so no stale bytes survive behind the new
    /// records) and preallocates the segment again, all before the first record is
    /// written. A failure fails the append before anything is written; the next append
    /// tries again.
    fn prepare_open(&self, w: &mut Writer) -> Result<()> {
        let Some(prep) = &w.prep else { return Ok(()) };
        if let Some(cut) = &prep.truncation {
            for path in cut {
                if self.fs.exists(path)? {
                    self.fs.remove_file(path)?;
                }
            }
            self.fs.sync_dir(&self.dir)?;
        }
        for path in &prep.strays {
            if self.fs.exists(path)? {
                self.fs.remove_file(path)?;
            }
        }
        if let Some(a) = &prep.adoption {
            if self.options.preallocate {
                w.file.allocate(self.options.segment_size_bytes)?;
            }
            w.file.sync_data()?;
            self.fs.sync_dir(&self.dir)?;
            let seal_len = (RECORD_PREFIX_LEN + BODY_PREFIX_LEN) as u64;
            let start = self.tail_segment.load(Ordering::SeqCst);
            if let (Some(old), Some((at, torn))) = (&a.old, a.seal_at) {
                write_zeros(&**old, at, at + torn.max(seal_len))?;
                let mut seal = Vec::with_capacity(seal_len as usize);
                let meta = RecordMeta { epoch: a.epoch, synced_through: SeqNo(start - 1) };
                encode_seal(&mut seal, SeqNo(start), meta);
                old.write_all_at(&seal, at)?;
                old.sync_data()?;
            }
            self.fs.rename(&a.tmp, &a.path)?;
            self.fs.sync_dir(&self.dir)?;
            let mut segments = self.segments.lock();
            let n = segments.len();
            for (i, s) in segments.iter_mut().enumerate() {
                if s.start.0 == start {
                    s.path = a.path.clone();
                } else if i + 2 == n
                    && let Some((at, _)) = a.seal_at
                {
                    s.size_bytes = at + seal_len;
                }
            }
        } else if !prep.strays.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        if let Some((at, len)) = prep.torn {
            write_zeros(&*w.file, at, at + len)?;
            w.zeroed_to = w.zeroed_to.max(at + len);
        }
        if self.options.preallocate {
            w.file.allocate(self.options.segment_size_bytes)?;
        }
        w.file.sync_data()?;
        if prep.truncation.is_some() {
            epochs::store(&*self.fs, &self.dir, &self.history.lock())?;
            crate::truncation::remove(&*self.fs, &self.dir)?;
        }
        w.prep = None;
        Ok(())
    }

    /// Adds `epoch` starting at `first` to the durable history (replacing a last entry
    /// that wrote nothing). Called with the writer lock held.
    fn record_epoch(&self, epoch: Epoch, first: SeqNo) -> Result<()> {
        let mut history = self.history.lock();
        let mut next = history.clone();
        if next.last().is_some_and(|e| e.first_seq == first) {
            next.pop();
        }
        next.push(EpochStart { epoch, first_seq: first });
        epochs::store(&*self.fs, &self.dir, &next)?;
        *history = next;
        self.newest.store(epoch.0, Ordering::Release);
        Ok(())
    }

    /// The newest epoch in the history.
    fn newest_epoch(&self) -> Epoch {
        Epoch(self.newest.load(Ordering::Acquire))
    }

    /// Writes one record; `at` is `None` for a local append (next sequence, this
    /// incarnation's epoch) or the first sequence and epoch of a replicated batch.
    fn write_record(
        &self,
        payload: &[u8],
        count: u32,
        at: Option<(SeqNo, Epoch)>,
    ) -> Result<(SeqNo, u64)> {
        let mut w = self.writer.lock();
        self.check_poison()?;
        if w.prep.is_some() {
            self.prepare_open(&mut w)?;
        }
        let epoch = match at {
            None => {
                let newest = self.newest_epoch();
                let mut epoch = Epoch(self.epoch.load(Ordering::Acquire));
                if !w.epoch_recorded || epoch < newest {
                    // Batches of a newer epoch arrived since open (this log followed a
                    // primary): local writes must not reuse or precede that epoch.
                    if epoch <= newest {
                        epoch = Epoch(newest.0 + 1);
                    }
                    self.record_epoch(epoch, SeqNo(w.next_seq))?;
                    self.epoch.store(epoch.0, Ordering::Release);
                    w.epoch_recorded = true;
                }
                epoch
            }
            Some((first, epoch)) => {
                if first.0 != w.next_seq {
                    return Err(Error::SequenceGap { expected: SeqNo(w.next_seq), got: first });
                }
                let newest = self.newest_epoch();
                if epoch < newest {
                    return Err(Error::StaleEpoch { got: epoch, newest });
                }
                if epoch > newest || (epoch == Epoch::ZERO && self.history.lock().is_empty()) {
                    self.record_epoch(epoch, first)?;
                }
                epoch
            }
        };
        let record_len = (RECORD_PREFIX_LEN + BODY_PREFIX_LEN + payload.len()) as u64;
        let seal_len = (RECORD_PREFIX_LEN + BODY_PREFIX_LEN) as u64;
        if (w.version != VERSION
            || (w.offset > HEADER_LEN as u64
                && w.offset + record_len + seal_len > self.options.segment_size_bytes))
            && let Err(e) = self.rotate(&mut w)
        {
            self.poison("WAL segment rotation failed", &e);
            return Err(e);
        }
        self.request_spare(&mut w);
        let end = w.offset + record_len;
        self.zero_ahead(&mut w, end)?;
        // Like `zero_ahead`, a failure fails the append before its record is written.
        let Writer { file, offset, writeback, .. } = &mut *w;
        writeback.after_write(&**file, *offset)?;
        let first = SeqNo(w.next_seq);
        let mut scratch = std::mem::take(&mut w.scratch);
        scratch.clear();
        let meta =
            RecordMeta { epoch, synced_through: SeqNo(self.synced_seq.load(Ordering::Acquire)) };
        encode_record(&mut scratch, first, count, meta, payload);
        let written = w.file.write_all_at(&scratch, w.offset);
        if scratch.capacity() <= KEEP_SCRATCH_BYTES {
            w.scratch = scratch;
        }
        if let Err(e) = written {
            self.poison("WAL write failed", &e);
            return Err(e);
        }
        w.offset += record_len;
        self.tail_end.store(w.offset, Ordering::SeqCst);
        w.next_seq += u64::from(count);
        let last = w.next_seq - 1;
        self.written_seq.store(last, Ordering::Release);
        drop(w);
        self.tail.notify();
        Ok((first, last))
    }

    /// See [`Wal::truncate_after`]. The steps, each a sync point: sync what is kept;
    /// write the marker (the commit point, see [`crate::truncation`]); delete later
    /// segments; zero the holding segment's tail; rewrite the history; remove the
    /// marker. A failure after the marker poisons the log; reopening finishes the cut.
    fn truncate_after(&self, keep: SeqNo) -> Result<()> {
        let mut w = self.writer.lock();
        self.check_poison()?;
        if keep.0 >= w.next_seq - 1 {
            return Ok(());
        }
        if w.prep.is_some() {
            self.prepare_open(&mut w)?;
        }
        self.finish_rotation()?;
        if let Err(e) = w.file.sync_data() {
            self.poison("WAL fdatasync before a truncation failed", &e);
            return Err(e);
        }
        let segments = self.segments.lock().clone();
        let oldest = segments.first().map_or(SeqNo(1), |s| s.start);
        if keep.0 + 1 < oldest.0 {
            return Err(Error::SequenceUnavailable { requested: keep.next(), oldest });
        }
        let Some(h) = segments.iter().rposition(|s| s.start.0 <= keep.0 + 1) else {
            return Err(Error::SequenceUnavailable { requested: keep.next(), oldest });
        };
        let hold = &segments[h];
        let current = h + 1 == segments.len();
        let old_end = if current { w.offset } else { hold.size_bytes };
        let file = if current {
            Arc::clone(&w.file)
        } else {
            self.fs.open(&hold.path, OpenMode::ReadWrite)?
        };
        let cut = find_cut(&*file, hold, keep, old_end)?;
        crate::truncation::store(&*self.fs, &self.dir, keep)?;
        let kept_history: Vec<EpochStart> =
            self.history.lock().iter().copied().filter(|e| e.first_seq.0 <= keep.0).collect();
        let done = (|| {
            for s in segments[h + 1..].iter().rev() {
                self.fs.remove_file(&s.path)?;
            }
            self.fs.sync_dir(&self.dir)?;
            write_zeros(&*file, cut, old_end)?;
            file.sync_data()?;
            epochs::store(&*self.fs, &self.dir, &kept_history)?;
            crate::truncation::remove(&*self.fs, &self.dir)
        })();
        if let Err(e) = done {
            self.poison("WAL truncation failed (reopening finishes it)", &e);
            return Err(e);
        }
        self.newest.store(kept_history.last().map_or(0, |e| e.epoch.0), Ordering::Release);
        *self.history.lock() = kept_history;
        {
            let mut list = self.segments.lock();
            list.truncate(h + 1);
            if let Some(last) = list.last_mut() {
                last.size_bytes = cut;
            }
            let mut pins = self.pins.lock();
            pins.retain(|p| p.strong_count() > 0);
            for pin in pins.iter().filter_map(std::sync::Weak::upgrade) {
                pin.truncated_at.fetch_min(keep.0, Ordering::AcqRel);
            }
        }
        let zeroed_to = if current { w.zeroed_to.max(old_end) } else { old_end };
        w.file = file;
        w.offset = cut;
        self.tail_segment.store(hold.start.0, Ordering::SeqCst);
        self.tail_end.store(cut, Ordering::SeqCst);
        w.next_seq = keep.0 + 1;
        w.zeroed_to = zeroed_to;
        w.writeback = WritebackPacer::new(self.options.writeback_bytes, cut);
        w.version = hold.version;
        self.written_seq.store(keep.0, Ordering::Release);
        self.synced_seq.store(keep.0, Ordering::Release);
        tracing::info!(dir = %self.dir.display(), %keep, "WAL truncated");
        Ok(())
    }

    /// Group commit: returns once everything up to `target` is durable.
    ///
    /// One appender at a time is the leader and runs fdatasync over everything written
    /// so far; the others queue up and park. When its fdatasync returns, the leader
    /// hands leadership straight to the first waiter it did not cover, wakes that one
    /// first (so the next fdatasync starts after one wake-up), then wakes those it
    /// covered; the other uncovered waiters stay parked for the next leader. (With a
    /// condition variable every waiter was woken and re-took one mutex in turn, so on
    /// two cores the next leader started only after every covered writer's hand-off.)
    fn sync_up_to(&self, target: u64) -> Result<()> {
        let mut leading = false;
        loop {
            if !leading {
                if self.synced_seq.load(Ordering::Acquire) >= target {
                    return Ok(());
                }
                let mut q = self.sync_queue.lock();
                if self.synced_seq.load(Ordering::Acquire) >= target {
                    return Ok(());
                }
                self.check_poison()?;
                if q.leading {
                    let turn = Arc::new(AtomicU8::new(TURN_WAIT));
                    q.waiters.push(SyncWaiter {
                        target,
                        thread: std::thread::current(),
                        turn: Arc::clone(&turn),
                    });
                    drop(q);
                    // park may return spuriously: only the leader's answer counts.
                    let mut answer = turn.load(Ordering::Acquire);
                    while answer == TURN_WAIT {
                        std::thread::park();
                        answer = turn.load(Ordering::Acquire);
                    }
                    leading = answer == TURN_LEAD;
                    continue;
                }
                q.leading = true;
            }
            let result = self.sync_written();
            let synced = self.synced_seq.load(Ordering::Acquire);
            let (next, covered) = {
                let mut q = self.sync_queue.lock();
                let waiters = std::mem::take(&mut q.waiters);
                let (covered, mut pending): (Vec<_>, Vec<_>) =
                    waiters.into_iter().partition(|w| result.is_err() || w.target <= synced);
                let next = if pending.is_empty() { None } else { Some(pending.remove(0)) };
                // Leadership passes to `next` without ever being free, so nobody else
                // starts an fdatasync in between.
                q.leading = next.is_some();
                q.waiters = pending;
                (next, covered)
            };
            if let Some(next) = next {
                next.wake(TURN_LEAD);
            }
            for w in covered {
                w.wake(TURN_DONE);
            }
            result?;
            leading = false;
        }
    }

    /// The leader's part: fdatasync everything written so far.
    fn sync_written(&self) -> Result<()> {
        // A rotation's old segment first (and the new one in place), then everything
        // written so far, in the file that holds it.
        // IMPORTANT: the file and the sequence are taken together with no rotation
        // pending; otherwise a switch just before could have us sync only the new
        // segment and call the old one's unsynced tail durable.
        let (file, upto) = loop {
            let w = self.writer.lock();
            if self.rotating_from.load(Ordering::SeqCst) == u64::MAX {
                break (Arc::clone(&w.file), self.written_seq.load(Ordering::Acquire));
            }
            drop(w);
            self.finish_rotation()?;
        };
        match file.sync_data() {
            Ok(()) => {
                self.synced_seq.fetch_max(upto, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.poison("WAL fdatasync failed", &e);
                Err(e)
            }
        }
    }
}

/// Refuses batches no record may hold.
fn check_batch(payload: &[u8], count: u32) -> Result<()> {
    if count == 0 {
        return Err(Error::InvalidArgument("a WAL batch must hold at least one operation".into()));
    }
    if payload.len() > MAX_BATCH_BYTES {
        return Err(Error::InvalidArgument(format!(
            "batch of {} bytes exceeds the {MAX_BATCH_BYTES}-byte limit",
            payload.len()
        )));
    }
    Ok(())
}

impl FileWal {
    /// A replicated batch at or below the log's end: accepted again when the log holds
    /// exactly that batch, `Error::Diverged` otherwise.
    fn check_held(&self, batch: &WalBatch, durability: Durability) -> Result<()> {
        let mut reader = self.read_from(batch.first_seq)?;
        let held = reader.next_batch()?;
        match held {
            Some(held) if held == *batch => {
                if durability == Durability::Sync {
                    self.inner.sync_up_to(held.last_seq().0)?;
                }
                Ok(())
            }
            Some(held) => Err(Error::Diverged {
                seq: batch.first_seq,
                reason: format!(
                    "the log holds sequences {} to {} in epoch {} ({} bytes) where the primary \
                     sends {} to {} in epoch {} ({} bytes): truncate after {} and resume",
                    held.first_seq,
                    held.last_seq(),
                    held.epoch,
                    held.payload.len(),
                    batch.first_seq,
                    batch.last_seq(),
                    batch.epoch,
                    batch.payload.len(),
                    SeqNo(held.first_seq.0.saturating_sub(1)),
                ),
            }),
            None => Err(Error::Diverged {
                seq: batch.first_seq,
                reason: "the log ended while the batch was being compared".into(),
            }),
        }
    }
}

impl Wal for FileWal {
    fn append(&self, payload: &[u8], count: u32, durability: Durability) -> Result<SeqNo> {
        check_batch(payload, count)?;
        self.inner.check_poison()?;
        let (first, last) = self.inner.write_record(payload, count, None)?;
        if durability == Durability::Sync {
            self.inner.sync_up_to(last)?;
        }
        Ok(first)
    }

    fn sync(&self) -> Result<()> {
        self.inner.check_poison()?;
        self.inner.sync_up_to(self.inner.written_seq.load(Ordering::Acquire))
    }

    fn last_seq(&self) -> SeqNo {
        SeqNo(self.inner.written_seq.load(Ordering::Acquire))
    }

    fn durable_seq(&self) -> SeqNo {
        SeqNo(self.inner.synced_seq.load(Ordering::Acquire))
    }

    fn epoch(&self) -> Epoch {
        Epoch(self.inner.epoch.load(Ordering::Acquire))
    }

    fn epoch_history(&self) -> Vec<EpochStart> {
        self.inner.history.lock().clone()
    }

    fn append_replicated(&self, batch: &WalBatch, durability: Durability) -> Result<()> {
        check_batch(&batch.payload, batch.count)?;
        self.inner.check_poison()?;
        if batch.first_seq.0 <= self.inner.written_seq.load(Ordering::Acquire) {
            return self.check_held(batch, durability);
        }
        let (_, last) = self.inner.write_record(
            &batch.payload,
            batch.count,
            Some((batch.first_seq, batch.epoch)),
        )?;
        if durability == Durability::Sync {
            self.inner.sync_up_to(last)?;
        }
        Ok(())
    }

    fn truncate_after(&self, seq: SeqNo) -> Result<()> {
        self.inner.truncate_after(seq)
    }

    fn start_epoch(&self, epoch: Epoch) -> Result<()> {
        let inner = &self.inner;
        let mut w = inner.writer.lock();
        inner.check_poison()?;
        if w.prep.is_some() {
            inner.prepare_open(&mut w)?;
        }
        let newest = inner.newest_epoch();
        if epoch <= newest {
            return Err(Error::StaleEpoch { got: epoch, newest });
        }
        inner.record_epoch(epoch, SeqNo(w.next_seq))?;
        inner.epoch.store(epoch.0, Ordering::Release);
        w.epoch_recorded = true;
        Ok(())
    }

    fn read_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>> {
        let segments = self.inner.segments.lock().clone();
        let oldest = segments.first().map_or(SeqNo(1), |s| s.start);
        let from = if from == SeqNo::ZERO { oldest } else { from };
        if from < oldest {
            return Err(Error::SequenceUnavailable { requested: from, oldest });
        }
        let segment = segments
            .iter()
            .rev()
            .find(|s| s.start <= from)
            .cloned()
            .ok_or(Error::SequenceUnavailable { requested: from, oldest })?;
        let pin = Arc::new(ReaderPin {
            next: AtomicU64::new(from.0),
            cut: AtomicBool::new(false),
            truncated_at: AtomicU64::new(u64::MAX),
        });
        {
            // Registered while `segments` is still the list the reader starts from, so
            // no checkpoint can delete its first segment unseen.
            let _segments = self.inner.segments.lock();
            let mut pins = self.inner.pins.lock();
            pins.retain(|p| p.strong_count() > 0);
            pins.push(Arc::downgrade(&pin));
        }
        Ok(Box::new(FileWalReader::new(Arc::clone(&self.inner), segment, from, pin)))
    }

    fn checkpoint(&self, seq: SeqNo) -> Result<()> {
        let inner = &self.inner;
        let checkpoint = inner.checkpoint.fetch_max(seq.0, Ordering::AcqRel).max(seq.0);
        let mut segments = inner.segments.lock();
        let pins: Vec<Arc<ReaderPin>> = {
            let mut pins = inner.pins.lock();
            pins.retain(|p| p.strong_count() > 0);
            pins.iter().filter_map(std::sync::Weak::upgrade).collect()
        };
        let oldest_pin = pins
            .iter()
            .filter(|p| !p.cut.load(Ordering::Acquire))
            .map(|p| p.next.load(Ordering::Acquire))
            .min();
        let mut removable = 0;
        let rotating_from = inner.rotating_from.load(Ordering::SeqCst);
        for i in 0..segments.len().saturating_sub(1) {
            if segments[i].start.0 >= rotating_from {
                break;
            }
            // A successor still under its temporary name (a rotation in flight, or one a
            // crash interrupted that open adopted and the first append renames): without
            // this segment the next open would find no log at all.
            if segments[i + 1].path.extension().is_some_and(|e| e == "tmp") {
                break;
            }
            let last_in_segment = segments[i + 1].start.0 - 1;
            let newer_bytes: u64 = segments[i + 1..].iter().map(|s| s.size_bytes).sum();
            if last_in_segment > checkpoint || newer_bytes < inner.options.retention_bytes {
                break;
            }
            if oldest_pin.is_some_and(|p| p <= last_in_segment)
                && newer_bytes + segments[i].size_bytes <= inner.options.reader_retention_bytes
            {
                // A reader still needs this segment and the log it pins is within limit.
                break;
            }
            removable = i + 1;
        }
        if removable == 0 {
            return Ok(());
        }
        let first_kept = segments[removable].start.0;
        for pin in &pins {
            if pin.next.load(Ordering::Acquire) < first_kept
                && !pin.cut.swap(true, Ordering::AcqRel)
            {
                inner.readers_cut_off.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(
                    dir = %inner.dir.display(),
                    reader_at = pin.next.load(Ordering::Acquire),
                    oldest_kept = first_kept,
                    limit_bytes = inner.options.reader_retention_bytes,
                    "a log reader lagged past the reader retention limit and is cut off"
                );
            }
        }
        // The files are deleted after the list lock is released: deleting a segment of
        // 64 MiB (its pages dropped, its blocks freed and, on a file system mounted with
        // `discard`, discarded) takes milliseconds, and a rotation — inside an append,
        // holding the writer lock — waits for this lock.
        let removed: Vec<SegmentInfo> = segments.drain(..removable).collect();
        drop(segments);
        for segment in removed {
            inner.fs.remove_file(&segment.path)?;
            tracing::debug!(file = %segment.path.display(), "checkpointed WAL segment deleted");
        }
        inner.fs.sync_dir(&inner.dir)
    }

    fn recovery(&self) -> WalRecovery {
        self.inner.recovery.clone()
    }

    fn copy_to(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        // The segment list and the end of the last record, taken under the writer lock:
        // every record before that end is complete, and a rotation after it only adds a
        // seal past that end and a segment not in the list.
        let (segments, end) = {
            let w = self.inner.writer.lock();
            self.inner.finish_rotation()?;
            (self.inner.segments.lock().clone(), w.offset)
        };
        let history = epochs::epochs_path(&self.inner.dir);
        if self.inner.fs.exists(&history)? {
            strata_core::fs::copy_file(fs, &history, &dir.join(epochs::EPOCHS_FILE))?;
        }
        for (i, segment) in segments.iter().enumerate() {
            let Some(name) = segment.path.file_name() else { continue };
            let target = dir.join(name);
            if i + 1 < segments.len() {
                strata_core::fs::copy_file(fs, &segment.path, &target)?;
            } else {
                copy_prefix(fs, &segment.path, &target, end)?;
            }
        }
        Ok(())
    }

    fn files(&self) -> Result<Vec<std::path::PathBuf>> {
        // The history first: a copy taken while the log rotates may miss a new epoch's
        // entry only if it also misses that epoch's batches.
        self.inner.finish_rotation()?;
        let mut files = Vec::new();
        let history = epochs::epochs_path(&self.inner.dir);
        if self.inner.fs.exists(&history)? {
            files.push(history);
        }
        files.extend(self.inner.segments.lock().iter().map(|s| s.path.clone()));
        Ok(files)
    }
}

/// Offset in `segment` (whose records end at `end`) where the batch after `keep`
/// starts; `keep` must end a batch.
fn find_cut(file: &dyn File, segment: &SegmentInfo, keep: SeqNo, end: u64) -> Result<u64> {
    let mut window = crate::recovery::Window::new(file, end);
    let mut off = HEADER_LEN as u64;
    let mut next = segment.start;
    while next.0 <= keep.0 {
        match window.record_at(off, segment.version)? {
            crate::format::RecordAt::Valid { first, count, size, .. } if first == next => {
                next = SeqNo(first.0 + u64::from(count));
                off += size as u64;
            }
            _ => {
                return Err(Error::corruption(
                    &segment.path,
                    off,
                    format!(
                        "no intact record for sequence {next} while looking for the end of {keep}"
                    ),
                ));
            }
        }
    }
    if next.0 != keep.0 + 1 {
        return Err(Error::InvalidArgument(format!(
            "cannot truncate after sequence {keep}: it lies inside the batch that ends at {}",
            next.0 - 1
        )));
    }
    Ok(off)
}

/// Creates a segment durably: header into a temporary file, preallocate, zero the first
/// `zero_ahead_bytes`, fsync, rename into place, fsync the directory. Returns the offset
/// up to which the segment holds written bytes.
fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    start: SeqNo,
    options: &FileWalOptions,
) -> Result<(Arc<dyn File>, SegmentInfo, u64)> {
    let path = dir.join(segment_file_name(start));
    let tmp = dir.join(format!("{}.tmp", segment_file_name(start)));
    if fs.exists(&tmp)? {
        fs.remove_file(&tmp)?;
    }
    let file = fs.open(&tmp, OpenMode::CreateNew)?;
    let header_end = HEADER_LEN as u64;
    let zeroed_to =
        header_end.saturating_add(options.zero_ahead_bytes).min(options.segment_size_bytes);
    // The length the file has once created: recovery treats a shorter file as cut.
    let created_len = created_len(options);
    file.write_all_at(&encode_header(start, created_len), 0)?;
    if options.preallocate {
        file.allocate(options.segment_size_bytes)?;
    }
    write_zeros(&*file, header_end, zeroed_to)?;
    file.sync_data()?;
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    Ok((
        file,
        SegmentInfo { start, path, size_bytes: header_end, version: VERSION },
        zeroed_to.max(header_end),
    ))
}

/// A temporary segment open adopts: its path, the file, its header.
pub(crate) type Successor = (PathBuf, Arc<dyn File>, crate::format::SegmentHeader);

/// The temporary segment that continues the newest segment `scan` describes, if open
/// should adopt it (see [`PendingRotation`]): one whose header names the sequence after
/// the segment's last. Behind a seal it must be there and whole (the rotation made it
/// durable before sealing); without a seal, one that is incomplete never held an
/// acknowledged write and is left to be removed.
/// With no segment under its final name, the temporary segment that is the whole log:
/// taken out of `tmps` when its header is intact. A damaged one starting at 1 is a first
/// segment whose creation a crash interrupted (nothing was ever written to it; the empty
/// log starts afresh); any other is reported, because it holds the log's records.
fn lone_temporary(
    fs: &dyn FileSystem,
    tmps: &mut Vec<(SeqNo, PathBuf)>,
) -> Result<Option<(SeqNo, PathBuf)>> {
    tmps.sort();
    let Some((start, path)) = tmps.first().cloned() else { return Ok(None) };
    if tmps.len() > 1 {
        let names: Vec<String> = tmps.iter().map(|(_, p)| p.display().to_string()).collect();
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "the log has no segment under its final name but {} temporary ones ({}): \
                 restore the WAL directory from a backup or a replica",
                tmps.len(),
                names.join(", ")
            ),
        ));
    }
    let checked = (|| {
        let file = fs.open(&path, OpenMode::ReadOnly)?;
        let mut header = [0u8; HEADER_LEN];
        read_exact_at(&*file, &mut header, 0)?;
        decode_header(&header, &path)
    })();
    match checked {
        Ok(h) if h.start == start => {
            tmps.clear();
            Ok(Some((start, path)))
        }
        _ if start == SeqNo(1) => Ok(None),
        Ok(h) => Err(Error::corruption(
            &path,
            16,
            format!("header says the segment starts at {}, its name says {start}", h.start),
        )),
        Err(e) => Err(e),
    }
}

/// The successor of the newest segment (scanned as `scan`) that a crash or a rotation in
/// flight left under its temporary name, when the log goes on in it; opened with `mode`
/// (open takes it over, `check::check_dir` only reads it). The one rule both use.
pub(crate) fn adoptable(
    fs: &dyn FileSystem,
    tmps: &[(SeqNo, PathBuf)],
    scan: &crate::recovery::TailScan,
    mode: OpenMode,
) -> Result<Option<Successor>> {
    // Bytes after the last record of an unsealed segment mean a power loss tore them
    // (a crashed process cannot leave half a write): the seal was not durable, so
    // nothing in the successor was acknowledged, and the torn end is cut off as usual.
    if scan.sealed.is_none() && scan.torn_bytes.is_some_and(|n| n > 0) {
        return Ok(None);
    }
    let next = scan.sealed.unwrap_or(SeqNo(scan.last_seq.0 + 1));
    let Some((_, path)) = tmps.iter().find(|(start, _)| *start == next) else {
        return Ok(None);
    };
    let checked = (|| {
        let file = fs.open(path, mode)?;
        let mut header = [0u8; HEADER_LEN];
        read_exact_at(&*file, &mut header, 0)?;
        let decoded = decode_header(&header, path)?;
        if decoded.start != next || decoded.version != VERSION {
            return Err(Error::corruption(
                path,
                16,
                format!("header says the segment starts at {}, expected {next}", decoded.start),
            ));
        }
        if decoded.min_len > 0 && file.len()? < decoded.min_len {
            return Err(Error::corruption(
                path,
                file.len()?,
                format!(
                    "the segment is shorter than the {} bytes it was created with",
                    decoded.min_len
                ),
            ));
        }
        Ok((path.clone(), file, decoded))
    })();
    match checked {
        Ok(found) => Ok(Some(found)),
        Err(e) if scan.sealed.is_none() => {
            tracing::debug!(file = %path.display(), error = %e, "unfinished WAL rotation left aside");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The length a new segment has once created (recorded in its header): recovery
/// treats a shorter file as cut.
fn created_len(options: &FileWalOptions) -> u64 {
    let header_end = HEADER_LEN as u64;
    let zeroed_to =
        header_end.saturating_add(options.zero_ahead_bytes).min(options.segment_size_bytes);
    if options.preallocate {
        options.segment_size_bytes.max(zeroed_to)
    } else {
        zeroed_to.max(header_end)
    }
}

/// Copies the first `end` bytes of `from` to a new file `to` of the same length (zeros
/// after `end`, so the copy keeps the created length its header records), synced.
fn copy_prefix(fs: &dyn FileSystem, from: &Path, to: &Path, end: u64) -> Result<()> {
    let src = fs.open(from, OpenMode::ReadOnly)?;
    let dst = fs.open(to, OpenMode::CreateNew)?;
    let len = src.len()?;
    let end = end.min(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < end {
        let want = usize::try_from((end - off).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        read_exact_at(&*src, chunk, off)?;
        dst.write_all_at(chunk, off)?;
        off += want as u64;
    }
    if len > end {
        dst.set_len(len)?;
    }
    dst.sync_data()
}

/// Writes zeros over `[from, to)` of `file`, in pieces of a static buffer.
pub(crate) fn write_zeros(file: &dyn File, from: u64, to: u64) -> Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
