//! Opening a store: manifest → version → WAL tail replay → background threads.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use super::background;
use super::version::{TableHandle, Version};
use super::{
    Background, Counters, Db, DbOptions, ImmMem, LOCK_FILE, OpenReport, Shared, Signals, State,
    VersionSet,
};
use crate::batch::BatchIter;
use crate::compaction::CompactionPolicy;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, OpenMode};
use crate::manifest::{
    self, ManifestState, ManifestWriter, parse_manifest_file_name, parse_table_file_name,
};
use crate::memtable::{MemTable, MemTableFactory};
use crate::table::{FileNo, TableFormat};
use crate::types::SeqNo;
use crate::wal::{WalBatch, WalFactory};

pub(crate) struct Components {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) wal: Arc<dyn WalFactory>,
    pub(crate) memtables: Arc<dyn MemTableFactory>,
    pub(crate) format: Arc<dyn TableFormat>,
    pub(crate) policy: Arc<dyn CompactionPolicy>,
    pub(crate) options: DbOptions,
}

impl Db {
    pub(crate) fn open_with(c: Components) -> Result<Db> {
        let Components { dir, fs, wal: wal_factory, memtables, format, policy, options } = c;
        let started = Instant::now();
        fs.create_dir_all(&dir)?;
        let lock = fs.lock(&dir.join(LOCK_FILE))?;
        let mut report = OpenReport::default();
        let names = fs.list_dir(&dir)?;

        // Phase 1 — check, read only: the manifest, every table it lists, the WAL's
        // continuity from the flushed sequence. Nothing is written or deleted until all
        // of it passed, so a failed open leaves the directory as it found it.
        let levels = policy.levels().max(1);
        let mut state = match manifest::read_current(&*fs, &dir)? {
            Some(number) => {
                let read = manifest::read_manifest(&*fs, &dir, number)?;
                if let Some((offset, len)) = read.torn_tail {
                    tracing::warn!(
                        file = %read.path.display(), offset, len,
                        "dropped a torn last manifest record (a crash interrupted its append)"
                    );
                }
                report.manifest = Some(read.path.clone());
                report.manifest_torn_tail = read.torn_tail;
                read.state
            }
            None => {
                let tables = names.iter().filter(|n| parse_table_file_name(n).is_some()).count();
                if tables > 0 {
                    return Err(Error::corruption(
                        dir.join(manifest::CURRENT_FILE),
                        0,
                        format!(
                            "CURRENT is missing but the directory holds {tables} table files; \
                             refusing to treat it as a new store"
                        ),
                    ));
                }
                ManifestState::empty(levels)
            }
        };
        // The manifest's own next number, before the files on disk raise it: an unlisted
        // table at or above it is one the manifest never accounted for (see `delete_unlisted`).
        let manifest_next = state.next_file_no;
        match &state.table_format {
            Some(name) if name != format.name() => {
                return Err(Error::Config(format!(
                    "the store's tables were written by table format {name:?}, but this stack \
                     uses {:?}",
                    format.name()
                )));
            }
            _ => state.table_format = Some(format.name().to_owned()),
        }
        if let Some((level, t)) = state.live_tables().find(|(l, _)| *l >= levels) {
            return Err(Error::Config(format!(
                "table {} sits in L{level} but the compaction policy {:?} has only {levels} levels",
                t.file_no,
                policy.name()
            )));
        }
        state.levels.resize(levels, Default::default());

        // File numbers are never reused, not even those of files no manifest lists.
        let highest_on_disk = names
            .iter()
            .filter_map(|n| parse_table_file_name(n).or_else(|| parse_manifest_file_name(n)))
            .max()
            .unwrap_or(FileNo(0));
        let mut next = state.next_file_no.max(FileNo(highest_on_disk.0 + 1));

        let mut handles = Vec::new();
        for (level, meta) in state.live_tables() {
            let path = dir.join(meta.file_no.table_file_name());
            if !fs.exists(&path)? {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "table {} (L{level}) is listed in the manifest but its file is missing",
                        meta.file_no
                    ),
                ));
            }
            let table = format.open(fs.open(&path, OpenMode::ReadOnly)?, meta.file_no)?;
            let found = table.meta();
            if found.size_bytes != meta.size_bytes
                || found.entries != meta.entries
                || found.max_seq != meta.max_seq
            {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "table does not match the manifest: {} bytes / {} entries / max {} \
                         on disk, {} / {} / {} recorded",
                        found.size_bytes,
                        found.entries,
                        found.max_seq,
                        meta.size_bytes,
                        meta.entries,
                        meta.max_seq
                    ),
                ));
            }
            report.tables += 1;
            report.table_bytes += meta.size_bytes;
            handles.push((
                level,
                Arc::new(TableHandle::new(meta.clone(), table, Arc::clone(&fs), path)),
            ));
        }
        let version = Version::empty(levels).apply(&[], handles);
        report.flushed_seq = state.flushed_seq;
        report.tables_open_time = started.elapsed();

        // Opening the WAL is its own recovery (it may cut a torn tail, or create the
        // first segment of an empty log); continuity and replay only read.
        let replay_started = Instant::now();
        let recovered = wal_factory.open(Arc::clone(&fs), &dir).and_then(|wal| {
            let replayed =
                check_and_replay(&*wal, &*memtables, &dir, &state, &options, &mut report)?;
            Ok((wal, replayed))
        });
        let (wal, (active, immutable, last)) = match recovered {
            Ok(r) => r,
            Err(e) => {
                remove_created(&*fs, &dir, &names);
                return Err(e);
            }
        };
        report.replay_time = replay_started.elapsed();

        // Phase 2 — everything checked: write a fresh manifest (it drops any torn tail
        // and keeps the log short), then delete what it proves unreferenced.
        let number = next;
        next = FileNo(next.0 + 1);
        state.next_file_no = next;
        let writer = ManifestWriter::create(&*fs, &dir, number, &state)?;
        let (deleted, kept) = delete_unlisted(&*fs, &dir, &names, &state, manifest_next, number)?;
        report.deleted_orphans = deleted;
        report.kept_unlisted_tables = kept;
        if state.flushed_seq.0 > 0
            && let Err(e) = wal.checkpoint(state.flushed_seq)
        {
            tracing::warn!(error = %e, "could not delete checkpointed WAL segments");
        }
        tracing::info!(
            dir = %dir.display(),
            tables = report.tables,
            batches = report.replayed_batches,
            ops = report.replayed_ops,
            tables_ms = report.tables_open_time.as_millis() as u64,
            replay_ms = report.replay_time.as_millis() as u64,
            "store opened"
        );

        let rotations = immutable.len() as u64;
        let shared = Arc::new(Shared {
            dir,
            fs,
            wal,
            memtables,
            format,
            policy,
            state: ArcSwap::from_pointee(State { active, immutable, version: Arc::new(version) }),
            state_lock: Mutex::new(()),
            gate: RwLock::new(()),
            visible: super::Visibility::new(last),
            snapshots: Arc::default(),
            versions: Mutex::new(VersionSet { manifest: writer, state, busy: HashSet::new() }),
            next_file_no: AtomicU64::new(next.0),
            signals: Signals::default(),
            poison: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            counters: Counters { rotations: AtomicU64::new(rotations), ..Counters::default() },
            role: super::replica::RoleCell::new(options.replica_of.clone()),
            options,
            open_report: report,
            _lock: lock,
        });
        let threads = background::start(&shared)?;
        let bg = Arc::new(Background { shared: Arc::clone(&shared), threads: Mutex::new(threads) });
        Ok(Db { shared, _background: bg })
    }
}

type Replayed = (Arc<dyn MemTable>, Vec<ImmMem>, SeqNo);

/// Checks that the WAL continues the tables (it holds everything after the flushed
/// sequence) and replays that tail into memtables; writes nothing.
fn check_and_replay(
    wal: &dyn crate::wal::Wal,
    memtables: &dyn MemTableFactory,
    dir: &Path,
    state: &ManifestState,
    options: &DbOptions,
    report: &mut OpenReport,
) -> Result<Replayed> {
    report.wal = wal.recovery();
    if wal.last_seq() < state.flushed_seq {
        return Err(Error::corruption(
            dir,
            0,
            format!(
                "the WAL ends at {} but the tables hold everything up to {}: WAL files are \
                 missing",
                wal.last_seq(),
                state.flushed_seq
            ),
        ));
    }
    replay(wal, memtables, dir, state.flushed_seq, options, report).map_err(|e| match e {
        Error::SequenceUnavailable { requested, oldest } => Error::corruption(
            dir,
            0,
            format!(
                "the tables hold everything up to {} but the WAL starts at {oldest}, not at \
                 {requested}: WAL files are missing",
                state.flushed_seq
            ),
        ),
        e => e,
    })
}

/// After a failed open: removes the entries the attempt created (the WAL's first segment
/// of what it took for an empty log), so the directory is left as it was found. Only
/// names absent from `before` — listed after the LOCK was taken, so nobody else made
/// them — are touched.
fn remove_created(fs: &dyn FileSystem, dir: &Path, before: &[String]) {
    let Ok(now) = fs.list_dir(dir) else { return };
    let mut removed = false;
    for name in now.iter().filter(|n| !before.contains(n)) {
        let path = dir.join(name);
        match fs.remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) => tracing::warn!(
                file = %path.display(), error = %e,
                "a failed open could not remove a file it created"
            ),
        }
    }
    if removed && let Err(e) = fs.sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not sync the directory");
    }
}

fn replay(
    wal: &dyn crate::wal::Wal,
    memtables: &dyn MemTableFactory,
    dir: &Path,
    flushed: SeqNo,
    options: &DbOptions,
    report: &mut OpenReport,
) -> Result<Replayed> {
    let mut active = memtables.create();
    let mut immutable: Vec<ImmMem> = Vec::new();
    let mut reader = wal.read_from(flushed.next())?;
    let mut expected = flushed.next();
    while let Some(batch) = reader.next_batch()? {
        if batch.last_seq() < expected {
            continue; // already in tables (the segment starts before the flushed point)
        }
        if batch.first_seq != expected {
            return Err(Error::Corruption {
                file: dir.to_path_buf(),
                offset: 0,
                reason: format!(
                    "WAL replay expected sequence {expected} but the next batch starts at {}",
                    batch.first_seq
                ),
            });
        }
        apply(&*active, &batch, dir)?;
        expected = batch.last_seq().next();
        report.replayed_batches += 1;
        report.replayed_ops += u64::from(batch.count);
        report.replayed_bytes += batch.payload.len() as u64;
        if active.memory_bytes() >= options.memtable_size_bytes {
            let full = std::mem::replace(&mut active, memtables.create());
            immutable.insert(0, ImmMem { mem: full, last_seq: batch.last_seq() });
        }
    }
    let last = SeqNo(expected.0 - 1);
    if last != wal.last_seq() {
        return Err(Error::Corruption {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!(
                "WAL reports last sequence {} but replay ended at {last}",
                wal.last_seq()
            ),
        });
    }
    Ok((active, immutable, last))
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

/// Deletes tables and manifests the new manifest does not list (left behind by a crash
/// in a flush, a compaction or a manifest switch). Runs only after a successful open.
///
/// A table is deleted only when the manifest proves it unreferenced: its number is
/// below the next file number the manifest had recorded (`manifest_next`), so the
/// manifest handed that number out and no longer lists it. A table at or above it is
/// one the manifest never accounted for; it is kept and reported, never deleted on a
/// guess. Returns the deleted paths and the kept ones.
fn delete_unlisted(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
    state: &ManifestState,
    manifest_next: FileNo,
    live_manifest: FileNo,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let live: HashSet<FileNo> = state.live_tables().map(|(_, t)| t.file_no).collect();
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for name in names {
        let doomed = match (parse_table_file_name(name), parse_manifest_file_name(name)) {
            (Some(no), _) if live.contains(&no) => false,
            (Some(no), _) if no >= manifest_next => {
                let path = dir.join(name);
                tracing::warn!(
                    file = %path.display(), manifest_next = %manifest_next,
                    "kept a table the manifest does not list: its number is one the manifest \
                     never handed out"
                );
                kept.push(path);
                false
            }
            (Some(_), _) => true,
            (_, Some(no)) => no != live_manifest,
            // A `CURRENT.tmp` left by a crash was already replaced and renamed by
            // `write_current` when this open created its manifest: not ours to delete.
            _ => false,
        };
        if doomed {
            let path = dir.join(name);
            fs.remove_file(&path)?;
            tracing::info!(file = %path.display(), "deleted a file no manifest lists");
            deleted.push(path);
        }
    }
    if !deleted.is_empty() {
        fs.sync_dir(dir)?;
    }
    Ok((deleted, kept))
}
