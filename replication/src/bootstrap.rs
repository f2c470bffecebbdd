//! Bootstrapping a replica from a checkpoint of the primary.
//!
//! The primary writes a checkpoint (`Db::checkpoint_to`) next to its store and keeps
//! it, with a log reader that pins the WAL from the checkpoint's position on, for
//! [`HOLD_FOR`]: a replica whose connection breaks mid-transfer reconnects with the
//! checkpoint's id and the bytes it holds of each file, and the transfer resumes there.
//! Every file travels with its length and CRC32, checked by the replica before it
//! installs the checkpoint as its store and follows the log from its end.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use strata_core::{Db, LogBound, WalReader};

use crate::error::{Error, Result};
use crate::node::NodeInner;
use crate::primary::PrimaryState;
use crate::wire::{self, CHUNK_BYTES, Control, Msg, Plan, Resume};

/// How long a checkpoint is kept for a replica to resume its transfer.
pub const HOLD_FOR: Duration = Duration::from_secs(600);

/// A checkpoint kept for bootstrapping.
pub(crate) struct Hold {
    pub id: u64,
    dir: PathBuf,
    /// Name, length, CRC32.
    files: Vec<(String, u64, u32)>,
    created: Instant,
    /// Keeps the primary's WAL from the checkpoint's position on.
    _pin: Mutex<Box<dyn WalReader>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a bootstrap checkpoint");
        }
    }
}

/// The checkpoints a primary keeps for bootstrapping replicas.
#[derive(Default)]
pub(crate) struct Holds {
    map: Mutex<HashMap<u64, Arc<Hold>>>,
}

impl Holds {
    pub fn get(&self, id: u64) -> Option<Arc<Hold>> {
        self.map.lock().get(&id).cloned()
    }

    /// Writes a new checkpoint of `db` and keeps it.
    pub fn create(&self, db: &Db) -> Result<Arc<Hold>> {
        self.map.lock().retain(|_, h| h.created.elapsed() < HOLD_FOR);
        let id = rand::random::<u64>().max(1);
        let store = db.dir();
        let name =
            store.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
        let dir = store.with_file_name(format!(".{name}.bootstrap-{id:016x}"));
        let pin = db.read_log_from_with(db.visible_seq().next(), LogBound::Visible)?;
        db.checkpoint_to(&dir)?;
        let mut files = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("list", dir.display().to_string(), e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let (len, crc) = file_crc(&path, u64::MAX)?;
            files.push((name, len, crc));
        }
        let hold =
            Arc::new(Hold { id, dir, files, created: Instant::now(), _pin: Mutex::new(pin) });
        self.map.lock().insert(id, Arc::clone(&hold));
        tracing::info!(
            id = format!("{id:016x}"),
            files = hold.files.len(),
            "bootstrap checkpoint written"
        );
        Ok(hold)
    }
}

/// Length and CRC32 of the first `limit` bytes of a file.
pub(crate) fn file_crc(path: &std::path::Path, limit: u64) -> Result<(u64, u32)> {
    let target = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", target.clone(), e))?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    while total < limit {
        let want = usize::try_from((limit - total).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = f.read(&mut buf[..want]).map_err(|e| Error::io("read", target.clone(), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, h.finalize()))
}

/// Sends the checkpoint `hold` to a replica that holds `resume.have` of it.
pub(crate) fn send(
    node: &NodeInner,
    state: &PrimaryState,
    hold: &Hold,
    resume: &Resume,
    cluster: u64,
    out: &mut BufWriter<TcpStream>,
    peer: &str,
) -> Result<()> {
    let epoch = node.db()?.epoch().0;
    wire::send(
        out,
        peer,
        Control::Welcome { cluster, epoch, plan: Plan::Bootstrap { id: hold.id } },
    )?;
    let io = |e| Error::io("write to", peer, e);
    for (name, len, crc) in &hold.files {
        let have = resume.have.iter().find(|(n, _)| n == name).map_or(0, |(_, h)| *h);
        let from = if have <= *len { have } else { 0 };
        wire::write_msg(
            out,
            &Msg::Control(Control::FileStart { name: name.clone(), len: *len, crc: *crc, from }),
        )
        .map_err(io)?;
        let path = hold.dir.join(name);
        let mut f = std::fs::File::open(&path)
            .map_err(|e| Error::io("open", path.display().to_string(), e))?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from))
            .map_err(|e| Error::io("seek", path.display().to_string(), e))?;
        let mut offset = from;
        let mut buf = vec![0u8; CHUNK_BYTES];
        while offset < *len {
            let want =
                usize::try_from((*len - offset).min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
            f.read_exact(&mut buf[..want])
                .map_err(|e| Error::io("read", path.display().to_string(), e))?;
            wire::write_msg(
                out,
                &Msg::Chunk { offset, data: Bytes::copy_from_slice(&buf[..want]) },
            )
            .map_err(io)?;
            offset += want as u64;
            if node.stopped() {
                return Err(Error::Stopped);
            }
        }
    }
    wire::send(out, peer, Control::BootstrapDone { id: hold.id })?;
    out.flush().map_err(io)?;
    state.bootstraps.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, id = format!("{:016x}", hold.id), "bootstrap checkpoint sent");
    Ok(())
}
