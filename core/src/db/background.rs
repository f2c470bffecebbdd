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
/// How often the flush and compaction threads look again at flushed memtables and
/// obsolete tables that readers still hold (see [`flush_loop`], [`compaction_loop`]).
const RELEASE_POLL: Duration = Duration::from_millis(5);

pub(super) fn start(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let nice = shared.options.background_nice;
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                lower_priority(nice);
                f();
            })
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

/// Raises the calling thread's nice value by `by` (see `DbOptions::background_nice`).
/// A failure only costs the priority: it is logged.
#[cfg(target_os = "linux")]
fn lower_priority(by: i32) {
    if by == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    let result = rustix::process::getpriority_process(Some(tid))
        .and_then(|now| rustix::process::setpriority_process(Some(tid), (now + by).min(19)));
    if let Err(e) = result {
        tracing::warn!(error = %e, by, "could not lower a background thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_by: i32) {}

pub(super) fn shutting_down(s: &Shared) -> bool {
    s.signals.shutdown.load(Ordering::Acquire)
}

fn idle_wait_for(s: &Shared, limit: Duration) {
    let mut g = s.signals.lock.lock();
    if !shutting_down(s) {
        s.signals.work.wait_for(&mut g, limit);
    }
}

/// Flushes immutable memtables, oldest first.
///
/// A flushed memtable is freed on this thread. Freeing one of 128 MiB — hundreds of
/// thousands of skiplist nodes — takes on the order of a hundred milliseconds, and
/// whichever thread drops the last reference pays it: otherwise often a writer that
/// still held the state from before the flush, in the middle of its `write`. So this
/// thread keeps each flushed memtable in `released` until it holds the only reference
/// (writers and point reads let go within microseconds, iterators when dropped),
/// looking again every [`RELEASE_POLL`] meanwhile.
fn flush_loop(s: &Arc<Shared>) {
    let mut released: Vec<Arc<dyn crate::MemTable>> = Vec::new();
    while !shutting_down(s) {
        released.retain(|m| Arc::strong_count(m) > 1);
        let wait = if released.is_empty() { IDLE_WAIT } else { RELEASE_POLL };
        let oldest = s.state.load().immutable.last().cloned();
        let Some(imm) = oldest else {
            idle_wait_for(s, wait);
            continue;
        };
        if s.poisoned.load(Ordering::Acquire) {
            idle_wait_for(s, wait);
            continue;
        }
        match flush_one(s, &imm) {
            Ok(()) => {
                s.notify_progress();
                released.push(imm.mem);
            }
            Err(e) => s.poison(format!("flush of a memtable failed: {e}")),
        }
    }
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

/// Runs compactions. Obsolete tables a reader still held when their compaction
/// finished are deleted on this thread too, once it holds the only reference (see
/// [`compact::run`]), looking again every [`RELEASE_POLL`] meanwhile.
fn compaction_loop(s: &Arc<Shared>) {
    let mut released = Vec::new();
    while !shutting_down(s) {
        released.retain(|h| Arc::strong_count(h) > 1);
        let wait = if released.is_empty() { IDLE_WAIT } else { RELEASE_POLL };
        if s.poisoned.load(Ordering::Acquire) {
            idle_wait_for(s, wait);
            continue;
        }
        let Some(picked) = compact::pick(s) else {
            idle_wait_for(s, wait);
            continue;
        };
        let reason = picked.reason().to_owned();
        match compact::run(s, picked, &mut released) {
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
