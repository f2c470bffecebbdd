//! A table a compaction made obsolete is deleted (unlinked, unmapped, closed) by the
//! compaction thread, not by whichever thread drops the last reference: closing an
//! unlinked file can wait for the device to discard its blocks, milliseconds per table,
//! and a writer that still held the state from before the compaction used to pay that
//! for every input table in the middle of its `write`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::fs::{File, OsFileSystem};
use strata_core::memtable::{KeyRange, Lookup};
use strata_core::table::{FileNo, Table, TableBuilder, TableFormat, TableIter, TableMeta};
use strata_core::{Durability, SeqNo};
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};

/// A table recording the name of the thread that drops it.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Table>,
    dropped_on: Arc<Mutex<Vec<String>>>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.dropped_on.lock().push(name);
    }
}

impl Table for Recording {
    fn meta(&self) -> &TableMeta {
        self.inner.meta()
    }
    fn get(&self, key: &[u8], snapshot: SeqNo) -> strata_core::Result<Option<Lookup>> {
        self.inner.get(key, snapshot)
    }
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> TableIter {
        Arc::clone(&self.inner).range(range, snapshot)
    }
    fn verify(&self) -> Vec<strata_core::Error> {
        self.inner.verify()
    }
}

#[derive(Debug)]
struct RecordingFormat {
    inner: MmapTableFormat,
    dropped_on: Arc<Mutex<Vec<String>>>,
}

impl TableFormat for RecordingFormat {
    fn name(&self) -> &'static str {
        "recording-mmap"
    }
    fn builder(
        &self,
        file: Arc<dyn File>,
        file_no: FileNo,
    ) -> strata_core::Result<Box<dyn TableBuilder>> {
        self.inner.builder(file, file_no)
    }
    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> strata_core::Result<Arc<dyn Table>> {
        let inner = self.inner.open(file, file_no)?;
        Ok(Arc::new(Recording { inner, dropped_on: Arc::clone(&self.dropped_on) }))
    }
}

#[test]
fn obsolete_tables_are_deleted_on_the_compaction_thread_even_while_a_reader_holds_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dropped_on = Arc::new(Mutex::new(Vec::new()));
    let format = RecordingFormat {
        inner: MmapTableFormat::new(MmapTableOptions {
            block_size: 256,
            ..MmapTableOptions::default()
        }),
        dropped_on: Arc::clone(&dropped_on),
    };
    let db = strata_harness::stack::tiny_builder(
        dir.path(),
        OsFileSystem::shared(),
        64 * 1024,
        256 * 1024,
    )
    .with_table_format(Arc::new(format))
    .open()
    .expect("open");
    let value = vec![7u8; 100];
    let write_and_flush = |db: &strata_core::Db| {
        for i in 0..400u32 {
            // The same keys every round: every table overlaps every other, so
            // compactions rewrite them (no table just moves down a level).
            let key = format!("key/{i:05}");
            db.put(key.as_bytes(), &value, Durability::Buffered).expect("put");
        }
        db.flush().expect("flush");
    };
    for _ in 0..3 {
        write_and_flush(&db);
    }
    // A reader holding the store's state, the tables in it, across compactions.
    let reader = db.iter();
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.stats().compactions < 5 {
        assert!(Instant::now() < deadline, "too few compactions ran");
        write_and_flush(&db);
    }
    db.wait_for_background().expect("background");
    // Tables written after the reader was made may be gone already; the three it holds
    // (compacted away by now) are not.
    let before = dropped_on.lock().len();
    // The compactions are done; the reader lets go, as a writer's `write` would.
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped_on.lock().len() < before + 3 {
        assert!(Instant::now() < deadline, "the tables the reader held were never deleted");
        std::thread::sleep(Duration::from_millis(5));
    }
    db.wait_for_background().expect("background");
    let on = dropped_on.lock().clone();
    assert!(
        on.iter().all(|name| name.starts_with("strata-compact")),
        "obsolete tables were dropped by other threads than the compaction thread: {on:?}"
    );
    assert_eq!(db.get(b"key/00000").expect("get").as_deref(), Some(&value[..]));
}

/// With two compaction threads, every table a compaction made obsolete is deleted once
/// the store is idle: each thread releases only its own task's inputs (were both to
/// keep a table, each would wait for the other to let go, and its file would stay).
#[test]
fn with_two_compaction_threads_every_obsolete_table_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = strata_harness::stack::tiny_builder(
        dir.path(),
        OsFileSystem::shared(),
        64 * 1024,
        256 * 1024,
    )
    .with_options(strata_core::DbOptions {
        memtable_size_bytes: 64 * 1024,
        compaction_threads: 2,
        ..strata_core::DbOptions::default()
    })
    .open()
    .expect("open");
    let value = vec![3u8; 120];
    for round in 0..40u64 {
        for i in 0..500u64 {
            let key = format!("key/{:06}", (i * 7919 + round * 104_729) % 20_000);
            db.put(key.as_bytes(), &value, Durability::Buffered).expect("put");
        }
        db.flush().expect("flush");
    }
    db.wait_for_background().expect("background");
    assert!(db.stats().compactions > 0, "no compaction ran");
    let on_disk = || {
        std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter(|e| e.as_ref().expect("entry").file_name().to_string_lossy().ends_with(".sst"))
            .count()
    };
    let listed = || db.stats().levels.iter().map(|l| l.tables).sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(30);
    while on_disk() != listed() {
        assert!(
            Instant::now() < deadline,
            "{} table files on disk, {} in the store: obsolete tables were never deleted",
            on_disk(),
            listed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
