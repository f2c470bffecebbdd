//! The engine: composes a WAL, memtables, tables and a compaction policy into a store.
//!
//! Write path: batch → WAL append (assigns sequences, honours durability) → memtable
//! insert (lock-free, concurrent across writers) → publish the visible sequence in
//! commit order. Readers read at the published sequence, so they never see half a batch.
//!
//! Background: a full memtable becomes immutable; the flush thread writes it as an L0
//! table, records it in the manifest and checkpoints the WAL; compaction threads run
//! what the [`CompactionPolicy`] picks. When immutable memtables or L0 tables pile up,
//! writers are slowed down and then stopped until the background catches up.

mod background;
mod builder;
mod checkpoint;
mod compact;
mod install;
mod iter;
mod log_reader;
mod open;
mod replica;
mod snapshots;
mod version;
mod visibility;

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

pub use builder::{DEFAULT_MEMTABLE_SIZE_BYTES, DbBuilder, DbOptions, PeriodicCheckpoint};
pub use iter::DbIter;
pub use log_reader::LogBound;
pub use replica::Role;
use snapshots::{SnapshotGuard, SnapshotList};
use version::Version;
use visibility::Visibility;

use crate::batch::WriteBatch;
use crate::compaction::CompactionPolicy;
use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::manifest::{ManifestState, ManifestWriter};
use crate::memtable::{KeyRange, Lookup, MemTable, MemTableFactory};
use crate::table::{FileNo, TableFormat, TableIter};
use crate::types::{Durability, Epoch, SeqNo};
use crate::wal::{EpochStart, HistoryCheck, Wal, WalReader, WalRecovery};

/// Name of the lock file that keeps a second process out of a store directory.
pub const LOCK_FILE: &str = "LOCK";

/// An immutable memtable waiting for its flush, with the last sequence it can hold.
#[derive(Clone, Debug)]
struct ImmMem {
    mem: Arc<dyn MemTable>,
    /// Every sequence in this memtable is `<=` this, and every later memtable holds
    /// only greater ones: rotation reads it while no writer sits between its WAL append
    /// and its choice of memtable (the rotation gate).
    last_seq: SeqNo,
}

/// What readers and writers see at one moment: memtables and the table version.
#[derive(Debug)]
struct State {
    active: Arc<dyn MemTable>,
    /// Newest first.
    immutable: Vec<ImmMem>,
    version: Arc<Version>,
}

impl State {
    fn memtables_newest_first(&self) -> impl Iterator<Item = &Arc<dyn MemTable>> {
        std::iter::once(&self.active).chain(self.immutable.iter().map(|m| &m.mem))
    }
}

/// A consistent read point: reads through it see exactly the batches committed up to
/// its sequence. While it lives, compaction keeps every version it can read.
#[derive(Clone, Debug)]
pub struct Snapshot {
    seq: SeqNo,
    _guard: Option<Arc<SnapshotGuard>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// The last sequence this snapshot sees.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

/// Size of one level of the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Number of tables.
    pub tables: usize,
    /// Bytes of the tables.
    pub bytes: u64,
}

/// Figures about the engine's state and background work since open.
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
    /// Tables and bytes per level.
    pub levels: Vec<LevelStats>,
    /// Memtables flushed to L0.
    pub flushes: u64,
    /// Bytes of L0 tables written by flushes.
    pub flush_bytes: u64,
    /// Compaction tasks completed.
    pub compactions: u64,
    /// Bytes of input tables read by compactions.
    pub compaction_read_bytes: u64,
    /// Bytes of output tables written by compactions.
    pub compaction_written_bytes: u64,
    /// Time spent running compaction tasks, summed over threads, in microseconds.
    pub compaction_micros: u64,
    /// Tasks the policy returned that broke its contract and were not run (or not
    /// committed: the engine checks a task again right before its manifest edit).
    pub rejected_compactions: u64,
    /// Tables moved one level down by a manifest edit alone (trivial moves; counted in
    /// `compactions` as tasks, not in the read or written bytes).
    pub compaction_moves: u64,
    /// Bytes of the tables moved by trivial moves (neither read nor written).
    pub compaction_moved_bytes: u64,
    /// Tables dropped by a manifest edit alone (every entry a tombstone hiding nothing).
    pub compaction_drops: u64,
    /// Writes delayed because L0 reached the slowdown threshold.
    pub stall_slowdowns: u64,
    /// Writes that waited because memtables or L0 reached the stop threshold.
    pub stall_stops: u64,
    /// Total time writers spent slowed down or stopped, in microseconds.
    pub stall_micros: u64,
    /// Snapshots currently alive.
    pub live_snapshots: usize,
    /// Everything at or below this sequence is in tables.
    pub flushed_seq: SeqNo,
    /// Periodic checkpoints written (and pruned to `keep`) since open.
    pub checkpoints: u64,
    /// Periodic checkpoints that failed since open (they left no checkpoint behind).
    pub failed_checkpoints: u64,
}

impl DbStats {
    /// Bytes of all tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }
}

/// What `open` did to recover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// What the WAL found (last sequence, torn tail cut off).
    pub wal: WalRecovery,
    /// The manifest read at open (`None` for a new store).
    pub manifest: Option<PathBuf>,
    /// A torn last manifest record that was dropped: its offset and length.
    pub manifest_torn_tail: Option<(u64, u64)>,
    /// Tables opened.
    pub tables: usize,
    /// Bytes of those tables.
    pub table_bytes: u64,
    /// Files no manifest lists (left by a crash during a flush or compaction) that
    /// were deleted.
    pub deleted_orphans: Vec<PathBuf>,
    /// Tables no manifest lists whose numbers the manifest never handed out: kept,
    /// because the manifest cannot prove them unreferenced.
    pub kept_unlisted_tables: Vec<PathBuf>,
    /// Everything at or below this sequence was already in tables; replay started after it.
    pub flushed_seq: SeqNo,
    /// Wall time from the start of open until the WAL replay began (manifest, tables).
    pub tables_open_time: Duration,
    /// Batches replayed from the WAL into memtables.
    pub replayed_batches: u64,
    /// Operations replayed.
    pub replayed_ops: u64,
    /// Bytes of encoded batches replayed.
    pub replayed_bytes: u64,
    /// Wall time of the replay.
    pub replay_time: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    rotations: AtomicU64,
    flushes: AtomicU64,
    flush_bytes: AtomicU64,
    compactions: AtomicU64,
    compaction_read_bytes: AtomicU64,
    compaction_written_bytes: AtomicU64,
    compaction_micros: AtomicU64,
    compactions_running: std::sync::atomic::AtomicUsize,
    rejected_compactions: AtomicU64,
    compaction_moves: AtomicU64,
    compaction_moved_bytes: AtomicU64,
    compaction_drops: AtomicU64,
    stall_slowdowns: AtomicU64,
    stall_stops: AtomicU64,
    stall_micros: AtomicU64,
    checkpoints: AtomicU64,
    failed_checkpoints: AtomicU64,
}

/// The manifest and what only the background threads change.
#[derive(Debug)]
struct VersionSet {
    manifest: ManifestWriter,
    /// Mirror of the current version in manifest form (rolled into new manifests).
    state: ManifestState,
    /// Tables that a running compaction reads.
    busy: std::collections::HashSet<FileNo>,
}

/// Wakes background threads and stalled writers.
#[derive(Debug, Default)]
struct Signals {
    lock: Mutex<()>,
    /// Background work may be available (a rotation, a finished task).
    work: Condvar,
    /// Background work finished (writers re-check their stall).
    progress: Condvar,
    shutdown: AtomicBool,
}

struct Shared {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    wal: Arc<dyn Wal>,
    memtables: Arc<dyn MemTableFactory>,
    format: Arc<dyn TableFormat>,
    policy: Arc<dyn CompactionPolicy>,
    state: ArcSwap<State>,
    /// Serialises every read-modify-write of `state`.
    state_lock: Mutex<()>,
    /// Writers hold it shared from their WAL append until they picked a memtable;
    /// rotation holds it exclusively, so memtables partition the sequence space.
    gate: RwLock<()>,
    visible: Visibility,
    snapshots: Arc<SnapshotList>,
    versions: Mutex<VersionSet>,
    next_file_no: AtomicU64,
    signals: Signals,
    poison: Mutex<Option<String>>,
    poisoned: AtomicBool,
    counters: Counters,
    /// Primary or replica (see [`Role`]).
    role: replica::RoleCell,
    options: DbOptions,
    open_report: OpenReport,
    _lock: Box<dyn FileLock>,
}

/// Stops and joins the background threads when the last handle goes away.
struct Background {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shared.signals.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.signals.lock.lock();
            self.shared.signals.work.notify_all();
            self.shared.signals.progress.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        }
    }
}

/// An open store. Cheap to clone; all clones share one engine, and the background
/// threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    _background: Arc<Background>,
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

    /// Commits `batch` atomically and returns the sequence of its last operation.
    ///
    /// `Durability::Sync` returns once the batch is on stable storage (concurrent `Sync`
    /// writers share one fdatasync); `Buffered` once the OS has it. An empty batch
    /// commits nothing and returns the current visible sequence. After an I/O failure
    /// the store is poisoned and every write returns `Error::Poisoned`. When flushes or
    /// compactions fall behind, the write is first delayed and then waits (a stall) —
    /// see [`DbOptions`].
    pub fn write(&self, batch: &WriteBatch, durability: Durability) -> Result<SeqNo> {
        if batch.is_empty() {
            return Ok(self.shared.visible.current());
        }
        batch.validate().map_err(Error::InvalidArgument)?;
        self.check_poison()?;
        self.shared.role.check_primary()?;
        self.stall_if_needed()?;
        // The gate covers only the append and the choice of memtable (what rotation
        // needs); a `Sync` writer's fdatasync runs after it, so a rotation — and every
        // writer queued behind the rotation's write lock — never waits for a disk flush.
        let gate = self.shared.gate.read();
        let appended =
            self.shared.wal.append(batch.as_bytes(), batch.count(), Durability::Buffered);
        let state = self.shared.state.load();
        drop(gate);
        // IMPORTANT: on failure the WAL may have consumed sequences for this batch;
        // poisoning releases later writers waiting for them to become visible.
        let first = match appended {
            Ok(first) => first,
            Err(e) => {
                self.poison(format!("WAL append failed: {e}"));
                return Err(e);
            }
        };
        if durability == Durability::Sync
            && let Err(e) = self.shared.wal.sync()
        {
            self.poison(format!("WAL sync failed: {e}"));
            return Err(e);
        }
        let last = SeqNo(first.0 + u64::from(batch.count()) - 1);
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
            state.active.insert(op.key, seq, op.kind, op.value);
            seq = seq.next();
        }
        if self.shared.visible.publish(first, last).is_err() {
            return Err(self.poisoned_error());
        }
        if state.active.memory_bytes() >= self.shared.options.memtable_size_bytes {
            self.rotate_if_current(&state.active);
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

    /// A read point at the current visible sequence. Compaction keeps the versions it
    /// reads until it (and every clone) is dropped, so do not hold one forever.
    pub fn snapshot(&self) -> Snapshot {
        let (seq, guard) = self.shared.snapshots.register(|| self.shared.visible.current());
        Snapshot { seq, _guard: Some(Arc::new(guard)) }
    }

    /// The newest value of `key`, or `None` if absent or deleted.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let state = self.shared.state.load();
        self.get_in(&state, key, self.shared.visible.current())
    }

    /// The value of `key` as of `snapshot`.
    pub fn get_at(&self, key: &[u8], snapshot: &Snapshot) -> Result<Option<Bytes>> {
        let state = self.shared.state.load();
        self.get_in(&state, key, snapshot.seq)
    }

    fn get_in(&self, state: &State, key: &[u8], seq: SeqNo) -> Result<Option<Bytes>> {
        // Memtables partition the sequence space newest first, and every table is older
        // than every memtable, so the first source that knows the key answers.
        let mut found = None;
        for mem in state.memtables_newest_first() {
            if let Some(hit) = mem.get(key, seq) {
                found = Some(hit);
                break;
            }
        }
        if found.is_none() {
            found = state.version.get(key, seq)?;
        }
        Ok(match found {
            Some(Lookup::Value { value, .. }) => Some(value),
            _ => None,
        })
    }

    /// Keys and values in `range`, in key order, at the current visible sequence.
    pub fn scan<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        // IMPORTANT: load the state before reading the visible sequence (as `get`
        // does). A compaction that starts after the sequence was read may drop the only
        // version that sequence sees; the state loaded first holds the tables from
        // before any such compaction installs, and one that installed already computed
        // its oldest reader before this sequence, so it kept that version.
        let state = self.shared.state.load_full();
        let seq = self.shared.visible.current();
        self.scan_in(state, range, seq)
    }

    /// Every key and value, in key order, at the current visible sequence.
    pub fn iter(&self) -> DbIter {
        self.scan::<&[u8], _>(..)
    }

    /// Keys and values in `range`, in key order, as of `snapshot`.
    pub fn scan_at<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
        snapshot: &Snapshot,
    ) -> DbIter {
        // The registered snapshot keeps its versions through any compaction.
        self.scan_in(self.shared.state.load_full(), range, snapshot.seq)
    }

    fn scan_in<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        state: Arc<State>,
        range: R,
        seq: SeqNo,
    ) -> DbIter {
        let range: KeyRange =
            (to_owned_bound(range.start_bound()), to_owned_bound(range.end_bound()));
        let mut sources: Vec<TableIter> = state
            .memtables_newest_first()
            .map(|mem| {
                let it: TableIter = Box::new(Arc::clone(mem).range(range.clone(), seq).map(Ok));
                it
            })
            .collect();
        sources.extend(state.version.iters(&range, seq));
        DbIter::new(sources, Some(state))
    }

    /// Makes every `Buffered` write so far durable.
    pub fn sync_wal(&self) -> Result<()> {
        self.check_poison()?;
        self.shared.wal.sync().inspect_err(|e| self.poison(format!("WAL sync failed: {e}")))
    }

    /// A reader over the commit log from `from` (historical reads and tailing) that
    /// hands out a batch only once it is visible and durable ([`LogBound::Durable`]):
    /// a subscriber never holds a batch the store may lose. Waiting for a `Buffered`
    /// batch, the reader syncs the log itself.
    ///
    /// The reader keeps the store's shared state (and its directory lock) alive until
    /// it is dropped.
    pub fn read_log_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>> {
        self.read_log_from_with(from, LogBound::Durable)
    }

    /// Like [`read_log_from`](Self::read_log_from) with an explicit [`LogBound`]
    /// (`LogBound::Visible` for "as soon as readers see it", without waiting for
    /// fdatasync; `LogBound::Written` for "as soon as it is in the log", for shipping
    /// to replicas).
    pub fn read_log_from_with(&self, from: SeqNo, bound: LogBound) -> Result<Box<dyn WalReader>> {
        let inner = self.shared.wal.read_from(from)?;
        Ok(Box::new(log_reader::BoundedLogReader::new(
            inner,
            Arc::clone(&self.shared),
            bound,
            from,
        )))
    }

    /// The last sequence on stable storage.
    pub fn durable_seq(&self) -> SeqNo {
        self.shared.wal.durable_seq()
    }

    /// The epoch this incarnation of the store writes in (see [`Epoch`]).
    pub fn epoch(&self) -> Epoch {
        self.shared.wal.epoch()
    }

    /// The log's durable epoch history, oldest first.
    pub fn epoch_history(&self) -> Vec<EpochStart> {
        self.shared.wal.epoch_history()
    }

    /// What the store's history says about a reader that holds every batch up to
    /// `last` as written in `epoch`: consistent, rewritten over a range (a crash took
    /// back batches the reader saw, and a later incarnation wrote others there), or
    /// from an unknown history. Resuming subscribers call it before they continue.
    pub fn check_history(&self, epoch: Epoch, last: SeqNo) -> HistoryCheck {
        crate::wal::history_check(&self.epoch_history(), self.shared.wal.last_seq(), epoch, last)
    }

    /// Makes the active memtable immutable (if it holds anything) and waits until every
    /// immutable memtable is written as a table.
    pub fn flush(&self) -> Result<()> {
        let active = Arc::clone(&self.shared.state.load().active);
        if !active.is_empty() {
            self.rotate_if_current(&active);
        }
        self.wait_until(|s| s.immutable.is_empty())
    }

    /// Waits until no memtable awaits a flush and the compaction policy has nothing to
    /// do (for tests, benchmarks and orderly shutdowns).
    pub fn wait_for_background(&self) -> Result<()> {
        loop {
            self.wait_until(|s| s.immutable.is_empty())?;
            if self.compaction_idle() {
                return Ok(());
            }
            let mut g = self.shared.signals.lock.lock();
            self.shared.signals.work.notify_all();
            self.shared.signals.progress.wait_for(&mut g, Duration::from_millis(20));
        }
    }

    fn wait_until(&self, done: impl Fn(&State) -> bool) -> Result<()> {
        loop {
            self.check_poison()?;
            if done(&self.shared.state.load()) {
                return Ok(());
            }
            let mut g = self.shared.signals.lock.lock();
            self.shared.signals.work.notify_all();
            self.shared.signals.progress.wait_for(&mut g, Duration::from_millis(20));
        }
    }

    /// Engine figures.
    pub fn stats(&self) -> DbStats {
        let s = &self.shared;
        let state = s.state.load();
        let c = &s.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DbStats {
            visible_seq: s.visible.current(),
            memtables: 1 + state.immutable.len(),
            memtable_bytes: state.memtables_newest_first().map(|m| m.memory_bytes()).sum(),
            memtable_entries: state.memtables_newest_first().map(|m| m.len()).sum(),
            rotations: load(&c.rotations),
            levels: state
                .version
                .levels
                .iter()
                .map(|l| LevelStats {
                    tables: l.len(),
                    bytes: l.iter().map(|t| t.meta.size_bytes).sum(),
                })
                .collect(),
            flushes: load(&c.flushes),
            flush_bytes: load(&c.flush_bytes),
            compactions: load(&c.compactions),
            compaction_read_bytes: load(&c.compaction_read_bytes),
            compaction_written_bytes: load(&c.compaction_written_bytes),
            compaction_micros: load(&c.compaction_micros),
            rejected_compactions: load(&c.rejected_compactions),
            compaction_moves: load(&c.compaction_moves),
            compaction_moved_bytes: load(&c.compaction_moved_bytes),
            compaction_drops: load(&c.compaction_drops),
            stall_slowdowns: load(&c.stall_slowdowns),
            stall_stops: load(&c.stall_stops),
            stall_micros: load(&c.stall_micros),
            live_snapshots: s.snapshots.count(),
            flushed_seq: s.versions.lock().state.flushed_seq,
            checkpoints: load(&c.checkpoints),
            failed_checkpoints: load(&c.failed_checkpoints),
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

    /// Number of compaction tasks running right now (one atomic load: cheap enough to
    /// call per operation, e.g. to split latency figures by background activity).
    pub fn compactions_running(&self) -> usize {
        self.shared.counters.compactions_running.load(Ordering::Relaxed)
    }

    /// The table format's name.
    pub fn table_format(&self) -> &'static str {
        self.shared.format.name()
    }

    /// The compaction policy's name.
    pub fn compaction_policy(&self) -> &'static str {
        self.shared.policy.name()
    }

    fn stall_if_needed(&self) -> Result<()> {
        let s = &self.shared;
        let o = &s.options;
        let pressure = |st: &State| {
            let l0 = st.version.levels.first().map_or(0, Vec::len);
            (st.immutable.len() >= o.max_immutable_memtables || l0 >= o.l0_stop_tables, l0)
        };
        let (stop, l0) = pressure(&s.state.load());
        if !stop && l0 < o.l0_slowdown_tables {
            return Ok(());
        }
        let started = Instant::now();
        if stop {
            s.counters.stall_stops.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(l0, "write stopped until flush/compaction catches up");
            loop {
                self.check_poison()?;
                if s.signals.shutdown.load(Ordering::Acquire) {
                    return Err(Error::Poisoned { reason: "the store is closing".into() });
                }
                let st = s.state.load();
                if !pressure(&st).0 {
                    break;
                }
                if st.immutable.len() < o.max_immutable_memtables && self.compaction_idle() {
                    // L0 is at the stop threshold but the policy sees nothing to do (its
                    // trigger is above the threshold): waiting would never end.
                    tracing::warn!(
                        l0 = st.version.levels.first().map_or(0, Vec::len),
                        policy = s.policy.name(),
                        "l0_stop_tables is below what the compaction policy acts on; not stalling"
                    );
                    break;
                }
                let mut g = s.signals.lock.lock();
                s.signals.work.notify_all();
                s.signals.progress.wait_for(&mut g, Duration::from_millis(10));
            }
        } else {
            s.counters.stall_slowdowns.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(o.slowdown_delay);
        }
        s.counters.stall_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// True when no compaction runs and the policy has nothing to start.
    fn compaction_idle(&self) -> bool {
        let vs = self.shared.versions.lock();
        let view = self.shared.state.load().version.view();
        vs.busy.is_empty() && self.shared.policy.pick(&view, &vs.busy).is_none()
    }

    fn rotate_if_current(&self, full: &Arc<dyn MemTable>) {
        let s = &self.shared;
        let _state_guard = s.state_lock.lock();
        let current = s.state.load_full();
        if !std::ptr::addr_eq(Arc::as_ptr(&current.active), Arc::as_ptr(full)) {
            return; // another writer rotated it already
        }
        // Hold the gate while choosing the boundary: every writer that may still insert
        // into `full` has appended already, so its sequence is <= last_seq.
        let gate = s.gate.write();
        let last_seq = s.wal.last_seq();
        let mut immutable = Vec::with_capacity(current.immutable.len() + 1);
        immutable.push(ImmMem { mem: Arc::clone(&current.active), last_seq });
        immutable.extend(current.immutable.iter().cloned());
        s.state.store(Arc::new(State {
            active: s.memtables.create(),
            immutable,
            version: Arc::clone(&current.version),
        }));
        drop(gate);
        let n = s.counters.rotations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(rotations = n, bytes = full.memory_bytes(), %last_seq, "memtable rotated");
        let _g = s.signals.lock.lock();
        s.signals.work.notify_all();
    }

    fn check_poison(&self) -> Result<()> {
        self.shared.check_poison()
    }

    fn poisoned_error(&self) -> Error {
        self.shared.poisoned_error()
    }

    fn poison(&self, reason: String) {
        self.shared.poison(reason);
    }
}

impl Shared {
    fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.poison.lock() {
            Some(reason) => Err(Error::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    fn poisoned_error(&self) -> Error {
        let reason = self.poison.lock().clone();
        Error::Poisoned { reason: reason.unwrap_or_else(|| "an earlier write failed".into()) }
    }

    fn poison(&self, reason: String) {
        let mut guard = self.poison.lock();
        if guard.is_none() {
            tracing::error!(%reason, "store poisoned; reopen to recover");
            *guard = Some(reason);
        }
        self.poisoned.store(true, Ordering::Release);
        drop(guard);
        self.visible.break_chain();
        let _g = self.signals.lock.lock();
        self.signals.progress.notify_all();
        self.signals.work.notify_all();
    }

    fn alloc_file_no(&self) -> FileNo {
        FileNo(self.next_file_no.fetch_add(1, Ordering::SeqCst))
    }

    fn table_path(&self, no: FileNo) -> PathBuf {
        self.dir.join(no.table_file_name())
    }

    fn notify_progress(&self) {
        let _g = self.signals.lock.lock();
        self.signals.progress.notify_all();
        self.signals.work.notify_all();
    }
}

fn to_owned_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Bytes> {
    match b {
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k.as_ref())),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    }
}
