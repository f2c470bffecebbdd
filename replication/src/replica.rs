//! The replica's side: connect, say where it stands, follow the plan, apply batches,
//! acknowledge what is durable; receive and install a checkpoint when told to.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::{Durability, SeqNo};

use crate::error::{Error, Result};
use crate::node::{NodeInner, RoleState};
use crate::status::Status;
use crate::wire::{self, Control, Hello, Msg, Plan, Resume};

/// The file in a bootstrap's staging directory that names the checkpoint.
const BOOTSTRAP_ID_FILE: &str = "BOOTSTRAP_ID";
/// A replica that hears nothing from its primary for this long reconnects.
const SILENCE: Duration = Duration::from_secs(5);

pub(crate) struct ReplicaState {
    pub primary: String,
    stop: AtomicBool,
    stream: Mutex<Option<TcpStream>>,
    applied: AtomicU64,
    primary_last: AtomicU64,
    caught_up_at: Mutex<Instant>,
    last_error: Mutex<Option<String>>,
    follower: Mutex<Option<JoinHandle<()>>>,
    /// When the primary was last heard from (its welcome, a batch, a heartbeat); the
    /// start of following counts as hearing from it.
    heard_at: Mutex<Instant>,
    /// The primary planned a truncation of a tail this store has already flushed to
    /// tables: the next connection asks for a checkpoint instead.
    rebootstrap: AtomicBool,
}

impl ReplicaState {
    pub fn new(primary: String) -> Self {
        Self {
            primary,
            stop: AtomicBool::new(false),
            stream: Mutex::new(None),
            applied: AtomicU64::new(0),
            primary_last: AtomicU64::new(0),
            caught_up_at: Mutex::new(Instant::now()),
            last_error: Mutex::new(None),
            follower: Mutex::new(None),
            heard_at: Mutex::new(Instant::now()),
            rebootstrap: AtomicBool::new(false),
        }
    }

    /// How long the primary has been silent.
    pub fn primary_silent_for(&self) -> Duration {
        self.heard_at.lock().elapsed()
    }

    fn heard(&self) {
        *self.heard_at.lock() = Instant::now();
    }

    /// Stops following: closes the connection and waits for the follower thread.
    pub fn stop_following(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(s) = self.stream.lock().take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.follower.lock().take()
            && t.join().is_err()
        {
            tracing::error!("the replica's follower thread panicked");
        }
    }

    pub fn fill_status(&self, s: &mut Status) {
        let primary_last = self.primary_last.load(Ordering::Acquire);
        s.lag_seqs = primary_last.saturating_sub(s.last_seq);
        s.lag_millis =
            if s.lag_seqs == 0 { 0 } else { self.caught_up_at.lock().elapsed().as_millis() as u64 };
        s.last_error = self.last_error.lock().clone();
    }

    fn stopping(&self, node: &NodeInner) -> bool {
        self.stop.load(Ordering::Acquire) || node.stopped()
    }
}

/// Starts the thread that follows the primary.
pub(crate) fn start_follower(node: &Arc<NodeInner>) -> Result<()> {
    let RoleState::Replica(state) = &*node.role.lock() else { return Ok(()) };
    let state = Arc::clone(state);
    let thread = {
        let (node, state) = (Arc::clone(node), Arc::clone(&state));
        std::thread::Builder::new()
            .name("strata-repl-follow".into())
            .spawn(move || follow_loop(&node, &state))
            .map_err(|e| Error::io("spawn", "follower thread", e))?
    };
    *state.follower.lock() = Some(thread);
    Ok(())
}

fn follow_loop(node: &Arc<NodeInner>, state: &ReplicaState) {
    while !state.stopping(node) {
        match follow_once(node, state) {
            Ok(()) => {}
            Err(e) => {
                if !state.stopping(node) {
                    tracing::warn!(primary = %state.primary, error = %e, "replication connection ended");
                    *state.last_error.lock() = Some(e.to_string());
                }
            }
        }
        let until = Instant::now() + node.config.reconnect;
        while Instant::now() < until && !state.stopping(node) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| Error::io("resolve", addr, e))?
        .next()
        .ok_or_else(|| Error::protocol(addr, "address resolves to nothing"))
}

fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.bootstrap-in"))
}

fn replaced_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.replaced"))
}

/// Finishes (or undoes) an install a crash interrupted: the store directory is either
/// the old one or the checkpoint, never missing.
pub(crate) fn recover_install(dir: &Path) -> Result<()> {
    let old = replaced_dir(dir);
    if !old.exists() {
        return Ok(());
    }
    let target = dir.display().to_string();
    if dir.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", target, e))
    } else {
        std::fs::rename(&old, dir).map_err(|e| Error::io("restore", target, e))
    }
}

/// The bootstrap this replica had started, if its staging directory says so.
fn read_resume(staging: &Path) -> Result<Option<Resume>> {
    let Ok(text) = std::fs::read_to_string(staging.join(BOOTSTRAP_ID_FILE)) else {
        return Ok(None);
    };
    let Ok(id) = u64::from_str_radix(text.trim(), 16) else { return Ok(None) };
    let mut have = Vec::new();
    let entries = std::fs::read_dir(staging)
        .map_err(|e| Error::io("list", staging.display().to_string(), e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == BOOTSTRAP_ID_FILE {
            continue;
        }
        if let Ok(meta) = e.metadata() {
            have.push((name, meta.len()));
        }
    }
    Ok(Some(Resume { id, have }))
}

fn follow_once(node: &Arc<NodeInner>, state: &ReplicaState) -> Result<()> {
    let db = node.db()?;
    let addr = resolve(&state.primary)?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| Error::io("connect to", &state.primary, e))?;
    let peer = state.primary.as_str();
    stream.set_nodelay(true).map_err(|e| Error::io("configure", peer, e))?;
    stream.set_read_timeout(Some(SILENCE)).map_err(|e| Error::io("configure", peer, e))?;
    *state.stream.lock() = Some(stream.try_clone().map_err(|e| Error::io("clone", peer, e))?);
    if state.stopping(node) {
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        stream.try_clone().map_err(|e| Error::io("clone", peer, e))?,
    );
    let mut writer = stream;
    let cluster = crate::files::load_cluster(&node.dir)?.unwrap_or(0);
    let staging = staging_dir(&node.dir);
    let last = db.visible_seq();
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        cluster,
        node: node.config.name.clone(),
        epoch: db.epoch_history().last().map_or(0, |e| e.epoch.0),
        last_seq: last.0,
        durable: db.durable_seq().0,
        resume: read_resume(&staging)?,
        rebootstrap: state.rebootstrap.load(Ordering::Acquire),
    };
    wire::send(&mut writer, peer, Control::Hello(hello))?;
    let (theirs, plan) = match wire::read_msg(&mut reader, peer)? {
        Some(Msg::Control(Control::Welcome { cluster, plan, .. })) => {
            state.heard();
            (cluster, plan)
        }
        Some(Msg::Control(Control::Refuse { reason })) => {
            return Err(Error::Refused { peer: peer.to_owned(), reason });
        }
        other => return Err(Error::protocol(peer, format!("expected Welcome, got {other:?}"))),
    };
    if cluster != 0 && theirs != cluster {
        let err = Error::ClusterMismatch { ours: cluster, theirs };
        let _ = wire::send(&mut writer, peer, Control::Refuse { reason: err.to_string() });
        return Err(err);
    }
    let from = match plan {
        Plan::Bootstrap { id } => {
            drop(db);
            receive_bootstrap(node, state, id, theirs, &mut reader, peer)?;
            state.rebootstrap.store(false, Ordering::Release);
            return Ok(());
        }
        Plan::Truncate { after } => match db.truncate_after(SeqNo(after)) {
            Ok(()) => SeqNo(after).next(),
            Err(e @ strata_core::Error::Diverged { .. }) => {
                // The diverged tail (never acknowledged by the cluster: the primary's
                // history does not hold it) is in tables already and cannot be taken
                // back: replace the store with a checkpoint of the primary, as a new
                // replica gets, on the next connection.
                tracing::warn!(primary = %state.primary, error = %e,
                    "the diverged tail is already flushed; re-bootstrapping from the primary");
                state.rebootstrap.store(true, Ordering::Release);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        },
        Plan::Follow { from } => SeqNo(from),
    };
    if cluster == 0 {
        crate::files::store_cluster(&node.dir, theirs)?;
    }
    if from != db.visible_seq().next() {
        return Err(Error::protocol(
            peer,
            format!(
                "the primary sends from {from} but this replica holds up to {}",
                db.visible_seq()
            ),
        ));
    }
    follow(node, state, &db, from, reader, writer, peer)
}

/// Applies batches and acknowledges durability until the connection ends.
fn follow(
    node: &Arc<NodeInner>,
    state: &ReplicaState,
    db: &strata_core::Db,
    from: SeqNo,
    mut reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: &str,
) -> Result<()> {
    state.applied.store(from.0 - 1, Ordering::Release);
    let done = Arc::new(AtomicBool::new(false));
    let force = Arc::new(AtomicBool::new(true));
    let applied = Arc::new(AtomicU64::new(from.0 - 1));
    let acker = {
        let (done, force, applied, db) =
            (Arc::clone(&done), Arc::clone(&force), Arc::clone(&applied), db.clone());
        let peer = peer.to_owned();
        let mut writer = writer;
        std::thread::Builder::new()
            .name("strata-repl-ack".into())
            .spawn(move || {
                let mut acked = 0u64;
                while !done.load(Ordering::Acquire) {
                    let target = applied.load(Ordering::Acquire);
                    if target > acked || force.swap(false, Ordering::AcqRel) {
                        // One fdatasync covers everything applied so far.
                        if let Err(e) = db.sync_wal() {
                            tracing::error!(error = %e, "replica WAL sync failed; not acknowledging");
                            let _ = wire::send(&mut writer, &peer, Control::Refuse { reason: e.to_string() });
                            let _ = writer.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        let durable = db.durable_seq().0;
                        if wire::send(&mut writer, &peer, Control::Ack { durable }).is_err() {
                            return;
                        }
                        acked = durable.max(acked);
                        continue;
                    }
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            })
            .map_err(|e| Error::io("spawn", "ack thread", e))?
    };
    let wake = acker.thread().clone();
    let result = (|| -> Result<()> {
        let mut expected = from;
        loop {
            if state.stopping(node) {
                return Ok(());
            }
            match wire::read_msg(&mut reader, peer)? {
                None => return Ok(()),
                Some(Msg::Batch(batch)) => {
                    if batch.first_seq != expected {
                        return Err(Error::protocol(
                            peer,
                            format!(
                                "batch starts at sequence {} but {expected} was next: a gap or \
                                 an overlap in the stream",
                                batch.first_seq
                            ),
                        ));
                    }
                    db.apply_replicated(&batch, Durability::Buffered)?;
                    expected = batch.last_seq().next();
                    let last = batch.last_seq().0;
                    applied.store(last, Ordering::Release);
                    state.applied.store(last, Ordering::Release);
                    if state.primary_last.fetch_max(last, Ordering::AcqRel) <= last {
                        *state.caught_up_at.lock() = Instant::now();
                    }
                    state.heard();
                    wake.unpark();
                }
                Some(Msg::Control(Control::Heartbeat { last_seq, .. })) => {
                    state.primary_last.store(last_seq, Ordering::Release);
                    if expected.0 > last_seq {
                        *state.caught_up_at.lock() = Instant::now();
                    }
                    state.heard();
                    force.store(true, Ordering::Release);
                    wake.unpark();
                }
                Some(Msg::Control(Control::Refuse { reason })) => {
                    return Err(Error::Refused { peer: peer.to_owned(), reason });
                }
                Some(other) => {
                    return Err(Error::protocol(peer, format!("unexpected message {other:?}")));
                }
            }
        }
    })();
    done.store(true, Ordering::Release);
    wake.unpark();
    if let Some(s) = state.stream.lock().take() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    if acker.join().is_err() {
        tracing::error!("the replica's ack thread panicked");
    }
    result
}

fn check_name(name: &str, peer: &str) -> Result<()> {
    if name.is_empty()
        || name == BOOTSTRAP_ID_FILE
        || name.contains('/')
        || name.contains('\\')
        || name.starts_with('.')
    {
        return Err(Error::protocol(peer, format!("checkpoint file name {name:?} is not allowed")));
    }
    Ok(())
}

struct Incoming {
    file: std::fs::File,
    path: PathBuf,
    pos: u64,
    len: u64,
    crc: u32,
}

fn finish_file(f: Incoming, peer: &str) -> Result<()> {
    let target = f.path.display().to_string();
    f.file.sync_all().map_err(|e| Error::io("fsync", target.clone(), e))?;
    drop(f.file);
    let (len, crc) = crate::bootstrap::file_crc(&f.path, u64::MAX)?;
    if len != f.len || crc != f.crc {
        let _ = std::fs::remove_file(&f.path);
        return Err(Error::protocol(
            peer,
            format!(
                "checkpoint file {target} arrived as {len} bytes with CRC {crc:#010x}, the \
                 primary sent {} bytes with CRC {:#010x}: discarded, it is sent again",
                f.len, f.crc
            ),
        ));
    }
    Ok(())
}

fn receive_bootstrap(
    node: &Arc<NodeInner>,
    state: &ReplicaState,
    id: u64,
    cluster: u64,
    reader: &mut BufReader<TcpStream>,
    peer: &str,
) -> Result<()> {
    let staging = staging_dir(&node.dir);
    let st = staging.display().to_string();
    if read_resume(&staging)?.is_none_or(|r| r.id != id) && staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io("remove", st.clone(), e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| Error::io("create", st.clone(), e))?;
    std::fs::write(staging.join(BOOTSTRAP_ID_FILE), format!("{id:016x}"))
        .map_err(|e| Error::io("write", st.clone(), e))?;
    tracing::info!(%peer, id = format!("{id:016x}"), "receiving a bootstrap checkpoint");
    let mut current: Option<Incoming> = None;
    loop {
        if state.stopping(node) {
            return Err(Error::Stopped);
        }
        match wire::read_msg(reader, peer)? {
            None => return Err(Error::protocol(peer, "connection closed during a bootstrap")),
            Some(Msg::Control(Control::FileStart { name, len, crc, from })) => {
                if current.is_some() {
                    return Err(Error::protocol(peer, "a file started before the last one ended"));
                }
                check_name(&name, peer)?;
                let path = staging.join(&name);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io("create", path.display().to_string(), e))?;
                let have = file.metadata().map(|m| m.len()).unwrap_or(0);
                if from > have || from > len {
                    return Err(Error::protocol(
                        peer,
                        format!(
                            "{name}: the primary resumes at {from}, this replica holds {have} of {len}"
                        ),
                    ));
                }
                file.set_len(from)
                    .map_err(|e| Error::io("truncate", path.display().to_string(), e))?;
                let f = Incoming { file, path, pos: from, len, crc };
                if from == len {
                    finish_file(f, peer)?;
                } else {
                    current = Some(f);
                }
            }
            Some(Msg::Chunk { offset, data }) => {
                let Some(mut f) = current.take() else {
                    return Err(Error::protocol(peer, "a file chunk outside a file"));
                };
                if offset != f.pos || f.pos + data.len() as u64 > f.len {
                    return Err(Error::protocol(
                        peer,
                        format!(
                            "chunk at {offset} of {} bytes does not continue {} at {} (length {})",
                            data.len(),
                            f.path.display(),
                            f.pos,
                            f.len
                        ),
                    ));
                }
                std::io::Seek::seek(&mut f.file, std::io::SeekFrom::Start(offset))
                    .and_then(|_| f.file.write_all(&data))
                    .map_err(|e| Error::io("write", f.path.display().to_string(), e))?;
                f.pos += data.len() as u64;
                if f.pos == f.len {
                    finish_file(f, peer)?;
                } else {
                    current = Some(f);
                }
            }
            Some(Msg::Control(Control::BootstrapDone { id: done })) => {
                if done != id || current.is_some() {
                    return Err(Error::protocol(
                        peer,
                        "bootstrap ended early or for another checkpoint",
                    ));
                }
                return install(node, &staging, cluster);
            }
            Some(Msg::Control(Control::Refuse { reason })) => {
                return Err(Error::Refused { peer: peer.to_owned(), reason });
            }
            Some(other) => {
                return Err(Error::protocol(
                    peer,
                    format!("unexpected message in a bootstrap: {other:?}"),
                ));
            }
        }
    }
}

/// Makes the received checkpoint the store: the old directory is moved aside, the
/// checkpoint moved into place, the store reopened as a replica.
fn install(node: &Arc<NodeInner>, staging: &Path, cluster: u64) -> Result<()> {
    let dir = &node.dir;
    let st = staging.display().to_string();
    std::fs::remove_file(staging.join(BOOTSTRAP_ID_FILE))
        .map_err(|e| Error::io("remove", st.clone(), e))?;
    crate::files::store_cluster(staging, cluster)?;
    let old = replaced_dir(dir);
    let target = dir.display().to_string();
    let previous = node.db.lock().take();
    drop(previous);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", target.clone(), e))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io("move aside", target.clone(), e))?;
    }
    std::fs::rename(staging, dir).map_err(|e| Error::io("install", target.clone(), e))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", parent.display().to_string(), e))?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", target.clone(), e))?;
    }
    let primary = match &*node.role.lock() {
        RoleState::Replica(r) => r.primary.clone(),
        RoleState::Primary(_) => String::new(),
    };
    let db = (node.open)(Some(primary))?;
    tracing::info!(dir = %target, last = %db.visible_seq(), "bootstrap checkpoint installed");
    *node.db.lock() = Some(db);
    Ok(())
}
