//! The simulated tree: the live and durable namespaces, the directories and locks, and
//! the counters and armed faults shared by every clone and handle.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_core::{Error, Result};

use super::image::Node;
use super::{EISDIR, ENOENT, ENOTDIR, crashed_error, errno};

/// Sentinel for "no fault armed".
pub(super) const NO_FAULT: u64 = u64::MAX;

/// Drops `.` components so that `a/./b` and `a/b` name the same entry.
pub(super) fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// True for `/`, `` and `.` (after normalization): a directory that always exists.
pub(super) fn is_root(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
}

pub(super) fn is_child_of(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
}

#[derive(Default)]
pub(super) struct State {
    /// Path → file, as the running program sees it.
    pub(super) live: BTreeMap<PathBuf, Arc<Node>>,
    /// Path → file, as a crash leaves it.
    pub(super) durable: BTreeMap<PathBuf, Arc<Node>>,
    /// Directories (durable at creation). Roots (`/`, ``) are implicit.
    pub(super) dirs: BTreeSet<PathBuf>,
    /// Paths locked through [`FileSystem::lock`].
    pub(super) locks: HashSet<PathBuf>,
}

impl State {
    pub(super) fn is_dir(&self, path: &Path) -> bool {
        is_root(path) || self.dirs.contains(path)
    }

    /// Checks that `path`'s parent directory exists, as creating an entry requires.
    pub(super) fn check_parent(&self, path: &Path) -> std::result::Result<(), io::Error> {
        match path.parent() {
            Some(parent) if self.is_dir(parent) => Ok(()),
            Some(parent) if self.live.contains_key(parent) => Err(errno(ENOTDIR)),
            Some(_) => Err(errno(ENOENT)),
            None => Err(errno(EISDIR)),
        }
    }
}

pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    pub(super) crashed: AtomicBool,
    pub(super) sync_data_count: AtomicU64,
    pub(super) sync_dir_count: AtomicU64,
    pub(super) write_count: AtomicU64,
    /// The `sync_data_count` value from which on `sync_data` fails.
    pub(super) sync_fail_at: AtomicU64,
    /// The `write_count` value from which on `write_all_at` fails.
    pub(super) write_fail_at: AtomicU64,
}

impl Inner {
    pub(super) fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
            crashed: AtomicBool::new(false),
            sync_data_count: AtomicU64::new(0),
            sync_dir_count: AtomicU64::new(0),
            write_count: AtomicU64::new(0),
            sync_fail_at: AtomicU64::new(NO_FAULT),
            write_fail_at: AtomicU64::new(NO_FAULT),
        }
    }

    pub(super) fn check_alive(&self, op: &'static str, path: &Path) -> Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(Error::io(op, path, crashed_error()))
        } else {
            Ok(())
        }
    }
}
