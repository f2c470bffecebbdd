//! Deliberately broken implementations: **test fixtures**, never for real use.
//!
//! Each wraps a real implementation and breaks exactly one contract clause, so the
//! harness can prove it bites: `harness/tests/conformance_bites.rs` runs every suite on
//! these and asserts that the expected checks (and only those) fail.
//!
//! | fixture | broken clause |
//! |---|---|
//! | [`AckBeforeSyncWal`] | `append(Sync)` returns `Ok` without syncing |
//! | [`SkipsSyncWal`] | `sync()` returns `Ok` without syncing (an engine on it loses acknowledged `Sync` writes) |
//! | [`ReorderingWal`] | readers yield adjacent batches swapped (on-disk order ≠ sequence order) |
//! | [`EpochReusingWal`] | every incarnation claims epoch 1 (a crash's lost batches and the next incarnation's share an epoch) |
//! | [`FutureVersionMemTable`] | `get` ignores the snapshot and returns the newest version |
//! | [`DropLastEntryTableFormat`] | the builder silently drops the last entry of each table |
//! | [`HidesCorruptionTableFormat`] | a damaged block reads as missing data (`None` / end of range), `verify` reports nothing |
//! | [`LosesFilePolicy`] | a task omits an overlapping output-level table (the engine would lose or shadow it) |
//! | [`BusyIgnoringPolicy`] | tasks name tables that are already being compacted |
//! | [`MovesOntoOverlapPolicy`] | a trivial move lands on tables of the next level it overlaps (`harness/tests/compaction_moves.rs`) |
//! | [`DropsCoveringTablesPolicy`] | a table of tombstones is dropped although it hides data below it (`harness/tests/compaction_moves.rs`) |
//! | [`FaultyFailoverPolicy`] with a [`FailoverFault`] | one fence of the failover contract, named by the fault: promotes an out-of-sync node, skips the epoch bump, lets the primary acknowledge before an in-sync shrink is committed, accepts a lower epoch, grants a lease longer than the grace (`harness/tests/conformance_failover.rs`) |

mod failover;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_core::fs::{File, FileSystem};

pub use failover::{FailoverFault, FaultyFailoverFactory, FaultyFailoverPolicy};
use strata_core::{
    CompactionPolicy, CompactionTask, Durability, EntryIter, Epoch, EpochStart, FileNo, KeyRange,
    LevelsView, Lookup, MemTable, MemTableFactory, Result, SeqNo, Table, TableBuilder, TableFormat,
    TableIter, TableMeta, ValueKind, Wal, WalBatch, WalFactory, WalReader, WalRecovery,
    compare_internal,
};

/// A WAL factory whose logs acknowledge `Sync` appends without syncing them (they are
/// appended as `Buffered`). `sync()` still syncs. Breaks: "`Sync` returns `Ok` only once
/// the batch is on stable storage".
#[derive(Debug)]
pub struct AckBeforeSyncWal(pub Arc<dyn WalFactory>);

/// A WAL factory whose logs answer `sync()` with `Ok` without syncing (`Sync` appends
/// still sync). Breaks: "`sync()` makes every appended batch durable" — the engine
/// makes a `Sync` write durable by an append and a `sync()`, so an engine on it loses
/// acknowledged writes at a power loss.
#[derive(Debug)]
pub struct SkipsSyncWal(pub Arc<dyn WalFactory>);

/// A WAL factory whose readers swap every pair of adjacent batches. Breaks: "`read_from`
/// yields, in order, every committed batch".
#[derive(Debug)]
pub struct ReorderingWal(pub Arc<dyn WalFactory>);

/// A WAL factory whose logs say every batch and every incarnation is epoch 1. Breaks:
/// "each opening for writing starts a new epoch, never reused".
#[derive(Debug)]
pub struct EpochReusingWal(pub Arc<dyn WalFactory>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalFault {
    AckBeforeSync,
    SkipSync,
    Reorder,
    ReuseEpoch,
    AcceptAnything,
}

impl WalFactory for EpochReusingWal {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FaultyWal { inner: self.0.open(fs, dir)?, fault: WalFault::ReuseEpoch }))
    }
    fn name(&self) -> &'static str {
        "broken-epoch-reusing"
    }
}

/// Rewrites every batch's epoch to epoch 1.
#[derive(Debug)]
struct EpochOneReader(Box<dyn WalReader>);

impl WalReader for EpochOneReader {
    fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        Ok(self.0.next_batch()?.map(|b| WalBatch { epoch: Epoch(1), ..b }))
    }
    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
        Ok(self.0.wait_next(timeout)?.map(|b| WalBatch { epoch: Epoch(1), ..b }))
    }
}

#[derive(Debug)]
struct FaultyWal {
    inner: Arc<dyn Wal>,
    fault: WalFault,
}

/// A log that, as a replica, reports success for batches that diverge from what it
/// holds or come from an older epoch (and keeps its own). Breaks: "a held sequence with
/// other bytes is `Error::Diverged`", "an older epoch is `Error::StaleEpoch`".
#[derive(Debug)]
pub struct DivergenceIgnoringWal(pub Arc<dyn WalFactory>);

impl WalFactory for DivergenceIgnoringWal {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FaultyWal { inner: self.0.open(fs, dir)?, fault: WalFault::AcceptAnything }))
    }
    fn name(&self) -> &'static str {
        "broken-divergence-ignoring"
    }
}

impl WalFactory for AckBeforeSyncWal {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FaultyWal { inner: self.0.open(fs, dir)?, fault: WalFault::AckBeforeSync }))
    }
    fn name(&self) -> &'static str {
        "broken-ack-before-sync"
    }
}

impl WalFactory for SkipsSyncWal {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FaultyWal { inner: self.0.open(fs, dir)?, fault: WalFault::SkipSync }))
    }
    fn name(&self) -> &'static str {
        "broken-skips-sync"
    }
}

impl WalFactory for ReorderingWal {
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn Wal>> {
        Ok(Arc::new(FaultyWal { inner: self.0.open(fs, dir)?, fault: WalFault::Reorder }))
    }
    fn name(&self) -> &'static str {
        "broken-reordering"
    }
}

impl Wal for FaultyWal {
    fn append(&self, payload: &[u8], count: u32, durability: Durability) -> Result<SeqNo> {
        let d =
            if self.fault == WalFault::AckBeforeSync { Durability::Buffered } else { durability };
        self.inner.append(payload, count, d)
    }
    fn sync(&self) -> Result<()> {
        if self.fault == WalFault::SkipSync {
            return Ok(());
        }
        self.inner.sync()
    }
    fn last_seq(&self) -> SeqNo {
        self.inner.last_seq()
    }
    fn durable_seq(&self) -> SeqNo {
        self.inner.durable_seq()
    }
    fn epoch(&self) -> Epoch {
        if self.fault == WalFault::ReuseEpoch { Epoch(1) } else { self.inner.epoch() }
    }
    fn epoch_history(&self) -> Vec<EpochStart> {
        let history = self.inner.epoch_history();
        if self.fault == WalFault::ReuseEpoch {
            history.first().map(|e| EpochStart { epoch: Epoch(1), ..*e }).into_iter().collect()
        } else {
            history
        }
    }
    fn read_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>> {
        let inner = self.inner.read_from(from)?;
        match self.fault {
            WalFault::Reorder => Ok(Box::new(SwappingReader { inner, held: None })),
            WalFault::ReuseEpoch => Ok(Box::new(EpochOneReader(inner))),
            WalFault::AckBeforeSync | WalFault::SkipSync | WalFault::AcceptAnything => Ok(inner),
        }
    }
    fn checkpoint(&self, seq: SeqNo) -> Result<()> {
        self.inner.checkpoint(seq)
    }
    fn recovery(&self) -> WalRecovery {
        self.inner.recovery()
    }
    fn files(&self) -> Result<Vec<PathBuf>> {
        self.inner.files()
    }
    fn copy_to(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        self.inner.copy_to(fs, dir)
    }
    fn append_replicated(&self, batch: &WalBatch, durability: Durability) -> Result<()> {
        match self.inner.append_replicated(batch, durability) {
            // Takes whatever the primary sends, as a replica without checks would.
            Err(strata_core::Error::Diverged { .. } | strata_core::Error::StaleEpoch { .. })
                if self.fault == WalFault::AcceptAnything =>
            {
                Ok(())
            }
            other => other,
        }
    }
    fn truncate_after(&self, seq: SeqNo) -> Result<()> {
        self.inner.truncate_after(seq)
    }
    fn start_epoch(&self, epoch: Epoch) -> Result<()> {
        self.inner.start_epoch(epoch)
    }
}

#[derive(Debug)]
struct SwappingReader {
    inner: Box<dyn WalReader>,
    held: Option<WalBatch>,
}

impl SwappingReader {
    fn swap(
        &mut self,
        first: Option<WalBatch>,
        second: impl FnOnce(&mut Self) -> Result<Option<WalBatch>>,
    ) -> Result<Option<WalBatch>> {
        if let Some(h) = self.held.take() {
            return Ok(Some(h));
        }
        let Some(a) = first else { return Ok(None) };
        match second(self)? {
            Some(b) => {
                self.held = Some(a);
                Ok(Some(b))
            }
            None => Ok(Some(a)),
        }
    }
}

impl WalReader for SwappingReader {
    fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        if let Some(h) = self.held.take() {
            return Ok(Some(h));
        }
        let first = self.inner.next_batch()?;
        self.swap(first, |s| s.inner.next_batch())
    }
    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
        if let Some(h) = self.held.take() {
            return Ok(Some(h));
        }
        let first = self.inner.wait_next(timeout)?;
        self.swap(first, |s| s.inner.next_batch())
    }
}

/// A memtable factory whose tables answer `get` with the newest version, ignoring the
/// snapshot. Breaks: "`get` never returns a version newer than `snapshot`".
#[derive(Debug)]
pub struct FutureVersionMemTable(pub Arc<dyn MemTableFactory>);

#[derive(Debug)]
struct FutureMem(Arc<dyn MemTable>);

impl MemTableFactory for FutureVersionMemTable {
    fn create(&self) -> Arc<dyn MemTable> {
        Arc::new(FutureMem(self.0.create()))
    }
    fn name(&self) -> &'static str {
        "broken-future-version"
    }
}

impl MemTable for FutureMem {
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        self.0.insert(key, seq, kind, value);
    }
    fn get(&self, key: &[u8], _snapshot: SeqNo) -> Option<Lookup> {
        self.0.get(key, SeqNo::MAX)
    }
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter {
        Arc::clone(&self.0).range(range, snapshot)
    }
    fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn max_seq(&self) -> SeqNo {
        self.0.max_seq()
    }
}

/// A table format whose builder silently drops the last entry of every table (it still
/// counts it in `entries()`). Breaks: "a finished table returns exactly the entries
/// added".
#[derive(Debug)]
pub struct DropLastEntryTableFormat(pub Arc<dyn TableFormat>);

struct DropLastBuilder {
    inner: Box<dyn TableBuilder>,
    pending: Option<(Vec<u8>, SeqNo, ValueKind, Vec<u8>)>,
}

impl TableFormat for DropLastEntryTableFormat {
    fn name(&self) -> &'static str {
        "broken-drop-last-entry"
    }
    fn builder(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Box<dyn TableBuilder>> {
        Ok(Box::new(DropLastBuilder { inner: self.0.builder(file, file_no)?, pending: None }))
    }
    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<dyn Table>> {
        self.0.open(file, file_no)
    }
}

impl TableBuilder for DropLastBuilder {
    fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()> {
        // Order is checked against the held entry, as the wrapped builder would.
        if let Some((k, s, _, _)) = &self.pending
            && compare_internal(key, seq, k, *s) != Ordering::Greater
        {
            return Err(strata_core::Error::InvalidArgument(format!(
                "entry ({key:?}, {seq}) is not after ({k:?}, {s})"
            )));
        }
        if let Some((k, s, kd, v)) = self.pending.take() {
            self.inner.add(&k, s, kd, &v)?;
        }
        self.pending = Some((key.to_vec(), seq, kind, value.to_vec()));
        Ok(())
    }
    fn estimated_size(&self) -> u64 {
        self.inner.estimated_size()
    }
    fn entries(&self) -> u64 {
        self.inner.entries() + u64::from(self.pending.is_some())
    }
    fn finish(self: Box<Self>) -> Result<TableMeta> {
        self.inner.finish()
    }
}

/// A table format whose tables hide damage: a corrupt block reads as "not found" or as
/// the end of a range, and `verify` reports nothing. Breaks: "a damaged block is
/// `Error::Corruption` naming the file, never data".
#[derive(Debug)]
pub struct HidesCorruptionTableFormat(pub Arc<dyn TableFormat>);

#[derive(Debug)]
struct HidingTable(Arc<dyn Table>);

impl TableFormat for HidesCorruptionTableFormat {
    fn name(&self) -> &'static str {
        "broken-hides-corruption"
    }
    fn builder(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Box<dyn TableBuilder>> {
        self.0.builder(file, file_no)
    }
    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<dyn Table>> {
        Ok(Arc::new(HidingTable(self.0.open(file, file_no)?)))
    }
}

impl Table for HidingTable {
    fn meta(&self) -> &TableMeta {
        self.0.meta()
    }
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Lookup>> {
        Ok(self.0.get(key, snapshot).unwrap_or(None))
    }
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> TableIter {
        Box::new(Arc::clone(&self.0).range(range, snapshot).map_while(|r| r.ok()).map(Ok))
    }
    fn verify(&self) -> Vec<strata_core::Error> {
        Vec::new()
    }
}

/// A compaction policy that drops one output-level table from every task that reads
/// the output level (a task that "loses" a file). Breaks: "it reads every table of
/// `output_level` whose key range overlaps the inputs' key range".
#[derive(Debug)]
pub struct LosesFilePolicy(pub Arc<dyn CompactionPolicy>);

impl CompactionPolicy for LosesFilePolicy {
    fn name(&self) -> &'static str {
        "broken-loses-file"
    }
    fn levels(&self) -> usize {
        self.0.levels()
    }
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        let mut task = self.0.pick(view, busy)?;
        let out = task.output_level;
        let deeper_input = task.inputs.iter().any(|i| i.level < out);
        if deeper_input
            && let Some(input) =
                task.inputs.iter_mut().find(|i| i.level == out && !i.tables.is_empty())
        {
            input.tables.pop();
        }
        task.inputs.retain(|i| !i.tables.is_empty());
        Some(task)
    }
}

/// A compaction policy that turns every merge it would return into a trivial move of
/// the merge's shallowest input tables, although they overlap tables of the level below
/// (or each other). Breaks: "a move's tables overlap neither each other nor a table of
/// the level they move to".
#[derive(Debug)]
pub struct MovesOntoOverlapPolicy(pub Arc<dyn CompactionPolicy>);

impl CompactionPolicy for MovesOntoOverlapPolicy {
    fn name(&self) -> &'static str {
        "broken-moves-onto-overlap"
    }
    fn levels(&self) -> usize {
        self.0.levels()
    }
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        let task = self.0.pick(view, busy)?;
        if task.kind != strata_core::compaction::TaskKind::Merge {
            return Some(task);
        }
        let first = task.inputs.first()?.clone();
        if first.level + 1 >= self.levels() {
            return Some(task);
        }
        Some(CompactionTask::moving(first.level, first.tables, format!("moved: {}", task.reason)))
    }
}

/// A compaction policy that drops a table whose every entry is a tombstone as soon as it
/// sees one, without looking at what lies below it (the tombstones may hide older puts
/// there, which a drop would bring back). Breaks: "a drop names only droppable tables:
/// nothing a read visits after them overlaps them".
#[derive(Debug)]
pub struct DropsCoveringTablesPolicy(pub Arc<dyn CompactionPolicy>);

impl CompactionPolicy for DropsCoveringTablesPolicy {
    fn name(&self) -> &'static str {
        "broken-drops-covering-tables"
    }
    fn levels(&self) -> usize {
        self.0.levels()
    }
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        for (l, tables) in view.levels.iter().enumerate().take(self.levels()) {
            if let Some(t) = tables
                .iter()
                .find(|t| t.entries > 0 && t.tombstones == t.entries && !busy.contains(&t.file_no))
            {
                return Some(CompactionTask::dropping(l, vec![t.file_no], "drop tombstones"));
            }
        }
        self.0.pick(view, busy)
    }
}

/// A compaction policy that ignores the busy set, so its tasks name tables another task
/// is compacting. Breaks: "`pick` never names a table in `busy`".
#[derive(Debug)]
pub struct BusyIgnoringPolicy(pub Arc<dyn CompactionPolicy>);

impl CompactionPolicy for BusyIgnoringPolicy {
    fn name(&self) -> &'static str {
        "broken-busy-ignoring"
    }
    fn levels(&self) -> usize {
        self.0.levels()
    }
    fn pick(&self, view: &LevelsView, _busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        self.0.pick(view, &HashSet::new())
    }
}

impl fmt::Debug for DropLastBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropLastBuilder")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}
