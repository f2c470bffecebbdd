//! Issue 13, "a scan must see every key at its sequence": `Db::scan` reads at the
//! visible sequence, and a compaction that installs while the scan is being set up must
//! not take away the version that sequence sees.

use std::ops::RangeFrom;
use std::sync::Mutex;
use std::sync::mpsc;

use strata_core::{Db, Durability};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn open(fs: &SimFileSystem) -> Db {
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024).open().expect("open")
}

/// A range start whose `as_ref` — which `scan` calls while it sets up — stops once and
/// waits, so the test can run a whole compaction inside the scan's setup
/// deterministically (a pause point from the caller's side: no hook in the engine).
struct PausingKey {
    key: &'static [u8],
    pause: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl AsRef<[u8]> for PausingKey {
    fn as_ref(&self) -> &[u8] {
        let taken = self.pause.lock().map(|mut p| p.take()).unwrap_or(None);
        if let Some((entered, resume)) = taken {
            entered.send(()).expect("test thread waits for the pause");
            resume.recv().expect("test thread resumes the scan");
        }
        self.key
    }
}

#[test]
fn a_compaction_during_scan_setup_does_not_take_the_scans_version_away() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    db.put(b"k", b"old", Durability::Buffered).expect("put");
    db.flush().expect("flush");

    let (entered_tx, entered_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let start = PausingKey { key: b"k", pause: Mutex::new(Some((entered_tx, resume_rx))) };
    let scanner = {
        let db = db.clone();
        std::thread::spawn(move || {
            let range: RangeFrom<PausingKey> = start..;
            db.scan(range).collect::<Result<Vec<_>, _>>()
        })
    };
    entered_rx.recv().expect("the scan reached its pause");

    // While the scan is set up: overwrite the key, flush, and flush until L0 compacts.
    // The compaction sees no reader at the scan's sequence and keeps only "new".
    let compactions = db.stats().compactions;
    db.put(b"k", b"new", Durability::Buffered).expect("put");
    db.flush().expect("flush");
    let mut n = 0u32;
    while db.stats().compactions == compactions {
        db.put(format!("filler{n:04}").as_bytes(), b"x", Durability::Buffered).expect("put");
        db.flush().expect("flush");
        db.wait_for_background().expect("settle");
        n += 1;
        assert!(n < 100, "L0 never compacted: {:?}", db.stats());
    }
    resume_tx.send(()).expect("scanner waits");
    let seen = scanner.join().expect("scanner thread").expect("scan");
    let keys: Vec<(&[u8], &[u8])> = seen.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    assert_eq!(
        keys,
        vec![(&b"k"[..], &b"old"[..])],
        "the scan reads at the sequence visible when it started: it must see k = old"
    );
}

/// Writers overwrite a fixed key set (every key always exists), small memtables flush
/// and compact all the time, and scanners check that every scan holds every key with a
/// well-formed value for it. Bounded by operation counts, not time.
#[test]
fn concurrent_scans_see_every_key_through_flushes_and_compactions() {
    const KEYS: u32 = 200;
    let fs = SimFileSystem::new();
    let db = open(&fs);
    let key = |i: u32| format!("key{i:04}").into_bytes();
    for i in 0..KEYS {
        db.put(&key(i), format!("key{i:04}=w9-0").as_bytes(), Durability::Buffered).expect("put");
    }
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9u32.wrapping_mul(w + 1);
                for n in 0..6000u32 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let i = x % KEYS;
                    let value = format!("key{i:04}=w{w}-{n}");
                    db.put(format!("key{i:04}").as_bytes(), value.as_bytes(), Durability::Buffered)
                        .expect("put");
                }
            })
        })
        .collect();
    let scanners: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..150 {
                    let all: Vec<_> = db.iter().collect::<Result<_, _>>().expect("scan");
                    assert_eq!(all.len(), KEYS as usize, "a scan lost keys");
                    for (i, (k, v)) in all.iter().enumerate() {
                        let want = format!("key{i:04}");
                        assert_eq!(k.as_ref(), want.as_bytes(), "keys in order");
                        let v = std::str::from_utf8(v).expect("utf-8");
                        assert!(v.starts_with(&format!("{want}=w")), "value {v} for {want}");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    for s in scanners {
        s.join().expect("scanner");
    }
    db.wait_for_background().expect("settle");
    let st = db.stats();
    assert!(st.flushes > 5 && st.compactions > 0, "flushes and compactions ran: {st:?}");
}
