//! Running compaction tasks: validate what the policy picked, then merge (read the
//! inputs, drop what no reader can see, write the outputs), move (re-file tables one
//! level down) or drop (remove tables that change no read), and install the result.
//!
//! Every task is checked with the one [`validate_task`] twice: when it is picked, and
//! again against the version of that moment right before its manifest edit is written,
//! because tasks that finished in between may have changed the levels it writes into.
//! The resulting version must also keep every level below L0 sorted and disjoint. A
//! task failing either check is not committed: it is logged and counted in
//! `rejected_compactions`, and the files it wrote are deleted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::Shared;
use super::install::{commit, edit_for, open_handle, roll_manifest_if_big};
use super::iter::MergeIter;
use super::version::{TableHandle, Version};
use crate::compaction::{CompactionTask, TaskKind, validate_task};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::table::{FileNo, TableBuilder, TableIter, TableMeta};
use crate::types::{SeqNo, ValueKind};

/// A validated task whose tables are marked busy, with the version it was picked from.
pub(super) struct Picked {
    task: CompactionTask,
    version: Arc<Version>,
}

impl Picked {
    /// Why the policy picked it.
    pub(super) fn reason(&self) -> &str {
        &self.task.reason
    }
}

/// Asks the policy for a task and validates it; a valid task's tables become busy.
/// `None` when the policy has nothing to do or returned a task breaking its contract.
pub(super) fn pick(s: &Shared) -> Option<Picked> {
    let mut vs = s.versions.lock();
    let version = Arc::clone(&s.state.load().version);
    let view = version.view();
    let task = s.policy.pick(&view, &vs.busy)?;
    match validate_task(&view, &vs.busy, s.policy.levels(), &task) {
        Ok(()) => {
            vs.busy.extend(task.tables());
            Some(Picked { task, version })
        }
        Err(why) => {
            reject(s, &task, &why, "compaction policy broke its contract; task not run");
            None
        }
    }
}

/// How long a finished compaction waits for writers and point reads to let go of the
/// tables it made obsolete (they do within microseconds), so that it deletes them
/// itself before it counts as finished.
const RELEASE_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs a picked task, then releases its tables. Tables it made obsolete that someone
/// else still holds after [`RELEASE_GRACE`] (an iterator, a snapshot read) are left in
/// `released` for the caller to drop once it holds the only reference.
///
/// Deleting an obsolete table (unlink, unmap, close; on a file system mounted with
/// `discard`, the close waits for the device to discard its blocks — 4–7 ms per table
/// here) is paid by whichever thread drops the last reference. That was often a writer
/// that held the state from before the install, in the middle of its `write`: 12 tables
/// cost one write about 60 ms (`perf sched`, 2026-12-08). So this thread keeps them.
pub(super) fn run(
    s: &Arc<Shared>,
    picked: Picked,
    released: &mut Vec<Arc<TableHandle>>,
) -> Result<()> {
    let Picked { task, version } = picked;
    s.counters.compactions_running.fetch_add(1, Ordering::Relaxed);
    let result = run_task(s, &task, &version);
    // Only this task's own inputs: a table another compaction thread made obsolete is
    // that thread's to release (were both to keep it, each would wait for the other).
    let inputs: Vec<FileNo> = task.tables().collect();
    let mut obsolete: Vec<Arc<TableHandle>> = version
        .levels
        .iter()
        .flatten()
        .filter(|h| h.is_obsolete() && inputs.contains(&h.meta.file_no))
        .cloned()
        .collect();
    // IMPORTANT: release the inputs before the task counts as finished, so that the
    // obsolete tables are deleted by the time `wait_for_background` sees it idle
    // (unless a reader holds them).
    drop(version);
    let deadline = Instant::now() + RELEASE_GRACE;
    loop {
        obsolete.retain(|h| Arc::strong_count(h) > 1);
        if obsolete.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::yield_now();
    }
    released.append(&mut obsolete);
    s.counters.compactions_running.fetch_sub(1, Ordering::Relaxed);
    {
        let mut vs = s.versions.lock();
        for no in task.tables() {
            vs.busy.remove(&no);
        }
    }
    result
}

fn reject(s: &Shared, task: &CompactionTask, why: &str, what: &'static str) {
    s.counters.rejected_compactions.fetch_add(1, Ordering::Relaxed);
    tracing::error!(policy = s.policy.name(), %why, ?task, "{what}");
}

fn closing(s: &Shared) -> bool {
    s.signals.shutdown.load(Ordering::Acquire)
}

/// Output tables being written, cut at the target size on user-key boundaries.
struct Outputs<'a> {
    s: &'a Shared,
    target: u64,
    current: Option<Box<dyn TableBuilder>>,
    done: Vec<TableMeta>,
    written: Vec<FileNo>,
}

impl Outputs<'_> {
    fn add(
        &mut self,
        key: &[u8],
        seq: SeqNo,
        kind: ValueKind,
        value: &[u8],
        new_key: bool,
    ) -> Result<()> {
        if new_key && self.current.as_ref().is_some_and(|b| b.estimated_size() >= self.target) {
            self.finish_current()?;
        }
        let builder = match &mut self.current {
            Some(b) => b,
            None => {
                let no = self.s.alloc_file_no();
                self.written.push(no);
                let file = self.s.fs.open(&self.s.table_path(no), OpenMode::CreateNew)?;
                self.current.insert(self.s.format.builder(file, no)?)
            }
        };
        builder.add(key, seq, kind, value)
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some(b) = self.current.take() {
            self.done.push(b.finish()?);
        }
        Ok(())
    }

    /// Removes every file written, after a failure or a shutdown.
    fn abandon(&mut self) {
        self.current = None;
        for no in &self.written {
            let _ = self.s.fs.remove_file(&self.s.table_path(*no));
        }
    }
}

fn run_task(s: &Arc<Shared>, task: &CompactionTask, version: &Version) -> Result<()> {
    let mut inputs: Vec<(usize, Arc<TableHandle>)> = Vec::new();
    for no in task.tables() {
        let (level, handle) = version.find(no).ok_or_else(|| {
            Error::InvalidArgument(format!("compaction input {no} vanished from the version"))
        })?;
        inputs.push((level, Arc::clone(handle)));
    }
    match task.kind {
        TaskKind::Merge => merge(s, task, &inputs, version),
        TaskKind::Move => move_tables(s, task, &inputs),
        TaskKind::Drop => drop_tables(s, task, &inputs),
    }
}

/// A trivial move: the same tables, filed one level down by a manifest edit.
fn move_tables(
    s: &Shared,
    task: &CompactionTask,
    inputs: &[(usize, Arc<TableHandle>)],
) -> Result<()> {
    let moved: Vec<(usize, Arc<TableHandle>)> =
        inputs.iter().map(|(_, h)| (task.output_level, Arc::clone(h))).collect();
    if let Err(why) = install(s, task, inputs, moved)? {
        reject(s, task, &why, "move no longer valid at commit; not committed");
        return Ok(());
    }
    let bytes: u64 = inputs.iter().map(|(_, h)| h.meta.size_bytes).sum();
    s.counters.compactions.fetch_add(1, Ordering::Relaxed);
    s.counters.compaction_moves.fetch_add(inputs.len() as u64, Ordering::Relaxed);
    s.counters.compaction_moved_bytes.fetch_add(bytes, Ordering::Relaxed);
    tracing::debug!(reason = %task.reason, tables = inputs.len(), mb = bytes as f64 / 1e6, "tables moved");
    Ok(())
}

/// A drop: the engine reads each table first and refuses the drop if any entry is not a
/// tombstone (the metadata's count is not taken on trust), then removes the tables by a
/// manifest edit. Whether anything below could be uncovered is `validate_task`'s.
fn drop_tables(
    s: &Shared,
    task: &CompactionTask,
    inputs: &[(usize, Arc<TableHandle>)],
) -> Result<()> {
    let mut read = 0u64;
    for (_, h) in inputs {
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        for e in Arc::clone(&h.table).range(all, SeqNo::MAX) {
            let e = e?;
            if e.kind != ValueKind::Delete {
                let why = format!(
                    "live data: table {} holds a {:?} entry (key {}, {}) although its metadata counts {} tombstones of {} entries",
                    h.meta.file_no,
                    e.kind,
                    e.key.escape_ascii(),
                    e.seq,
                    h.meta.tombstones,
                    h.meta.entries
                );
                reject(s, task, &why, "drop refused: the table holds live data");
                return Ok(());
            }
        }
        read += h.meta.size_bytes;
    }
    if let Err(why) = install(s, task, inputs, Vec::new())? {
        reject(s, task, &why, "drop no longer valid at commit; not committed");
        return Ok(());
    }
    s.counters.compactions.fetch_add(1, Ordering::Relaxed);
    s.counters.compaction_drops.fetch_add(inputs.len() as u64, Ordering::Relaxed);
    s.counters.compaction_read_bytes.fetch_add(read, Ordering::Relaxed);
    tracing::debug!(reason = %task.reason, tables = inputs.len(), "tables dropped");
    Ok(())
}

/// A merge: k-way merge of the inputs into new tables of `output_level`.
fn merge(
    s: &Arc<Shared>,
    task: &CompactionTask,
    inputs: &[(usize, Arc<TableHandle>)],
    version: &Version,
) -> Result<()> {
    let started = Instant::now();
    // Newest sources first so that equal internal keys (impossible by construction)
    // would at least resolve deterministically.
    let sources: Vec<TableIter> = inputs
        .iter()
        .map(|(_, h)| {
            Arc::clone(&h.table)
                .range((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded), SeqNo::MAX)
        })
        .collect();
    let deeper: Vec<Vec<TableMeta>> = version
        .levels
        .iter()
        .skip(task.output_level + 1)
        .map(|l| l.iter().map(|t| t.meta.clone()).collect())
        .collect();
    let oldest_snapshot = s.snapshots.oldest(|| s.visible.current());

    let mut out = Outputs {
        s,
        target: task.target_file_size.max(1),
        current: None,
        done: Vec::new(),
        written: Vec::new(),
    };
    let mut last_key: Option<Bytes> = None;
    let mut kept_old_version = false;
    let mut n = 0u64;
    let merged = MergeIter::new(sources);
    for entry in merged {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                out.abandon();
                return Err(err);
            }
        };
        n += 1;
        if n.is_multiple_of(4096) && closing(s) {
            out.abandon();
            return Err(Error::Poisoned { reason: "the store is closing".into() });
        }
        let new_key = last_key.as_ref() != Some(&e.key);
        if new_key {
            last_key = Some(e.key.clone());
            kept_old_version = false;
        }
        if e.seq > oldest_snapshot {
            // A reader at a newer snapshot may need it.
        } else if kept_old_version {
            continue; // shadowed for every live reader
        } else {
            kept_old_version = true;
            if e.kind == ValueKind::Delete && !deeper_may_hold(&deeper, &e.key) {
                continue; // a tombstone with nothing left below it to hide
            }
        }
        if let Err(err) = out.add(&e.key, e.seq, e.kind, &e.value, new_key) {
            out.abandon();
            return Err(err);
        }
    }
    if let Err(err) = out.finish_current() {
        out.abandon();
        return Err(err);
    }
    if let Err(err) = s.fs.sync_dir(&s.dir) {
        out.abandon();
        return Err(err);
    }
    let mut handles = Vec::new();
    for meta in &out.done {
        match open_handle(s, meta.clone()) {
            Ok(h) => handles.push((task.output_level, h)),
            Err(err) => {
                out.abandon();
                return Err(err);
            }
        }
    }
    if let Err(why) = install(s, task, inputs, handles)? {
        out.abandon();
        reject(s, task, &why, "merge no longer valid at commit; outputs deleted");
        return Ok(());
    }
    let read: u64 = inputs.iter().map(|(_, h)| h.meta.size_bytes).sum();
    let written: u64 = out.done.iter().map(|m| m.size_bytes).sum();
    s.counters.compactions.fetch_add(1, Ordering::Relaxed);
    s.counters.compaction_read_bytes.fetch_add(read, Ordering::Relaxed);
    s.counters.compaction_written_bytes.fetch_add(written, Ordering::Relaxed);
    s.counters.compaction_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    tracing::debug!(
        reason = %task.reason,
        inputs = inputs.len(),
        outputs = out.done.len(),
        read_mb = read as f64 / 1e6,
        written_mb = written as f64 / 1e6,
        mb_per_s = if secs > 0.0 { read as f64 / 1e6 / secs } else { 0.0 },
        "compaction finished"
    );
    Ok(())
}

fn deeper_may_hold(deeper: &[Vec<TableMeta>], key: &[u8]) -> bool {
    deeper.iter().any(|level| {
        let i = level.partition_point(|t| &*t.largest_key < key);
        level.get(i).is_some_and(|t| t.may_hold(key))
    })
}

/// Commits a task: checks it again against the version of this moment (other tasks
/// may have installed since it was picked), builds the new version and checks its
/// levels, writes the manifest edit (the commit point) and publishes the version.
/// `Ok(Err(why))` when a check fails: nothing was written.
fn install(
    s: &Shared,
    task: &CompactionTask,
    inputs: &[(usize, Arc<TableHandle>)],
    outputs: Vec<(usize, Arc<TableHandle>)>,
) -> Result<std::result::Result<(), String>> {
    let mut vs = s.versions.lock();
    let current = Arc::clone(&s.state.load().version);
    let mut others = vs.busy.clone();
    for no in task.tables() {
        others.remove(&no);
    }
    if let Err(why) = validate_task(&current.view(), &others, s.policy.levels(), task) {
        return Ok(Err(why));
    }
    let removed: Vec<FileNo> = inputs.iter().map(|(_, h)| h.meta.file_no).collect();
    let edit = edit_for(s, &outputs, inputs);
    let next = current.apply(&removed, outputs);
    if let Err(why) = next.check_levels() {
        return Ok(Err(why));
    }
    commit(s, &mut vs, &edit, next, None)?;
    if task.kind != TaskKind::Move {
        for (_, h) in inputs {
            h.mark_obsolete();
        }
    }
    roll_manifest_if_big(s, &mut vs)?;
    tracing::trace!(task = %task.reason, "compaction installed");
    Ok(Ok(()))
}
