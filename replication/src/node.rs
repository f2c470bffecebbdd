//! A replication node: one listener, the role it plays, the operator requests.

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use strata_core::{Db, Durability, Epoch, SeqNo, WriteBatch};

use crate::error::{Error, Result};
use crate::failover::{Ctl, FailoverConfig};
use crate::primary::PrimaryState;
use crate::replica::ReplicaState;
use crate::status::Status;
use crate::wire::{self, AdminRequest, Control, Msg};

/// How long a write to a peer may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// When a primary acknowledges a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Once durable on the primary; replicas follow as fast as they can.
    Async,
    /// Once durable on the primary and on every member of the in-sync set.
    Sync,
}

/// The role a node starts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleConfig {
    /// Takes writes and ships its log.
    Primary,
    /// Follows the primary at this address.
    Replica {
        /// The primary's replication address.
        primary: String,
    },
}

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's name (replicas are known by it in the in-sync set).
    pub name: String,
    /// Where it listens for replicas and operator requests.
    pub listen: SocketAddr,
    /// Primary or replica.
    pub role: RoleConfig,
    /// When a primary acknowledges writes.
    pub mode: Mode,
    /// In sync mode, how many replicas the in-sync set must hold for writes to be
    /// acknowledged.
    pub min_in_sync: usize,
    /// How often an idle primary tells replicas where it is.
    pub heartbeat: Duration,
    /// How long a replica waits before reconnecting.
    pub reconnect: Duration,
    /// In sync mode, how long a write waits for the in-sync set before it fails with
    /// `Error::NotReplicated` (`None`: wait as long as it takes).
    pub sync_timeout: Option<Duration>,
    /// A replica joins the in-sync set once it is at most this many sequences behind.
    pub join_lag: u64,
    /// Automatic, fenced failover through an authority (`None`: the role comes from
    /// `role` and a primary change is an operator's action). With it, `role` is
    /// ignored: the authority record says who is primary ([`crate::failover`]).
    pub failover: Option<FailoverConfig>,
}

impl NodeConfig {
    /// A configuration with defaults: async, `min_in_sync` 1, heartbeats every 100 ms.
    pub fn new(name: impl Into<String>, listen: SocketAddr, role: RoleConfig) -> Self {
        Self {
            name: name.into(),
            listen,
            role,
            mode: Mode::Async,
            min_in_sync: 1,
            heartbeat: Duration::from_millis(100),
            reconnect: Duration::from_millis(200),
            sync_timeout: None,
            join_lag: 0,
            failover: None,
        }
    }
}

/// Opens the node's store: `Some(primary)` as a replica of it, `None` as a primary.
/// Called at start and again after a bootstrap replaced the store's files.
pub type OpenStore = Arc<dyn Fn(Option<String>) -> strata_core::Result<Db> + Send + Sync>;

pub(crate) enum RoleState {
    Primary(Arc<PrimaryState>),
    Replica(Arc<ReplicaState>),
}

pub(crate) struct NodeInner {
    pub config: NodeConfig,
    pub dir: PathBuf,
    pub open: OpenStore,
    /// The store (`None` only while a bootstrap swaps its files).
    pub db: Mutex<Option<Db>>,
    pub role: Mutex<RoleState>,
    pub stop: AtomicBool,
    pub local: SocketAddr,
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connection threads and their sockets: `stop` shuts the sockets down (a thread
    /// blocked reading wakes at once) and joins the threads, so the store is closed —
    /// its LOCK released — by the time `stop` returns.
    pub connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    /// With a failover authority: the node's side of it, and its thread.
    pub failover: Option<Arc<Ctl>>,
    pub failover_thread: Mutex<Option<JoinHandle<()>>>,
}

impl NodeInner {
    pub fn db(&self) -> Result<Db> {
        self.db.lock().clone().ok_or(Error::Stopped)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A running replication node. Dropping it stops it.
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.inner.config.name).finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the store through `open` and starts the node: a primary listens for
    /// replicas; a replica also connects to its primary and follows it.
    pub fn start(config: NodeConfig, dir: impl Into<PathBuf>, open: OpenStore) -> Result<Node> {
        let dir = dir.into();
        crate::replica::recover_install(&dir)?;
        let ctl = match &config.failover {
            Some(f) => Some(Arc::new(Ctl::new(f, &config.name)?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .map_err(|e| Error::io("bind", config.listen.to_string(), e))?;
        let local =
            listener.local_addr().map_err(|e| Error::io("bind", config.listen.to_string(), e))?;
        let replica_of = match (&ctl, &config.role) {
            // With an authority the store opens as a replica (of the record's primary)
            // and becomes primary only at the epoch the authority grants.
            (Some(ctl), _) => {
                let record = ctl.record();
                if record.primary.as_str() == config.name {
                    Some(local.to_string())
                } else {
                    Some(ctl.addr_of(&record.primary)?)
                }
            }
            (None, RoleConfig::Primary) => None,
            (None, RoleConfig::Replica { primary }) => Some(primary.clone()),
        };
        let db = open(replica_of.clone())?;
        let role = match &replica_of {
            None => RoleState::Primary(Arc::new(PrimaryState::new(&dir, &config)?)),
            Some(p) => RoleState::Replica(Arc::new(ReplicaState::new(p.clone()))),
        };
        let inner = Arc::new(NodeInner {
            config,
            dir,
            open,
            db: Mutex::new(Some(db)),
            role: Mutex::new(role),
            stop: AtomicBool::new(false),
            local,
            threads: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            failover: ctl.clone(),
            failover_thread: Mutex::new(None),
        });
        if let RoleState::Primary(p) = &*inner.role.lock() {
            p.ensure_cluster(&inner.dir)?;
        }
        let accept = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("strata-repl-accept".into())
                .spawn(move || accept_loop(&inner, &listener))
                .map_err(|e| Error::io("spawn", "accept thread", e))?
        };
        inner.threads.lock().push(accept);
        let node = Node { inner };
        match &ctl {
            Some(ctl) => crate::failover::start(&node.inner, ctl)?,
            None if replica_of.is_some() => crate::replica::start_follower(&node.inner)?,
            None => {}
        }
        Ok(node)
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The store (reads, snapshots, subscriptions; on a replica at its applied
    /// sequence). `None` only while a bootstrap swaps the store's files.
    pub fn db(&self) -> Option<Db> {
        self.inner.db.lock().clone()
    }

    /// Writes `batch` on a primary and returns its last sequence once the mode's
    /// acknowledgement condition holds. On a replica: `Error::NotPrimary`.
    pub fn write(&self, batch: &WriteBatch) -> Result<SeqNo> {
        let primary = match &*self.inner.role.lock() {
            RoleState::Primary(p) => Arc::clone(p),
            RoleState::Replica(r) => {
                return Err(strata_core::Error::NotPrimary { primary: r.primary.clone() }.into());
            }
        };
        let db = self.inner.db()?;
        let ctl = self.inner.failover.as_deref();
        // With an authority: nothing is written without a lease, and nothing is
        // acknowledged after it ran out.
        if let Some(ctl) = ctl {
            ctl.before_write().map_err(|e| redirect(&self.inner, e))?;
        }
        let seq = match self.inner.config.mode {
            // Refused before anything is written if the node stepped down meanwhile.
            Mode::Async => {
                db.write(batch, Durability::Sync).map_err(|e| redirect(&self.inner, e.into()))?
            }
            Mode::Sync => {
                // Replicas receive the batch as soon as it is written; the local
                // fdatasync runs while they write theirs.
                let seq = db
                    .write(batch, Durability::Buffered)
                    .map_err(|e| redirect(&self.inner, e.into()))?;
                db.sync_wal()?;
                let gate = || ctl.map_or(Ok(()), Ctl::lease_ok);
                primary.wait_in_sync(seq, &self.inner, &gate).map_err(|e| match e {
                    // Written, not acknowledged: the outcome is unknown to the client.
                    Error::Stopped if !self.inner.stopped() => Error::NotReplicated {
                        seq,
                        reason: "this node stepped down from primary while the write \
                                 waited for the in-sync set"
                            .into(),
                    },
                    e => e,
                })?;
                seq
            }
        };
        if let Some(ctl) = ctl {
            ctl.lease_ok()?;
        }
        Ok(seq)
    }

    /// Promotes this node, out of sync or not, through the authority (a
    /// [`Change::ForcePromote`](strata_core::Change::ForcePromote) planned by
    /// [`plan_forced_promotion`](strata_core::failover::plan_forced_promotion)), and
    /// returns the new epoch and what the promotion may have lost. Only with a failover
    /// authority; an operator's last resort when no in-sync member is reachable.
    pub fn force_promote(&self) -> Result<(Epoch, strata_core::PossibleLoss)> {
        force_promote(&self.inner)
    }

    /// The node's state.
    pub fn status(&self) -> Status {
        status(&self.inner)
    }

    /// Removes `replica` from the in-sync set (a primary only; with a failover
    /// authority, through it).
    pub fn remove_replica(&self, replica: &str) -> Result<()> {
        remove_replica(&self.inner, replica)
    }

    /// Promotes a replica to primary at a new epoch (stops following first). With a
    /// failover authority: only an in-sync member, by a committed `Promote` (see
    /// [`force_promote`](Self::force_promote) otherwise).
    pub fn promote(&self) -> Result<Epoch> {
        promote(&self.inner)
    }

    /// Stops the node: closes the listener, the replica's connection and the shipping
    /// threads, and drops the node's handle on the store (which stays open in
    /// [`db`](Self::db) handles already taken).
    pub fn stop(&self) {
        if self.inner.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        // First the failover thread, so that no role change starts after this.
        let failover = self.inner.failover_thread.lock().take();
        if let Some(t) = failover
            && t.join().is_err()
        {
            tracing::error!("the failover thread panicked");
        }
        let replica = match &*self.inner.role.lock() {
            RoleState::Primary(p) => {
                p.wake_all();
                None
            }
            RoleState::Replica(r) => Some(Arc::clone(r)),
        };
        if let Some(r) = replica {
            r.stop_following();
        }
        // Unblock accept().
        let _ = TcpStream::connect_timeout(&self.inner.local, Duration::from_millis(200));
        let threads: Vec<_> = self.inner.threads.lock().drain(..).collect();
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a replication thread panicked");
            }
        }
        // The accept loop has ended: no connection thread starts after this.
        let connections: Vec<_> = self.inner.connections.lock().drain(..).collect();
        for (stream, t) in connections {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            if t.join().is_err() {
                tracing::error!("a replication connection thread panicked");
            }
        }
        // The node's own handle: the store closes once handles taken by callers are
        // gone too.
        self.inner.db.lock().take();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(inner: &Arc<NodeInner>, listener: &TcpListener) {
    for conn in listener.incoming() {
        if inner.stopped() {
            return;
        }
        let Ok(stream) = conn else { continue };
        let Ok(handle) = stream.try_clone() else {
            tracing::error!("cannot keep a handle on a replication connection; dropped");
            continue;
        };
        let conn_inner = Arc::clone(inner);
        let spawned =
            std::thread::Builder::new().name("strata-repl-conn".into()).spawn(move || {
                let peer = stream.peer_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
                if let Err(e) = serve_connection(&conn_inner, stream, &peer) {
                    tracing::warn!(%peer, error = %e, "replication connection dropped");
                }
            });
        match spawned {
            Ok(t) => {
                let mut connections = inner.connections.lock();
                connections.retain(|(_, t)| !t.is_finished());
                connections.push((handle, t));
            }
            Err(e) => tracing::error!(error = %e, "cannot start a connection thread"),
        }
    }
}

fn serve_connection(inner: &Arc<NodeInner>, stream: TcpStream, peer: &str) -> Result<()> {
    stream.set_nodelay(true).map_err(|e| Error::io("configure", peer, e))?;
    // A peer that connects and says nothing does not hold a thread forever.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| Error::io("configure", peer, e))?;
    // A replica that stops reading (paused, its network gone) fails the shipping
    // thread's write instead of holding it (and its WAL pin) forever.
    stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(|e| Error::io("configure", peer, e))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| Error::io("clone", peer, e))?);
    let mut writer = stream;
    let first = wire::read_msg(&mut reader, peer)?;
    match first {
        None => Ok(()),
        Some(Msg::Control(Control::Admin(req))) => {
            let (ok, text) = match answer_admin(inner, &req) {
                Ok(text) => (true, text),
                Err(e) => (false, e.to_string()),
            };
            wire::send(&mut writer, peer, Control::Reply { ok, text })
        }
        Some(Msg::Control(Control::Hello(hello))) => {
            let primary = match &*inner.role.lock() {
                RoleState::Primary(p) => Some(Arc::clone(p)),
                RoleState::Replica(_) => None,
            };
            match primary {
                Some(p) => p.serve_replica(inner, hello, reader, writer, peer),
                None => {
                    let reason = "this node is a replica, not the primary".to_owned();
                    wire::send(&mut writer, peer, Control::Refuse { reason: reason.clone() })?;
                    Err(Error::Refused { peer: peer.to_owned(), reason })
                }
            }
        }
        Some(other) => {
            let reason = format!("expected Hello or an admin request first, got {other:?}");
            let _ = wire::send(&mut writer, peer, Control::Refuse { reason: reason.clone() });
            Err(Error::protocol(peer, reason))
        }
    }
}

fn answer_admin(inner: &Arc<NodeInner>, req: &AdminRequest) -> Result<String> {
    match req {
        AdminRequest::Status => serde_json::to_string_pretty(&status(inner))
            .map_err(|e| Error::protocol("status", e.to_string())),
        AdminRequest::RemoveReplica { node } => {
            remove_replica(inner, node)?;
            Ok(format!("removed {node} from the in-sync set"))
        }
        AdminRequest::Promote => {
            let epoch = promote(inner)?;
            Ok(format!("promoted to primary at epoch {epoch}"))
        }
        AdminRequest::ForcePromote => {
            let (epoch, loss) = force_promote(inner)?;
            Ok(format!("forced promotion to primary at epoch {epoch}; possible loss: {loss}"))
        }
    }
}

fn force_promote(inner: &Arc<NodeInner>) -> Result<(Epoch, strata_core::PossibleLoss)> {
    match &inner.failover {
        Some(ctl) => crate::failover::force_promote(inner, ctl),
        None => Err(Error::Refused {
            peer: inner.config.name.clone(),
            reason: "a forced promotion goes through a failover authority; without one, \
                     promote"
                .into(),
        }),
    }
}

fn status(inner: &Arc<NodeInner>) -> Status {
    let mut s = Status { node: inner.config.name.clone(), ..Status::default() };
    s.cluster = crate::files::load_cluster(&inner.dir).ok().flatten().unwrap_or(0);
    if let Ok(db) = inner.db() {
        s.last_seq = db.visible_seq().0;
        s.durable_seq = db.durable_seq().0;
        s.epoch = db.epoch_history().last().map_or(0, |e| e.epoch.0);
    }
    match &*inner.role.lock() {
        RoleState::Primary(p) => {
            s.role = "primary".into();
            if let Ok(db) = inner.db() {
                s.epoch = s.epoch.max(db.epoch().0);
            }
            s.mode = match inner.config.mode {
                Mode::Sync => "sync".into(),
                Mode::Async => "async".into(),
            };
            s.min_in_sync = inner.config.min_in_sync;
            p.fill_status(&mut s);
            if let Some(ctl) = &inner.failover {
                ctl.fill_status(&mut s, true);
            }
        }
        RoleState::Replica(r) => {
            s.role = "replica".into();
            s.primary = Some(r.primary.clone());
            r.fill_status(&mut s);
            if let Some(ctl) = &inner.failover {
                ctl.fill_status(&mut s, false);
            }
        }
    }
    s
}

/// A write refused before anything was written, because the node stopped being the
/// primary meanwhile, says where the primary is now.
fn redirect(inner: &NodeInner, e: Error) -> Error {
    if matches!(e, Error::Store(strata_core::Error::NotPrimary { .. })) {
        return e;
    }
    match &*inner.role.lock() {
        RoleState::Replica(r) if !inner.stopped() => {
            strata_core::Error::NotPrimary { primary: r.primary.clone() }.into()
        }
        _ => e,
    }
}

fn remove_replica(inner: &Arc<NodeInner>, replica: &str) -> Result<()> {
    let role = match &*inner.role.lock() {
        RoleState::Primary(p) => Some(Arc::clone(p)),
        RoleState::Replica(_) => None,
    };
    match (role, &inner.failover) {
        (Some(p), Some(ctl)) => crate::failover::remove_replica(&p, ctl, replica),
        (Some(p), None) => p.remove_replica(&inner.dir, replica),
        (None, _) => Err(Error::Refused {
            peer: inner.config.name.clone(),
            reason: "remove-replica goes to the primary; this node is a replica".into(),
        }),
    }
}

fn promote(inner: &Arc<NodeInner>) -> Result<Epoch> {
    if let Some(ctl) = &inner.failover {
        return crate::failover::operator_promote(inner, ctl);
    }
    let replica = match &*inner.role.lock() {
        RoleState::Replica(r) => Arc::clone(r),
        RoleState::Primary(_) => {
            return Err(Error::Refused {
                peer: inner.config.name.clone(),
                reason: "this node is already the primary".into(),
            });
        }
    };
    replica.stop_following();
    let db = inner.db()?;
    let epoch = db.promote(None)?;
    let primary = Arc::new(PrimaryState::new(&inner.dir, &inner.config)?);
    primary.ensure_cluster(&inner.dir)?;
    *inner.role.lock() = RoleState::Primary(primary);
    tracing::info!(node = %inner.config.name, %epoch, "promoted to primary");
    Ok(epoch)
}

/// Sends one operator request to the node at `addr` and returns its answer (status as
/// JSON, or a message).
pub fn admin_request(addr: &str, req: AdminRequest, timeout: Duration) -> Result<String> {
    let sock: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| Error::io("resolve", addr, e))?
        .next()
        .ok_or_else(|| Error::protocol(addr, "address resolves to nothing"))?;
    let stream =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| Error::io("connect to", addr, e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| Error::io("configure", addr, e))?;
    let mut writer = stream.try_clone().map_err(|e| Error::io("clone", addr, e))?;
    wire::send(&mut writer, addr, Control::Admin(req))?;
    let mut reader = BufReader::new(stream);
    match wire::read_msg(&mut reader, addr)? {
        Some(Msg::Control(Control::Reply { ok: true, text })) => Ok(text),
        Some(Msg::Control(Control::Reply { ok: false, text })) => {
            Err(Error::Refused { peer: addr.to_owned(), reason: text })
        }
        other => Err(Error::protocol(addr, format!("expected a reply, got {other:?}"))),
    }
}
