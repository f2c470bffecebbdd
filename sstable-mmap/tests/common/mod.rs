//! Helpers shared by the integration tests: a table directory on the real file system
//! (mmap reader) or on the harness's simulated one (read-all reader).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};
use strata_core::{Entry, FileNo, Result, SeqNo, Table, TableFormat, TableMeta, ValueKind};
use strata_harness::sim_fs::SimFileSystem;
use strata_sstable_mmap::{MmapTable, MmapTableFormat, MmapTableOptions};

/// Where the test's tables live.
pub struct Env {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    pub sim: Option<SimFileSystem>,
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    /// A temporary directory on the OS file system: tables are memory-mapped.
    pub fn os() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        Env {
            fs: OsFileSystem::shared(),
            dir: tmp.path().to_path_buf(),
            sim: None,
            _tmp: Some(tmp),
        }
    }

    /// A directory on the simulated file system: tables are read whole at open.
    pub fn sim() -> Env {
        let sim = SimFileSystem::new();
        let fs = sim.shared();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).expect("mkdir");
        Env { fs, dir, sim: Some(sim), _tmp: None }
    }

    /// Both kinds, for tests that must hold on each.
    pub fn both() -> [Env; 2] {
        [Env::os(), Env::sim()]
    }

    pub fn is_os(&self) -> bool {
        self.sim.is_none()
    }

    pub fn path(&self, n: u64) -> PathBuf {
        self.dir.join(FileNo(n).table_file_name())
    }

    /// Builds table `n` from `entries` (already in internal-key order).
    pub fn build(&self, opts: MmapTableOptions, n: u64, entries: &[Entry]) -> TableMeta {
        let file = self.fs.open(&self.path(n), OpenMode::CreateNew).expect("create table file");
        let mut b = MmapTableFormat::new(opts).builder(file, FileNo(n)).expect("builder");
        for e in entries {
            b.add(&e.key, e.seq, e.kind, &e.value).expect("add");
        }
        assert_eq!(b.entries(), entries.len() as u64);
        b.finish().expect("finish")
    }

    pub fn open(&self, n: u64) -> Result<Arc<MmapTable>> {
        let file = self.fs.open(&self.path(n), OpenMode::ReadOnly)?;
        MmapTableFormat::default().open_table(file, FileNo(n))
    }

    pub fn open_dyn(&self, n: u64) -> Result<Arc<dyn Table>> {
        let file = self.fs.open(&self.path(n), OpenMode::ReadOnly)?;
        MmapTableFormat::default().open(file, FileNo(n))
    }

    pub fn read_bytes(&self, n: u64) -> Vec<u8> {
        match &self.sim {
            Some(sim) => sim.read_file(self.path(n)).expect("file exists"),
            None => std::fs::read(self.path(n)).expect("read file"),
        }
    }

    /// Replaces the file's bytes (damage on the disk itself).
    pub fn write_bytes(&self, n: u64, bytes: &[u8]) {
        match &self.sim {
            Some(sim) => sim.write_file_raw(self.path(n), bytes).expect("write raw"),
            None => std::fs::write(self.path(n), bytes).expect("write file"),
        }
    }
}

pub fn put(key: impl AsRef<[u8]>, seq: u64, value: impl AsRef<[u8]>) -> Entry {
    Entry {
        key: Bytes::copy_from_slice(key.as_ref()),
        seq: SeqNo(seq),
        kind: ValueKind::Put,
        value: Bytes::copy_from_slice(value.as_ref()),
    }
}

pub fn del(key: impl AsRef<[u8]>, seq: u64) -> Entry {
    Entry {
        key: Bytes::copy_from_slice(key.as_ref()),
        seq: SeqNo(seq),
        kind: ValueKind::Delete,
        value: Bytes::new(),
    }
}

/// `n` keys `key-000000i` with one 100-byte value each, sequence `i + 1`.
pub fn simple_entries(n: usize) -> Vec<Entry> {
    (0..n).map(|i| put(format!("key-{i:08}"), i as u64 + 1, value_for(i, 100))).collect()
}

/// A deterministic value of `len` bytes, different for each `i`.
pub fn value_for(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

/// Every entry of the table (unbounded range, newest snapshot).
pub fn scan(t: &Arc<MmapTable>) -> Result<Vec<Entry>> {
    t.clone().range((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded), SeqNo::MAX).collect()
}

/// Asserts that `err` is a corruption naming `file` (and `offset`, when given).
pub fn assert_corruption(err: &strata_core::Error, file: &Path, offset: Option<u64>) {
    match err {
        strata_core::Error::Corruption { file: f, offset: o, reason } => {
            assert_eq!(f, file, "wrong file named ({reason})");
            if let Some(offset) = offset {
                assert_eq!(*o, offset, "wrong offset named ({reason})");
            }
        }
        other => panic!("expected a corruption error, got: {other}"),
    }
}
