//! [`RaftPolicy`] and [`RaftFactory`]: the `raft` failover policy, the authority record
//! in a [`RaftRegister`].

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::failover::automatic_decision;
use strata_core::fs::FileSystem;
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, Error, FailoverFactory, FailoverPolicy,
    Lease, NodeId, Result,
};
use tokio::runtime::{Handle, Runtime};

use crate::register::{LocalView, RaftRegister, Status};
use crate::settings::RaftSettings;
use crate::storage;
use crate::types::Versioned;

/// How long dropping a policy waits for its raft node and runtime to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The component name in errors.
const COMPONENT: &str = "failover=raft";

/// The default automatic failover policy, name `"raft"`: the authority record lives in
/// a raft group of the cluster's voters ([`RaftRegister`]); [`decide`] is
/// [`automatic_decision`], so a lost primary is replaced and a silent in-sync member is
/// dropped without an operator.
///
/// # The record in the register
///
/// The register's value is the JSON encoding of the [`AuthorityRecord`], and the
/// register's version is the record's version: the initial record is written at
/// register version 0 → 1, and every committed change moves both by one. A register
/// whose version and record disagree is refused as `Error::Corruption`.
///
/// - [`record`] is a linearizable read of the register: it reflects every change that
///   committed (through any voter) before it began.
/// - [`compare_and_set`] reads linearizably, refuses with `Error::StaleAuthority` if the
///   record is not at `expected_version`, computes the next record with
///   [`AuthorityRecord::apply`] (whose error refuses the change) and commits it with the
///   register's compare-and-set at the version it read. A change committed by someone
///   else in between makes the register refuse: `StaleAuthority`. Nothing changes on a
///   refusal. If the raft group cannot be asked (no leader, no quorum, timeout) the error
///   is `Error::Transport` saying whether the change may still commit.
/// - [`renew_lease`] takes `Instant::now()` before any I/O, reads linearizably, and
///   grants with [`AuthorityRecord::grant_lease`] from that instant.
///
/// # Why a lease from a linearizable read is safe
///
/// Let the old primary P renew at `started` (its clock), and a promotion of Q commit at
/// `T` (version v → v+1, epoch e → e+1).
///
/// 1. **Renewals after the promotion are fenced.** A linearizable read that begins after
///    `T` returns version ≥ v+1, so P's renewal in epoch e gets `Error::Fenced` (as does
///    every in-sync change P asks for). A read is confirmed by a quorum round of the raft
///    leader (openraft's `ensure_linearizable`), not by a leader lease, so this step
///    needs no clock at all.
/// 2. **The last lease ends `lease` after its request started.** P's last granted lease
///    came from a read that began before `T`, so its renewal started before `T`, and the
///    lease expires at `started + lease` on P's monotonic clock. `started` is taken before
///    the request is sent, so a slow network, a slow quorum or a pause of P (GC, SIGSTOP)
///    after sending only shortens the lease P can use; it never lengthens it.
/// 3. **Replicas wait `grace` > `lease` before promoting.** An automatic promotion
///    ([`automatic_decision`]) needs the primary silent for `grace`. The node's side of
///    the contract is that P reports and renews on the same heartbeat, so a P that is
///    dead, paused or cut off from the replicas and the raft group alike started its last
///    successful renewal no later than about its last report (+ one heartbeat). Its lease therefore runs out before `grace` has passed
///    since the replicas last heard it — before Q can be promoted — as long as
///    `grace − lease` covers one heartbeat, message delay and clock drift
///    ([`LeaseSettings`](strata_core::LeaseSettings) keeps `heartbeat < lease < grace`;
///    the defaults leave 300 ms).
///
/// **Clock assumption.** Only monotonic clocks (`Instant`) are used, each on its own
/// node: no wall clock, and no timestamps compared across nodes. What is assumed is that
/// they run at about the same rate (bounded drift over a `grace` period) — the usual
/// lease assumption. If P can still reach the raft group but not the replicas (an
/// asymmetric partition), step 3 does not hold, and the overlap is bounded by step 2 to
/// at most `lease` after `T`; what fences P then is the epoch: in synchronous mode P
/// acknowledges only writes every in-sync member made durable, and Q, promoted from the
/// in-sync set, rejects epoch e (DESIGN.md §7).
///
/// # Runtimes and threads
///
/// The register runs on a tokio runtime the policy owns (one worker thread, named
/// `strata-raft-<id>`), so raft heartbeats never wait behind the caller's work. The
/// trait's async methods spawn their work onto that runtime and await its join handle:
/// they can be awaited from any executor — a tokio runtime (multi- or current-thread),
/// or a plain thread with a minimal `block_on` as the thread-based replication node uses
/// — and never block a thread of the caller's runtime. Dropping the policy stops the raft
/// node and its runtime: synchronously on a plain thread (the directory lock and the
/// listener are released when the drop returns), and on a helper thread when dropped
/// inside an async context, where blocking would stall the caller's runtime (the lock is
/// then released shortly after).
///
/// [`decide`]: FailoverPolicy::decide
/// [`record`]: FailoverPolicy::record
/// [`compare_and_set`]: FailoverPolicy::compare_and_set
/// [`renew_lease`]: FailoverPolicy::renew_lease
pub struct RaftPolicy {
    node: Node,
    dir: PathBuf,
    request_timeout: Duration,
    retry_every: Duration,
}

impl fmt::Debug for RaftPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftPolicy")
            .field("node_id", &self.node.node_id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The raft register and the runtime it runs on; stops both when dropped.
struct Node {
    node_id: crate::NodeId,
    handle: Handle,
    rt: Option<Runtime>,
    register: Option<Arc<RaftRegister>>,
}

impl Node {
    /// A runtime for voter `node_id` and the register started on it from `settings`.
    async fn start(settings: &RaftSettings, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("strata-raft-{}", settings.node_id))
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the raft runtime", dir, e))?;
        let mut node = Self {
            node_id: settings.node_id,
            handle: rt.handle().clone(),
            rt: Some(rt),
            register: None,
        };
        let config = settings.register_config(fs, dir);
        let register = node
            .run(async move { RaftRegister::start(config).await.map_err(core_error("start")) })
            .await?;
        node.register = Some(Arc::new(register));
        Ok(node)
    }

    fn register(&self) -> Result<Arc<RaftRegister>> {
        self.register.clone().ok_or_else(|| Error::Poisoned {
            reason: format!("the raft node {} of the failover authority is stopped", self.node_id),
        })
    }

    /// Runs `fut` on the node's runtime and waits for it from whatever executor (or
    /// none) the caller runs on.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let task = self.handle.spawn(fut);
        let node_id = self.node_id;
        async move {
            task.await.map_err(|e| Error::Poisoned {
                reason: format!(
                    "a request to the raft node {node_id} of the failover authority did not \
                     finish: {e}"
                ),
            })?
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let Some(rt) = self.rt.take() else { return };
        let register = self.register.take();
        let stop = move |rt: Runtime, register: Option<Arc<RaftRegister>>| {
            // Requests still in flight hold the register too; stopping the runtime ends
            // them and drops it.
            if let Some(Ok(register)) = register.map(Arc::try_unwrap) {
                let done = rt
                    .block_on(async { tokio::time::timeout(STOP_WAIT, register.shutdown()).await });
                if let Ok(Err(e)) = done {
                    tracing::warn!("raft node shut down abnormally: {e}");
                }
            }
            rt.shutdown_timeout(STOP_WAIT);
        };
        if Handle::try_current().is_err() {
            stop(rt, register);
            return;
        }
        // Inside an async context: blocking here would stall a thread of the caller's
        // runtime (and tokio refuses to drop a runtime there), so a helper thread stops it.
        let parts = Arc::new(Mutex::new(Some((rt, register))));
        let for_thread = Arc::clone(&parts);
        let spawned =
            std::thread::Builder::new().name("strata-raft-stop".into()).spawn(move || {
                if let Some((rt, register)) = for_thread.lock().take() {
                    stop(rt, register);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no thread to stop the raft node ({e}); stopping it in the background");
            if let Some((rt, register)) = parts.lock().take() {
                drop(register);
                rt.shutdown_background();
            }
        }
    }
}

impl RaftPolicy {
    /// Creates the authority on this voter: starts its raft node in `dir` (which must
    /// hold no raft state yet: a directory that does is refused, open it instead), forms
    /// the group if this voter is the [initializer](RaftSettings::initializer) (the one
    /// with the lowest id; the others wait for it), and writes `initial` at register
    /// version 0 → 1 if the group's register is still empty. If another voter already
    /// wrote a record of the same cluster, that record is kept (every voter's `create`
    /// passes the same `initial`; only one write of version 1 can win); a record of
    /// another cluster is `Error::Config`.
    ///
    /// Waits up to the settings' bootstrap timeout for the group to form; the other
    /// voters may be created concurrently or later within that time.
    pub async fn create(
        settings: RaftSettings,
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Self> {
        settings.validate()?;
        initial.validate()?;
        if storage::holds_state(&*fs, dir)? {
            return Err(Error::InvalidArgument(format!(
                "{} already holds raft state of a failover authority: open it instead of \
                 creating one",
                dir.display()
            )));
        }
        let policy = Self::start(&settings, fs, dir).await?;
        let register = policy.node.register()?;
        let bootstrap = bootstrap(register, settings, initial, dir.to_path_buf());
        policy.node.run(bootstrap).await?;
        Ok(policy)
    }

    /// Opens this voter's authority again from `dir` after a restart: the raft node
    /// rejoins its group from its own log (the voters and addresses are in the
    /// replicated membership) and the record is whatever the group committed last. Does
    /// not wait for the group: the first call waits for a leader (up to the request
    /// timeout). A `dir` without raft state is `Error::InvalidArgument`.
    pub async fn open(settings: RaftSettings, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        settings.validate()?;
        if !storage::holds_state(&*fs, dir)? {
            return Err(Error::InvalidArgument(format!(
                "{} holds no raft state of a failover authority: create it first",
                dir.display()
            )));
        }
        Self::start(&settings, fs, dir).await
    }

    async fn start(settings: &RaftSettings, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self> {
        Ok(Self {
            node: Node::start(settings, fs, dir).await?,
            dir: dir.to_path_buf(),
            request_timeout: settings.request_timeout,
            retry_every: settings.heartbeat_interval,
        })
    }

    /// This voter's raft id.
    pub fn node_id(&self) -> crate::NodeId {
        self.node.node_id
    }

    /// The address this voter's raft listener is bound to.
    pub fn local_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.node.register()?.local_addr())
    }

    /// This voter's raft status (its own, possibly stale, view: for `strata status`).
    pub fn raft_status(&self) -> Result<Status> {
        Ok(self.node.register()?.status())
    }

    /// The record as this voter last applied it, without asking the group, and when it
    /// applied it (see [`LocalView`]): possibly stale, never ahead of what committed.
    /// `None` while the register is empty. Not for decisions: use
    /// [`record`](FailoverPolicy::record).
    pub fn local_record(&self) -> Result<Option<(AuthorityRecord, Option<Instant>)>> {
        let LocalView { value, changed_at, .. } = self.node.register()?.local();
        if value.version == 0 {
            return Ok(None);
        }
        Ok(Some((decode(&self.dir, &value)?, changed_at)))
    }

    /// A linearizable read of the record, retried while no leader or quorum answers,
    /// for at most the request timeout.
    fn read(
        &self,
        op: &'static str,
    ) -> impl Future<Output = Result<AuthorityRecord>> + Send + 'static {
        let register = self.node.register();
        let (timeout, every, dir) = (self.request_timeout, self.retry_every, self.dir.clone());
        let read = async move {
            let register = register?;
            let versioned = bounded(op, timeout, read_retrying(&register, every))
                .await
                .map_err(core_error(op))?;
            if versioned.version == 0 {
                return Err(Error::InvalidArgument(format!(
                    "the raft group of {} holds no authority record (its register was never \
                     written): the authority was not created with `create`",
                    dir.display()
                )));
            }
            decode(&dir, &versioned)
        };
        self.node.run(read)
    }
}

/// Forms the group (initializer only) and writes `initial` unless a record exists.
async fn bootstrap(
    register: Arc<RaftRegister>,
    settings: RaftSettings,
    initial: AuthorityRecord,
    dir: PathBuf,
) -> Result<()> {
    if settings.initializer() == Some(settings.node_id) {
        match register.initialize(settings.voters.clone()).await {
            Ok(()) => tracing::info!(
                node = settings.node_id,
                "raft group of the failover authority formed"
            ),
            // Possible only when the group formed before and this voter was re-created.
            Err(crate::Error::Initialize { reason }) => {
                tracing::info!(node = settings.node_id, "raft group already formed: {reason}")
            }
            Err(e) => return Err(core_error("initialize")(e)),
        }
    }
    let bytes = encode(&initial)?;
    let every = settings.heartbeat_interval;
    let write = async {
        loop {
            match register.read().await {
                Ok(v) if v.version == 0 => match register.compare_and_set(0, bytes.clone()).await {
                    Ok(_) => {
                        tracing::info!(
                            cluster = initial.cluster,
                            "failover authority record written"
                        );
                        return Ok(());
                    }
                    // Another voter wrote it; a timed-out write may have landed: re-read.
                    Err(crate::Error::VersionMismatch { .. } | crate::Error::Timeout { .. }) => {}
                    Err(e) if retryable(&e) => {}
                    Err(e) => return Err(core_error("writing the initial record")(e)),
                },
                Ok(v) => {
                    let existing = decode(&dir, &v)?;
                    if existing.cluster != initial.cluster {
                        return Err(Error::Config(format!(
                            "{COMPONENT}: the raft group already holds the authority record of \
                             cluster {}, not {}: these voters belong to another cluster",
                            existing.cluster, initial.cluster
                        )));
                    }
                    return Ok(());
                }
                Err(e) if retryable(&e) => {}
                Err(e) => return Err(core_error("reading the register")(e)),
            }
            tokio::time::sleep(every).await;
        }
    };
    let initializer = settings.initializer().unwrap_or(settings.node_id);
    tokio::time::timeout(settings.bootstrap_timeout, write).await.map_err(|_| Error::Transport {
        transport: COMPONENT,
        topic: "authority".into(),
        reason: format!(
            "the raft group did not form (a leader with a quorum) within {:?}: start the other \
             voters; voter {initializer} forms the group",
            settings.bootstrap_timeout
        ),
    })?
}

/// Errors worth retrying within the request timeout: nothing was done (no leader was
/// known, the leader moved, a forward could not connect, no quorum confirmed a read).
fn retryable(e: &crate::Error) -> bool {
    matches!(
        e,
        crate::Error::NotLeader { .. }
            | crate::Error::NoQuorum { .. }
            | crate::Error::Network { .. }
    )
}

async fn read_retrying(register: &RaftRegister, every: Duration) -> crate::Result<Versioned> {
    loop {
        match register.read().await {
            Err(e) if retryable(&e) => tokio::time::sleep(every).await,
            other => return other,
        }
    }
}

/// `fut`, failing with `Error::Timeout` after `timeout`.
async fn bounded<T>(
    op: &'static str,
    timeout: Duration,
    fut: impl Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(crate::Error::Timeout { op, after: timeout }))
}

/// The register's error as core's, with what the caller must do about it.
fn core_error(op: &'static str) -> impl Fn(crate::Error) -> Error {
    move |e| {
        let consequence = match op {
            "renew_lease" => {
                "no lease was granted: the primary must stop acknowledging writes when its \
                 current lease expires"
            }
            "compare_and_set" => {
                "the change may or may not have committed: re-read the record before deciding \
                 again"
            }
            "compare_and_set (reading the record)" | "compare_and_set (not proposed)" => {
                "nothing was proposed: the record is unchanged"
            }
            _ => "the authority could not be asked",
        };
        match e {
            crate::Error::Storage(inner) => inner,
            crate::Error::InvalidArgument(m) => Error::InvalidArgument(format!("{COMPONENT}: {m}")),
            crate::Error::Initialize { reason } => {
                Error::Config(format!("{COMPONENT}: cannot form the raft group: {reason}"))
            }
            crate::Error::Stopped { reason } => Error::Poisoned {
                reason: format!(
                    "{op}: the raft node of the failover authority stopped ({reason}); {consequence}"
                ),
            },
            crate::Error::VersionMismatch { expected, current } => {
                Error::StaleAuthority { expected, found: current }
            }
            other @ (crate::Error::NotLeader { .. }
            | crate::Error::NoQuorum { .. }
            | crate::Error::Timeout { .. }
            | crate::Error::Network { .. }
            | crate::Error::Protocol { .. }) => Error::Transport {
                transport: COMPONENT,
                topic: "authority".into(),
                reason: format!("{op}: {other}; {consequence}"),
            },
        }
    }
}

fn encode(record: &AuthorityRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| {
        Error::InvalidArgument(format!("{COMPONENT}: the authority record does not encode: {e}"))
    })
}

/// The record in `v`, which must be at the register's version.
fn decode(dir: &Path, v: &Versioned) -> Result<AuthorityRecord> {
    let record: AuthorityRecord = serde_json::from_slice(&v.value).map_err(|e| {
        Error::corruption(
            dir,
            0,
            format!("the raft register at version {} holds no authority record: {e}", v.version),
        )
    })?;
    if record.version != v.version {
        return Err(Error::corruption(
            dir,
            0,
            format!(
                "the raft register at version {} holds an authority record of version {}: \
                 they move together, so something else wrote the register",
                v.version, record.version
            ),
        ));
    }
    Ok(record)
}

#[async_trait::async_trait]
impl FailoverPolicy for RaftPolicy {
    fn name(&self) -> &'static str {
        "raft"
    }

    /// [`automatic_decision`]: the policy fails over on its own.
    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        automatic_decision(record, view)
    }

    async fn record(&self) -> Result<AuthorityRecord> {
        self.read("record").await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord> {
        let register = self.node.register()?;
        let (timeout, every, dir) = (self.request_timeout, self.retry_every, self.dir.clone());
        let deadline = Instant::now() + timeout;
        let cas = async move {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let current = bounded("compare_and_set", left, read_retrying(&register, every))
                    .await
                    .map_err(core_error("compare_and_set (reading the record)"))?;
                if current.version == 0 {
                    return Err(Error::InvalidArgument(format!(
                        "the raft group of {} holds no authority record to change",
                        dir.display()
                    )));
                }
                let record = decode(&dir, &current)?;
                if record.version != expected_version {
                    return Err(Error::StaleAuthority {
                        expected: expected_version,
                        found: record.version,
                    });
                }
                let next = record.apply(&change)?;
                let left = deadline.saturating_duration_since(Instant::now());
                let write = register.compare_and_set(current.version, encode(&next)?);
                match bounded("compare_and_set", left, write).await {
                    Ok(written) if written.version == next.version => {
                        tracing::info!(version = next.version, epoch = %next.epoch, change = ?change,
                            "authority record changed");
                        return Ok(next);
                    }
                    Ok(written) => {
                        return Err(Error::corruption(
                            &dir,
                            0,
                            format!(
                                "the raft register wrote version {} for a change from {}",
                                written.version, current.version
                            ),
                        ));
                    }
                    Err(crate::Error::VersionMismatch { current: found, .. }) => {
                        return Err(Error::StaleAuthority { expected: expected_version, found });
                    }
                    // Refused before it was proposed (the leader moved, or the forward
                    // could not connect): nothing was written, so read and try again.
                    Err(e @ (crate::Error::NotLeader { .. } | crate::Error::Network { .. }))
                        if Instant::now() + every < deadline =>
                    {
                        tracing::debug!("compare_and_set retried: {e}");
                        tokio::time::sleep(every).await;
                    }
                    Err(e @ (crate::Error::NotLeader { .. } | crate::Error::Network { .. })) => {
                        return Err(core_error("compare_and_set (not proposed)")(e));
                    }
                    Err(e) => return Err(core_error("compare_and_set")(e)),
                }
            }
        };
        self.node.run(cas).await
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        // NOTE: taken before any I/O: the lease runs from before the request, so no delay
        // of the request can lengthen it (see the type's documentation).
        let started = Instant::now();
        let record = self.read("renew_lease").await?;
        record.grant_lease(node, epoch, started)
    }
}

/// Makes [`RaftPolicy`]s for one voter: the `[failover] kind = "raft"` plugin's factory.
#[derive(Clone, Debug)]
pub struct RaftFactory {
    settings: RaftSettings,
}

impl RaftFactory {
    /// A factory for the voter `settings` describe (checked when an authority is
    /// created or opened).
    pub fn new(settings: RaftSettings) -> Self {
        Self { settings }
    }

    /// The settings.
    pub fn settings(&self) -> &RaftSettings {
        &self.settings
    }
}

#[async_trait::async_trait]
impl FailoverFactory for RaftFactory {
    fn name(&self) -> &'static str {
        "raft"
    }

    /// [`RaftPolicy::create`].
    async fn create(
        &self,
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(RaftPolicy::create(self.settings.clone(), fs, dir, initial).await?))
    }

    /// [`RaftPolicy::open`].
    async fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(RaftPolicy::open(self.settings.clone(), fs, dir).await?))
    }
}
