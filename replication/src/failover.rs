//! Automatic, fenced failover through a [`FailoverPolicy`] (DESIGN.md §7).
//!
//! With a [`FailoverConfig`] a node takes its role from the authority record, not from
//! its configuration:
//!
//! - The record's primary writes in the record's epoch. A node that finds itself named
//!   primary but whose store already wrote in that epoch (a restart) first takes a new
//!   epoch through the authority (a [`Change::Promote`] of itself), so the WAL's epoch
//!   and the record agree and never go down.
//! - The primary renews its lease every `heartbeat` and acknowledges a write only under
//!   an unexpired lease, in synchronous mode once every member of the lease's in-sync
//!   set (and every replica it asked to join) has it durable. A renewal refused as
//!   `Fenced` makes it step down and follow the record's primary.
//! - In-sync changes go through the authority: a member silent for longer than
//!   `grace` is removed ([`Change::ShrinkInSync`], when the policy decides so), a
//!   caught-up replica joins ([`Change::JoinInSync`]); writes wait meanwhile and
//!   continue under the next lease.
//! - A replica that has not heard from its primary for `grace` builds a
//!   [`ClusterView`] (its own report and the other nodes' status, asked for with a
//!   short timeout), asks the policy, and commits a [`Decision::Promote`] by
//!   compare-and-set. The node named primary by the record becomes primary at exactly
//!   the record's epoch; every node reads the record each heartbeat and follows a new
//!   primary.
//! - A new primary acknowledges nothing until a lease granted to its predecessor
//!   before the promotion must have run out (`lease` after the promotion committed).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::failover::plan_forced_promotion;
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, FailoverPolicy, Lease, NodeId,
    NodeReport, PossibleLoss, SeqNo,
};

use crate::error::{Error, Result};
use crate::node::{NodeInner, RoleState};
use crate::primary::PrimaryState;
use crate::replica::ReplicaState;
use crate::status::Status;
use crate::wire::AdminRequest;

/// How a node fails over: the authority it asks and where its peers listen.
#[derive(Clone, Debug)]
pub struct FailoverConfig {
    /// The authority and its decisions (shared by every node of the cluster: a
    /// consensus-backed policy, or one every node reaches).
    pub policy: Arc<dyn FailoverPolicy>,
    /// Every node's replication address by its id (the node names of
    /// [`NodeConfig::name`](crate::NodeConfig::name)); the node's own entry may be
    /// present.
    pub peers: BTreeMap<NodeId, String>,
    /// How long a replica waits for another node's status when it builds a view.
    pub status_timeout: Duration,
}

impl FailoverConfig {
    /// A failover setting with a 200 ms status timeout.
    pub fn new(policy: Arc<dyn FailoverPolicy>, peers: BTreeMap<NodeId, String>) -> Self {
        Self { policy, peers, status_timeout: Duration::from_millis(200) }
    }
}

/// The node's side of the authority: the record it last read, the lease it holds.
pub(crate) struct Ctl {
    policy: Arc<dyn FailoverPolicy>,
    me: NodeId,
    peers: BTreeMap<NodeId, String>,
    status_timeout: Duration,
    rt: tokio::runtime::Runtime,
    record: Mutex<AuthorityRecord>,
    lease: Mutex<Option<Lease>>,
    /// As primary: the epoch it writes in, when it became primary, and the moment
    /// before which it acknowledges nothing.
    primary_epoch: Mutex<Option<(Epoch, Instant, Instant)>>,
    /// Replicas this primary asked the authority to let join (it waits for them).
    joining: Mutex<BTreeSet<String>>,
    last_error: Mutex<Option<String>>,
    /// Serialises role changes (the failover thread, operator requests).
    transition: Mutex<()>,
}

/// How long a starting node keeps trying to read the authority record.
pub const FIRST_READ_WITHIN: Duration = Duration::from_secs(10);
/// The pause between two attempts.
const FIRST_READ_RETRY: Duration = Duration::from_millis(100);

impl Ctl {
    /// Reads the record: a node does not start without it. A failed read is retried
    /// for up to [`FIRST_READ_WITHIN`]: a raft authority whose leader dies during the
    /// call answers with a transport error, and a new leader is elected well within it.
    pub fn new(config: &FailoverConfig, me: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", "the failover runtime", e))?;
        let policy = Arc::clone(&config.policy);
        let deadline = Instant::now() + FIRST_READ_WITHIN;
        let first = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match block_on(&rt, left, "read the record", policy.record()) {
                Ok(r) => break r,
                Err(e) if Instant::now() + FIRST_READ_RETRY >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(node = me, error = %e, "reading the authority record; retrying");
                    std::thread::sleep(FIRST_READ_RETRY);
                }
            }
        };
        first.validate()?;
        Ok(Self {
            policy,
            me: NodeId::new(me),
            peers: config.peers.clone(),
            status_timeout: config.status_timeout,
            rt,
            record: Mutex::new(first),
            lease: Mutex::new(None),
            primary_epoch: Mutex::new(None),
            joining: Mutex::new(BTreeSet::new()),
            last_error: Mutex::new(None),
            transition: Mutex::new(()),
        })
    }

    /// The record as last read.
    pub fn record(&self) -> AuthorityRecord {
        self.record.lock().clone()
    }

    fn set_record(&self, r: AuthorityRecord) {
        let mut cur = self.record.lock();
        if r.version >= cur.version {
            *cur = r;
        }
    }

    /// The replication address of `node`.
    pub fn addr_of(&self, node: &NodeId) -> Result<String> {
        self.peers.get(node).cloned().ok_or_else(|| {
            Error::Store(strata_core::Error::Config(format!(
                "the authority names {node}, whose replication address is not among the \
                 failover peers"
            )))
        })
    }

    /// Runs one authority call, bounded by the lease duration (a node cut off from the
    /// authority must not sit in a call past its lease).
    fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = strata_core::Result<T>> + Send,
    ) -> Result<T>
    where
        T: Send,
    {
        let limit = self.record.lock().lease.lease.max(Duration::from_millis(100));
        block_on(&self.rt, limit, what, fut)
    }

    fn read_record(&self) -> Result<AuthorityRecord> {
        let r = self.call("read the record", self.policy.record())?;
        self.set_record(r.clone());
        Ok(r)
    }

    fn cas(&self, expected: u64, change: Change) -> Result<AuthorityRecord> {
        let r = self.call("commit a change", self.policy.compare_and_set(expected, change))?;
        tracing::info!(node = %self.me, version = r.version, epoch = %r.epoch, primary = %r.primary,
            in_sync = ?r.in_sync, "authority record changed");
        self.set_record(r.clone());
        Ok(r)
    }

    /// Before a primary writes: it holds an unexpired lease, and its predecessor's
    /// lease has run out (waits for that, at most `lease`).
    pub fn before_write(&self) -> Result<()> {
        let ack_after = self.primary_epoch.lock().map(|(_, _, a)| a);
        if let Some(at) = ack_after {
            let now = Instant::now();
            if now < at {
                std::thread::sleep(at - now);
            }
        }
        self.lease_ok()
    }

    /// `Ok` while the node holds an unexpired lease in the epoch it writes in:
    /// the condition of every acknowledgement.
    pub fn lease_ok(&self) -> Result<()> {
        let epoch = self.primary_epoch.lock().map(|(e, _, _)| e);
        let lease = self.lease.lock();
        match (&*lease, epoch) {
            (Some(l), Some(e)) if l.epoch == e => Ok(l.check(Instant::now())?),
            (l, e) => Err(Error::Store(strata_core::Error::LeaseExpired {
                node: self.me.clone(),
                epoch: e.or(l.as_ref().map(|l| l.epoch)).unwrap_or(Epoch::ZERO),
                expired_for: Duration::ZERO,
            })),
        }
    }

    fn note(&self, e: &Error) {
        tracing::warn!(node = %self.me, error = %e, "failover");
        *self.last_error.lock() = Some(e.to_string());
    }

    pub fn fill_status(&self, s: &mut Status, primary: bool) {
        let r = self.record();
        s.policy = Some(self.policy.name().to_owned());
        s.authority_version = r.version;
        s.authority_epoch = r.epoch.0;
        s.authority_primary = Some(r.primary.to_string());
        s.in_sync = r.in_sync.iter().map(ToString::to_string).collect();
        if primary {
            let now = Instant::now();
            let left = self.lease.lock().as_ref().map_or(0, |l| l.remaining(now).as_millis());
            s.lease_remaining_millis = Some(u64::try_from(left).unwrap_or(u64::MAX));
        }
        s.failover_error = self.last_error.lock().clone();
    }

    /// Installs a renewed lease: synchronous writes wait for its in-sync set and the
    /// replicas asked to join.
    fn install_lease(&self, p: &PrimaryState, lease: Lease) {
        let mut waited: BTreeSet<String> = lease.in_sync.iter().map(ToString::to_string).collect();
        waited.extend(self.joining.lock().iter().cloned());
        *self.lease.lock() = Some(lease);
        p.set_waited(waited);
    }

    fn renew(&self, p: &PrimaryState, epoch: Epoch) -> Result<()> {
        let lease = self.call("renew the lease", self.policy.renew_lease(&self.me, epoch))?;
        self.install_lease(p, lease);
        Ok(())
    }
}

/// Runs `fut` to completion on `rt`, at most `limit`. From inside another async
/// runtime (where blocking on one is refused) it runs on a helper thread.
fn block_on<T: Send>(
    rt: &tokio::runtime::Runtime,
    limit: Duration,
    what: &str,
    fut: impl Future<Output = strata_core::Result<T>> + Send,
) -> Result<T> {
    let run = || rt.block_on(async { tokio::time::timeout(limit, fut).await });
    let out = if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join())
            .map_err(|_| Error::AuthorityUnavailable { reason: format!("{what}: panicked") })?
    } else {
        run()
    };
    match out {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::AuthorityUnavailable {
            reason: format!("{what}: no answer within {limit:?}"),
        }),
    }
}

/// Makes this node's log durable through `claimed` (the last sequence a promotion of
/// this node is about to say its log holds) before the promotion is committed, and
/// returns the last sequence the promotion may claim.
///
/// Why: the record's first sequence says where the new epoch starts, and a restarted
/// node starts the record's epoch only if its log reaches the sequence before it. A
/// promotion that claimed a visible but unsynced tail would, after a power loss, leave
/// a record this node's log cannot honour, and (with no other in-sync member) a
/// cluster without a primary until an operator acts.
///
/// A failed sync commits nothing: its error is returned before any compare-and-set,
/// so the caller notes it and the node stays a replica (the store itself treats a
/// failed log sync as fatal and refuses further writes, see `Db::sync_wal`). After a successful sync everything written before it is durable, so the durable
/// sequence is at least `claimed` when `claimed` was read before this call. Should it
/// still be lower, the lower sequence is returned rather than a refusal: a record's
/// first sequence may lie at or before where the epoch really starts (the new epoch
/// starts after everything the log holds, see `become_primary`), while one after the
/// durable log end is exactly the defect this avoids.
fn durable_through(db: &strata_core::Db, ctl: &Ctl, claimed: SeqNo) -> Result<SeqNo> {
    db.sync_wal().map_err(|e| Error::Refused {
        peer: ctl.me.to_string(),
        reason: format!(
            "not promoting: its log could not be made durable through {claimed} before the \
             promotion is committed: {e}"
        ),
    })?;
    Ok(claimed.min(db.durable_seq()))
}

/// The sequence before `first_seq` (the last one an epoch starting there keeps).
fn before(first_seq: SeqNo) -> SeqNo {
    SeqNo(first_seq.0.saturating_sub(1))
}

/// The newest epoch the node's log holds.
fn newest_epoch(db: &strata_core::Db) -> Epoch {
    db.epoch_history().last().map_or(Epoch::ZERO, |e| e.epoch)
}

/// Takes the role the record gives at start, then runs the failover thread.
pub(crate) fn start(node: &Arc<NodeInner>, ctl: &Arc<Ctl>) -> Result<()> {
    let record = ctl.record();
    let cluster = crate::files::load_cluster(&node.dir)?;
    match cluster {
        Some(c) if c != record.cluster => {
            return Err(Error::ClusterMismatch { ours: c, theirs: record.cluster });
        }
        None if record.primary == ctl.me => crate::files::store_cluster(&node.dir, record.cluster)?,
        _ => {}
    }
    if record.primary == ctl.me {
        let _t = ctl.transition.lock();
        become_primary(node, ctl, &record)?;
    } else {
        crate::replica::start_follower(node)?;
    }
    let thread = {
        let (node, ctl) = (Arc::clone(node), Arc::clone(ctl));
        std::thread::Builder::new()
            .name("strata-failover".into())
            .spawn(move || run(&node, &ctl))
            .map_err(|e| Error::io("spawn", "failover thread", e))?
    };
    *node.failover_thread.lock() = Some(thread);
    Ok(())
}

fn run(node: &Arc<NodeInner>, ctl: &Ctl) {
    while !node.stopped() {
        let started = Instant::now();
        if let Err(e) = tick(node, ctl)
            && !node.stopped()
        {
            ctl.note(&e);
        }
        let (heartbeat, grace) = {
            let r = ctl.record.lock();
            (r.lease.heartbeat, r.lease.grace)
        };
        // A replica whose primary falls silent acts the moment the silence reaches the
        // grace, not at the next heartbeat tick (up to a heartbeat later): detection is
        // grace plus the promotion, not grace plus up to one heartbeat.
        let replica = match &*node.role.lock() {
            RoleState::Replica(r) => Some(Arc::clone(r)),
            RoleState::Primary(_) => None,
        };
        let silent_at_tick = replica.as_ref().is_some_and(|r| r.primary_silent_for() >= grace);
        while started.elapsed() < heartbeat && !node.stopped() {
            if !silent_at_tick && replica.as_ref().is_some_and(|r| r.primary_silent_for() >= grace)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5).min(heartbeat));
        }
    }
}

fn tick(node: &Arc<NodeInner>, ctl: &Ctl) -> Result<()> {
    // A node cut off from the authority keeps its last record; as primary its lease
    // runs out below, as replica it cannot commit anything anyway.
    let read = ctl.read_record();
    let record = ctl.record();
    {
        let _t = ctl.transition.lock();
        reconcile(node, ctl, &record)?;
    }
    let role = match &*node.role.lock() {
        RoleState::Primary(p) => Ok(Arc::clone(p)),
        RoleState::Replica(r) => Err(Arc::clone(r)),
    };
    match role {
        Ok(p) => primary_tick(node, ctl, &p),
        Err(r) => {
            read?;
            replica_tick(node, ctl, &r)
        }
    }
}

/// Brings the node's role in line with `record`. Called with `transition` held.
fn reconcile(node: &Arc<NodeInner>, ctl: &Ctl, record: &AuthorityRecord) -> Result<()> {
    let current = match &*node.role.lock() {
        RoleState::Primary(_) => None,
        RoleState::Replica(r) => Some(r.primary.clone()),
    };
    if record.primary == ctl.me {
        match current {
            Some(_) => become_primary(node, ctl, record),
            None => {
                let epoch = ctl.primary_epoch.lock().map(|(e, _, _)| e);
                if epoch.is_some_and(|e| e < record.epoch) {
                    // Promoted again while primary (an operator): write in the new epoch.
                    *ctl.lease.lock() = None;
                    *ctl.primary_epoch.lock() = None;
                    let me = node.local.to_string();
                    node.db()?.demote(me.clone());
                    let old = std::mem::replace(
                        &mut *node.role.lock(),
                        RoleState::Replica(Arc::new(ReplicaState::new(me))),
                    );
                    if let RoleState::Primary(p) = old {
                        p.wake_all();
                    }
                    become_primary(node, ctl, record)?;
                }
                Ok(())
            }
        }
    } else {
        let addr = ctl.addr_of(&record.primary)?;
        match current {
            None => step_down(node, ctl, addr),
            Some(a) if a != addr => follow(node, addr),
            Some(_) => Ok(()),
        }
    }
}

/// Makes this node the primary the record names. A store that already wrote in the
/// record's epoch takes the next one through the authority first.
fn become_primary(node: &Arc<NodeInner>, ctl: &Ctl, record: &AuthorityRecord) -> Result<()> {
    let db = node.db()?;
    let replica = match &*node.role.lock() {
        RoleState::Replica(r) => Some(Arc::clone(r)),
        RoleState::Primary(_) => None,
    };
    // Nothing arrives from the old primary from here on: what the log holds now is
    // what the new epoch continues.
    if let Some(r) = &replica {
        r.stop_following();
    }
    let resume_following = |e: Error| -> Error {
        if let Some(r) = &replica
            && let Err(again) = follow(node, r.primary.clone())
        {
            ctl.note(&again);
        }
        e
    };
    let newest = newest_epoch(&db);
    if newest > record.epoch {
        return Err(resume_following(Error::Refused {
            peer: ctl.me.to_string(),
            reason: format!(
                "this store holds epoch {newest}, which the authority (at {}) never granted",
                record.epoch
            ),
        }));
    }
    let record = if newest == record.epoch {
        // This store already wrote in the record's epoch (it is the primary, restarted,
        // or a new cluster's first primary at epoch 0): a new epoch, through the
        // authority.
        let epoch = record.epoch.checked_next().ok_or_else(|| {
            Error::Store(strata_core::Error::InvalidArgument("epochs are exhausted".into()))
        })?;
        // The epoch starts after what this log holds durably, not merely visibly.
        let last = durable_through(&db, ctl, db.visible_seq()).map_err(resume_following)?;
        let change = Change::Promote { node: ctl.me.clone(), epoch, first_seq: last.next() };
        ctl.cas(record.version, change).map_err(resume_following)?
    } else {
        record.clone()
    };
    let keep = before(record.epoch_first_seq);
    if db.visible_seq() < keep {
        return Err(resume_following(Error::Refused {
            peer: ctl.me.to_string(),
            reason: format!(
                "the authority makes this node primary at epoch {} from sequence {}, but its \
                 log ends at {}",
                record.epoch,
                record.epoch_first_seq,
                db.visible_seq()
            ),
        }));
    }
    if crate::files::load_cluster(&node.dir)?.is_none() {
        crate::files::store_cluster(&node.dir, record.cluster)?;
    }
    // The new epoch starts after everything this log holds (at or after the record's
    // first sequence): batches of the old epoch it holds beyond that are history the
    // old primary wrote, kept, and may have been acknowledged with this node's ack.
    db.promote(Some(record.epoch)).map_err(|e| resume_following(e.into()))?;
    let primary = Arc::new(PrimaryState::new(&node.dir, &node.config)?);
    let now = Instant::now();
    *ctl.lease.lock() = None;
    ctl.joining.lock().clear();
    *ctl.primary_epoch.lock() = Some((record.epoch, now, now + record.lease.lease));
    *node.role.lock() = RoleState::Primary(Arc::clone(&primary));
    tracing::info!(node = %ctl.me, epoch = %record.epoch, last = %db.visible_seq(), "primary by the authority");
    if let Err(e) = ctl.renew(&primary, record.epoch) {
        ctl.note(&e);
    }
    Ok(())
}

/// Stops acknowledging and follows the primary at `addr`.
fn step_down(node: &Arc<NodeInner>, ctl: &Ctl, addr: String) -> Result<()> {
    *ctl.lease.lock() = None;
    *ctl.primary_epoch.lock() = None;
    ctl.joining.lock().clear();
    let db = node.db()?;
    db.demote(addr.clone());
    let old = std::mem::replace(
        &mut *node.role.lock(),
        RoleState::Replica(Arc::new(ReplicaState::new(addr.clone()))),
    );
    if let RoleState::Primary(p) = old {
        p.wake_all();
    }
    tracing::warn!(node = %ctl.me, primary = %addr, "stepped down: following the authority's primary");
    crate::replica::start_follower(node)
}

/// Follows the primary at `addr` instead of the current one.
fn follow(node: &Arc<NodeInner>, addr: String) -> Result<()> {
    let old = std::mem::replace(
        &mut *node.role.lock(),
        RoleState::Replica(Arc::new(ReplicaState::new(addr.clone()))),
    );
    if let RoleState::Replica(r) = old {
        r.stop_following();
    }
    node.db()?.set_primary(addr.clone());
    tracing::info!(primary = %addr, "following the authority's new primary");
    crate::replica::start_follower(node)
}

fn primary_tick(node: &Arc<NodeInner>, ctl: &Ctl, p: &Arc<PrimaryState>) -> Result<()> {
    let Some((epoch, since, _)) = *ctl.primary_epoch.lock() else { return Ok(()) };
    match ctl.renew(p, epoch) {
        Ok(()) => {}
        Err(Error::Store(strata_core::Error::Fenced { primary, current, .. })) => {
            tracing::warn!(node = %ctl.me, %epoch, %current, new_primary = %primary, "fenced");
            *ctl.lease.lock() = None;
            p.nudge();
            let record = ctl.read_record()?;
            let _t = ctl.transition.lock();
            return reconcile(node, ctl, &record);
        }
        Err(e) => {
            p.nudge();
            return Err(e);
        }
    }
    let record = ctl.record();
    let db = node.db()?;
    let last = db.visible_seq();
    let peers = p.peers();
    // The view from here: this node, and each replica as its acknowledgements tell.
    let mut view = ClusterView::new().with(
        ctl.me.clone(),
        NodeReport {
            epoch,
            last_seq: last,
            durable_seq: db.durable_seq(),
            silent_for: Duration::ZERO,
        },
    );
    for m in &record.in_sync {
        let peer = peers.iter().find(|v| v.name == m.as_str());
        let heard = peer.and_then(|v| v.heard_at).map_or(since, |h| h.max(since));
        let acked = SeqNo(peer.map_or(0, |v| v.acked));
        view = view.with(
            m.clone(),
            NodeReport { epoch, last_seq: acked, durable_seq: acked, silent_for: heard.elapsed() },
        );
    }
    if let Decision::ShrinkInSync { node: gone, .. } = ctl.policy.decide(&record, &view) {
        let change = Change::ShrinkInSync { node: gone.clone(), epoch };
        tracing::warn!(node = %ctl.me, replica = %gone, "in-sync member silent past the grace: removing it");
        ctl.cas(record.version, change)?;
        ctl.renew(p, epoch)?;
        return Ok(());
    }
    // Caught-up replicas join: waited for first, then committed.
    let join_lag = node.config.join_lag;
    let grace = record.lease.grace;
    for v in peers {
        let id = NodeId::new(v.name.clone());
        if record.in_sync.contains(&id) || id == ctl.me {
            ctl.joining.lock().remove(&v.name);
            continue;
        }
        let fresh = v.heard_at.is_some_and(|h| h.elapsed() < grace);
        if !v.connected || !fresh || v.acked.saturating_add(join_lag) < last.0 {
            ctl.joining.lock().remove(&v.name);
            continue;
        }
        ctl.joining.lock().insert(v.name.clone());
        wait_for_joining(ctl, p);
        let record = ctl.record();
        match ctl.cas(record.version, Change::JoinInSync { node: id, epoch }) {
            Ok(_) => {
                tracing::info!(replica = %v.name, "replica caught up and joined the in-sync set");
                ctl.renew(p, epoch)?;
            }
            Err(e) => ctl.note(&e),
        }
    }
    Ok(())
}

/// Synchronous writes wait, from now on, for the lease's in-sync set and the replicas
/// this primary asked to join.
///
/// The lease is copied out and its lock released before `set_waited` takes the
/// writers' lock: a writer holds that lock while it checks the lease (the gate of
/// `wait_in_sync`), so holding the lease here while waiting for it deadlocks this
/// thread and every writer.
fn wait_for_joining(ctl: &Ctl, p: &PrimaryState) {
    let lease = ctl.lease.lock().clone();
    if let Some(l) = lease {
        let mut waited: BTreeSet<String> = l.in_sync.iter().map(ToString::to_string).collect();
        waited.extend(ctl.joining.lock().iter().cloned());
        p.set_waited(waited);
    }
}

/// This node's report.
fn own_report(node: &NodeInner) -> Result<NodeReport> {
    let db = node.db()?;
    Ok(NodeReport {
        epoch: newest_epoch(&db),
        last_seq: db.visible_seq(),
        durable_seq: db.durable_seq(),
        silent_for: Duration::ZERO,
    })
}

/// What this node sees of the cluster now: itself, and every peer that answers a
/// status request within the timeout.
fn gather_view(node: &NodeInner, ctl: &Ctl) -> Result<ClusterView> {
    let mut view = ClusterView::new().with(ctl.me.clone(), own_report(node)?);
    for (id, addr) in &ctl.peers {
        if *id == ctl.me {
            continue;
        }
        let Ok(text) = crate::node::admin_request(addr, AdminRequest::Status, ctl.status_timeout)
        else {
            continue;
        };
        let Ok(s) = serde_json::from_str::<Status>(&text) else { continue };
        view = view.with(
            id.clone(),
            NodeReport {
                epoch: Epoch(s.epoch),
                last_seq: SeqNo(s.last_seq),
                durable_seq: SeqNo(s.durable_seq),
                silent_for: Duration::ZERO,
            },
        );
    }
    Ok(view)
}

fn replica_tick(node: &Arc<NodeInner>, ctl: &Ctl, r: &ReplicaState) -> Result<()> {
    let record = ctl.record();
    if r.primary_silent_for() < record.lease.grace {
        return Ok(());
    }
    let view = gather_view(node, ctl)?;
    match ctl.policy.decide(&record, &view) {
        Decision::Promote { node: chosen, epoch, first_seq } => {
            let first_seq = if chosen == ctl.me {
                // This node is the candidate: what it claims is made durable first.
                durable_through(&node.db()?, ctl, before(first_seq))?.next()
            } else {
                // Another node's log cannot be synced from here: claim no more than it
                // reported durable, so that a power loss of the candidate right after
                // the commit leaves a record its log still reaches.
                view.reports.get(&chosen).map_or(first_seq, |r| first_seq.min(r.durable_seq.next()))
            };
            tracing::warn!(node = %ctl.me, primary = %record.primary, %chosen, %epoch,
                "primary silent past the grace: promoting");
            let change = Change::Promote { node: chosen, epoch, first_seq };
            match ctl.cas(record.version, change) {
                Ok(next) => {
                    let _t = ctl.transition.lock();
                    reconcile(node, ctl, &next)
                }
                // Another node committed first (or the rules refused): the next read
                // of the record says what happened.
                Err(e) => Err(e),
            }
        }
        Decision::Unavailable { reason } => {
            Err(Error::Refused { peer: ctl.me.to_string(), reason })
        }
        Decision::Nothing | Decision::ShrinkInSync { .. } => Ok(()),
    }
}

/// An operator's promotion of this node: a `Promote` of an in-sync member through the
/// authority.
pub(crate) fn operator_promote(node: &Arc<NodeInner>, ctl: &Ctl) -> Result<Epoch> {
    let record = ctl.read_record()?;
    if record.primary == ctl.me {
        return Err(Error::Refused {
            peer: ctl.me.to_string(),
            reason: "this node is already the primary".into(),
        });
    }
    if !record.in_sync.contains(&ctl.me) {
        return Err(Error::Store(strata_core::Error::NotEligible {
            node: ctl.me.clone(),
            reason: format!(
                "it is not in the in-sync set {:?}, so it may lack acknowledged writes; a \
                 forced promotion (Node::force_promote) reports what may be lost",
                record.in_sync
            ),
        }));
    }
    let _t = ctl.transition.lock();
    let epoch = record.epoch.checked_next().ok_or_else(|| {
        Error::Store(strata_core::Error::InvalidArgument("epochs are exhausted".into()))
    })?;
    let db = node.db()?;
    // The epoch starts after what this log holds durably, not merely visibly.
    let last = durable_through(&db, ctl, db.visible_seq())?;
    let next = ctl.cas(
        record.version,
        Change::Promote { node: ctl.me.clone(), epoch, first_seq: last.next() },
    )?;
    reconcile(node, ctl, &next)?;
    Ok(next.epoch)
}

/// An operator's forced promotion of this node, in sync or not: commits
/// [`plan_forced_promotion`]'s change and returns what it may have lost.
pub(crate) fn force_promote(node: &Arc<NodeInner>, ctl: &Ctl) -> Result<(Epoch, PossibleLoss)> {
    let record = ctl.read_record()?;
    if record.primary == ctl.me {
        return Err(Error::Refused {
            peer: ctl.me.to_string(),
            reason: "this node is already the primary".into(),
        });
    }
    let _t = ctl.transition.lock();
    let view = gather_view(node, ctl)?;
    let (mut change, loss) = plan_forced_promotion(&record, &view, &ctl.me)?;
    // The plan starts the epoch after this node's reported (visible) last sequence:
    // that much is made durable before the change is committed.
    if let Change::ForcePromote { first_seq, .. } = &mut change {
        *first_seq = durable_through(&node.db()?, ctl, before(*first_seq))?.next();
    }
    tracing::warn!(node = %ctl.me, %loss, "forced promotion");
    let next = ctl.cas(record.version, change)?;
    reconcile(node, ctl, &next)?;
    Ok((next.epoch, loss))
}

/// An operator's removal of `replica` from the in-sync set, through the authority
/// (on the primary, in its epoch).
pub(crate) fn remove_replica(p: &PrimaryState, ctl: &Ctl, replica: &str) -> Result<()> {
    let Some((epoch, _, _)) = *ctl.primary_epoch.lock() else {
        return Err(Error::Refused {
            peer: ctl.me.to_string(),
            reason: "remove-replica goes to the primary".into(),
        });
    };
    let record = ctl.read_record()?;
    ctl.cas(record.version, Change::ShrinkInSync { node: NodeId::new(replica), epoch })?;
    ctl.renew(p, epoch)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use strata_core::LeaseSettings;

    use super::*;
    use crate::node::{NodeConfig, RoleConfig};

    /// An authority that only holds a record (these tests never change it), and whose
    /// first `fails` reads fail as a raft authority's do when its leader dies during
    /// the call.
    #[derive(Debug)]
    struct Flaky {
        record: AuthorityRecord,
        fails: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl FailoverPolicy for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn decide(&self, _: &AuthorityRecord, _: &ClusterView) -> Decision {
            Decision::Nothing
        }
        async fn record(&self) -> strata_core::Result<AuthorityRecord> {
            use std::sync::atomic::Ordering;
            let left = self.fails.load(Ordering::SeqCst);
            if left > 0 {
                self.fails.store(left - 1, Ordering::SeqCst);
                return Err(strata_core::Error::Transport {
                    transport: "failover=flaky",
                    topic: "authority".into(),
                    reason: "reading the answer from the leader: connection closed".into(),
                });
            }
            Ok(self.record.clone())
        }
        async fn compare_and_set(&self, _: u64, _: Change) -> strata_core::Result<AuthorityRecord> {
            Ok(self.record.clone())
        }
        async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> strata_core::Result<Lease> {
            self.record.grant_lease(node, epoch, Instant::now())
        }
    }

    /// The record these tests start from: `n1` primary in epoch 1, short lease settings.
    fn test_record() -> AuthorityRecord {
        let settings = LeaseSettings::new(
            Duration::from_millis(40),
            Duration::from_millis(250),
            Duration::from_millis(450),
        )
        .expect("settings");
        AuthorityRecord::initial(7, "n1", Epoch(1), SeqNo(1), settings)
    }

    /// Found by the multi-process fault rounds (`cli/tests/cluster_rounds.rs`, a double
    /// failover): a node restarted just before the raft leader was killed asked the
    /// leader for the record, got "connection closed", and `strata serve` exited
    /// instead of asking again once the group had a new leader.
    #[test]
    fn a_starting_node_retries_a_failed_first_read_of_the_record() {
        let record = test_record();
        let flaky = |fails| -> Arc<dyn FailoverPolicy> {
            Arc::new(Flaky {
                record: record.clone(),
                fails: std::sync::atomic::AtomicU32::new(fails),
            })
        };
        let ctl = Ctl::new(&FailoverConfig::new(flaky(3), BTreeMap::new()), "n2")
            .expect("the record is read once the authority answers");
        assert_eq!(ctl.record(), record);
        // An authority that never answers still fails the start, after the deadline.
        let started = Instant::now();
        let err = Ctl::new(&FailoverConfig::new(flaky(u32::MAX), BTreeMap::new()), "n2")
            .err()
            .expect("never answers");
        assert!(err.to_string().contains("connection closed"), "{err}");
        assert!(started.elapsed() >= FIRST_READ_WITHIN - FIRST_READ_RETRY * 2);
    }

    /// Found by the failover fault rounds (a replica rejoining the in-sync set while
    /// clients wrote hung the primary for good). A synchronous writer checks the lease
    /// while it holds the lock of the replicas it waits for (`wait_in_sync` calls its
    /// gate, `Ctl::lease_ok`, under that lock). Updating that set for a joining replica
    /// took the locks the other way round — the lease's guard lived on through the
    /// `if let` body that called `set_waited` — so the failover thread and every writer
    /// waited for each other forever. The update must not hold the lease while it
    /// waits for the writers.
    #[test]
    fn updating_the_waited_set_never_holds_the_lease_while_a_writer_holds_its_lock() {
        let record = test_record();
        let policy: Arc<dyn FailoverPolicy> =
            Arc::new(Flaky { record: record.clone(), fails: std::sync::atomic::AtomicU32::new(0) });
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let mut config = NodeConfig::new("n1", addr, RoleConfig::Primary);
        config.failover = Some(FailoverConfig::new(policy, BTreeMap::new()));
        let ctl =
            Arc::new(Ctl::new(config.failover.as_ref().expect("failover"), "n1").expect("ctl"));
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Arc::new(PrimaryState::new(dir.path(), &config).expect("primary state"));
        let lease =
            record.grant_lease(&NodeId::new("n1"), Epoch(1), Instant::now()).expect("lease");
        *ctl.lease.lock() = Some(lease);
        ctl.joining.lock().insert("n2".into());

        p.with_writers_locked(|| {
            let updater = {
                let (ctl, p) = (Arc::clone(&ctl), Arc::clone(&p));
                std::thread::spawn(move || wait_for_joining(&ctl, &p))
            };
            // The updater now waits for the writers' lock; a writer checking its lease
            // meanwhile must get the lease's lock.
            for _ in 0..20 {
                let got = ctl.lease.try_lock_for(Duration::from_millis(500)).is_some();
                assert!(got, "the failover thread holds the lease while it waits for the writers");
                std::thread::sleep(Duration::from_millis(5));
            }
            updater
        })
        .join()
        .expect("the updater finishes once the writers let go");
    }
}
