//! The file `raft_meta`: the vote, the committed log id and the last purged log id.
//!
//! A [`blob`](super::blob) with magic `STRATRMT` whose body is the JSON of [`Meta`]. It is
//! replaced atomically and durably on every change, before openraft is told the change
//! happened, so a vote once granted is never forgotten across a crash.

use std::path::{Path, PathBuf};

use openraft::Vote;
use serde::{Deserialize, Serialize};
use strata_core::fs::FileSystem;
use strata_core::{Error, Result};

use super::blob;
use crate::types::{LogId, NodeId};

/// Name of the metadata file inside the raft directory.
pub const META_FILE: &str = "raft_meta";
const MAGIC: [u8; 8] = *b"STRATRMT";

/// The small durable state of the raft log besides its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The last vote this node saved.
    pub vote: Option<Vote<NodeId>>,
    /// The last committed log id this node saved.
    pub committed: Option<LogId>,
    /// Entries up to and including this id were purged (they live in the snapshot).
    pub purged: Option<LogId>,
}

/// Path of the metadata file in `dir`.
pub fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META_FILE)
}

/// Reads the metadata of `dir`, or `None` when the file does not exist.
pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Meta>> {
    let path = meta_path(dir);
    let Some(body) = blob::load(fs, &path, &MAGIC)? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| Error::corruption(&path, 16, format!("metadata body does not decode: {e}")))
}

/// Replaces the metadata of `dir` durably.
pub fn store(fs: &dyn FileSystem, dir: &Path, meta: &Meta) -> Result<()> {
    let body = serde_json::to_vec(meta)
        .map_err(|e| Error::InvalidArgument(format!("raft metadata does not encode: {e}")))?;
    blob::replace_file(fs, dir, META_FILE, &blob::encode(&MAGIC, &body)?)
}
