//! The raft log: openraft's [`RaftLogStorage`] over the file `raft_log` (entries) and the
//! file `raft_meta` (vote, committed, purged), both through the `FileSystem` seam.
//!
//! Every change is on stable storage before openraft hears of it: appends are written
//! and fsynced before the flush callback fires, votes and commit/purge pointers are
//! replaced atomically (temporary file, fsync, rename, directory fsync) before the call
//! returns. A failed write or fsync poisons the store: every later call fails (and
//! openraft stops the node) rather than trusting pages the kernel may have dropped.
//!
//! Entries are also kept in memory (the register's log is short: it is snapshotted and
//! purged), so reads never touch the file.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError, Vote,
};
use parking_lot::Mutex;
use strata_core::fs::{File, FileSystem, OpenMode};
use strata_core::{Error, Result};

use super::blob::replace_file;
use super::log_format::{Record, encode_header, encode_record};
use super::meta::{self, Meta};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

/// Name of the log file inside the raft directory.
pub const LOG_FILE: &str = "raft_log";

/// Purged records stay in the file until they are at least this many bytes and at least
/// half of it; then the file is rewritten without them.
const REWRITE_DEAD_BYTES: u64 = 64 * 1024;

/// The open log file and the durable pointers, shared by the store and its readers.
#[derive(Debug)]
pub(crate) struct LogFile {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    path: PathBuf,
    file: Arc<dyn File>,
    /// Where the next record is written.
    end: u64,
    /// Live (unpurged) entries and the offset of each one's record.
    entries: BTreeMap<u64, (Entry, u64)>,
    meta: Meta,
    /// Bytes of purged records still in the file.
    dead_bytes: u64,
    /// Set by the first failed write or fsync; every later change is refused.
    poisoned: Option<String>,
}

impl LogFile {
    /// Creates an empty log file in `dir` (atomically: temporary file, fsync, rename).
    pub(crate) fn create(fs: &dyn FileSystem, dir: &std::path::Path) -> Result<()> {
        replace_file(fs, dir, LOG_FILE, &encode_header())
    }

    /// Opens the log after [`scan`](super::log_format::scan) checked it: `records` are the intact
    /// records, `valid_len` where they end (a longer file has a torn tail, which is cut
    /// here, and must be the last step of opening).
    pub(crate) fn open(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        records: Vec<Record>,
        valid_len: u64,
        meta: Meta,
    ) -> Result<Self> {
        let path = dir.join(LOG_FILE);
        let file = fs.open(&path, OpenMode::ReadWrite)?;
        let len = file.len()?;
        if valid_len < len {
            tracing::warn!(
                file = %path.display(),
                offset = valid_len,
                cut_bytes = len - valid_len,
                "raft log ends in a torn record (an append that never completed); cutting it off"
            );
            file.set_len(valid_len)?;
            file.sync_data()?;
        }
        let purged_next = meta.purged.map_or(0, |p| p.index + 1);
        let mut entries = BTreeMap::new();
        let mut dead_bytes = 0;
        let ends: Vec<u64> = records.iter().map(|r| r.offset).skip(1).chain([valid_len]).collect();
        for (r, end) in records.into_iter().zip(ends) {
            if r.entry.log_id.index < purged_next {
                dead_bytes += end - r.offset;
            } else {
                entries.insert(r.entry.log_id.index, (r.entry, r.offset));
            }
        }
        Ok(Self { fs, dir, path, file, end: valid_len, entries, meta, dead_bytes, poisoned: None })
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(Error::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Runs a change; a failure poisons the log.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.check_poisoned()?;
        f(self).inspect_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "raft log write failed; refusing further changes");
            self.poisoned = Some(format!("raft log {}: {e}", self.path.display()));
        })
    }

    /// The index the next appended entry must have.
    fn next_index(&self) -> u64 {
        let after_purged = self.meta.purged.map_or(0, |p| p.index + 1);
        let after_last = self.entries.last_key_value().map_or(0, |(i, _)| i + 1);
        after_purged.max(after_last)
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries.last_key_value().map(|(_, (e, _))| e.log_id).or(self.meta.purged)
    }

    fn store_meta(&mut self, meta: Meta) -> Result<()> {
        self.guarded(|s| {
            meta::store(&*s.fs, &s.dir, &meta)?;
            s.meta = meta;
            Ok(())
        })
    }

    /// Writes and fsyncs `entries` at the end of the log.
    fn append(&mut self, entries: Vec<Entry>) -> Result<()> {
        self.guarded(|s| {
            // IMPORTANT: with no live entry left (everything purged, e.g. after a snapshot
            // was installed past the log's end) the next entry follows the purged id, not
            // the stale records still in the file: drop them first, or the reopened log
            // would show a gap.
            if s.entries.is_empty() && s.dead_bytes > 0 {
                s.rewrite()?;
            }
            let mut buf = Vec::new();
            let mut staged = Vec::with_capacity(entries.len());
            for (expect, e) in (s.next_index()..).zip(entries) {
                if e.log_id.index != expect {
                    return Err(Error::InvalidArgument(format!(
                        "raft entry {} appended where entry {expect} belongs: the log would have a gap",
                        e.log_id.index
                    )));
                }
                let offset = s.end + buf.len() as u64;
                encode_record(&e, &mut buf)?;
                staged.push((e, offset));
            }
            s.file.write_all_at(&buf, s.end)?;
            s.file.sync_data()?;
            s.end += buf.len() as u64;
            for (e, offset) in staged {
                s.entries.insert(e.log_id.index, (e, offset));
            }
            Ok(())
        })
    }

    /// Removes the entries from `index` on (a conflicting suffix) and makes it durable.
    fn truncate(&mut self, index: u64) -> Result<()> {
        self.guarded(|s| {
            let Some(offset) = s.entries.get(&index).map(|(_, o)| *o) else {
                return Ok(());
            };
            s.file.set_len(offset)?;
            s.file.sync_data()?;
            s.end = offset;
            s.entries.split_off(&index);
            Ok(())
        })
    }

    /// Records that entries up to `log_id` are purged, then drops them.
    fn purge(&mut self, log_id: LogId) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.purged = Some(log_id);
        self.store_meta(meta)?;
        self.guarded(|s| {
            let keep = s.entries.split_off(&(log_id.index + 1));
            let first_kept = keep.first_key_value().map_or(s.end, |(_, (_, o))| *o);
            let first_dropped = s.entries.first_key_value().map(|(_, (_, o))| *o);
            if let Some(from) = first_dropped {
                s.dead_bytes += first_kept - from;
            }
            s.entries = keep;
            if s.dead_bytes >= REWRITE_DEAD_BYTES && s.dead_bytes * 2 >= s.end {
                s.rewrite()?;
            }
            Ok(())
        })
    }

    /// Replaces the file with one holding only the live entries.
    fn rewrite(&mut self) -> Result<()> {
        let mut buf = encode_header().to_vec();
        let mut offsets = Vec::with_capacity(self.entries.len());
        for (e, _) in self.entries.values() {
            offsets.push(buf.len() as u64);
            encode_record(e, &mut buf)?;
        }
        replace_file(&*self.fs, &self.dir, LOG_FILE, &buf)?;
        self.file = self.fs.open(&self.path, OpenMode::ReadWrite)?;
        for ((_, o), new) in self.entries.values_mut().zip(offsets) {
            *o = new;
        }
        self.end = buf.len() as u64;
        self.dead_bytes = 0;
        tracing::debug!(file = %self.path.display(), bytes = self.end, "raft log rewritten without purged entries");
        Ok(())
    }
}

/// Converts a Strata error into openraft's storage error.
fn sio(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: &Error) -> StorageError {
    StorageError::IO { source: StorageIOError::new(subject, verb, AnyError::new(e)) }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(sio(subject, verb, &e)),
        Err(join) => Err(StorageError::IO {
            source: StorageIOError::new(subject, verb, AnyError::new(&join)),
        }),
    }
}

/// openraft's handle on the log (and, cloned, its reader).
#[derive(Clone, Debug)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<LogFile>>,
}

impl LogStore {
    pub(crate) fn new(log: LogFile) -> Self {
        Self { inner: Arc::new(Mutex::new(log)) }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let log = self.inner.lock();
        Ok(log.entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = self.inner.lock();
        Ok(LogState { last_purged_log_id: log.meta.purged, last_log_id: log.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        let vote = *vote;
        blocking(ErrorSubject::Vote, ErrorVerb::Write, move || {
            let mut log = inner.lock();
            let mut meta = log.meta.clone();
            meta.vote = Some(vote);
            log.store_meta(meta)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.lock().meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Store, ErrorVerb::Write, move || {
            let mut log = inner.lock();
            if log.meta.committed >= committed {
                return Ok(());
            }
            let mut meta = log.meta.clone();
            meta.committed = committed;
            log.store_meta(meta)
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let inner = self.inner.clone();
        let res =
            blocking(ErrorSubject::Logs, ErrorVerb::Write, move || inner.lock().append(entries))
                .await;
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || inner.lock().truncate(log_id.index))
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || inner.lock().purge(log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{SnapshotMeta, StoredMembership};
    use strata_core::fs::OsFileSystem;

    use super::*;
    use crate::storage::log_format::tests::entry;
    use crate::storage::open;
    use crate::storage::state_machine::{StoredSnapshot, store_snapshot};

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.inner.lock().entries.keys().copied().collect()
    }

    #[test]
    fn appends_truncates_and_purges_survive_a_reopen_and_the_file_is_rewritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fs = OsFileSystem::shared();
        let dir = tmp.path().join("raft");
        {
            let opened = open(fs.clone(), &dir).expect("a new directory opens");
            let mut log = opened.log.inner.lock();
            log.append((0..40).map(|i| entry(i, 4096)).collect()).expect("append");
            assert!(log.append(vec![entry(41, 1)]).is_err(), "a gap is refused");
        }
        // The refused append poisoned nothing on disk; reopen and go on.
        let opened = open(fs.clone(), &dir).expect("reopen");
        assert_eq!(indexes(&opened.log), (0..40).collect::<Vec<_>>());
        {
            let mut log = opened.log.inner.lock();
            log.truncate(35).expect("truncate a conflicting suffix");
            log.append(vec![entry(35, 10)]).expect("append after truncate");
            let before = log.end;
            // Purged entries need a snapshot that covers them before the log can reopen.
            let purged = entry(30, 0).log_id;
            let snap = StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(purged),
                    last_membership: StoredMembership::default(),
                    snapshot_id: "t".into(),
                },
                data: serde_json::to_vec(&crate::types::Versioned::default()).expect("encodes"),
            };
            store_snapshot(&*fs, &dir, &snap).expect("snapshot");
            log.purge(purged).expect("purge");
            assert!(log.end < before, "purging most of the file rewrites it");
            let mut meta = log.meta.clone();
            meta.committed = Some(entry(35, 0).log_id);
            log.store_meta(meta).expect("save committed");
        }
        drop(opened);
        let again = open(fs, &dir).expect("reopen after the rewrite");
        assert_eq!(indexes(&again.log), (31..=35).collect::<Vec<_>>());
        let log = again.log.inner.lock();
        assert_eq!(log.meta.purged.map(|p| p.index), Some(30));
        assert_eq!(log.meta.committed.map(|p| p.index), Some(35));
        assert_eq!(log.entries.get(&35).map(|(e, _)| e.clone()), Some(entry(35, 10)));
        assert_eq!(log.next_index(), 36);
    }
}
