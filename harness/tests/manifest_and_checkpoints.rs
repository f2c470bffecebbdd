//! Issue 13, "a bad manifest edit never reaches the disk" and "periodic checkpoints are
//! atomic": the manifest writer checks every edit against the state it describes before
//! writing it, and a checkpoint is built in a temporary directory and renamed into
//! place, so a failed one leaves nothing that counts as a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_core::fs::{File, FileLock, FileSystem, OpenMode, OsFileSystem};
use strata_core::manifest::{ManifestState, ManifestWriter, VersionEdit, manifest_file_name};
use strata_core::{Db, DbOptions, Durability, Error, FileNo, PeriodicCheckpoint, SeqNo, TableMeta};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn meta(no: u64) -> TableMeta {
    TableMeta {
        file_no: FileNo(no),
        size_bytes: 100,
        smallest_key: Bytes::from_static(b"a"),
        largest_key: Bytes::from_static(b"z"),
        min_seq: SeqNo(1),
        max_seq: SeqNo(5),
        entries: 3,
        tombstones: 0,
    }
}

#[test]
fn a_bad_manifest_edit_is_refused_and_nothing_is_appended() {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("/m");
    fs.create_dir_all(dir).expect("dir");
    let mut state = ManifestState::empty(7);
    state.table_format = Some("mmap".into());
    let mut w = ManifestWriter::create(&*fs, dir, FileNo(1), &state).expect("create");
    let add = VersionEdit {
        added: vec![(0, meta(2))],
        flushed_seq: Some(SeqNo(10)),
        next_file_no: Some(FileNo(3)),
        ..VersionEdit::default()
    };
    w.append(&add).expect("a good edit is appended");
    let path = dir.join(manifest_file_name(FileNo(1)));
    let before = sim.read_file(&path).expect("manifest");
    let bad = [
        (
            "removes a table the version does not hold",
            VersionEdit { removed: vec![(1, FileNo(2))], ..VersionEdit::default() },
        ),
        (
            "adds a table number already present",
            VersionEdit { added: vec![(1, meta(2))], ..VersionEdit::default() },
        ),
        (
            "adds to a level out of range",
            VersionEdit { added: vec![(7, meta(4))], ..VersionEdit::default() },
        ),
        (
            "moves the flushed sequence backwards",
            VersionEdit { flushed_seq: Some(SeqNo(9)), ..VersionEdit::default() },
        ),
        (
            "moves the next file number backwards",
            VersionEdit { next_file_no: Some(FileNo(2)), ..VersionEdit::default() },
        ),
    ];
    for (what, edit) in &bad {
        let err = w.append(edit).expect_err(what);
        assert!(matches!(err, Error::InvalidArgument(_)), "{what}: {err}");
        assert_eq!(sim.read_file(&path), Some(before.clone()), "{what}: bytes were appended");
    }
    // The writer still works, and the manifest reads back as the good edits only.
    let mv = VersionEdit {
        added: vec![(1, meta(4))],
        removed: vec![(0, FileNo(2))],
        ..VersionEdit::default()
    };
    w.append(&mv).expect("a good edit after refused ones");
    let read = strata_core::manifest::read_manifest(&*fs, dir, FileNo(1)).expect("reads");
    let tables: Vec<(usize, u64)> =
        read.state.live_tables().map(|(l, t)| (l, t.file_no.0)).collect();
    assert_eq!(tables, vec![(1, 4)]);
    assert_eq!(read.state.flushed_seq, SeqNo(10));
}

/// The OS file system, with `sync_data` failing for files under `prefix` while armed.
#[derive(Debug)]
struct FailingSyncs {
    inner: Arc<dyn FileSystem>,
    prefix: PathBuf,
    armed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct MaybeFailingFile {
    inner: Arc<dyn File>,
    fail: bool,
    armed: Arc<AtomicBool>,
}

impl File for MaybeFailingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> strata_core::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> strata_core::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> strata_core::Result<()> {
        if self.fail && self.armed.load(Ordering::SeqCst) {
            return Err(Error::io(
                "fdatasync",
                self.inner.path(),
                std::io::Error::other("injected"),
            ));
        }
        self.inner.sync_data()
    }
    fn len(&self) -> strata_core::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> strata_core::Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> strata_core::Result<()> {
        self.inner.allocate(len)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> strata_core::Result<()> {
        self.inner.start_writeback(offset, len)
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
}

impl FileSystem for FailingSyncs {
    fn open(&self, path: &Path, mode: OpenMode) -> strata_core::Result<Arc<dyn File>> {
        Ok(Arc::new(MaybeFailingFile {
            inner: self.inner.open(path, mode)?,
            fail: path.starts_with(&self.prefix),
            armed: Arc::clone(&self.armed),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> strata_core::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> strata_core::Result<()> {
        self.inner.remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> strata_core::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> strata_core::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> strata_core::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> strata_core::Result<bool> {
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> strata_core::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> strata_core::Result<()> {
        self.inner.hard_link(from, to)
    }
}

fn k(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

/// Waits until `done(stats)` holds, re-checking whenever the store reports progress
/// (bounded so that a broken store fails the test instead of hanging it).
fn wait_for(db: &Db, what: &str, done: impl Fn(&strata_core::DbStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&db.stats()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", db.stats());
        std::thread::yield_now();
    }
}

fn numbered(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_digit()))
    });
    v.sort();
    v
}

#[test]
fn a_failed_periodic_checkpoint_leaves_nothing_that_counts_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    let armed = Arc::new(AtomicBool::new(false));
    let fs: Arc<dyn FileSystem> = Arc::new(FailingSyncs {
        inner: OsFileSystem::shared(),
        prefix: checkpoints.clone(),
        armed: Arc::clone(&armed),
    });
    let db = tiny_builder(dir.path().join("db"), fs, 4096, 16384)
        .with_options(DbOptions {
            memtable_size_bytes: 4096,
            compaction_threads: 1,
            periodic_checkpoint: Some(PeriodicCheckpoint {
                dir: checkpoints.clone(),
                interval: Duration::from_millis(5),
                keep: 2,
            }),
            ..DbOptions::default()
        })
        .open()
        .expect("open");
    for i in 0..300 {
        db.put(&k(i), b"v", Durability::Sync).expect("put");
    }
    wait_for(&db, "two good checkpoints", |s| s.checkpoints >= 2);
    // From now on every checkpoint fails while copying the WAL (its fdatasync).
    armed.store(true, Ordering::SeqCst);
    let failed = db.stats().failed_checkpoints;
    // Once one failed, no checkpoint that started before arming is still running.
    wait_for(&db, "a failed checkpoint", |s| s.failed_checkpoints > failed);
    let good = db.stats().checkpoints;
    let before = numbered(&checkpoints);
    wait_for(&db, "more failed checkpoints", |s| s.failed_checkpoints >= failed + 4);
    assert_eq!(db.stats().checkpoints, good, "no checkpoint succeeds while syncs fail");
    assert_eq!(
        numbered(&checkpoints),
        before,
        "failed checkpoints left directories under a checkpoint's name"
    );
    assert_eq!(before.len(), 2, "the two good checkpoints are kept: {before:?}");
    for c in &before {
        assert!(c.join("CURRENT").exists(), "{} is complete", c.display());
    }
    armed.store(false, Ordering::SeqCst);
    wait_for(&db, "a good checkpoint after the failures", |s| s.checkpoints >= good + 2);
    drop(db);
    let kept = numbered(&checkpoints);
    assert_eq!(kept.len(), 2, "keep = 2 complete checkpoints, no half one: {kept:?}");
    for c in &kept {
        let copy = tiny_builder(c, OsFileSystem::shared(), 4096, 16384)
            .open()
            .unwrap_or_else(|e| panic!("{} does not open: {e}", c.display()));
        for i in (0..300).step_by(29) {
            assert_eq!(
                copy.get(&k(i)).expect("get").as_deref(),
                Some(&b"v"[..]),
                "key {i} in {}: {:?}",
                c.display(),
                copy.open_report()
            );
        }
    }
}
