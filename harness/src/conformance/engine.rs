//! The engine conformance suite: any complete stack, assembled by the caller's builder
//! closure on the fault-injecting [`SimFileSystem`], against a `BTreeMap` model, power
//! losses and fsync failures.
//!
//! | check | clause |
//! |---|---|
//! | `engine::model_with_reopens_flushes_and_compactions` | random batches, snapshots, scans, flushes, settles and reopens agree with a model |
//! | `engine::reopen_keeps_buffered_writes` | a clean close and reopen keeps every write, `Buffered` included |
//! | `engine::power_loss_keeps_acked_sync_writes` | after a power loss every acknowledged `Sync` write is there, and the survivors are a prefix of the commit order |
//! | `engine::snapshot_is_stable_across_compaction` | a snapshot's reads and scans do not change while flushes and compactions rewrite the files under it |
//! | `engine::fsync_failure_poisons_the_store` | a failed fsync poisons the store: later writes are `Error::Poisoned`; acknowledged data survives a reopen |
//! | `engine::concurrent_writers_are_all_visible` | many writer threads; every acknowledged write is readable |
//! | `engine::damaged_table_is_reported_never_served` | a flipped byte in a table file is an error (at open or on read), never a wrong or missing value |

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use strata_core::fs::FileSystem;
use strata_core::{Db, DbBuilder, Durability, Error, Snapshot, WriteBatch};

use super::report::Report;
use super::runner::{Check, CheckResult, Ctx, bytes_from, ensure, property, run_checks};
use crate::sim_fs::{CrashMode, SimFileSystem};

/// What the stack under test supports, and the sizes the suite runs it at.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineCaps {
    /// Memtable size the suite sets (tiny, so writes flush and compact all the time).
    /// Default 2 KiB.
    pub memtable_size_bytes: usize,
    /// The stack keeps acknowledged `Sync` writes across a power loss (off for an
    /// in-memory stack). Gates the power-loss and fsync-failure checks.
    pub durable: bool,
    /// Cases of the model check. Default 32.
    pub model_cases: u32,
}

impl Default for EngineCaps {
    fn default() -> Self {
        Self { memtable_size_bytes: 2048, durable: true, model_cases: 32 }
    }
}

impl EngineCaps {
    /// Sets [`EngineCaps::memtable_size_bytes`].
    #[must_use]
    pub fn with_memtable_size_bytes(mut self, bytes: usize) -> Self {
        self.memtable_size_bytes = bytes;
        self
    }
    /// Sets [`EngineCaps::durable`].
    #[must_use]
    pub fn with_durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }
    /// Sets [`EngineCaps::model_cases`].
    #[must_use]
    pub fn with_model_cases(mut self, cases: u32) -> Self {
        self.model_cases = cases;
        self
    }
}

/// Assembles a store in a directory on a file system (the suite passes a
/// [`SimFileSystem`]).
pub type StackFn<'a> = &'a dyn Fn(&Path, Arc<dyn FileSystem>) -> DbBuilder;

struct Subject<'a> {
    stack: StackFn<'a>,
    caps: EngineCaps,
}

/// Runs the engine suite on the stack `stack` builds.
pub fn run(stack: &dyn Fn(&Path, Arc<dyn FileSystem>) -> DbBuilder, caps: EngineCaps) -> Report {
    let durable = caps.durable;
    let subject = Subject { stack, caps };
    let name = subject
        .open(&SimFileSystem::new())
        .map(|db| {
            format!("{}+{}+{}", db.memtable_kind(), db.table_format(), db.compaction_policy())
        })
        .unwrap_or_else(|e| format!("a stack that does not open: {e}"));
    let checks = vec![
        Check::new("engine::model_with_reopens_flushes_and_compactions", model),
        Check::new("engine::reopen_keeps_buffered_writes", reopen_keeps_buffered),
        Check::when(durable, "durable", "engine::power_loss_keeps_acked_sync_writes", power_loss),
        Check::new("engine::snapshot_is_stable_across_compaction", snapshot_stable),
        Check::when(durable, "durable", "engine::fsync_failure_poisons_the_store", fsync_failure),
        Check::new("engine::concurrent_writers_are_all_visible", concurrent_writers),
        Check::new("engine::damaged_table_is_reported_never_served", damaged_table),
    ];
    run_checks("engine", name, &subject, checks)
}

const DIR: &str = "/db";

impl Subject<'_> {
    fn open(&self, fs: &SimFileSystem) -> Result<Db, String> {
        let mut b = (self.stack)(Path::new(DIR), fs.shared());
        let o = b.options_mut();
        o.memtable_size_bytes = self.caps.memtable_size_bytes;
        o.compaction_threads = 1;
        b.open().ctx("open the store")
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn key(k: u16) -> Vec<u8> {
    format!("key{k:04}").into_bytes()
}

fn collect(it: strata_core::DbIter) -> Result<Pairs, String> {
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_, _>>().ctx("scan")
}

fn check_all(
    db: &Db,
    model: &Model,
    snap: Option<&Snapshot>,
    keys: u16,
    what: &str,
) -> CheckResult {
    for k in 0..keys {
        let got = match snap {
            Some(s) => db.get_at(&key(k), s),
            None => db.get(&key(k)),
        }
        .ctx("get")?;
        let want = model.get(&key(k));
        ensure!(
            got.as_deref() == want.map(Vec::as_slice),
            "{what}: get(key{k:04}) expected {:?}, found {:?}",
            want.map(|v| v.len()),
            got.map(|v| v.len())
        );
    }
    let scanned = match snap {
        Some(s) => collect(db.scan_at::<&[u8], _>(.., s))?,
        None => collect(db.iter())?,
    };
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    ensure!(
        scanned == want,
        "{what}: a full scan yields {} pairs, the model {} (first difference at #{})",
        scanned.len(),
        want.len(),
        scanned.iter().zip(&want).take_while(|(a, b)| a == b).count()
    );
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Batch(Vec<(u16, Option<u8>)>),
    Snapshot,
    Reopen,
    Scan(u16, u16),
    Flush,
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0u16..60, prop::option::weighted(0.8, 0u8..200)), 1..8).prop_map(Op::Batch),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
        1 => (0u16..64, 0u16..64).prop_map(|(a, b)| Op::Scan(a, b)),
        1 => Just(Op::Flush),
        1 => Just(Op::Settle),
    ]
}

fn model(s: &Subject<'_>) -> CheckResult {
    property(s.caps.model_cases, prop::collection::vec(op(), 1..50), |ops| {
        let fs = SimFileSystem::new();
        let mut db = s.open(&fs)?;
        let mut model = Model::new();
        let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
        let mut n = 0u64;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Batch(items) => {
                    let mut b = WriteBatch::new();
                    for (k, v) in items {
                        n += 1;
                        match v {
                            Some(len) => {
                                let v = bytes_from(n, usize::from(len));
                                b.put(key(k), &v);
                                model.insert(key(k), v);
                            }
                            None => {
                                b.delete(key(k));
                                model.remove(&key(k));
                            }
                        }
                    }
                    let d = if step % 3 == 0 { Durability::Sync } else { Durability::Buffered };
                    db.write(&b, d).ctx("write")?;
                }
                Op::Snapshot => snaps.push((db.snapshot(), model.clone())),
                Op::Reopen => {
                    snaps.clear();
                    drop(db);
                    db = s.open(&fs)?;
                }
                Op::Scan(a, b) => {
                    let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                    let got = collect(db.scan(lo.clone()..hi.clone()))?;
                    let want: Vec<_> = model
                        .range::<Vec<u8>, _>((Bound::Included(&lo), Bound::Excluded(&hi)))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    ensure!(
                        got == want,
                        "clause `scan yields the range's newest values in key order`: scan({a}..{b}) yields {} pairs, expected {}",
                        got.len(),
                        want.len()
                    );
                }
                Op::Flush => db.flush().ctx("flush")?,
                Op::Settle => db.wait_for_background().ctx("wait_for_background")?,
            }
            check_all(&db, &model, None, 64, &format!("after step {step}"))?;
        }
        db.wait_for_background().ctx("wait_for_background")?;
        for (i, (snap, m)) in snaps.iter().enumerate() {
            check_all(
                &db,
                m,
                Some(snap),
                64,
                &format!("clause `a snapshot reads a stable view`: snapshot #{i} after settling"),
            )?;
        }
        drop(db);
        let db = s.open(&fs)?;
        check_all(&db, &model, None, 64, "after the final reopen")
    })
}

fn reopen_keeps_buffered(s: &Subject<'_>) -> CheckResult {
    let fs = SimFileSystem::new();
    let mut model = Model::new();
    {
        let db = s.open(&fs)?;
        for i in 0..300u16 {
            let v = bytes_from(u64::from(i), usize::from(i % 90));
            db.put(&key(i % 150), &v, Durability::Buffered).ctx("put")?;
            model.insert(key(i % 150), v);
        }
    }
    let db = s.open(&fs)?;
    check_all(&db, &model, None, 150, "clause `a clean reopen keeps every write`")
}

fn item(i: u64) -> Vec<u8> {
    format!("w{i:08}").into_bytes()
}

fn power_loss(s: &Subject<'_>) -> CheckResult {
    let mut fs = SimFileSystem::new();
    let mut next = 0u64;
    let mut acked: Option<u64> = None;
    for round in 0..10u64 {
        let db = s.open(&fs).map_err(|e| {
            format!("clause `the store reopens after a power loss`: round {round}: {e}")
        })?;
        let mut present = 0;
        while present < next && db.get(&item(present)).ctx("get")?.is_some() {
            present += 1;
        }
        for i in present..=next {
            ensure!(
                db.get(&item(i)).ctx("get")?.is_none(),
                "round {round}: write {i} survived a power loss but write {present} did not (a hole in the commit order)"
            );
        }
        for i in 0..present {
            let got = db.get(&item(i)).ctx("get")?;
            ensure!(
                got.as_deref() == Some(&bytes_from(i, 120)[..]),
                "round {round}: write {i} came back with a different value"
            );
        }
        if let Some(a) = acked {
            ensure!(
                present > a,
                "clause `Sync returns once the batch is on stable storage`: round {round}: acknowledged Sync write {a} was lost ({present} writes survived)"
            );
        }
        next = present;
        for j in 0..(30 + round * 5) {
            let d = if j % 5 == 0 { Durability::Sync } else { Durability::Buffered };
            db.put(&item(next), &bytes_from(next, 120), d).ctx("put")?;
            if d == Durability::Sync {
                acked = Some(next);
            }
            next += 1;
        }
        let mode = if round % 2 == 0 {
            CrashMode::DropUnsynced
        } else {
            CrashMode::TornTail { seed: round }
        };
        let after = fs.crash_with(mode);
        drop(db);
        fs = after;
    }
    Ok(())
}

fn snapshot_stable(s: &Subject<'_>) -> CheckResult {
    let fs = SimFileSystem::new();
    let db = s.open(&fs)?;
    let mut model = Model::new();
    for i in 0..400u16 {
        let v = bytes_from(u64::from(i) + 1, 60);
        db.put(&key(i % 200), &v, Durability::Buffered).ctx("put")?;
        model.insert(key(i % 200), v);
    }
    let snap = db.snapshot();
    let frozen = model.clone();
    let before = db.stats().compactions;
    for round in 0..4u64 {
        for i in 0..200u16 {
            if (u64::from(i) + round) % 3 == 0 {
                db.delete(&key(i), Durability::Buffered).ctx("delete")?;
                model.remove(&key(i));
            } else {
                let v = bytes_from(round * 1000 + u64::from(i), 60);
                db.put(&key(i), &v, Durability::Buffered).ctx("put")?;
                model.insert(key(i), v);
            }
        }
        db.flush().ctx("flush")?;
    }
    db.wait_for_background().ctx("wait_for_background")?;
    let stats = db.stats();
    let ran = stats.compactions - before;
    ensure!(
        stats.flushes > 0,
        "the stack never flushed at a {}-byte memtable, so this check proves nothing",
        s.caps.memtable_size_bytes
    );
    check_all(
        &db,
        &frozen,
        Some(&snap),
        200,
        &format!("clause `a snapshot sees a stable view` (after {ran} compactions)"),
    )?;
    check_all(&db, &model, None, 200, "the current view after compactions")?;
    Ok(())
}

fn fsync_failure(s: &Subject<'_>) -> CheckResult {
    let fs = SimFileSystem::new();
    let db = s.open(&fs)?;
    for i in 0..20u64 {
        db.put(&item(i), &bytes_from(i, 50), Durability::Sync).ctx("put")?;
    }
    fs.fail_sync_after(1);
    let r = db.put(&item(20), &bytes_from(20, 50), Durability::Sync);
    ensure!(
        r.is_err(),
        "clause `Sync returns once the batch is on stable storage`: the fsync failed but the write returned {r:?}"
    );
    fs.clear_faults();
    match db.put(&item(21), b"x", Durability::Buffered) {
        Err(Error::Poisoned { .. }) => {}
        other => {
            return Err(format!(
                "clause `a failed fsync poisons the store`: the next write returned {other:?}, expected Error::Poisoned"
            ));
        }
    }
    let after = fs.crash();
    drop(db);
    let db = s.open(&after).map_err(|e| format!("reopening after a failed fsync: {e}"))?;
    for i in 0..20u64 {
        let got = db.get(&item(i)).ctx("get")?;
        ensure!(
            got.as_deref() == Some(&bytes_from(i, 50)[..]),
            "acknowledged write {i} lost after a failed fsync and a reopen"
        );
    }
    ensure!(
        db.get(&item(21)).ctx("get")?.is_none(),
        "a write refused as poisoned appeared after the reopen"
    );
    Ok(())
}

fn concurrent_writers(s: &Subject<'_>) -> CheckResult {
    let fs = SimFileSystem::new();
    let db = s.open(&fs)?;
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> CheckResult {
                for i in 0..150u64 {
                    let d = if i % 10 == 0 { Durability::Sync } else { Durability::Buffered };
                    db.put(format!("t{t}/{i:05}").as_bytes(), &bytes_from(t * 10_000 + i, 40), d)
                        .ctx("put")?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a writer thread panicked".to_owned())??;
    }
    db.wait_for_background().ctx("wait_for_background")?;
    for t in 0..4u64 {
        for i in 0..150u64 {
            let got = db.get(format!("t{t}/{i:05}").as_bytes()).ctx("get")?;
            ensure!(
                got.as_deref() == Some(&bytes_from(t * 10_000 + i, 40)[..]),
                "write t{t}/{i:05} by a concurrent writer is missing or wrong"
            );
        }
    }
    let n = collect(db.iter())?.len();
    ensure!(n == 600, "a full scan after concurrent writes yields {n} pairs, expected 600");
    Ok(())
}

fn damaged_table(s: &Subject<'_>) -> CheckResult {
    let fs = SimFileSystem::new();
    let mut model = Model::new();
    {
        let db = s.open(&fs)?;
        for i in 0..300u16 {
            let v = bytes_from(u64::from(i) + 7, 80);
            db.put(&key(i), &v, Durability::Buffered).ctx("put")?;
            model.insert(key(i), v);
        }
        db.flush().ctx("flush")?;
        db.wait_for_background().ctx("wait_for_background")?;
    }
    let tables: Vec<String> =
        fs.file_names(DIR).into_iter().filter(|n| n.ends_with(".sst")).collect();
    ensure!(!tables.is_empty(), "no *.sst table file after a flush; nothing to damage");
    // Flip a byte inside a stored value where one can be found (so the damage sits in
    // data, not only in metadata an open would reject), else in the middle of the file.
    let prefixes: std::collections::HashSet<&[u8]> =
        model.values().filter_map(|v| v.get(..8)).collect();
    for name in &tables {
        let p = Path::new(DIR).join(name);
        let mut img = fs.read_file(&p).ok_or("a table file vanished")?;
        let at = img.windows(8).position(|w| prefixes.contains(w)).map_or(img.len() / 2, |i| i + 4);
        if let Some(b) = img.get_mut(at) {
            *b ^= 0x24;
        }
        fs.write_file_raw(&p, &img).ctx("damage a table")?;
    }
    let clause = "clause `damage is an error naming the file and offset, never served as data`";
    let mut builder = (s.stack)(Path::new(DIR), fs.shared());
    builder.options_mut().memtable_size_bytes = s.caps.memtable_size_bytes;
    let db = match builder.open() {
        Ok(db) => db,
        Err(e) if e.is_corruption() => return Ok(()),
        Err(e) => {
            return Err(format!(
                "{clause}: reopening with damaged tables failed with {e}, expected Error::Corruption"
            ));
        }
    };
    for i in 0..300u16 {
        match db.get(&key(i)) {
            Ok(got) => ensure!(
                got.as_deref() == model.get(&key(i)).map(Vec::as_slice),
                "{clause}: get(key{i:04}) served {:?} bytes, expected {:?}",
                got.map(|v| v.len()),
                model.get(&key(i)).map(Vec::len)
            ),
            Err(e) => ensure!(
                e.is_corruption(),
                "{clause}: get(key{i:04}) failed with {e}, expected Error::Corruption"
            ),
        }
    }
    let want: Vec<_> = model.into_iter().collect();
    let mut n = 0usize;
    for r in db.iter() {
        match r {
            Ok((k, v)) => {
                let w = want.get(n);
                ensure!(
                    w.is_some_and(|(wk, wv)| wk[..] == k[..] && wv[..] == v[..]),
                    "{clause}: the scan served {:?} as pair #{n}, expected {:?}",
                    String::from_utf8_lossy(&k),
                    w.map(|(wk, _)| String::from_utf8_lossy(wk))
                );
                n += 1;
            }
            Err(e) => {
                ensure!(
                    e.is_corruption(),
                    "{clause}: the scan failed with {e}, expected Error::Corruption"
                );
                return Ok(());
            }
        }
    }
    ensure!(
        n == want.len(),
        "{clause}: the scan ended after {n} of {} pairs without an error",
        want.len()
    );
    Ok(())
}
