//! Durable raft state in the node's raft directory, through Strata's `FileSystem` seam.
//!
//! | file | what | how it is written |
//! |---|---|---|
//! | `raft_log` | the raft entries ([format](log_format)) | appended, fsynced before openraft is told |
//! | `raft_meta` | vote, committed id, purged id ([`meta`]) | replaced atomically before the call returns |
//! | `raft_snapshot` | the register at a log id ([`state_machine`]) | replaced atomically |
//! | `LOCK` | one process per directory | held while the node runs |
//!
//! The directory is the authority's own, separate from the data WAL.

pub(crate) mod blob;
pub(crate) mod log_format;
pub(crate) mod log_store;
pub(crate) mod meta;
pub(crate) mod state_machine;

use std::path::Path;
use std::sync::Arc;

use strata_core::fs::{FileLock, FileSystem, OpenMode, read_all};
use strata_core::{Error, Result};

use log_store::{LOG_FILE, LogFile, LogStore};
use meta::{META_FILE, Meta};
use state_machine::StateMachine;

/// Name of the lock file inside the raft directory.
pub const LOCK_FILE: &str = "LOCK";

/// The opened storage of one node.
pub(crate) struct Opened {
    pub lock: Box<dyn FileLock>,
    pub log: LogStore,
    pub state_machine: StateMachine,
}

/// True when `dir` holds the raft state of a node that took part in a group (a saved
/// vote or log ids, or a log without metadata): what `create` refuses and `open` needs.
/// A missing directory, or one a node was started in but never heard of a group, holds
/// none.
pub(crate) fn holds_state(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    if !fs.exists(dir)? {
        return Ok(false);
    }
    Ok(match meta::load(fs, dir)? {
        Some(meta) => meta != Meta::default(),
        None => fs.exists(&dir.join(LOG_FILE))?,
    })
}

/// Opens (creating it when empty) the raft directory `dir`.
///
/// Everything is checked before anything is changed: a failed open leaves the directory
/// as it found it. The only repair is cutting a torn tail off the log, done last.
pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Opened> {
    fs.create_dir_all(dir)?;
    let lock = fs.lock(&dir.join(LOCK_FILE))?;
    let log_path = dir.join(LOG_FILE);
    let has_log = fs.exists(&log_path)?;
    let meta = meta::load(&*fs, dir)?;
    let meta = match (has_log, meta) {
        (true, Some(meta)) => meta,
        (false, None) => {
            // A new node: the metadata first, then the log, so a crash in between leaves
            // a directory that is still recognisably new (metadata without entries is
            // created again below).
            let meta = Meta::default();
            meta::store(&*fs, dir, &meta)?;
            LogFile::create(&*fs, dir)?;
            meta
        }
        (false, Some(meta)) if meta == Meta::default() => {
            LogFile::create(&*fs, dir)?;
            meta
        }
        (false, Some(_)) => {
            return Err(Error::corruption(
                &log_path,
                0,
                format!(
                    "the raft log is missing but {META_FILE} holds a vote or log ids; the node's raft state is incomplete"
                ),
            ));
        }
        (true, None) => {
            return Err(Error::corruption(
                dir.join(META_FILE),
                0,
                "the raft metadata (vote, committed id) is missing but the raft log exists; \
                 a node that forgot its vote could vote twice, so it refuses to start",
            ));
        }
    };
    let snapshot = state_machine::load_snapshot(&*fs, dir)?;
    if let Some(purged) = meta.purged {
        let covered = snapshot.as_ref().and_then(|(s, _)| s.meta.last_log_id);
        if covered < Some(purged) {
            return Err(Error::corruption(
                dir.join(state_machine::SNAPSHOT_FILE),
                0,
                format!(
                    "raft entries up to index {} were purged but no snapshot covers them \
                     (the snapshot reaches {:?})",
                    purged.index,
                    covered.map(|c| c.index)
                ),
            ));
        }
    }
    let bytes = read_all(&*fs.open(&log_path, OpenMode::ReadOnly)?)?;
    let scan = log_format::scan(&bytes, &log_path)?;
    let purged_next = meta.purged.map_or(0, |p| p.index + 1);
    if let Some(first) = scan.records.first()
        && first.entry.log_id.index > purged_next
    {
        return Err(Error::corruption(
            &log_path,
            first.offset,
            format!(
                "the raft log starts at entry {} but entries from {purged_next} are neither \
                 purged nor in it",
                first.entry.log_id.index
            ),
        ));
    }
    if let Some(committed) = meta.committed {
        let last_logged = scan.records.last().map(|r| r.entry.log_id.index);
        let last_snapshot =
            snapshot.as_ref().and_then(|(s, _)| s.meta.last_log_id).map(|l| l.index);
        if Some(committed.index) > last_logged.max(last_snapshot) {
            return Err(Error::corruption(
                &log_path,
                scan.valid_len,
                format!(
                    "entry {} is recorded as committed but the raft log ends at {last_logged:?} \
                     and the snapshot at {last_snapshot:?}: committed entries are missing",
                    committed.index
                ),
            ));
        }
    }
    let log = LogFile::open(fs.clone(), dir.to_path_buf(), scan.records, scan.valid_len, meta)?;
    let state_machine = StateMachine::new(fs, dir.to_path_buf(), snapshot);
    Ok(Opened { lock, log: LogStore::new(log), state_machine })
}
