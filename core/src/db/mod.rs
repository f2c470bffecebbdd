//! The engine: composes a WAL and memtables into a store with snapshots.
//!
//! Write path: batch → WAL append (assigns sequences, honours durability) → memtable
//! insert (lock-free, concurrent across writers) → publish the visible sequence in
//! commit order. Readers read at the published sequence, so they never see half a batch.

mod builder;
mod iter;
mod visibility;

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;

pub use builder::{DEFAULT_MEMTABLE_SIZE_BYTES, DbBuilder, DbOptions};
pub use iter::DbIter;
use visibility::Visibility;

use crate::batch::{BatchIter, WriteBatch};
use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::memtable::{KeyRange, Lookup, MemTable, MemTableFactory};
use crate::types::{Durability, SeqNo};
use crate::wal::{Wal, WalBatch, WalFactory, WalReader, WalRecovery};

/// Name of the lock file that keeps a second process out of a store directory.
pub const LOCK_FILE: &str = "LOCK";

/// The active memtable and the immutable ones (newest first).
#[derive(Debug)]
struct MemSet {
    active: Arc<dyn MemTable>,
    immutable: Vec<Arc<dyn MemTable>>,
}

impl MemSet {
    fn newest_first(&self) -> impl Iterator<Item = &Arc<dyn MemTable>> {
        std::iter::once(&self.active).chain(self.immutable.iter())
    }
}

/// A consistent read point: reads through it see exactly the batches committed up to
/// its sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    seq: SeqNo,
}

impl Snapshot {
    /// The last sequence this snapshot sees.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

/// Figures about the engine's in-memory state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Last visible sequence.
    pub visible_seq: SeqNo,
    /// Number of memtables (active + immutable).
    pub memtables: usize,
    /// Bytes held by all memtables, as they account them.
    pub memtable_bytes: usize,
    /// Versions held by all memtables.
    pub memtable_entries: usize,
    /// How many times the active memtable was rotated since open.
    pub rotations: u64,
}

/// What `open` did to recover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// What the WAL found (last sequence, torn tail cut off).
    pub wal: WalRecovery,
    /// Batches replayed from the WAL into memtables.
    pub replayed_batches: u64,
    /// Operations replayed.
    pub replayed_ops: u64,
    /// Bytes of encoded batches replayed.
    pub replayed_bytes: u64,
    /// Wall time of the replay.
    pub replay_time: Duration,
}

struct Shared {
    dir: PathBuf,
    wal: Arc<dyn Wal>,
    memtables: Arc<dyn MemTableFactory>,
    state: ArcSwap<MemSet>,
    visible: Visibility,
    rotate_lock: Mutex<()>,
    poison: Mutex<Option<String>>,
    poisoned: std::sync::atomic::AtomicBool,
    rotations: AtomicU64,
    options: DbOptions,
    open_report: OpenReport,
    _fs: Arc<dyn FileSystem>,
    _lock: Box<dyn FileLock>,
}

/// An open store. Cheap to clone; all clones share one engine.
///
/// Until table support lands, immutable memtables stay in memory: the data set must fit
/// in RAM, and open replays the whole WAL.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.shared.dir)
            .field("visible_seq", &self.shared.visible.current())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Starts composing a store in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> DbBuilder {
        DbBuilder::new(dir)
    }

    fn open_with(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        wal_factory: Arc<dyn WalFactory>,
        memtables: Arc<dyn MemTableFactory>,
        options: DbOptions,
    ) -> Result<Db> {
        fs.create_dir_all(&dir)?;
        let lock = fs.lock(&dir.join(LOCK_FILE))?;
        let wal = wal_factory.open(Arc::clone(&fs), &dir)?;
        let mut report = OpenReport { wal: wal.recovery(), ..OpenReport::default() };

        let started = Instant::now();
        let mut set = MemSet { active: memtables.create(), immutable: Vec::new() };
        let mut rotations = 0;
        let mut reader = wal.read_from(SeqNo(1))?;
        let mut expected = SeqNo(1);
        while let Some(batch) = reader.next_batch()? {
            if batch.first_seq != expected {
                return Err(Error::Corruption {
                    file: dir.clone(),
                    offset: 0,
                    reason: format!(
                        "WAL replay expected sequence {expected} but the next batch starts at {}",
                        batch.first_seq
                    ),
                });
            }
            apply(&*set.active, &batch, &dir)?;
            expected = batch.last_seq().next();
            report.replayed_batches += 1;
            report.replayed_ops += u64::from(batch.count);
            report.replayed_bytes += batch.payload.len() as u64;
            if set.active.memory_bytes() >= options.memtable_size_bytes {
                let full = std::mem::replace(&mut set.active, memtables.create());
                set.immutable.insert(0, full);
                rotations += 1;
            }
        }
        report.replay_time = started.elapsed();
        let last = SeqNo(expected.0 - 1);
        if last != wal.last_seq() {
            return Err(Error::Corruption {
                file: dir.clone(),
                offset: 0,
                reason: format!(
                    "WAL reports last sequence {} but replay ended at {last}",
                    wal.last_seq()
                ),
            });
        }
        tracing::info!(
            dir = %dir.display(),
            batches = report.replayed_batches,
            ops = report.replayed_ops,
            elapsed_ms = report.replay_time.as_millis() as u64,
            "store opened"
        );
        Ok(Db {
            shared: Arc::new(Shared {
                dir,
                wal,
                memtables,
                state: ArcSwap::from_pointee(set),
                visible: Visibility::new(last),
                rotate_lock: Mutex::new(()),
                poison: Mutex::new(None),
                poisoned: std::sync::atomic::AtomicBool::new(false),
                rotations: AtomicU64::new(rotations),
                options,
                open_report: report,
                _fs: fs,
                _lock: lock,
            }),
        })
    }

    /// Commits `batch` atomically and returns the sequence of its last operation.
    ///
    /// `Durability::Sync` returns once the batch is on stable storage (concurrent `Sync`
    /// writers share one fdatasync); `Buffered` once the OS has it. An empty batch
    /// commits nothing and returns the current visible sequence. After an I/O failure
    /// the store is poisoned and every write returns `Error::Poisoned`.
    pub fn write(&self, batch: &WriteBatch, durability: Durability) -> Result<SeqNo> {
        if batch.is_empty() {
            return Ok(self.shared.visible.current());
        }
        batch.validate().map_err(Error::InvalidArgument)?;
        self.check_poison()?;
        let first = match self.shared.wal.append(batch.as_bytes(), batch.count(), durability) {
            Ok(first) => first,
            Err(e) => {
                // IMPORTANT: the WAL may have consumed sequences for this batch; later
                // writers waiting for them to become visible must be released.
                self.poison(format!("WAL append failed: {e}"));
                return Err(e);
            }
        };
        let last = SeqNo(first.0 + u64::from(batch.count()) - 1);
        let set = self.shared.state.load();
        let mut seq = first;
        for op in batch.iter() {
            let op = match op {
                Ok(op) => op,
                Err(e) => {
                    // Unreachable for batches built through WriteBatch, but the sequences
                    // are taken: release the writers queued behind them.
                    self.poison(format!("malformed batch at offset {}: {}", e.offset, e.reason));
                    return Err(self.poisoned_error());
                }
            };
            set.active.insert(op.key, seq, op.kind, op.value);
            seq = seq.next();
        }
        if self.shared.visible.publish(first, last).is_err() {
            return Err(self.poisoned_error());
        }
        if set.active.memory_bytes() >= self.shared.options.memtable_size_bytes {
            self.rotate_if_current(&set.active);
        }
        Ok(last)
    }

    /// Convenience: writes one put.
    pub fn put(&self, key: &[u8], value: &[u8], durability: Durability) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(&b, durability)
    }

    /// Convenience: writes one delete.
    pub fn delete(&self, key: &[u8], durability: Durability) -> Result<SeqNo> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(&b, durability)
    }

    /// A read point at the current visible sequence.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { seq: self.shared.visible.current() }
    }

    /// The newest value of `key`, or `None` if absent or deleted.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.get_at(key, &self.snapshot())
    }

    /// The value of `key` as of `snapshot`.
    pub fn get_at(&self, key: &[u8], snapshot: &Snapshot) -> Result<Option<Bytes>> {
        let set = self.shared.state.load();
        let mut best: Option<Lookup> = None;
        for mem in set.newest_first() {
            // A memtable whose newest entry is older than what we found cannot hold a
            // newer version. Older memtables are usually skipped here; they are not
            // skipped blindly because a writer that loaded the set just before a rotation
            // may still add a newer version to a now-immutable memtable.
            if best.as_ref().is_some_and(|b| mem.max_seq() <= b.seq()) {
                continue;
            }
            if let Some(found) = mem.get(key, snapshot.seq)
                && best.as_ref().is_none_or(|b| found.seq() > b.seq())
            {
                best = Some(found);
            }
        }
        Ok(match best {
            Some(Lookup::Value { value, .. }) => Some(value),
            _ => None,
        })
    }

    /// Keys and values in `range`, in key order, at the current visible sequence.
    pub fn scan<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        self.scan_at(range, &self.snapshot())
    }

    /// Every key and value, in key order, at the current visible sequence.
    pub fn iter(&self) -> DbIter {
        self.scan_at::<&[u8], _>(.., &self.snapshot())
    }

    /// Keys and values in `range`, in key order, as of `snapshot`.
    pub fn scan_at<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
        snapshot: &Snapshot,
    ) -> DbIter {
        let range: KeyRange =
            (to_owned_bound(range.start_bound()), to_owned_bound(range.end_bound()));
        let set = self.shared.state.load();
        let sources = set
            .newest_first()
            .map(|mem| Arc::clone(mem).range(range.clone(), snapshot.seq))
            .collect();
        DbIter::new(sources)
    }

    /// Makes every `Buffered` write so far durable.
    pub fn sync_wal(&self) -> Result<()> {
        self.check_poison()?;
        self.shared.wal.sync().inspect_err(|e| self.poison(format!("WAL sync failed: {e}")))
    }

    /// A reader over the commit log from `from` (historical reads and tailing).
    pub fn read_log_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>> {
        self.shared.wal.read_from(from)
    }

    /// In-memory state figures.
    pub fn stats(&self) -> DbStats {
        let set = self.shared.state.load();
        DbStats {
            visible_seq: self.shared.visible.current(),
            memtables: 1 + set.immutable.len(),
            memtable_bytes: set.newest_first().map(|m| m.memory_bytes()).sum(),
            memtable_entries: set.newest_first().map(|m| m.len()).sum(),
            rotations: self.shared.rotations.load(Ordering::Relaxed),
        }
    }

    /// What opening the store found and replayed.
    pub fn open_report(&self) -> &OpenReport {
        &self.shared.open_report
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The memtable implementation's name.
    pub fn memtable_kind(&self) -> &'static str {
        self.shared.memtables.name()
    }

    fn rotate_if_current(&self, full: &Arc<dyn MemTable>) {
        let _guard = self.shared.rotate_lock.lock();
        let current = self.shared.state.load_full();
        if !std::ptr::addr_eq(Arc::as_ptr(&current.active), Arc::as_ptr(full)) {
            return; // another writer rotated it already
        }
        let mut immutable = Vec::with_capacity(current.immutable.len() + 1);
        immutable.push(Arc::clone(&current.active));
        immutable.extend(current.immutable.iter().cloned());
        self.shared
            .state
            .store(Arc::new(MemSet { active: self.shared.memtables.create(), immutable }));
        let n = self.shared.rotations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(rotations = n, bytes = full.memory_bytes(), "memtable rotated");
    }

    fn check_poison(&self) -> Result<()> {
        if !self.shared.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.shared.poison.lock() {
            Some(reason) => Err(Error::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    fn poisoned_error(&self) -> Error {
        let reason = self.shared.poison.lock().clone();
        Error::Poisoned { reason: reason.unwrap_or_else(|| "an earlier write failed".into()) }
    }

    fn poison(&self, reason: String) {
        let mut guard = self.shared.poison.lock();
        if guard.is_none() {
            tracing::error!(%reason, "store poisoned; reopen to recover");
            *guard = Some(reason);
        }
        self.shared.poisoned.store(true, Ordering::Release);
        drop(guard);
        self.shared.visible.break_chain();
    }
}

fn to_owned_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Bytes> {
    match b {
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k.as_ref())),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn apply(mem: &dyn MemTable, batch: &WalBatch, dir: &Path) -> Result<()> {
    let mut seq = batch.first_seq;
    let mut n = 0u32;
    for op in BatchIter::new(&batch.payload) {
        let op = op.map_err(|e| Error::Corruption {
            file: dir.to_path_buf(),
            offset: e.offset as u64,
            reason: format!("batch at sequence {} does not decode: {}", batch.first_seq, e.reason),
        })?;
        mem.insert(op.key, seq, op.kind, op.value);
        seq = seq.next();
        n += 1;
    }
    if n != batch.count {
        return Err(Error::Corruption {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!(
                "batch at sequence {} declares {} operations but holds {n}",
                batch.first_seq, batch.count
            ),
        });
    }
    Ok(())
}
