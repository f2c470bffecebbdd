//! File systems for crash and fsync-accounting tests.
//!
//! - [`SimFileSystem`] is an in-memory [`FileSystem`] that simulates power loss, torn
//!   writes and I/O errors (modelled on redb's crash-test backend).
//! - [`CountingFileSystem`] wraps any [`FileSystem`] (typically the real one) and counts
//!   the durability calls made through it, so a test can prove that group commit shares
//!   fsyncs.
//!
//! # Crash model of [`SimFileSystem`]
//!
//! Every file has two byte images and the tree has two namespaces:
//!
//! | state            | changed by                                             | made durable by |
//! |------------------|--------------------------------------------------------|-----------------|
//! | live file image  | [`File::write_all_at`], [`File::set_len`], [`File::allocate`] | [`File::sync_data`] on that file |
//! | live namespace   | [`FileSystem::open`] (`CreateNew`), [`FileSystem::rename`], [`FileSystem::remove_file`], [`FileSystem::lock`] (creates a missing lock file) | [`FileSystem::sync_dir`] on the parent directory |
//!
//! Everything a running program observes (reads, lengths, listings, `exists`) is the
//! live state. [`SimFileSystem::crash`] models a power loss: it returns a new file system
//! whose live and durable states are both the old *durable* state, so
//!
//! - bytes written but never covered by a successful `sync_data` are gone;
//! - a created, renamed or removed entry whose parent directory was never synced
//!   afterwards reverts (a new file vanishes even if its data was synced; a rename is
//!   undone; a removed file comes back);
//! - a durable entry whose data was never synced comes back empty (or with its last
//!   synced contents).
//!
//! [`CrashMode::TornTail`] additionally keeps a random prefix of the unsynced bytes, as a
//! disk that lost power in the middle of writing back a file would.
//!
//! Directories are simpler than files: [`FileSystem::create_dir_all`] is durable at once
//! and directories cannot be renamed or removed.
//!
//! After a crash the old `SimFileSystem` (every clone of it and every handle and lock
//! opened through it) refuses all operations with an `Error::Io` saying the file system
//! crashed, so a zombie writer thread left over from before the "power loss" cannot reach
//! the state the recovered store runs on.
//!
//! Errors carry Linux `errno` values (`ENOENT`, `EEXIST`, `EBADF`, `EIO`, `ENOSPC`, ...)
//! wrapped by [`Error::io`] with the operation and path, as [`OsFileSystem`] reports them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use strata_core::fs::{File, FileLock, FileSystem, OpenMode, OsFileSystem};
use strata_core::{Error, Result};

// Linux errno values (libc is not a dependency).
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EBADF: i32 = 9;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EINVAL: i32 = 22;
const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;

/// Largest file the simulation accepts (a guard against a bogus offset allocating
/// terabytes); larger writes fail with `EFBIG`.
const MAX_FILE_LEN: u64 = 1 << 34;

/// Sentinel for "no fault armed".
const NO_FAULT: u64 = u64::MAX;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn crashed_error() -> io::Error {
    io::Error::other(
        "file system crashed (simulated power loss); use the SimFileSystem returned by crash()",
    )
}

/// Drops `.` components so that `a/./b` and `a/b` name the same entry.
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// True for `/`, `` and `.` (after normalization): a directory that always exists.
fn is_root(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
}

fn is_child_of(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
}

/// How [`SimFileSystem::crash_with`] treats bytes that were written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced byte is lost: each surviving file holds exactly what its last
    /// successful `sync_data` made durable.
    DropUnsynced,
    /// A torn write: for every surviving file whose live image differs from its durable
    /// one, the unsynced changes persist in file-offset order up to a random cut point.
    ///
    /// For the common case of a file whose live image *extends* its durable image (same
    /// prefix, appended bytes), the file keeps its durable image plus a random-length
    /// prefix (possibly empty, possibly all) of the appended bytes. For a file rewritten
    /// in place (for example a preallocated log), the bytes before the cut come from the
    /// live image and the rest from the durable image. An unsynced truncation is never
    /// persisted. The cut is a pure function of `seed` and the file's path, so a seed
    /// reproduces a run.
    TornTail {
        /// Seed for the cut points.
        seed: u64,
    },
}

/// The two images of one file.
struct FileData {
    /// What reads see.
    live: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Byte range `[lo, hi)` of `live` that may differ from `durable` (or lies beyond
    /// it); everything outside it below `live.len()` equals `durable`. Lets `sync_data`
    /// copy only what changed, so syncing a large preallocated file stays cheap.
    dirty: Option<(usize, usize)>,
}

impl FileData {
    fn with_image(image: Vec<u8>) -> Self {
        Self { durable: image.clone(), live: image, dirty: None }
    }

    fn mark_dirty(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        self.dirty = Some(match self.dirty {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// Truncates or zero-extends the live image.
    fn resize_live(&mut self, len: usize) {
        let old = self.live.len();
        self.live.resize(len, 0);
        self.mark_dirty(old, len);
    }

    /// Copies the live image to the durable image.
    fn sync(&mut self) {
        let len = self.live.len();
        self.durable.resize(len, 0);
        if let Some((lo, hi)) = self.dirty.take() {
            let hi = hi.min(len);
            if let (Some(dst), Some(src)) = (self.durable.get_mut(lo..hi), self.live.get(lo..hi)) {
                dst.copy_from_slice(src);
            }
        }
    }

    /// The image a [`CrashMode::TornTail`] crash leaves, with `random` choosing the cut.
    fn torn_image(&self, random: u64) -> Vec<u8> {
        let (live, durable) = (&self.live, &self.durable);
        let common = live.iter().zip(durable.iter()).take_while(|(a, b)| a == b).count();
        if common >= live.len() {
            // Live is a prefix of (or equal to) durable: only a truncation is pending.
            return durable.clone();
        }
        let span = (live.len() - common) as u64 + 1;
        // `random % span` is below `span`, which came from a usize.
        let cut = common + usize::try_from(random % span).unwrap_or(0);
        let mut image = live.get(..cut).unwrap_or_default().to_vec();
        image.extend_from_slice(durable.get(cut..).unwrap_or_default());
        image
    }
}

/// One file (an inode): shared by every namespace entry and open handle that names it,
/// so a renamed or removed file stays usable through handles opened before.
struct Node {
    data: Mutex<FileData>,
}

impl Node {
    fn new(image: Vec<u8>) -> Arc<Self> {
        Arc::new(Self { data: Mutex::new(FileData::with_image(image)) })
    }
}

#[derive(Default)]
struct State {
    /// Path → file, as the running program sees it.
    live: BTreeMap<PathBuf, Arc<Node>>,
    /// Path → file, as a crash leaves it.
    durable: BTreeMap<PathBuf, Arc<Node>>,
    /// Directories (durable at creation). Roots (`/`, ``) are implicit.
    dirs: BTreeSet<PathBuf>,
    /// Paths locked through [`FileSystem::lock`].
    locks: HashSet<PathBuf>,
}

impl State {
    fn is_dir(&self, path: &Path) -> bool {
        is_root(path) || self.dirs.contains(path)
    }

    /// Checks that `path`'s parent directory exists, as creating an entry requires.
    fn check_parent(&self, path: &Path) -> std::result::Result<(), io::Error> {
        match path.parent() {
            Some(parent) if self.is_dir(parent) => Ok(()),
            Some(parent) if self.live.contains_key(parent) => Err(errno(ENOTDIR)),
            Some(_) => Err(errno(ENOENT)),
            None => Err(errno(EISDIR)),
        }
    }
}

struct Inner {
    state: Mutex<State>,
    crashed: AtomicBool,
    sync_data_count: AtomicU64,
    sync_dir_count: AtomicU64,
    write_count: AtomicU64,
    /// The `sync_data_count` value from which on `sync_data` fails.
    sync_fail_at: AtomicU64,
    /// The `write_count` value from which on `write_all_at` fails.
    write_fail_at: AtomicU64,
}

impl Inner {
    fn new(state: State) -> Self {
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

    fn check_alive(&self, op: &'static str, path: &Path) -> Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(Error::io(op, path, crashed_error()))
        } else {
            Ok(())
        }
    }
}

/// In-memory [`FileSystem`] that simulates power loss, torn writes and I/O errors.
///
/// See the [module documentation](self) for the crash model: writes change a file's
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

/// An open handle of a [`SimFileSystem`] file.
struct SimFile {
    inner: Arc<Inner>,
    node: Arc<Node>,
    path: PathBuf,
    writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Locks the file's data, refusing if the file system crashed (checked under the
    /// file lock; see `crash_with`).
    fn data(&self, op: &'static str) -> Result<MutexGuard<'_, FileData>> {
        let data = self.node.data.lock();
        self.inner.check_alive(op, &self.path)?;
        Ok(data)
    }

    /// Like [`data`](Self::data), and also refuses read-only handles.
    fn data_mut(&self, op: &'static str) -> Result<MutexGuard<'_, FileData>> {
        let data = self.data(op)?;
        if !self.writable {
            return Err(Error::io(op, &self.path, errno(EBADF)));
        }
        Ok(data)
    }

    /// Converts a requested file length, refusing absurd ones.
    fn file_len(&self, op: &'static str, len: u64) -> Result<usize> {
        if len > MAX_FILE_LEN {
            return Err(Error::io(op, &self.path, errno(EFBIG)));
        }
        usize::try_from(len).map_err(|_| Error::io(op, &self.path, errno(EFBIG)))
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let data = self.data("read")?;
        let Some(src) = usize::try_from(offset).ok().and_then(|o| data.live.get(o..)) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut data = self.data_mut("write")?;
        let n = self.inner.write_count.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.inner.write_fail_at.load(Ordering::SeqCst) {
            return Err(Error::io("write", &self.path, errno(ENOSPC)));
        }
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| Error::io("write", &self.path, errno(EINVAL)))?;
        let end = self.file_len("write", end)?;
        let start = end - buf.len();
        if data.live.len() < end {
            data.resize_live(end);
        }
        if let Some(dst) = data.live.get_mut(start..end) {
            dst.copy_from_slice(buf);
        }
        data.mark_dirty(start, end);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut data = self.data("fdatasync")?;
        let n = self.inner.sync_data_count.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.inner.sync_fail_at.load(Ordering::SeqCst) {
            return Err(Error::io("fdatasync", &self.path, errno(EIO)));
        }
        data.sync();
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        Ok(self.data("stat")?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut data = self.data_mut("truncate")?;
        let len = self.file_len("truncate", len)?;
        data.resize_live(len);
        Ok(())
    }

    fn allocate(&self, len: u64) -> Result<()> {
        let mut data = self.data_mut("fallocate")?;
        let len = self.file_len("fallocate", len)?;
        if len > data.live.len() {
            data.resize_live(len);
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[derive(Debug, Default)]
struct Counts {
    sync_data: AtomicU64,
    sync_dir: AtomicU64,
    writes: AtomicU64,
    writebacks: AtomicU64,
}

/// A [`FileSystem`] wrapper that counts `sync_data`, `sync_dir`, `write_all_at` and
/// `start_writeback` calls made through it (and through every file handle it opened),
/// then delegates to the wrapped file system unchanged.
///
/// It adds no crash model of its own: durability is whatever the wrapped file system
/// provides (the real disk for [`OsFileSystem`]). Counts include calls that failed.
/// Clones share the counters, so a test can give one clone to the store and read the
/// counts from another, e.g. to show that concurrent commits shared one fsync.
#[derive(Clone, Debug)]
pub struct CountingFileSystem {
    inner: Arc<dyn FileSystem>,
    counts: Arc<Counts>,
}

impl CountingFileSystem {
    /// Wraps `inner`, with all counters at zero.
    pub fn new(inner: Arc<dyn FileSystem>) -> Self {
        Self { inner, counts: Arc::new(Counts::default()) }
    }

    /// Wraps the operating system's file system ([`OsFileSystem`]).
    pub fn os() -> Self {
        Self::new(OsFileSystem::shared())
    }

    /// A clone of this wrapper as a shareable trait object (counters shared).
    pub fn shared(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    /// Number of `File::sync_data` calls made through handles this wrapper opened.
    pub fn sync_data_count(&self) -> u64 {
        self.counts.sync_data.load(Ordering::SeqCst)
    }

    /// Number of `FileSystem::sync_dir` calls made through this wrapper.
    pub fn sync_dir_count(&self) -> u64 {
        self.counts.sync_dir.load(Ordering::SeqCst)
    }

    /// Number of `File::write_all_at` calls made through handles this wrapper opened.
    pub fn write_count(&self) -> u64 {
        self.counts.writes.load(Ordering::SeqCst)
    }

    /// Number of `File::start_writeback` calls made through handles this wrapper opened.
    pub fn writeback_count(&self) -> u64 {
        self.counts.writebacks.load(Ordering::SeqCst)
    }

    /// Sets every counter back to zero (for counting one phase of a test).
    pub fn reset_counts(&self) {
        self.counts.sync_data.store(0, Ordering::SeqCst);
        self.counts.sync_dir.store(0, Ordering::SeqCst);
        self.counts.writes.store(0, Ordering::SeqCst);
        self.counts.writebacks.store(0, Ordering::SeqCst);
    }
}

impl FileSystem for CountingFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn File>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(CountingFile { inner, counts: self.counts.clone() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        self.inner.remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.counts.sync_dir.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_dir(dir)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.inner.exists(path)
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}

/// A file handle opened through a [`CountingFileSystem`].
#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn File>,
    counts: Arc<Counts>,
}

impl File for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> Result<()> {
        self.counts.sync_data.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> Result<()> {
        self.inner.allocate(len)
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
        self.counts.writebacks.fetch_add(1, Ordering::SeqCst);
        self.inner.start_writeback(offset, len)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::fs::read_all;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    /// A file system with `/db` created and `/db/f` created, durable as an entry, empty.
    fn setup() -> (SimFileSystem, Arc<dyn File>) {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        let f = fs.open(p("/db/f"), OpenMode::CreateNew).expect("create");
        fs.sync_dir(p("/db")).expect("sync dir");
        (fs, f)
    }

    fn io_kind(err: &Error) -> Option<io::ErrorKind> {
        match err {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    fn raw_os(err: &Error) -> Option<i32> {
        match err {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    #[test]
    fn unsynced_data_vanishes_after_crash() {
        let (fs, f) = setup();
        f.write_all_at(b"synced", 0).expect("write");
        f.sync_data().expect("sync");
        f.write_all_at(b"+unsynced", 6).expect("write");
        assert_eq!(fs.read_file("/db/f").expect("live"), b"synced+unsynced");
        let after = fs.crash();
        assert_eq!(after.read_file("/db/f").expect("file survives"), b"synced");
        let g = after.open(p("/db/f"), OpenMode::ReadOnly).expect("reopen");
        assert_eq!(read_all(g.as_ref()).expect("read"), b"synced");
    }

    #[test]
    fn synced_data_survives_and_durable_entry_without_data_sync_is_empty() {
        let (fs, f) = setup();
        f.write_all_at(b"hello", 0).expect("write");
        f.sync_data().expect("sync");
        let g = fs.open(p("/db/g"), OpenMode::CreateNew).expect("create g");
        g.write_all_at(b"never synced", 0).expect("write");
        fs.sync_dir(p("/db")).expect("sync dir");
        let after = fs.crash();
        assert_eq!(after.read_file("/db/f").expect("f"), b"hello");
        assert_eq!(after.read_file("/db/g").expect("g entry is durable"), b"");
        // The recovered system is fully usable, and crashes again consistently.
        let f2 = after.open(p("/db/f"), OpenMode::ReadWrite).expect("reopen");
        f2.write_all_at(b" world", 5).expect("write");
        f2.sync_data().expect("sync");
        assert_eq!(after.crash().read_file("/db/f").expect("f"), b"hello world");
    }

    #[test]
    fn created_file_vanishes_without_dir_sync_even_if_data_synced() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        let f = fs.open(p("/db/new"), OpenMode::CreateNew).expect("create");
        f.write_all_at(b"data", 0).expect("write");
        f.sync_data().expect("sync");
        assert!(fs.exists(p("/db/new")).expect("exists"));
        let after = fs.crash();
        assert!(!after.exists(p("/db/new")).expect("exists"));
        assert_eq!(after.read_file("/db/new"), None);
        assert!(after.list_dir(p("/db")).expect("list").is_empty());
        // The directory itself was durable at creation.
        assert!(after.exists(p("/db")).expect("exists"));
    }

    #[test]
    fn sync_dir_covers_direct_children_only() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db/sub")).expect("mkdir");
        let f = fs.open(p("/db/sub/f"), OpenMode::CreateNew).expect("create");
        f.sync_data().expect("sync");
        fs.sync_dir(p("/db")).expect("sync parent of parent");
        assert_eq!(fs.crash().read_file("/db/sub/f"), None);
    }

    #[test]
    fn rename_is_durable_only_after_sync_dir() {
        let (fs, f) = setup();
        f.write_all_at(b"v1", 0).expect("write");
        f.sync_data().expect("sync");
        fs.rename(p("/db/f"), p("/db/g")).expect("rename");
        assert!(!fs.exists(p("/db/f")).expect("exists"));
        assert_eq!(fs.read_file("/db/g").expect("g"), b"v1");

        let undone = fs.crash();
        assert_eq!(undone.read_file("/db/f").expect("rename undone"), b"v1");
        assert_eq!(undone.read_file("/db/g"), None);

        undone.rename(p("/db/f"), p("/db/g")).expect("rename");
        undone.sync_dir(p("/db")).expect("sync dir");
        let done = undone.crash();
        assert_eq!(done.read_file("/db/f"), None);
        assert_eq!(done.read_file("/db/g").expect("rename durable"), b"v1");
    }

    #[test]
    fn rename_over_existing_file_keeps_old_contents_until_sync_dir() {
        let (fs, f) = setup();
        f.write_all_at(b"old", 0).expect("write");
        f.sync_data().expect("sync");
        let tmp = fs.open(p("/db/tmp"), OpenMode::CreateNew).expect("create");
        tmp.write_all_at(b"new", 0).expect("write");
        tmp.sync_data().expect("sync");
        fs.rename(p("/db/tmp"), p("/db/f")).expect("rename");
        assert_eq!(fs.read_file("/db/f").expect("live"), b"new");
        assert_eq!(fs.crash().read_file("/db/f").expect("old survives"), b"old");
        // Crashing the already crashed system again yields the same durable state.
        fs.sync_dir(p("/db")).expect_err("crashed");
        assert_eq!(fs.crash().read_file("/db/f").expect("old"), b"old");
    }

    #[test]
    fn removal_is_durable_only_after_sync_dir_and_open_handles_survive_it() {
        let (fs, f) = setup();
        f.write_all_at(b"x", 0).expect("write");
        f.sync_data().expect("sync");
        fs.remove_file(p("/db/f")).expect("remove");
        assert!(!fs.exists(p("/db/f")).expect("exists"));
        // The handle still works, like an unlinked inode.
        f.write_all_at(b"y", 1).expect("write after unlink");
        assert_eq!(read_all(f.as_ref()).expect("read"), b"xy");
        assert_eq!(fs.crash().read_file("/db/f").expect("comes back"), b"x");

        let (fs, _f) = setup();
        fs.remove_file(p("/db/f")).expect("remove");
        fs.sync_dir(p("/db")).expect("sync dir");
        assert_eq!(fs.crash().read_file("/db/f"), None);
    }

    #[test]
    fn torn_tail_keeps_durable_prefix_plus_prefix_of_unsynced_bytes() {
        let unsynced: &[u8] = b" and a long unsynced tail of appended bytes";
        let mut lengths = BTreeSet::new();
        for seed in 0..64 {
            let (fs, f) = setup();
            f.write_all_at(b"durable", 0).expect("write");
            f.sync_data().expect("sync");
            f.write_all_at(unsynced, 7).expect("write");
            let live = fs.read_file("/db/f").expect("live");
            let image = fs.crash_with(CrashMode::TornTail { seed }).read_file("/db/f").expect("f");
            assert!(image.starts_with(b"durable"), "seed {seed}: {image:?}");
            assert!(live.starts_with(&image), "seed {seed}: {image:?} is not a prefix of live");
            lengths.insert(image.len());

            // Deterministic: the same seed tears the same way.
            let (fs2, f2) = setup();
            f2.write_all_at(b"durable", 0).expect("write");
            f2.sync_data().expect("sync");
            f2.write_all_at(unsynced, 7).expect("write");
            let again = fs2.crash_with(CrashMode::TornTail { seed }).read_file("/db/f");
            assert_eq!(again.as_deref(), Some(image.as_slice()), "seed {seed}");
        }
        assert!(lengths.len() > 5, "tears should vary with the seed: {lengths:?}");
        assert!(lengths.iter().all(|&n| (7..=7 + unsynced.len()).contains(&n)));
    }

    #[test]
    fn torn_tail_on_preallocated_file_persists_a_prefix_of_in_place_writes() {
        let mut cuts = BTreeSet::new();
        for seed in 0..32 {
            let (fs, f) = setup();
            f.allocate(64).expect("allocate");
            f.write_all_at(b"head", 0).expect("write");
            f.sync_data().expect("sync");
            f.write_all_at(b"ABCDEFGH", 4).expect("write");
            let image = fs.crash_with(CrashMode::TornTail { seed }).read_file("/db/f").expect("f");
            assert_eq!(image.len(), 64);
            assert_eq!(image.get(..4), Some(b"head".as_slice()));
            let kept = image.iter().skip(4).take_while(|&&b| b != 0).count();
            assert_eq!(image.get(4..4 + kept), b"ABCDEFGH".get(..kept), "seed {seed}");
            assert!(image.iter().skip(4 + kept).all(|&b| b == 0), "seed {seed}: {image:?}");
            cuts.insert(kept);
        }
        assert!(cuts.len() > 2, "{cuts:?}");
    }

    #[test]
    fn torn_tail_does_not_resurrect_files_without_durable_entries() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        let f = fs.open(p("/db/f"), OpenMode::CreateNew).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        assert_eq!(fs.crash_with(CrashMode::TornTail { seed: 7 }).read_file("/db/f"), None);
    }

    #[test]
    fn fail_sync_after_fails_the_nth_sync_and_leaves_durable_unchanged() {
        let (fs, f) = setup();
        fs.fail_sync_after(2);
        f.write_all_at(b"one", 0).expect("write");
        f.sync_data().expect("first sync succeeds");
        f.write_all_at(b"two", 3).expect("write");
        let err = f.sync_data().expect_err("second sync fails");
        assert_eq!(raw_os(&err), Some(EIO), "{err}");
        assert_eq!(fs.durable_file("/db/f").expect("durable"), b"one");
        f.sync_data().expect_err("later syncs fail too");
        assert_eq!(fs.sync_data_count(), 3);
        assert_eq!(fs.durable_file("/db/f").expect("durable"), b"one");

        fs.clear_faults();
        f.sync_data().expect("sync after clear");
        assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"onetwo");
    }

    #[test]
    fn fail_sync_after_one_fails_the_very_next_sync() {
        let (fs, f) = setup();
        f.write_all_at(b"x", 0).expect("write");
        fs.fail_sync_after(1);
        f.sync_data().expect_err("fails");
        assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"");
    }

    #[test]
    fn fail_writes_after_returns_enospc_and_writes_nothing() {
        let (fs, f) = setup();
        fs.fail_writes_after(2);
        f.write_all_at(b"ab", 0).expect("first write");
        let err = f.write_all_at(b"cd", 2).expect_err("second write fails");
        assert_eq!(raw_os(&err), Some(ENOSPC), "{err}");
        assert!(matches!(&err, Error::Io { op: "write", path, .. } if path == p("/db/f")));
        assert_eq!(fs.read_file("/db/f").expect("live"), b"ab");
        fs.clear_faults();
        f.write_all_at(b"cd", 2).expect("write after clear");
        assert_eq!(fs.read_file("/db/f").expect("live"), b"abcd");
        assert_eq!(fs.write_count(), 3);
    }

    #[test]
    fn crashed_file_system_refuses_everything() {
        let (fs, f) = setup();
        f.write_all_at(b"keep", 0).expect("write");
        f.sync_data().expect("sync");
        let zombie = fs.clone();
        let lock = fs.lock(p("/db/LOCK")).expect("lock");
        let after = fs.crash();
        assert!(zombie.is_crashed());

        let crashed = |r: Result<()>| {
            let err = r.expect_err("crashed file system must refuse");
            assert!(matches!(err, Error::Io { .. }), "{err}");
            assert!(err.to_string().contains("crashed"), "{err}");
        };
        crashed(f.write_all_at(b"zombie", 0));
        crashed(f.sync_data());
        crashed(f.set_len(0));
        crashed(f.allocate(100));
        crashed(f.len().map(drop));
        crashed(f.read_at(&mut [0u8; 4], 0).map(drop));
        crashed(zombie.open(p("/db/f"), OpenMode::ReadWrite).map(drop));
        crashed(zombie.open(p("/db/z"), OpenMode::CreateNew).map(drop));
        crashed(zombie.rename(p("/db/f"), p("/db/g")));
        crashed(zombie.remove_file(p("/db/f")));
        crashed(zombie.list_dir(p("/db")).map(drop));
        crashed(zombie.create_dir_all(p("/other")));
        crashed(zombie.sync_dir(p("/db")));
        crashed(zombie.exists(p("/db/f")).map(drop));
        crashed(zombie.lock(p("/db/LOCK2")).map(drop));
        crashed(zombie.write_file_raw("/db/f", b"raw"));
        drop(lock);

        // Nothing the zombie tried reached the new file system.
        assert_eq!(after.read_file("/db/f").expect("f"), b"keep");
        assert_eq!(after.list_dir(p("/db")).expect("list"), vec!["f".to_string()]);
        assert_eq!(after.sync_data_count(), 0);
    }

    #[test]
    fn lock_is_exclusive_until_the_guard_drops() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        let held = fs.lock(p("/db/LOCK")).expect("first lock");
        assert!(fs.exists(p("/db/LOCK")).expect("exists"), "lock file is created");
        let err = fs.clone().lock(p("/db/LOCK")).expect_err("second lock must fail");
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        let other = fs.lock(p("/db/OTHER")).expect("other path is independent");
        drop(held);
        let _again = fs.lock(p("/db/LOCK")).expect("relock after drop");
        drop(other);
        // A crash releases every lock (the process died).
        fs.sync_dir(p("/db")).expect("sync dir");
        let after = fs.crash();
        let _fresh = after.lock(p("/db/LOCK")).expect("lock after crash");
    }

    #[test]
    fn open_modes_follow_the_contract() {
        let (fs, f) = setup();
        f.write_all_at(b"data", 0).expect("write");
        let err = fs.open(p("/db/f"), OpenMode::CreateNew).expect_err("exists");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::AlreadyExists), "{err}");
        assert_eq!(f.len().expect("len"), 4, "CreateNew must not clobber");
        let err = fs.open(p("/db/missing"), OpenMode::ReadWrite).expect_err("missing");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");
        let err = fs.open(p("/db/missing"), OpenMode::ReadOnly).expect_err("missing");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");
        let err = fs.open(p("/nodir/f"), OpenMode::CreateNew).expect_err("no parent");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound), "{err}");

        let ro = fs.open(p("/db/f"), OpenMode::ReadOnly).expect("open ro");
        assert!(matches!(ro.write_all_at(b"x", 0), Err(Error::Io { .. })));
        assert!(matches!(ro.set_len(0), Err(Error::Io { .. })));
        assert!(matches!(ro.allocate(10), Err(Error::Io { .. })));
        assert_eq!(read_all(ro.as_ref()).expect("read"), b"data");
        assert_eq!(ro.path(), p("/db/f"));
        let rw = fs.open(p("/db/f"), OpenMode::ReadWrite).expect("open rw");
        rw.write_all_at(b"D", 0).expect("write");
        assert_eq!(read_all(f.as_ref()).expect("shared data"), b"Data");
    }

    #[test]
    fn reads_writes_and_lengths_behave_like_a_file() {
        let (_fs, f) = setup();
        f.write_all_at(b"abc", 5).expect("write past end");
        assert_eq!(read_all(f.as_ref()).expect("read"), b"\0\0\0\0\0abc");
        let mut buf = [9u8; 4];
        assert_eq!(f.read_at(&mut buf, 6).expect("read"), 2);
        assert_eq!(&buf[..2], b"bc");
        assert_eq!(f.read_at(&mut buf, 8).expect("eof"), 0);
        assert_eq!(f.read_at(&mut buf, 1000).expect("past eof"), 0);
        f.allocate(4).expect("allocate smaller is a no-op");
        assert_eq!(f.len().expect("len"), 8);
        f.allocate(16).expect("allocate");
        assert_eq!(f.len().expect("len"), 16);
        f.set_len(6).expect("truncate");
        assert_eq!(read_all(f.as_ref()).expect("read"), b"\0\0\0\0\0a");
        let err = f.write_all_at(b"x", u64::MAX).expect_err("absurd offset");
        assert!(matches!(err, Error::Io { .. }));
    }

    #[test]
    fn namespace_operations() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/a/b/c")).expect("mkdir");
        fs.create_dir_all(p("/a/b")).expect("mkdir again is fine");
        fs.open(p("/a/b/f1"), OpenMode::CreateNew).expect("create");
        fs.open(p("/a/b/./f2"), OpenMode::CreateNew).expect("create");
        let mut names = fs.list_dir(p("/a/b")).expect("list");
        names.sort();
        assert_eq!(names, vec!["c", "f1", "f2"]);
        assert_eq!(fs.file_names("/a/b"), vec!["f1", "f2"]);
        assert!(fs.exists(p("/a/b/f2")).expect("exists"));
        assert!(fs.exists(p("/a")).expect("exists"));
        assert!(!fs.exists(p("/a/zz")).expect("exists"));
        let err = fs.list_dir(p("/nope")).expect_err("missing dir");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
        let err = fs.remove_file(p("/a/b/zz")).expect_err("missing file");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
        let err = fs.rename(p("/a/b/zz"), p("/a/b/yy")).expect_err("missing source");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
        let err = fs.rename(p("/a/b/f1"), p("/x/f1")).expect_err("missing target dir");
        assert_eq!(io_kind(&err), Some(io::ErrorKind::NotFound));
        fs.create_dir_all(p("/a/b/f1")).expect_err("file in the way");
        fs.sync_dir(p("/nope")).expect_err("missing dir");
        // Relative paths work too, rooted at "".
        fs.create_dir_all(p("rel")).expect("mkdir");
        fs.open(p("rel/f"), OpenMode::CreateNew).expect("create");
        fs.sync_dir(p("rel")).expect("sync");
        assert!(fs.crash().exists(p("./rel/f")).expect("exists"));
    }

    #[test]
    fn write_file_raw_overwrites_live_and_durable() {
        let (fs, f) = setup();
        f.write_all_at(b"original", 0).expect("write");
        f.sync_data().expect("sync");
        fs.write_file_raw("/db/f", b"0riginal").expect("corrupt");
        assert_eq!(read_all(f.as_ref()).expect("read via old handle"), b"0riginal");
        assert_eq!(fs.crash().read_file("/db/f").expect("f"), b"0riginal");

        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        fs.write_file_raw("/db/new", b"abc").expect("create raw");
        assert_eq!(fs.crash().read_file("/db/new").expect("durable at once"), b"abc");
    }

    /// Random writes, truncations, extensions and syncs: after each sync the durable image
    /// equals the live one, and a crash restores the image of the last successful sync.
    /// Exercises the dirty-range bookkeeping.
    #[test]
    fn durable_image_tracks_last_sync_under_random_operations() {
        for seed in 0..50u64 {
            let (fs, f) = setup();
            let mut rng = seed;
            let mut next = |bound: u64| {
                rng = splitmix64(rng);
                rng % bound
            };
            let mut last_synced = Vec::new();
            for _ in 0..60 {
                match next(5) {
                    0 | 1 => {
                        let len = next(20) as usize + 1;
                        let byte = next(255) as u8 + 1;
                        f.write_all_at(&vec![byte; len], next(100)).expect("write");
                    }
                    2 => f.set_len(next(120)).expect("set_len"),
                    3 => f.allocate(next(150)).expect("allocate"),
                    _ => {
                        f.sync_data().expect("sync");
                        last_synced = fs.read_file("/db/f").expect("live");
                        assert_eq!(fs.durable_file("/db/f").expect("durable"), last_synced);
                    }
                }
            }
            assert_eq!(fs.crash().read_file("/db/f").expect("f"), last_synced, "seed {seed}");
        }
    }

    #[test]
    fn shared_between_threads() {
        let fs = SimFileSystem::new();
        fs.create_dir_all(p("/db")).expect("mkdir");
        let shared = fs.shared();
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let path = PathBuf::from(format!("/db/t{t}"));
                    let f = shared.open(&path, OpenMode::CreateNew).expect("create");
                    for i in 0..100u64 {
                        f.write_all_at(&[t], i).expect("write");
                        f.sync_data().expect("sync");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        fs.sync_dir(p("/db")).expect("sync dir");
        assert_eq!(fs.sync_data_count(), 400);
        assert_eq!(fs.write_count(), 400);
        assert_eq!(fs.sync_dir_count(), 1);
        let after = fs.crash();
        for t in 0..4u8 {
            assert_eq!(after.read_file(format!("/db/t{t}")).expect("file"), vec![t; 100]);
        }
    }

    #[test]
    fn counting_file_system_counts_on_a_real_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counting = CountingFileSystem::os();
        let fs = counting.shared();
        let path = dir.path().join("f");
        let f = fs.open(&path, OpenMode::CreateNew).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.write_all_at(b"def", 3).expect("write");
        f.sync_data().expect("sync");
        fs.sync_dir(dir.path()).expect("sync dir");
        let g = fs.open(&path, OpenMode::ReadOnly).expect("reopen");
        assert_eq!(read_all(g.as_ref()).expect("read"), b"abcdef");
        g.sync_data().expect("sync via second handle");
        assert_eq!(counting.write_count(), 2);
        assert_eq!(counting.sync_data_count(), 2);
        assert_eq!(counting.sync_dir_count(), 1);
        assert_eq!(std::fs::read(&path).expect("on disk"), b"abcdef");
        // Failed calls count too, and errors pass through untouched.
        assert!(g.write_all_at(b"x", 0).is_err());
        assert_eq!(counting.write_count(), 3);
        counting.reset_counts();
        assert_eq!(
            (counting.write_count(), counting.sync_data_count(), counting.sync_dir_count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn counting_file_system_wraps_the_simulator() {
        let sim = SimFileSystem::new();
        let counting = CountingFileSystem::new(sim.shared());
        counting.create_dir_all(p("/db")).expect("mkdir");
        let f = counting.open(p("/db/f"), OpenMode::CreateNew).expect("create");
        f.write_all_at(b"x", 0).expect("write");
        f.sync_data().expect("sync");
        counting.sync_dir(p("/db")).expect("sync dir");
        assert_eq!((counting.write_count(), counting.sync_data_count()), (1, 1));
        assert_eq!((sim.write_count(), sim.sync_data_count(), sim.sync_dir_count()), (1, 1, 1));
        assert_eq!(sim.crash().read_file("/db/f").expect("f"), b"x");
    }
}
