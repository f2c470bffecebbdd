//! [`SimFileSystem`]: the simulated [`FileSystem`], its inspection and fault-injection
//! methods, and its locks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;
use strata_core::fs::{File, FileLock, FileSystem, OpenMode};
use strata_core::{Error, Result};

use super::file::SimFile;
use super::image::{CrashMode, FileData, Node, fnv1a, splitmix64};
use super::state::{Inner, NO_FAULT, State, is_child_of, normalize};
use super::{EEXIST, EISDIR, ENOENT, ENOTDIR, errno};

/// In-memory [`FileSystem`] that simulates power loss, torn writes and I/O errors.
///
/// See the [module documentation](crate::sim_fs) for the crash model: writes change a file's
/// *live* image and only `sync_data` makes them *durable*; creations, renames and
/// removals change the *live* namespace and only `sync_dir` on the parent makes them
/// durable; [`crash`](Self::crash) returns a new file system holding only the durable
/// state and turns this one (and all its clones, handles and locks) into a zombie that
/// refuses every operation.
///
/// Cloning is cheap and clones share the same state, so one clone can be handed to the
/// store under test (via [`shared`](Self::shared)) while the test keeps another to crash
/// it, inject faults and read counters. It is `Send + Sync`.
///
/// Faults: [`fail_sync_after`](Self::fail_sync_after) and
/// [`fail_writes_after`](Self::fail_writes_after) make `sync_data` fail with `EIO` and
/// `write_all_at` fail with `ENOSPC` from the n-th call on; a failed call changes
/// nothing.
#[derive(Clone)]
pub struct SimFileSystem {
    inner: Arc<Inner>,
}

impl Default for SimFileSystem {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SimFileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("SimFileSystem")
            .field("crashed", &self.is_crashed())
            .field("live_files", &st.live.len())
            .field("durable_files", &st.durable.len())
            .field("dirs", &st.dirs.len())
            .field("sync_data_count", &self.sync_data_count())
            .field("sync_dir_count", &self.sync_dir_count())
            .field("write_count", &self.write_count())
            .finish()
    }
}

impl SimFileSystem {
    /// An empty file system: only the root directories (`/` and the relative root) exist.
    pub fn new() -> Self {
        Self { inner: Arc::new(Inner::new(State::default())) }
    }

    /// A clone of this file system as a shareable trait object (for the store under
    /// test); the caller's handle stays usable for crashing and inspection.
    pub fn shared(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    /// Simulates a power loss that drops every unsynced byte and entry; same as
    /// [`crash_with(CrashMode::DropUnsynced)`](Self::crash_with).
    pub fn crash(&self) -> SimFileSystem {
        self.crash_with(CrashMode::DropUnsynced)
    }

    /// Simulates a power loss and returns the file system a rebooted machine would see.
    ///
    /// The returned file system's live and durable states both equal this one's durable
    /// namespace, with each file's contents chosen by `mode` (the durable image, or for
    /// [`CrashMode::TornTail`] the durable image plus a torn part of the unsynced
    /// changes). Directories carry over; locks, counters and armed faults do not.
    ///
    /// Afterwards this file system, its clones, and every file handle and lock obtained
    /// from it refuse all operations with an `Error::Io` ("file system crashed"). The
    /// inspection helpers ([`read_file`](Self::read_file), [`durable_file`](Self::durable_file),
    /// [`file_names`](Self::file_names), the counters) keep working on the frozen state.
    /// Crashing an already crashed file system again yields the same durable state.
    pub fn crash_with(&self, mode: CrashMode) -> SimFileSystem {
        let st = self.inner.state.lock();
        // Set under the state lock, before any file's lock is taken below: a file
        // operation holding its file's lock either finishes before we read that file or
        // sees the flag once it gets the lock.
        self.inner.crashed.store(true, Ordering::SeqCst);
        let mut rebuilt: HashMap<*const Node, Arc<Node>> = HashMap::new();
        let mut durable = BTreeMap::new();
        for (path, node) in &st.durable {
            let new_node = rebuilt
                .entry(Arc::as_ptr(node))
                .or_insert_with(|| {
                    let data = node.data.lock();
                    let image = match mode {
                        CrashMode::DropUnsynced => data.durable.clone(),
                        CrashMode::TornTail { seed } => {
                            let key = fnv1a(path.as_os_str().as_encoded_bytes());
                            data.torn_image(splitmix64(seed ^ key))
                        }
                    };
                    Node::new(image)
                })
                .clone();
            durable.insert(path.clone(), new_node);
        }
        let state =
            State { live: durable.clone(), durable, dirs: st.dirs.clone(), locks: HashSet::new() };
        SimFileSystem { inner: Arc::new(Inner::new(state)) }
    }

    /// True once [`crash`](Self::crash) or [`crash_with`](Self::crash_with) was called on
    /// this file system (or a clone).
    pub fn is_crashed(&self) -> bool {
        self.inner.crashed.load(Ordering::SeqCst)
    }

    /// Arms a sync fault: the `n`-th `sync_data` from now (1-based; `0` counts as `1`)
    /// and every later one fail with `EIO` and leave the durable image unchanged, until
    /// [`clear_faults`](Self::clear_faults).
    pub fn fail_sync_after(&self, n: u64) {
        let now = self.inner.sync_data_count.load(Ordering::SeqCst);
        self.inner.sync_fail_at.store(now.saturating_add(n.max(1)), Ordering::SeqCst);
    }

    /// Arms a write fault: the `n`-th `write_all_at` from now (1-based; `0` counts as
    /// `1`) and every later one fail with `ENOSPC` and write nothing, until
    /// [`clear_faults`](Self::clear_faults).
    pub fn fail_writes_after(&self, n: u64) {
        let now = self.inner.write_count.load(Ordering::SeqCst);
        self.inner.write_fail_at.store(now.saturating_add(n.max(1)), Ordering::SeqCst);
    }

    /// Disarms every fault set by [`fail_sync_after`](Self::fail_sync_after) and
    /// [`fail_writes_after`](Self::fail_writes_after).
    pub fn clear_faults(&self) {
        self.inner.sync_fail_at.store(NO_FAULT, Ordering::SeqCst);
        self.inner.write_fail_at.store(NO_FAULT, Ordering::SeqCst);
    }

    /// Number of `sync_data` calls made on live handles of this file system, including
    /// ones failed by an injected fault (not counting calls refused after a crash).
    pub fn sync_data_count(&self) -> u64 {
        self.inner.sync_data_count.load(Ordering::SeqCst)
    }

    /// Number of successful `sync_dir` calls on this file system.
    pub fn sync_dir_count(&self) -> u64 {
        self.inner.sync_dir_count.load(Ordering::SeqCst)
    }

    /// Number of `write_all_at` calls accepted by writable handles of this file system,
    /// including ones failed by an injected fault.
    pub fn write_count(&self) -> u64 {
        self.inner.write_count.load(Ordering::SeqCst)
    }

    /// The live image (what a read sees now) of the file at `path`, or `None` if no file
    /// is there. Works on a crashed file system too (its frozen state).
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let st = self.inner.state.lock();
        let node = st.live.get(&normalize(path.as_ref()))?;
        let image = node.data.lock().live.clone();
        Some(image)
    }

    /// What a [`CrashMode::DropUnsynced`] crash right now would leave at `path`: the
    /// durable image of the file the durable namespace names there, or `None`.
    pub fn durable_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let st = self.inner.state.lock();
        let node = st.durable.get(&normalize(path.as_ref()))?;
        let image = node.data.lock().durable.clone();
        Some(image)
    }

    /// Replaces the contents of the file at `path` with `bytes`, in both the live and
    /// the durable image, as if damage happened on the disk itself (for corruption
    /// tests). A missing file is created, its entry durable at once; its parent
    /// directory must exist.
    pub fn write_file_raw(&self, path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let path = path.as_ref();
        let p = normalize(path);
        let mut st = self.lock_state("write_file_raw", path)?;
        if let Some(node) = st.live.get(&p) {
            let mut data = node.data.lock();
            *data = FileData::with_image(bytes.to_vec());
            return Ok(());
        }
        if st.is_dir(&p) {
            return Err(Error::io("write_file_raw", path, errno(EISDIR)));
        }
        st.check_parent(&p).map_err(|e| Error::io("write_file_raw", path, e))?;
        let node = Node::new(bytes.to_vec());
        st.live.insert(p.clone(), node.clone());
        st.durable.insert(p, node);
        Ok(())
    }

    /// Writes the live image of every file under `from` (recursively) into the real
    /// directory `to`, keeping relative paths, and returns how many files it wrote.
    ///
    /// A test crashes a store on this file system, materialises what survived, and
    /// reopens it through the OS file system: that is how crash and corruption tests
    /// reach readers that need a file descriptor, such as the mmap table reader, which
    /// a simulated file falls back from. Works on a crashed file system too.
    pub fn materialize(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<usize> {
        let from = normalize(from.as_ref());
        let to = to.as_ref();
        let files: Vec<(PathBuf, Vec<u8>)> = {
            let st = self.inner.state.lock();
            st.live
                .iter()
                .filter_map(|(path, node)| {
                    let rel = path.strip_prefix(&from).ok()?;
                    Some((rel.to_path_buf(), node.data.lock().live.clone()))
                })
                .collect()
        };
        std::fs::create_dir_all(to)?;
        for (rel, image) in &files {
            let target = to.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, image)?;
        }
        Ok(files.len())
    }

    /// Sorted names of the files (not directories) directly in `dir`, in the live
    /// namespace; empty if `dir` does not exist. Works on a crashed file system too.
    pub fn file_names(&self, dir: impl AsRef<Path>) -> Vec<String> {
        let dir = normalize(dir.as_ref());
        let st = self.inner.state.lock();
        st.live
            .keys()
            .filter(|p| is_child_of(p, &dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }

    /// Locks the namespace, refusing if the file system crashed.
    fn lock_state(&self, op: &'static str, path: &Path) -> Result<MutexGuard<'_, State>> {
        let st = self.inner.state.lock();
        self.inner.check_alive(op, path)?;
        Ok(st)
    }
}

impl FileSystem for SimFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn File>> {
        let p = normalize(path);
        let mut st = self.lock_state("open", path)?;
        let fail = |code| Err(Error::io("open", path, errno(code)));
        let node = match mode {
            OpenMode::CreateNew => {
                if st.live.contains_key(&p) || st.is_dir(&p) {
                    return fail(EEXIST);
                }
                st.check_parent(&p).map_err(|e| Error::io("open", path, e))?;
                let node = Node::new(Vec::new());
                st.live.insert(p, node.clone());
                node
            }
            OpenMode::ReadWrite | OpenMode::ReadOnly => match st.live.get(&p) {
                Some(node) => node.clone(),
                None if st.is_dir(&p) => return fail(EISDIR),
                None => return fail(ENOENT),
            },
        };
        Ok(Arc::new(SimFile {
            inner: self.inner.clone(),
            node,
            path: path.to_path_buf(),
            writable: mode != OpenMode::ReadOnly,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (normalize(from), normalize(to));
        let mut st = self.lock_state("rename", from)?;
        if !st.live.contains_key(&f) {
            let err = if st.is_dir(&f) {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "SimFileSystem cannot rename directories",
                )
            } else {
                errno(ENOENT)
            };
            return Err(Error::io("rename", from, err));
        }
        if st.is_dir(&t) {
            return Err(Error::io("rename", to, errno(EISDIR)));
        }
        st.check_parent(&t).map_err(|e| Error::io("rename", to, e))?;
        if f != t
            && let Some(node) = st.live.remove(&f)
        {
            st.live.insert(t, node);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let p = normalize(path);
        let mut st = self.lock_state("remove", path)?;
        if st.live.remove(&p).is_some() {
            Ok(())
        } else if st.is_dir(&p) {
            Err(Error::io("remove", path, errno(EISDIR)))
        } else {
            Err(Error::io("remove", path, errno(ENOENT)))
        }
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        let d = normalize(dir);
        let st = self.lock_state("read_dir", dir)?;
        if !st.is_dir(&d) {
            let code = if st.live.contains_key(&d) { ENOTDIR } else { ENOENT };
            return Err(Error::io("read_dir", dir, errno(code)));
        }
        let files = st.live.keys();
        let dirs = st.dirs.iter();
        Ok(files
            .chain(dirs)
            .filter(|p| is_child_of(p, &d))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let d = normalize(dir);
        let mut st = self.lock_state("create_dir", dir)?;
        let missing: Vec<PathBuf> =
            d.ancestors().filter(|a| !st.is_dir(a)).map(Path::to_path_buf).collect();
        if let Some(file) = missing.iter().find(|a| st.live.contains_key(*a)) {
            return Err(Error::io("create_dir", file, errno(EEXIST)));
        }
        st.dirs.extend(missing);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = normalize(dir);
        let mut st = self.lock_state("fsync dir", dir)?;
        if !st.is_dir(&d) {
            let code = if st.live.contains_key(&d) { ENOTDIR } else { ENOENT };
            return Err(Error::io("open dir", dir, errno(code)));
        }
        let State { live, durable, .. } = &mut *st;
        durable.retain(|p, _| !is_child_of(p, &d));
        for (p, node) in live.iter().filter(|(p, _)| is_child_of(p, &d)) {
            durable.insert(p.clone(), node.clone());
        }
        self.inner.sync_dir_count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let p = normalize(path);
        let st = self.lock_state("stat", path)?;
        Ok(st.live.contains_key(&p) || st.is_dir(&p))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let p = normalize(path);
        let mut st = self.lock_state("lock", path)?;
        if st.locks.contains(&p) {
            return Err(Error::Locked { path: path.to_path_buf() });
        }
        if !st.live.contains_key(&p) {
            // Like the OS implementation, a missing lock file is created (live only).
            if st.is_dir(&p) {
                return Err(Error::io("open lock file", path, errno(EISDIR)));
            }
            st.check_parent(&p).map_err(|e| Error::io("open lock file", path, e))?;
            st.live.insert(p.clone(), Node::new(Vec::new()));
        }
        st.locks.insert(p.clone());
        Ok(Box::new(SimLock { inner: self.inner.clone(), path: p }))
    }
}

/// The guard [`SimFileSystem`]'s `lock` returns; dropping it releases the path.
struct SimLock {
    inner: Arc<Inner>,
    path: PathBuf,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.inner.state.lock().locks.remove(&self.path);
    }
}
