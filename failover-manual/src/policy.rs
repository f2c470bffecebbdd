//! [`ManualPolicy`]: the authority in one durable file; decisions by an operator.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use strata_core::fs::{FileLock, FileSystem};
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, Error, FailoverFactory, FailoverPolicy,
    Lease, NodeId, Result,
};

use crate::file;

/// The manual failover policy, name `"manual"`.
///
/// [`decide`](FailoverPolicy::decide) always returns [`Decision::Nothing`]: nothing
/// moves on its own. An operator commits every change through
/// [`compare_and_set`](FailoverPolicy::compare_and_set) — a promotion of an in-sync
/// member, the removal of a member that went away, or, after seeing
/// [`strata_core::failover::plan_forced_promotion`]'s report, a forced promotion —
/// under the same rules as any policy ([`AuthorityRecord::apply`]): epoch + 1 per
/// promotion, lower epochs fenced, leases only for the primary, shorter than the grace.
///
/// The record lives in one file in `dir` ([`crate::file`](mod@crate::file)), replaced atomically and
/// durably through the [`FileSystem`] seam before a change is reported committed. The
/// directory is locked while the policy is open. The file I/O (a few small writes, only
/// when the record changes) runs on the calling thread; lease renewals read the record
/// from memory.
///
/// After a failed write the policy refuses every request (`Error::Poisoned`) until it
/// is reopened: whether the new record reached the disk is unknown, and reopening reads
/// what did.
pub struct ManualPolicy {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    state: Mutex<State>,
    _lock: Box<dyn FileLock>,
}

struct State {
    record: AuthorityRecord,
    poisoned: Option<String>,
}

impl fmt::Debug for ManualPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualPolicy").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ManualPolicy {
    /// Creates the authority in `dir` (created if missing) holding `initial`, which
    /// must pass [`AuthorityRecord::validate`]. A directory that already holds a record
    /// is refused (`Error::InvalidArgument`): open it instead.
    pub fn create(fs: Arc<dyn FileSystem>, dir: &Path, initial: AuthorityRecord) -> Result<Self> {
        initial.validate()?;
        fs.create_dir_all(dir)?;
        let lock = fs.lock(&dir.join(file::AUTHORITY_LOCK_FILE))?;
        if fs.exists(&file::path_in(dir))? {
            return Err(Error::InvalidArgument(format!(
                "{} already holds an authority record: open it instead of creating one",
                file::path_in(dir).display()
            )));
        }
        file::store(&*fs, dir, &initial)?;
        Ok(Self::with(fs, dir, initial, lock))
    }

    /// Opens the authority kept in `dir`. Writes nothing; a missing record is
    /// `Error::InvalidArgument`, a damaged one `Error::Corruption` naming the file and
    /// offset.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        let lock = fs.lock(&dir.join(file::AUTHORITY_LOCK_FILE))?;
        let record = file::load(&*fs, dir)?.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} holds no authority record: create one first",
                dir.display()
            ))
        })?;
        Ok(Self::with(fs, dir, record, lock))
    }

    fn with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        record: AuthorityRecord,
        lock: Box<dyn FileLock>,
    ) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new(State { record, poisoned: None }),
            _lock: lock,
        }
    }

    /// The record file's path.
    pub fn path(&self) -> PathBuf {
        file::path_in(&self.dir)
    }

    fn check_poison(state: &State) -> Result<()> {
        match &state.poisoned {
            Some(reason) => Err(Error::Poisoned { reason: reason.clone() }),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl FailoverPolicy for ManualPolicy {
    fn name(&self) -> &'static str {
        "manual"
    }

    /// Always [`Decision::Nothing`]: an operator decides.
    fn decide(&self, _record: &AuthorityRecord, _view: &ClusterView) -> Decision {
        Decision::Nothing
    }

    async fn record(&self) -> Result<AuthorityRecord> {
        let state = self.state.lock();
        Self::check_poison(&state)?;
        Ok(state.record.clone())
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord> {
        // The lock is held across the write: changes commit one at a time, and a
        // lease is never granted from a record that is not yet durable.
        let mut state = self.state.lock();
        Self::check_poison(&state)?;
        if state.record.version != expected_version {
            return Err(Error::StaleAuthority {
                expected: expected_version,
                found: state.record.version,
            });
        }
        let next = state.record.apply(&change)?;
        if let Err(e) = file::store(&*self.fs, &self.dir, &next) {
            state.poisoned = Some(format!(
                "writing the authority record {} failed ({e}); whether version {} is durable \
                 is unknown",
                self.path().display(),
                next.version
            ));
            return Err(e);
        }
        tracing_change(&change, &next);
        state.record = next.clone();
        Ok(next)
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        // NOTE: measured before anything else, so the lease never outlasts the
        // requester's view of it.
        let started = Instant::now();
        let state = self.state.lock();
        Self::check_poison(&state)?;
        state.record.grant_lease(node, epoch, started)
    }
}

/// Logs every committed change; a forced promotion as a warning with its possible loss.
fn tracing_change(change: &Change, next: &AuthorityRecord) {
    match change {
        Change::ForcePromote { node, possible_loss, .. } => tracing::warn!(
            %node, epoch = %next.epoch, version = next.version,
            "forced promotion committed: {possible_loss}"
        ),
        other => tracing::info!(version = next.version, epoch = %next.epoch, change = ?other,
            "authority record changed"),
    }
}

/// Makes [`ManualPolicy`]s: the `failover = "manual"` plugin's factory.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualFactory;

#[async_trait::async_trait]
impl FailoverFactory for ManualFactory {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn create(
        &self,
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(ManualPolicy::create(fs, dir, initial)?))
    }

    async fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(ManualPolicy::open(fs, dir)?))
    }
}
