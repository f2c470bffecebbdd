//! The register's state machine and its snapshot file `raft_snapshot`.
//!
//! The state is one [`Versioned`] value, the last applied log id and membership, and this
//! node's monotonic time of the last applied change. It lives in memory; what makes it
//! durable is the snapshot (a [`blob`](super::blob) with magic `STRATRSN` whose body is
//! the JSON of [`StoredSnapshot`], replaced atomically) plus the raft log: on start
//! openraft re-applies the log from the snapshot up to the durable committed id, so the
//! version a node serves never goes back across a restart.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_core::fs::FileSystem;
use strata_core::{Error, Result};

use super::blob;
use crate::types::{
    Applied, Command, Entry, LogId, Member, NodeId, StorageError, TypeConfig, Versioned,
};

/// Name of the snapshot file inside the raft directory.
pub const SNAPSHOT_FILE: &str = "raft_snapshot";
const MAGIC: [u8; 8] = *b"STRATRSN";

/// The in-memory state, shared with the register for reads.
#[derive(Debug, Default)]
pub(crate) struct SmState {
    /// The last log id applied (or installed from a snapshot).
    pub last_applied: Option<LogId>,
    /// The last applied membership.
    pub membership: StoredMembership<NodeId, Member>,
    /// The register.
    pub current: Versioned,
    /// When this node applied the last change to `current` (its own monotonic clock;
    /// after a restart, when the replay or snapshot install reached it).
    pub changed_at: Option<Instant>,
}

/// The snapshot as kept on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    /// openraft's description of the snapshot.
    pub meta: SnapshotMeta<NodeId, Member>,
    /// The JSON of the [`Versioned`] value (the bytes openraft ships to followers).
    pub data: Vec<u8>,
}

/// Reads the snapshot of `dir`, or `None` when there is none.
pub(crate) fn load_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Option<(StoredSnapshot, Versioned)>> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(body) = blob::load(fs, &path, &MAGIC)? else {
        return Ok(None);
    };
    let snap: StoredSnapshot = serde_json::from_slice(&body)
        .map_err(|e| Error::corruption(&path, 16, format!("snapshot body does not decode: {e}")))?;
    let value = decode_value(&snap.data).map_err(|e| {
        Error::corruption(&path, 16, format!("snapshot value does not decode: {e}"))
    })?;
    Ok(Some((snap, value)))
}

fn decode_value(data: &[u8]) -> std::result::Result<Versioned, serde_json::Error> {
    serde_json::from_slice(data)
}

pub(crate) fn store_snapshot(fs: &dyn FileSystem, dir: &Path, snap: &StoredSnapshot) -> Result<()> {
    let body = serde_json::to_vec(snap)
        .map_err(|e| Error::InvalidArgument(format!("snapshot does not encode: {e}")))?;
    blob::replace_file(fs, dir, SNAPSHOT_FILE, &blob::encode(&MAGIC, &body)?)
}

/// Where snapshots are kept, and the one currently held.
#[derive(Debug)]
struct Snapshots {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    /// Makes snapshot ids unique within this process's life (ids need only be unique).
    counter: AtomicU64,
}

impl Snapshots {
    fn save(&self, snap: StoredSnapshot) -> Result<()> {
        store_snapshot(&*self.fs, &self.dir, &snap)?;
        *self.current.lock() = Some(snap);
        Ok(())
    }
}

/// openraft's handle on the state machine.
#[derive(Clone, Debug)]
pub(crate) struct StateMachine {
    state: Arc<Mutex<SmState>>,
    snapshots: Arc<Snapshots>,
}

impl StateMachine {
    /// A state machine over `dir`, starting from `snapshot` if there is one.
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        snapshot: Option<(StoredSnapshot, Versioned)>,
    ) -> Self {
        let mut state = SmState::default();
        let mut held = None;
        if let Some((snap, value)) = snapshot {
            state.last_applied = snap.meta.last_log_id;
            state.membership = snap.meta.last_membership.clone();
            state.current = value;
            state.changed_at = Some(Instant::now());
            held = Some(snap);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            state: Arc::new(Mutex::new(state)),
            snapshots: Arc::new(Snapshots {
                fs,
                dir,
                current: Mutex::new(held),
                counter: AtomicU64::new(nanos),
            }),
        }
    }

    /// The shared state, for the register's reads.
    pub(crate) fn shared(&self) -> Arc<Mutex<SmState>> {
        self.state.clone()
    }
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, Member>>,
    verb: ErrorVerb,
    e: &(dyn std::error::Error + 'static),
) -> StorageError {
    let subject = ErrorSubject::Snapshot(meta.map(|m| m.signature()));
    StorageError::IO { source: StorageIOError::new(subject, verb, AnyError::from_dyn(e, None)) }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, data) = {
            let st = self.state.lock();
            let data = serde_json::to_vec(&st.current)
                .map_err(|e| snapshot_error(None, ErrorVerb::Write, &e))?;
            let n = self.snapshots.counter.fetch_add(1, Ordering::Relaxed);
            let id = match st.last_applied {
                Some(l) => format!("{}-{}-{n}", l.leader_id, l.index),
                None => format!("--{n}"),
            };
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
                snapshot_id: id,
            };
            (meta, data)
        };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        let snapshots = self.snapshots.clone();
        let m = meta.clone();
        match tokio::task::spawn_blocking(move || snapshots.save(stored)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(snapshot_error(Some(&m), ErrorVerb::Write, &e)),
            Err(e) => return Err(snapshot_error(Some(&m), ErrorVerb::Write, &e)),
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Member>), StorageError> {
        let st = self.state.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            let changed = match entry.payload {
                EntryPayload::Blank => false,
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    false
                }
                EntryPayload::Normal(Command::CompareAndSet { expected_version, value }) => {
                    if expected_version == st.current.version {
                        st.current = Versioned { version: expected_version + 1, value };
                        st.changed_at = Some(Instant::now());
                        true
                    } else {
                        false
                    }
                }
            };
            out.push(Applied { changed, current: st.current.clone() });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let value =
            decode_value(&data).map_err(|e| snapshot_error(Some(meta), ErrorVerb::Read, &e))?;
        // IMPORTANT: the snapshot is durable before the state moves to it, so a crash
        // right after cannot leave a state machine ahead of everything on disk.
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let snapshots = self.snapshots.clone();
        match tokio::task::spawn_blocking(move || snapshots.save(stored)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(snapshot_error(Some(meta), ErrorVerb::Write, &e)),
            Err(e) => return Err(snapshot_error(Some(meta), ErrorVerb::Write, &e)),
        }
        let mut st = self.state.lock();
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        st.current = value;
        st.changed_at = Some(Instant::now());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let held = self.snapshots.current.lock().clone();
        Ok(held.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
