//! The primary's side: one session per replica (plan, shipping, acknowledgements) and
//! the in-sync set that synchronous writes wait for.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use strata_core::{Epoch, HistoryCheck, LogBound, SeqNo};

use crate::error::{Error, Result};
use crate::node::{NodeConfig, NodeInner};
use crate::status::{ReplicaStatus, Status};
use crate::wire::{self, Control, Hello, Msg, Plan};

#[derive(Clone, Debug, Default)]
struct Peer {
    addr: String,
    connected: bool,
    acked: u64,
    /// When the replica last connected or acknowledged (`None`: never since this
    /// primary started).
    heard_at: Option<Instant>,
}

/// What the primary knows of one replica, for the failover thread.
#[derive(Clone, Debug)]
pub(crate) struct PeerView {
    pub name: String,
    pub connected: bool,
    pub acked: u64,
    pub heard_at: Option<Instant>,
}

#[derive(Default)]
struct Sets {
    peers: BTreeMap<String, Peer>,
    /// The replicas synchronous writes wait for. Without an authority it is the
    /// in-sync set itself (kept in [`crate::files::IN_SYNC_FILE`]); with one it is the
    /// in-sync set of the lease the primary holds plus the replicas it asked the
    /// authority to let join (set by the failover thread, [`PrimaryState::set_waited`]).
    in_sync: BTreeSet<String>,
}

pub(crate) struct PrimaryState {
    sets: Mutex<Sets>,
    acked: Condvar,
    min_in_sync: usize,
    join_lag: u64,
    pub cut_off: AtomicU64,
    pub bootstraps: AtomicU64,
    pub bootstraps_resumed: AtomicU64,
    pub holds: crate::bootstrap::Holds,
    stop: AtomicBool,
    /// The in-sync set belongs to an authority: acknowledgements never change it here.
    authority: bool,
}

impl PrimaryState {
    pub fn new(dir: &Path, config: &NodeConfig) -> Result<Self> {
        let authority = config.failover.is_some();
        let in_sync = if authority { BTreeSet::new() } else { crate::files::load_in_sync(dir)? };
        Ok(Self {
            sets: Mutex::new(Sets { peers: BTreeMap::new(), in_sync }),
            acked: Condvar::new(),
            min_in_sync: config.min_in_sync,
            join_lag: config.join_lag,
            cut_off: AtomicU64::new(0),
            bootstraps: AtomicU64::new(0),
            bootstraps_resumed: AtomicU64::new(0),
            holds: crate::bootstrap::Holds::default(),
            stop: AtomicBool::new(false),
            authority,
        })
    }

    /// With an authority: the replicas synchronous writes wait for from now on.
    pub fn set_waited(&self, set: BTreeSet<String>) {
        let mut sets = self.sets.lock();
        if sets.in_sync != set {
            tracing::info!(waited = ?set, "synchronous writes wait for a new set of replicas");
            sets.in_sync = set;
        }
        self.acked.notify_all();
    }

    /// Runs `f` holding the lock synchronous writers hold while they check their lease
    /// (for tests of the lock order).
    #[cfg(test)]
    pub(crate) fn with_writers_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _writers = self.sets.lock();
        f()
    }

    /// Wakes writers waiting for acknowledgements so they re-check their lease.
    pub fn nudge(&self) {
        let _g = self.sets.lock();
        self.acked.notify_all();
    }

    /// Every replica this primary has heard from.
    pub fn peers(&self) -> Vec<PeerView> {
        let sets = self.sets.lock();
        sets.peers
            .iter()
            .map(|(name, p)| PeerView {
                name: name.clone(),
                connected: p.connected,
                acked: p.acked,
                heard_at: p.heard_at,
            })
            .collect()
    }

    /// Gives a store without a cluster id a new one.
    pub fn ensure_cluster(&self, dir: &Path) -> Result<()> {
        if crate::files::load_cluster(dir)?.is_none() {
            let id = rand::random::<u64>().max(1);
            crate::files::store_cluster(dir, id)?;
            tracing::info!(cluster = format!("{id:016x}"), "new replication cluster id");
        }
        Ok(())
    }

    pub fn wake_all(&self) {
        self.stop.store(true, Ordering::Release);
        let _g = self.sets.lock();
        self.acked.notify_all();
    }

    /// Returns once every member of the in-sync set (at least `min_in_sync` of them)
    /// has `seq` durable. `gate` is asked before every wait and its error ends the wait
    /// (a lapsed lease).
    pub fn wait_in_sync(
        &self,
        seq: SeqNo,
        node: &NodeInner,
        gate: &dyn Fn() -> Result<()>,
    ) -> Result<()> {
        let deadline = node.config.sync_timeout.map(|t| Instant::now() + t);
        let mut sets = self.sets.lock();
        loop {
            gate()?;
            let missing: Vec<&String> = sets
                .in_sync
                .iter()
                .filter(|m| sets.peers.get(*m).is_none_or(|p| p.acked < seq.0))
                .collect();
            if missing.is_empty() && sets.in_sync.len() >= self.min_in_sync {
                return Ok(());
            }
            if self.stop.load(Ordering::Acquire) || node.stopped() {
                return Err(Error::Stopped);
            }
            let reason = if missing.is_empty() {
                format!(
                    "the in-sync set holds {} replicas, min_in_sync is {}",
                    sets.in_sync.len(),
                    self.min_in_sync
                )
            } else {
                format!("waiting for {missing:?}")
            };
            match deadline {
                Some(d) => {
                    if self.acked.wait_until(&mut sets, d).timed_out() {
                        return Err(Error::NotReplicated { seq, reason });
                    }
                }
                None => {
                    self.acked.wait_for(&mut sets, Duration::from_millis(50));
                }
            }
        }
    }

    pub fn remove_replica(&self, dir: &Path, replica: &str) -> Result<()> {
        if self.authority {
            return Err(Error::Refused {
                peer: replica.to_owned(),
                reason: "the in-sync set belongs to the failover authority".into(),
            });
        }
        let mut sets = self.sets.lock();
        if !sets.in_sync.contains(replica) {
            return Err(Error::Refused {
                peer: replica.to_owned(),
                reason: format!("{replica} is not in the in-sync set {:?}", sets.in_sync),
            });
        }
        let mut next = sets.in_sync.clone();
        next.remove(replica);
        crate::files::store_in_sync(dir, &next)?;
        sets.in_sync = next;
        tracing::warn!(%replica, "replica removed from the in-sync set by an operator");
        self.acked.notify_all();
        Ok(())
    }

    pub fn fill_status(&self, s: &mut Status) {
        let sets = self.sets.lock();
        s.in_sync = sets.in_sync.iter().cloned().collect();
        s.replicas = sets
            .peers
            .iter()
            .map(|(name, p)| ReplicaStatus {
                name: name.clone(),
                addr: p.addr.clone(),
                connected: p.connected,
                in_sync: sets.in_sync.contains(name),
                acked: p.acked,
                lag_seqs: s.last_seq.saturating_sub(p.acked),
            })
            .collect();
        for m in &sets.in_sync {
            if !sets.peers.contains_key(m) {
                s.replicas.push(ReplicaStatus {
                    name: m.clone(),
                    in_sync: true,
                    ..ReplicaStatus::default()
                });
            }
        }
        s.cut_off = self.cut_off.load(Ordering::Relaxed);
        s.bootstraps = self.bootstraps.load(Ordering::Relaxed);
        s.bootstraps_resumed = self.bootstraps_resumed.load(Ordering::Relaxed);
    }

    /// One replica's connection, from its `Hello` to its end.
    pub fn serve_replica(
        self: &Arc<Self>,
        node: &Arc<NodeInner>,
        hello: Hello,
        reader: BufReader<TcpStream>,
        writer: TcpStream,
        peer: &str,
    ) -> Result<()> {
        let mut out = BufWriter::with_capacity(256 * 1024, writer);
        let refuse = |out: &mut BufWriter<TcpStream>, reason: String| -> Error {
            let _ = wire::send(out, peer, Control::Refuse { reason: reason.clone() });
            Error::Refused { peer: peer.to_owned(), reason }
        };
        if hello.version != wire::PROTOCOL_VERSION {
            return Err(refuse(
                &mut out,
                format!(
                    "protocol version {} is not supported (this primary speaks {})",
                    hello.version,
                    wire::PROTOCOL_VERSION
                ),
            ));
        }
        let cluster = crate::files::load_cluster(&node.dir)?.unwrap_or(0);
        if hello.cluster != 0 && hello.cluster != cluster {
            return Err(refuse(
                &mut out,
                Error::ClusterMismatch { ours: hello.cluster, theirs: cluster }.to_string(),
            ));
        }
        if hello.cluster == 0 && hello.last_seq > 0 && hello.resume.is_none() {
            return Err(refuse(
                &mut out,
                format!(
                    "the replica's store holds sequences up to {} but no cluster id: it is \
                     another store, not a replica of this cluster; give it an empty directory",
                    hello.last_seq
                ),
            ));
        }
        let db = node.db()?;
        if let Some(resume) = &hello.resume
            && let Some(hold) = self.holds.get(resume.id)
        {
            self.bootstraps_resumed.fetch_add(1, Ordering::Relaxed);
            return crate::bootstrap::send(node, self, &hold, resume, cluster, &mut out, peer);
        }
        if hello.rebootstrap {
            // The replica cannot take back a diverged tail it already flushed: a fresh
            // checkpoint replaces its store.
            tracing::warn!(replica = %hello.node, %peer, last = hello.last_seq,
                "the replica asks for a checkpoint: its diverged tail is already flushed");
            let hold = self.holds.create(&db)?;
            let resume = wire::Resume { id: hold.id, have: Vec::new() };
            return crate::bootstrap::send(node, self, &hold, &resume, cluster, &mut out, peer);
        }
        let last = SeqNo(hello.last_seq);
        let plan_from = if hello.last_seq == 0 {
            Some(SeqNo(1))
        } else {
            match db.check_history(Epoch(hello.epoch), last) {
                HistoryCheck::Consistent => Some(last.next()),
                HistoryCheck::Rewritten { from, .. } => Some(from),
                // A replica past this primary's log in its own epoch cannot happen (only
                // this primary writes that epoch); should it, its extra tail goes.
                HistoryCheck::Behind { log_last } => Some(log_last.next()),
                HistoryCheck::UnknownEpoch { store_epoch } => {
                    return Err(refuse(
                        &mut out,
                        format!(
                            "the replica holds epoch {} but this primary's newest is \
                             {store_epoch}: it holds history this primary never had; \
                             re-bootstrap it from an empty directory",
                            hello.epoch
                        ),
                    ));
                }
            }
        };
        let from = plan_from.unwrap_or(SeqNo(1));
        // Batches as soon as they are in the log: a `Sync` write (every write of an async
        // primary) becomes visible only after its fdatasync, so a visible-bound reader
        // made each batch wait for the primary's disk before it left for the replicas.
        // A batch that a crash then takes back from the primary is truncated on the
        // replica when it reconnects (the epochs tell), as in sync mode.
        let log = match db.read_log_from_with(from, LogBound::Written) {
            Ok(r) => Some(r),
            Err(strata_core::Error::SequenceUnavailable { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(mut log) = log else {
            // The log no longer holds the position: a checkpoint, then the log.
            let hold = self.holds.create(&db)?;
            let resume = wire::Resume { id: hold.id, have: Vec::new() };
            return crate::bootstrap::send(node, self, &hold, &resume, cluster, &mut out, peer);
        };
        let plan = if from <= last {
            Plan::Truncate { after: from.0 - 1 }
        } else {
            Plan::Follow { from: from.0 }
        };
        let epoch = db.epoch().0;
        wire::send(&mut out, peer, Control::Welcome { cluster, epoch, plan })?;
        // What the replica holds durably: its log up to the plan's start, as far as it
        // has synced it.
        let start_ack = (from.0 - 1).min(hello.durable);
        {
            let mut sets = self.sets.lock();
            let p = sets.peers.entry(hello.node.clone()).or_default();
            p.addr = peer.to_owned();
            p.connected = true;
            p.acked = start_ack;
            p.heard_at = Some(Instant::now());
        }
        tracing::info!(replica = %hello.node, %peer, from = %from, "replica following");
        let done = Arc::new(AtomicBool::new(false));
        let acks = {
            let (done, name, peer) = (Arc::clone(&done), hello.node.clone(), peer.to_owned());
            let node = Arc::clone(node);
            let state = Arc::clone(self);
            std::thread::Builder::new()
                .name("strata-repl-acks".into())
                .spawn(move || {
                    let r = read_acks(&state, &node, reader, &name, &peer);
                    if let Err(e) = r {
                        tracing::warn!(replica = %name, %peer, error = %e, "replica acknowledgements ended");
                    }
                    done.store(true, Ordering::Release);
                })
                .map_err(|e| Error::io("spawn", "ack thread", e))?
        };
        let heartbeat = node.config.heartbeat;
        let result = (|| -> Result<()> {
            loop {
                if done.load(Ordering::Acquire)
                    || node.stopped()
                    || self.stop.load(Ordering::Acquire)
                {
                    return Ok(());
                }
                let next = match log.next_batch() {
                    Ok(Some(b)) => Some(b),
                    Ok(None) => {
                        out.flush().map_err(|e| Error::io("write to", peer, e))?;
                        log.wait_next(heartbeat)
                            .map_err(|e| self.cut_off_error(e, &hello.node, peer))?
                    }
                    Err(e) => return Err(self.cut_off_error(e, &hello.node, peer)),
                };
                match next {
                    Some(batch) => wire::write_msg(&mut out, &Msg::Batch(batch))
                        .map_err(|e| Error::io("write to", peer, e))?,
                    None => {
                        let unix_micros = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as u64);
                        let last_seq = db.visible_seq().0;
                        wire::send(&mut out, peer, Control::Heartbeat { last_seq, unix_micros })?;
                    }
                }
            }
        })();
        if let Err(Error::Store(strata_core::Error::SequenceUnavailable { .. })) = &result {
            let _ = wire::send(
                &mut out,
                peer,
                Control::Refuse {
                    reason: "this replica lagged past the primary's WAL retention and is cut \
                             off; reconnect to bootstrap from a checkpoint"
                        .into(),
                },
            );
        }
        let _ = out.get_ref().shutdown(std::net::Shutdown::Both);
        if acks.join().is_err() {
            tracing::error!("ack thread panicked");
        }
        {
            let mut sets = self.sets.lock();
            if let Some(p) = sets.peers.get_mut(&hello.node) {
                p.connected = false;
            }
        }
        result
    }

    fn cut_off_error(&self, e: strata_core::Error, replica: &str, peer: &str) -> Error {
        if matches!(e, strata_core::Error::SequenceUnavailable { .. }) {
            self.cut_off.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%replica, %peer, "replica cut off: it lagged past the WAL retention");
        }
        e.into()
    }

    /// Records an acknowledgement; a caught-up replica joins the in-sync set.
    fn record_ack(&self, node: &NodeInner, name: &str, durable: u64) -> Result<()> {
        let mut sets = self.sets.lock();
        let p = sets.peers.entry(name.to_owned()).or_default();
        p.acked = p.acked.max(durable);
        p.heard_at = Some(Instant::now());
        if !self.authority && !sets.in_sync.contains(name) {
            let last = node.db()?.visible_seq().0;
            if durable.saturating_add(self.join_lag) >= last {
                let mut next = sets.in_sync.clone();
                next.insert(name.to_owned());
                crate::files::store_in_sync(&node.dir, &next)?;
                sets.in_sync = next;
                tracing::info!(replica = %name, "replica caught up and joined the in-sync set");
            }
        }
        self.acked.notify_all();
        Ok(())
    }
}

fn read_acks(
    state: &PrimaryState,
    node: &NodeInner,
    mut reader: BufReader<TcpStream>,
    name: &str,
    peer: &str,
) -> Result<()> {
    // Acknowledgements arrive at least as often as heartbeats are answered; a silent
    // replica is detected by the socket, not by a timer here.
    reader.get_ref().set_read_timeout(None).map_err(|e| Error::io("configure", peer, e))?;
    loop {
        match wire::read_msg(&mut reader, peer)? {
            None => return Ok(()),
            Some(Msg::Control(Control::Ack { durable })) => {
                state.record_ack(node, name, durable)?
            }
            Some(Msg::Control(Control::Refuse { reason })) => {
                return Err(Error::Refused { peer: peer.to_owned(), reason });
            }
            Some(other) => {
                return Err(Error::protocol(peer, format!("expected Ack, got {other:?}")));
            }
        }
    }
}
