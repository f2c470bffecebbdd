//! Running compaction tasks: validate what the policy picked, merge the inputs, drop
//! what no reader can see, write the outputs, install them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::background::{idle_wait, open_handle, roll_manifest_if_big, shutting_down};
use super::iter::MergeIter;
use super::version::{TableHandle, Version};
use super::{Shared, State};
use crate::compaction::{CompactionTask, validate_task};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::manifest::VersionEdit;
use crate::table::{FileNo, TableBuilder, TableIter, TableMeta};
use crate::types::{SeqNo, ValueKind};

pub(super) fn compaction_loop(s: &Arc<Shared>) {
    while !shutting_down(s) {
        if s.poisoned.load(Ordering::Acquire) {
            idle_wait(s);
            continue;
        }
        let picked = {
            let mut vs = s.versions.lock();
            let version = Arc::clone(&s.state.load().version);
            let view = version.view();
            match s.policy.pick(&view, &vs.busy) {
                None => None,
                Some(task) => match validate_task(&view, &vs.busy, s.policy.levels(), &task) {
                    Ok(()) => {
                        for i in &task.inputs {
                            vs.busy.extend(i.tables.iter().copied());
                        }
                        Some((task, version))
                    }
                    Err(why) => {
                        s.counters.rejected_compactions.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            policy = s.policy.name(), %why, ?task,
                            "compaction policy broke its contract; task not run"
                        );
                        None
                    }
                },
            }
        };
        let Some((task, version)) = picked else {
            idle_wait(s);
            continue;
        };
        s.counters.compactions_running.fetch_add(1, Ordering::Relaxed);
        let result = run_task(s, &task, &version);
        // IMPORTANT: release the inputs before the task counts as finished, so that the
        // obsolete tables are deleted by the time `wait_for_background` sees it idle.
        drop(version);
        s.counters.compactions_running.fetch_sub(1, Ordering::Relaxed);
        {
            let mut vs = s.versions.lock();
            for i in &task.inputs {
                for no in &i.tables {
                    vs.busy.remove(no);
                }
            }
        }
        match result {
            Ok(()) => s.notify_progress(),
            Err(Error::Poisoned { .. }) if shutting_down(s) => {}
            Err(e) => s.poison(format!("compaction ({}) failed: {e}", task.reason)),
        }
    }
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
    let started = Instant::now();
    let mut inputs: Vec<(usize, Arc<TableHandle>)> = Vec::new();
    for input in &task.inputs {
        for no in &input.tables {
            let (level, handle) = version.find(*no).ok_or_else(|| {
                Error::InvalidArgument(format!("compaction input {no} vanished from the version"))
            })?;
            inputs.push((level, Arc::clone(handle)));
        }
    }
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
        if n.is_multiple_of(4096) && shutting_down(s) {
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
    install(s, task, &inputs, handles)?;
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

fn install(
    s: &Arc<Shared>,
    task: &CompactionTask,
    inputs: &[(usize, Arc<TableHandle>)],
    outputs: Vec<(usize, Arc<TableHandle>)>,
) -> Result<()> {
    let mut vs = s.versions.lock();
    let edit = VersionEdit {
        added: outputs.iter().map(|(l, h)| (*l, h.meta.clone())).collect(),
        removed: inputs.iter().map(|(l, h)| (*l, h.meta.file_no)).collect(),
        next_file_no: Some(FileNo(s.next_file_no.load(Ordering::SeqCst))),
        ..VersionEdit::default()
    };
    vs.manifest.append(&edit)?;
    vs.state.apply(&edit, &s.dir, 0)?;
    let removed: Vec<FileNo> = inputs.iter().map(|(_, h)| h.meta.file_no).collect();
    {
        let _g = s.state_lock.lock();
        let cur = s.state.load_full();
        s.state.store(Arc::new(State {
            active: Arc::clone(&cur.active),
            immutable: cur.immutable.clone(),
            version: Arc::new(cur.version.apply(&removed, outputs)),
        }));
    }
    for (_, h) in inputs {
        h.mark_obsolete();
    }
    roll_manifest_if_big(s, &mut vs)?;
    tracing::trace!(task = %task.reason, "compaction installed");
    Ok(())
}
