//! The background threads: flush, compaction and periodic checkpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::version::TableHandle;
use super::{ImmMem, Shared, State};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::manifest::{ManifestWriter, VersionEdit, manifest_file_name};
use crate::table::{FileNo, TableMeta};
use crate::types::SeqNo;

/// How long an idle background thread sleeps before looking for work again (it is
/// woken earlier by rotations and finished tasks).
const IDLE_WAIT: Duration = Duration::from_millis(100);

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
        threads.push(spawn(
            format!("strata-compact-{i}"),
            Box::new(move || super::compact::compaction_loop(&s)),
        )?);
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
            Ok(()) => s.notify_progress(),
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
    let edit = VersionEdit {
        added: added.iter().map(|(l, h)| (*l, h.meta.clone())).collect(),
        flushed_seq: Some(imm.last_seq),
        next_file_no: Some(FileNo(s.next_file_no.load(Ordering::SeqCst))),
        ..VersionEdit::default()
    };
    vs.manifest.append(&edit)?;
    vs.state.apply(&edit, &s.dir, 0)?;
    {
        let _g = s.state_lock.lock();
        let cur = s.state.load_full();
        s.state.store(Arc::new(State {
            active: Arc::clone(&cur.active),
            immutable: cur
                .immutable
                .iter()
                .filter(|m| !std::ptr::addr_eq(Arc::as_ptr(&m.mem), Arc::as_ptr(&imm.mem)))
                .cloned()
                .collect(),
            version: Arc::new(cur.version.apply(&[], added)),
        }));
    }
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

/// Opens a freshly written table and checks it reads back as what the builder said.
pub(super) fn open_handle(s: &Shared, meta: TableMeta) -> Result<Arc<TableHandle>> {
    let path = s.table_path(meta.file_no);
    let table = s.format.open(s.fs.open(&path, OpenMode::ReadOnly)?, meta.file_no)?;
    if table.meta().entries != meta.entries || table.meta().size_bytes != meta.size_bytes {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "table reads back as {} entries / {} bytes but was written as {} / {}",
                table.meta().entries,
                table.meta().size_bytes,
                meta.entries,
                meta.size_bytes
            ),
        ));
    }
    Ok(Arc::new(TableHandle::new(meta, table, Arc::clone(&s.fs), path)))
}

/// Replaces a manifest that grew past its limit with one holding a single snapshot edit.
pub(super) fn roll_manifest_if_big(s: &Shared, vs: &mut super::VersionSet) -> Result<()> {
    if vs.manifest.len() < s.options.max_manifest_bytes {
        return Ok(());
    }
    let old = vs.manifest.number();
    let number = s.alloc_file_no();
    vs.state.next_file_no = FileNo(s.next_file_no.load(Ordering::SeqCst));
    vs.manifest = ManifestWriter::create(&*s.fs, &s.dir, number, &vs.state)?;
    let old_path = s.dir.join(manifest_file_name(old));
    if let Err(e) = s.fs.remove_file(&old_path) {
        tracing::warn!(error = %e, "could not delete the previous manifest");
    }
    tracing::info!(manifest = %number, "manifest rolled over");
    Ok(())
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
