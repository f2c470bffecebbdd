//! A flushed memtable is freed by the flush thread, not by whichever thread happens to
//! drop the last reference: freeing a large memtable takes long enough to be a write's
//! worst latency when a writer (or a reader) pays for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_core::memtable::{EntryIter, KeyRange, Lookup};
use strata_core::{DbOptions, Durability, MemTable, MemTableFactory, SeqNo, ValueKind};
use strata_memtable_skiplist::SkipListFactory;
use strata_plugins::DefaultStack;

/// The skiplist memtable, recording the name of the thread that drops each one.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn MemTable>,
    dropped_on: Arc<Mutex<Vec<String>>>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.dropped_on.lock().push(name);
    }
}

impl MemTable for Recording {
    fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        self.inner.insert(key, seq, kind, value);
    }
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<Lookup> {
        self.inner.get(key, snapshot)
    }
    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> EntryIter {
        Arc::clone(&self.inner).range(range, snapshot)
    }
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn max_seq(&self) -> SeqNo {
        self.inner.max_seq()
    }
}

#[derive(Debug, Default)]
struct RecordingFactory {
    dropped_on: Arc<Mutex<Vec<String>>>,
}

impl MemTableFactory for RecordingFactory {
    fn create(&self) -> Arc<dyn MemTable> {
        Arc::new(Recording {
            inner: SkipListFactory.create(),
            dropped_on: Arc::clone(&self.dropped_on),
        })
    }
    fn name(&self) -> &'static str {
        "recording-skiplist"
    }
}

#[test]
fn a_flushed_memtable_is_freed_on_the_flush_thread_even_while_a_reader_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let factory = Arc::new(RecordingFactory::default());
    let dropped_on = Arc::clone(&factory.dropped_on);
    let db = DefaultStack::new()
        .with_engine(DbOptions::default())
        .builder(dir.path())
        .expect("stack")
        .with_memtable(factory)
        .open()
        .expect("open");
    for i in 0..100u32 {
        db.put(format!("key/{i:04}").as_bytes(), b"value", Durability::Buffered).expect("put");
    }
    // A reader that holds the store's state from before the flush, the memtable in it.
    let reader = db.iter();
    db.flush().expect("flush");
    // The flush is done; the reader lets go right after, as a writer's `write` would.
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped_on.lock().is_empty() {
        assert!(Instant::now() < deadline, "the flushed memtable was never freed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        dropped_on.lock().as_slice(),
        ["strata-flush".to_owned()],
        "the flushed memtable was freed by another thread than the flush thread"
    );
    assert_eq!(db.get(b"key/0042").expect("get").as_deref(), Some(&b"value"[..]));
}
