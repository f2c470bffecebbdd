//! [`ManualPolicy`]: the authority in one durable file; decisions by an operator.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::fs::{FileLock, FileSystem};
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, Error, FailoverFactory, FailoverPolicy,
    Lease, NodeId, Result,
};

use crate::file;

/// How long an operation waits for the directory's lock before giving up. Every
/// operation holds it for a read, or for one durable write (a few fsyncs), so waiting
/// this long means something is stuck, not busy.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// The pause between two tries: the file system's lock is try-only.
const LOCK_RETRY: Duration = Duration::from_millis(1);

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
/// The record lives in one file in `dir` ([`crate::file`](mod@crate::file)), replaced
/// atomically and durably through the [`FileSystem`] seam before a change is reported
/// committed. Any number of policies, in any number of processes, may open the same
/// directory (on one host, or a shared file system whose locks work across hosts):
/// every operation — [`record`](FailoverPolicy::record),
/// [`compare_and_set`](FailoverPolicy::compare_and_set),
/// [`renew_lease`](FailoverPolicy::renew_lease) — takes the directory's lock file
/// ([`file::AUTHORITY_LOCK_FILE`]), reads the record from the file, acts and releases,
/// so each is atomic against all the others and nothing is served from a stale copy.
/// The lock is waited for (up to 2 s, then an error naming it). The file I/O runs on
/// the calling thread: a small read per call, and a few small writes per change.
///
/// The record is not replicated: the directory's disk is a single point of failure (a
/// consensus-backed policy is what removes it).
///
/// After a failed write this policy refuses every request (`Error::Poisoned`) until it
/// is reopened: whether the new record reached the disk is unknown, and reopening reads
/// what did. Other policies on the directory may see that record; each syncs the
/// directory before acting on a version it has not seen durable yet, so none grants a
/// lease from, or builds on, a rename a power loss could still undo.
pub struct ManualPolicy {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Serializes this instance's operations (the directory lock would anyway; this
    /// keeps them from spinning against each other) and holds its own state.
    state: Mutex<State>,
}

struct State {
    /// The last version this instance read and saw durable (the directory synced
    /// after the read): acting on it needs no further sync.
    durable_version: Option<u64>,
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
    /// is refused (`Error::InvalidArgument`): open it instead. The check and the write
    /// happen under the directory's lock, so of several processes creating at once
    /// exactly one succeeds.
    pub fn create(fs: Arc<dyn FileSystem>, dir: &Path, initial: AuthorityRecord) -> Result<Self> {
        initial.validate()?;
        fs.create_dir_all(dir)?;
        let policy = Self::with(fs, dir);
        {
            let mut state = policy.state.lock();
            let _lock = policy.lock_dir()?;
            if policy.fs.exists(&policy.path())? {
                return Err(Error::InvalidArgument(format!(
                    "{} already holds an authority record: open it instead of creating one",
                    policy.path().display()
                )));
            }
            file::store(&*policy.fs, dir, &initial)?;
            state.durable_version = Some(initial.version);
        }
        Ok(policy)
    }

    /// Opens the authority kept in `dir`. Writes nothing; a missing record is
    /// `Error::InvalidArgument`, a damaged one `Error::Corruption` naming the file and
    /// offset.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        let policy = Self::with(fs, dir);
        {
            let mut state = policy.state.lock();
            let _lock = policy.lock_dir()?;
            policy.load(&mut state)?;
        }
        Ok(policy)
    }

    fn with(fs: Arc<dyn FileSystem>, dir: &Path) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new(State { durable_version: None, poisoned: None }),
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

    /// Takes the directory's lock, waiting while another operation (of this or any
    /// process) holds it.
    fn lock_dir(&self) -> Result<Box<dyn FileLock>> {
        let path = self.dir.join(file::AUTHORITY_LOCK_FILE);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match self.fs.lock(&path) {
                Err(Error::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(Error::Locked { .. }) => {
                    return Err(Error::io(
                        "lock",
                        path,
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "another operation on this manual authority held the lock for \
                                 over {LOCK_WAIT:?}"
                            ),
                        ),
                    ));
                }
                other => return other,
            }
        }
    }

    /// Reads the current record; the caller holds the directory's lock. A version this
    /// instance has not seen durable is made so first: a writer reports a commit only
    /// after syncing, but one whose write failed may have left a visible, not yet
    /// durable rename, and nothing may be granted or built on that.
    fn load(&self, state: &mut State) -> Result<AuthorityRecord> {
        let record = file::load(&*self.fs, &self.dir)?.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} holds no authority record: create one first",
                self.dir.display()
            ))
        })?;
        if state.durable_version != Some(record.version) {
            self.fs.sync_dir(&self.dir)?;
            state.durable_version = Some(record.version);
        }
        Ok(record)
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
        let mut state = self.state.lock();
        Self::check_poison(&state)?;
        let _lock = self.lock_dir()?;
        self.load(&mut state)
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord> {
        let mut state = self.state.lock();
        Self::check_poison(&state)?;
        // The directory's lock is held from the read through the write: the version is
        // checked against what the file holds, changes commit one at a time across
        // processes, and no one reads a record that is not yet durable.
        let _lock = self.lock_dir()?;
        let current = self.load(&mut state)?;
        if current.version != expected_version {
            return Err(Error::StaleAuthority {
                expected: expected_version,
                found: current.version,
            });
        }
        let next = current.apply(&change)?;
        if let Err(e) = file::store(&*self.fs, &self.dir, &next) {
            state.poisoned = Some(format!(
                "writing the authority record {} failed ({e}); whether version {} is durable \
                 is unknown",
                self.path().display(),
                next.version
            ));
            return Err(e);
        }
        state.durable_version = Some(next.version);
        tracing_change(&change, &next);
        Ok(next)
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        // NOTE: measured before anything else (the wait for the lock and the read
        // included), so the lease never outlasts the requester's view of it.
        let started = Instant::now();
        let mut state = self.state.lock();
        Self::check_poison(&state)?;
        let _lock = self.lock_dir()?;
        self.load(&mut state)?.grant_lease(node, epoch, started)
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
