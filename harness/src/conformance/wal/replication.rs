//! Replication clauses: appending a primary's batches at their own sequences and
//! epochs, refusing gaps, divergence and stale epochs, and a truncation that a power
//! loss at any sync point leaves either undone or done.

use std::sync::atomic::{AtomicU64, Ordering};

use strata_core::fs::{File, FileLock, FileSystem, OpenMode};
use strata_core::{Epoch, Result as CoreResult};

use super::*;

/// A primary log with batches in two epochs (reopened in between), all durable.
fn primary_log(s: &Subject) -> Result<(SimFileSystem, Vec<WalBatch>), String> {
    let fs = fresh_fs()?;
    let mut log = Vec::new();
    for round in 0..2u64 {
        let wal = s.open(&fs)?;
        for i in 0..5u64 {
            append(&*wal, &mut log, 2000 + round * 10 + i, 1 + (i % 3) as u32, Durability::Sync)?;
        }
    }
    let wal = s.open(&fs)?;
    let batches = read_all(&*wal, SeqNo(1))?;
    ensure!(batches.len() == 10, "the primary log holds {} batches, expected 10", batches.len());
    Ok((fs, batches))
}

pub(super) fn replicated_appends(s: &Subject) -> CheckResult {
    let (pfs, batches) = primary_log(s)?;
    let primary = s.open(&pfs)?;
    let rfs_root = fresh_fs()?;
    let replica = s.open(&rfs_root)?;
    for b in &batches {
        replica.append_replicated(b, Durability::Buffered).ctx("append_replicated")?;
    }
    let got = read_all(&*replica, SeqNo(1))?;
    ensure!(
        got == batches,
        "clause `append_replicated keeps the primary's sequences, epochs and bytes`: the \
         replica reads {} batches that differ from the primary's {}",
        got.len(),
        batches.len()
    );
    let (ph, rh) = (primary.epoch_history(), replica.epoch_history());
    ensure!(
        rh == ph,
        "clause `a batch of a newer epoch records it in the history at its first sequence`: \
         replica history {rh:?}, primary history {ph:?}"
    );
    let last = replica.last_seq();
    // A reconnect re-sends what the replica holds.
    replica.append_replicated(&batches[3], Durability::Sync).ctx("re-sending a held batch")?;
    ensure!(
        replica.last_seq() == last,
        "clause `a batch already held is accepted again without writing`: last_seq moved \
         from {last} to {}",
        replica.last_seq()
    );
    let mut changed = batches[3].clone();
    changed.payload = Bytes::from(payload(9999));
    match replica.append_replicated(&changed, Durability::Sync) {
        Err(Error::Diverged { .. }) => {}
        other => {
            return Err(format!(
                "clause `a held sequence with other bytes is Error::Diverged`: got {other:?}"
            ));
        }
    }
    let newest = batches.last().map_or(Epoch::ZERO, |b| b.epoch);
    let next = |first: SeqNo, epoch: Epoch, seed: u64| WalBatch {
        first_seq: first,
        count: 1,
        payload: Bytes::from(payload(seed)),
        epoch,
    };
    match replica.append_replicated(&next(last.next().next(), newest, 1), Durability::Sync) {
        Err(Error::SequenceGap { expected, .. }) if expected == last.next() => {}
        other => {
            return Err(format!(
                "clause `a batch after a gap is Error::SequenceGap naming the expected \
                 sequence {}`: got {other:?}",
                last.next()
            ));
        }
    }
    if newest > Epoch::ZERO {
        match replica
            .append_replicated(&next(last.next(), Epoch(newest.0 - 1), 2), Durability::Sync)
        {
            Err(Error::StaleEpoch { .. }) => {}
            other => {
                return Err(format!(
                    "clause `an epoch older than the history's newest is Error::StaleEpoch`: \
                     got {other:?}"
                ));
            }
        }
    }
    ensure!(
        replica.last_seq() == last,
        "clause `a refused batch writes nothing`: last_seq moved from {last} to {}",
        replica.last_seq()
    );
    // A newer epoch continues the log; a Sync replicated append is durable.
    let newer = next(last.next(), Epoch(newest.0 + 5), 3);
    replica.append_replicated(&newer, Durability::Sync).ctx("append in a newer epoch")?;
    let mut want = batches.clone();
    want.push(newer.clone());
    drop(replica);
    let rfs = rfs_root.crash();
    let reopened = s.open(&rfs)?;
    let got = read_all(&*reopened, SeqNo(1))?;
    ensure!(
        got == want,
        "clause `a Sync replicated append survives a power loss`: after the crash the replica \
         holds {} batches, expected {}",
        got.len(),
        want.len()
    );
    let epoch = reopened.epoch();
    ensure!(
        epoch > newer.epoch,
        "clause `each opening starts an epoch greater than every epoch that wrote`: the \
         replica reopened in {epoch} after holding a batch of {}",
        newer.epoch
    );
    // Promotion: a chosen epoch, which must be newer than the history's.
    match reopened.start_epoch(newer.epoch) {
        Err(Error::StaleEpoch { .. }) => {}
        other => {
            return Err(format!(
                "clause `start_epoch refuses an epoch the history already holds`: got {other:?}"
            ));
        }
    }
    let promoted = Epoch(newer.epoch.0 + 10);
    reopened.start_epoch(promoted).ctx("start_epoch")?;
    let first = reopened.append(&payload(4), 1, Durability::Sync).ctx("append after promotion")?;
    let tail = read_all(&*reopened, first)?;
    ensure!(
        tail.first().map(|b| b.epoch) == Some(promoted),
        "clause `after start_epoch(e) local appends write in e`: the batch says {:?}",
        tail.first().map(|b| b.epoch)
    );
    Ok(())
}

/// Forwards to a file system and, once `budget` syncs (file or directory) have run,
/// fails every later operation: the machine lost power right after that sync point.
#[derive(Debug)]
struct PowerCut {
    inner: Arc<dyn FileSystem>,
    budget: Arc<AtomicU64>,
}

fn cut_error(path: &Path) -> Error {
    Error::io("power cut", path, std::io::Error::other("power lost (test)"))
}

impl PowerCut {
    fn spend(&self, path: &Path) -> CoreResult<()> {
        self.budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .map(|_| ())
            .map_err(|_| cut_error(path))
    }
    fn live(&self, path: &Path) -> CoreResult<()> {
        if self.budget.load(Ordering::SeqCst) == 0 { Err(cut_error(path)) } else { Ok(()) }
    }
}

#[derive(Debug)]
struct PowerCutFile {
    inner: Arc<dyn File>,
    budget: Arc<AtomicU64>,
}

impl File for PowerCutFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> CoreResult<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> CoreResult<()> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(cut_error(self.inner.path()));
        }
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> CoreResult<()> {
        self.budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .map_err(|_| cut_error(self.inner.path()))?;
        self.inner.sync_data()
    }
    fn len(&self) -> CoreResult<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> CoreResult<()> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(cut_error(self.inner.path()));
        }
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> CoreResult<()> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(cut_error(self.inner.path()));
        }
        self.inner.allocate(len)
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
}

impl FileSystem for PowerCut {
    fn open(&self, path: &Path, mode: OpenMode) -> CoreResult<Arc<dyn File>> {
        if mode != OpenMode::ReadOnly {
            self.live(path)?;
        }
        Ok(Arc::new(PowerCutFile {
            inner: self.inner.open(path, mode)?,
            budget: Arc::clone(&self.budget),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> CoreResult<()> {
        self.live(from)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> CoreResult<()> {
        self.live(path)?;
        self.inner.remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> CoreResult<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> CoreResult<()> {
        self.live(dir)?;
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> CoreResult<()> {
        self.spend(dir)?;
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> CoreResult<bool> {
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> CoreResult<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}

/// Builds the primary log, opens it through a [`PowerCut`] with `budget` syncs and
/// truncates after `keep`; returns the file system after the power loss, the batches
/// before the truncation, and whether the truncation returned `Ok`.
fn truncate_with_power_cut(
    s: &Subject,
    keep: SeqNo,
    budget: u64,
) -> Result<(SimFileSystem, Vec<WalBatch>, bool), String> {
    let (fs, batches) = primary_log(s)?;
    let left = Arc::new(AtomicU64::new(u64::MAX));
    let cut: Arc<dyn FileSystem> =
        Arc::new(PowerCut { inner: fs.shared(), budget: Arc::clone(&left) });
    let wal = s.factory.open(cut, Path::new(DIR)).ctx("open the log")?;
    left.store(budget, Ordering::SeqCst);
    let done = wal.truncate_after(keep).is_ok();
    drop(wal);
    Ok((fs.crash(), batches, done))
}

pub(super) fn truncation_is_old_or_new(s: &Subject) -> CheckResult {
    let (_, batches) = primary_log(s)?;
    // Keep the first three batches: the cut is inside the first epoch, so the history
    // loses the second.
    let keep = batches[2].last_seq();
    let old = batches.clone();
    let new: Vec<WalBatch> = batches.iter().take(3).cloned().collect();
    // Inside a batch: refused, nothing changes.
    if let Some(b) = batches.iter().find(|b| b.count > 1) {
        let fs = primary_log(s)?.0;
        let wal = s.open(&fs)?;
        match wal.truncate_after(b.first_seq) {
            Err(Error::InvalidArgument(_)) => {}
            other => {
                return Err(format!(
                    "clause `truncate_after refuses a sequence inside a batch`: got {other:?}"
                ));
            }
        }
        ensure!(
            read_all(&*wal, SeqNo(1))? == batches,
            "clause `a refused truncation changes nothing`: the log changed"
        );
    }
    let mut budget = 0u64;
    loop {
        let (fs, _, done) = truncate_with_power_cut(s, keep, budget)?;
        let wal = s.open(&fs).map_err(|e| {
            format!(
                "clause `a power loss during truncate_after never makes the log refuse to \
                 open`: after {budget} sync points: {e}"
            )
        })?;
        let got = read_all(&*wal, SeqNo(1))?;
        ensure!(
            got == old || got == new,
            "clause `a power loss during truncate_after leaves the old or the new log`: after \
             {budget} sync points the log holds {} batches (old {}, new {})",
            got.len(),
            old.len(),
            new.len()
        );
        ensure!(
            !done || got == new,
            "clause `truncate_after returns Ok only once the cut is durable`: it returned Ok \
             within {budget} sync points but the log holds {} batches after a power loss",
            got.len()
        );
        let history = wal.epoch_history();
        if got == new {
            ensure!(
                history.iter().all(|e| e.first_seq <= keep),
                "clause `truncate_after removes history entries that start after the cut`: \
                 after {budget} sync points the history is {history:?}, the log ends at {keep}"
            );
        }
        // The log continues densely, also after another power loss.
        let end = got.last().map_or(SeqNo::ZERO, WalBatch::last_seq);
        let first = wal.append(&payload(77), 1, Durability::Sync).ctx("append after the cut")?;
        ensure!(
            first == end.next(),
            "clause `after a truncation appends continue right after it`: after {budget} sync \
             points the next append got {first}, expected {}",
            end.next()
        );
        drop(wal);
        let again = s.open(&fs.crash())?;
        let after = read_all(&*again, SeqNo(1))?;
        ensure!(
            after.len() == got.len() + 1 && after[..got.len()] == got[..],
            "clause `a truncation finished at reopen stays finished`: after {budget} sync \
             points and a second power loss the log holds {} batches, expected {}",
            after.len(),
            got.len() + 1
        );
        if done {
            break;
        }
        budget += 1;
        ensure!(budget < 200, "truncate_after never finished within 200 sync points");
    }
    // A reader that already read past the cut is told, not fed the new batches.
    let fs = primary_log(s)?.0;
    let wal = s.open(&fs)?;
    let mut reader = wal.read_from(SeqNo(1)).ctx("read_from")?;
    while reader.next_batch().ctx("next_batch")?.is_some() {}
    wal.truncate_after(keep).ctx("truncate_after")?;
    wal.append(&payload(78), 1, Durability::Sync).ctx("append after the cut")?;
    match reader.next_batch() {
        Err(_) => {}
        Ok(b) => {
            return Err(format!(
                "clause `a reader that read past a truncation gets an error`: got {b:?}"
            ));
        }
    }
    Ok(())
}
