//! The background threads: flush, compaction and periodic checkpoints.
//!
//! The threads' loops live here; what one compaction task does lives in
//! [`super::compact`], and committing a change of the table set in [`super::install`].
//! Both are used from here and use nothing from here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::install::{commit, edit_for, open_handle, roll_manifest_if_big};
use super::{ImmMem, Shared, compact};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::types::SeqNo;

/// How long an idle background thread sleeps before looking for work again (it is
/// woken earlier by rotations and finished tasks).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long the flush thread waits for readers of a flushed memtable to let go of it,
/// so that it frees the memtable itself (see [`release_here`]).
const RELEASE_WAIT: Duration = Duration::from_millis(200);

pub(super) fn start(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| Error::io("spawn background thread", &shared.dir, e))
    };
    let s = Arc::clone(shared);
    threads.push(spawn("strata-flush".into(), Box::new(move || flush_loop(&s)))?);
    for i in 0..shared.options.compaction_threads {
        let s = Arc::clone(shared);
        threads.push(spawn(format!("strata-compact-{i}"), Box::new(move || compaction_loop(&s)))?);
    }
    if shared.options.periodic_checkpoint.is_some() {
        let s = Arc::clone(shared);
        threads.push(spawn("strata-checkpoint".into(), Box::new(move || checkpoint_loop(&s)))?);
    }
    Ok(threads)
}

pub(super) fn shutting_down(s: &Shared) -> bool {
    s.signals.shutdown.load(Ordering::Acquire)
}

pub(super) fn idle_wait(s: &Shared) {
    let mut g = s.signals.lock.lock();
    if !shutting_down(s) {
        s.signals.work.wait_for(&mut g, IDLE_WAIT);
    }
}

fn flush_loop(s: &Arc<Shared>) {
    while !shutting_down(s) {
        let oldest = s.state.load().immutable.last().cloned();
        let Some(imm) = oldest else {
            idle_wait(s);
            continue;
        };
        if s.poisoned.load(Ordering::Acquire) {
            idle_wait(s);
            continue;
        }
        match flush_one(s, &imm) {
            Ok(()) => {
                s.notify_progress();
                release_here(imm.mem);
            }
            Err(e) => s.poison(format!("flush of a memtable failed: {e}")),
        }
    }
}

/// Frees a flushed memtable on this (the flush) thread. Freeing one of 128 MiB —
/// hundreds of thousands of skiplist nodes — takes about a hundred milliseconds, and
/// whichever thread drops the last reference pays it: without this, often a writer
/// that still held the state from before the flush, in the middle of its `write`. So
/// the flush thread keeps its reference until it is the only one (writers and point
/// reads let go within microseconds), waiting at most [`RELEASE_WAIT`]: a long-lived
/// iterator that still reads the memtable frees it itself when it is dropped.
fn release_here(mem: Arc<dyn crate::MemTable>) {
    let deadline = Instant::now() + RELEASE_WAIT;
    while Arc::strong_count(&mem) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    drop(mem);
}

/// Writes one immutable memtable as an L0 table, records it, drops the memtable and
/// checkpoints the WAL — in that order, so a crash at any point loses nothing.
fn flush_one(s: &Arc<Shared>, imm: &ImmMem) -> Result<()> {
    // Writers that chose this memtable before its rotation may still be inserting.
    if s.visible.wait_visible(imm.last_seq.0).is_err() {
        return Err(s.poisoned_error());
    }
    // The WAL must never end before the tables do: a power loss that dropped a
    // Buffered tail the table already holds would let new writes reuse its sequences.
    s.wal.sync()?;
    let started = Instant::now();
    let mut added = Vec::new();
    if !imm.mem.is_empty() {
        let no = s.alloc_file_no();
        let path = s.table_path(no);
        let file = s.fs.open(&path, OpenMode::CreateNew)?;
        let mut builder = s.format.builder(file, no)?;
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        for e in Arc::clone(&imm.mem).range(all, SeqNo::MAX) {
            builder.add(&e.key, e.seq, e.kind, &e.value)?;
        }
        let meta = builder.finish()?;
        s.fs.sync_dir(&s.dir)?;
        let handle = open_handle(s, meta)?;
        s.counters.flush_bytes.fetch_add(handle.meta.size_bytes, Ordering::Relaxed);
        added.push((0, handle));
    }
    let mut vs = s.versions.lock();
    let mut edit = edit_for(s, &added, &[]);
    edit.flushed_seq = Some(imm.last_seq);
    let version = s.state.load().version.apply(&[], added);
    commit(s, &mut vs, &edit, version, Some(imm))?;
    // The WAL checkpoint only frees space: a failure costs disk, not data.
    if let Err(e) = s.wal.checkpoint(imm.last_seq) {
        tracing::warn!(error = %e, "could not delete checkpointed WAL segments");
    }
    roll_manifest_if_big(s, &mut vs)?;
    drop(vs);
    s.counters.flushes.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(
        upto = %imm.last_seq,
        entries = imm.mem.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "memtable flushed to L0"
    );
    Ok(())
}

fn compaction_loop(s: &Arc<Shared>) {
    while !shutting_down(s) {
        if s.poisoned.load(Ordering::Acquire) {
            idle_wait(s);
            continue;
        }
        let Some(picked) = compact::pick(s) else {
            idle_wait(s);
            continue;
        };
        let reason = picked.reason().to_owned();
        match compact::run(s, picked) {
            Ok(()) => s.notify_progress(),
            Err(Error::Poisoned { .. }) if shutting_down(s) => {}
            Err(e) => s.poison(format!("compaction ({reason}) failed: {e}")),
        }
    }
}

fn checkpoint_loop(s: &Arc<Shared>) {
    let Some(cfg) = s.options.periodic_checkpoint.clone() else { return };
    let mut last = Instant::now();
    while !shutting_down(s) {
        let waited = last.elapsed();
        if waited < cfg.interval {
            let mut g = s.signals.lock.lock();
            if !shutting_down(s) {
                s.signals.work.wait_for(&mut g, (cfg.interval - waited).min(IDLE_WAIT));
            }
            continue;
        }
        last = Instant::now();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let target = cfg.dir.join(format!("{millis:016}"));
        let tmp = cfg.dir.join(super::checkpoint::PERIODIC_TMP);
        match super::checkpoint::checkpoint_into(s, &target, &tmp) {
            Ok(()) => {
                tracing::info!(dir = %target.display(), "periodic checkpoint written");
                // Only a complete checkpoint counts toward `keep`: a failed one left
                // nothing under a checkpoint's name, so it cannot push a good one out.
                super::checkpoint::prune(s, &cfg.dir, cfg.keep);
                s.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                s.counters.failed_checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "periodic checkpoint failed");
            }
        }
        s.notify_progress();
    }
}
