//! The [`TableFormat`] conformance suite: builders, opened tables, their metadata and
//! their damage detection, through the fault-injecting [`SimFileSystem`] and real OS
//! files.
//!
//! | check | clause |
//! |---|---|
//! | `table::round_trip_returns_exactly_the_entries_added` | a finished table opens and returns exactly the entries added |
//! | `table::meta_describes_the_table` | `finish` returns the size, key range, sequence range and counts; the opened table reads back the same |
//! | `table::model_get_and_range_match_btreemap` | `get` and `range` at random snapshots and bounds against a `BTreeMap` (multi-version keys, tombstones) |
//! | `table::empty_table_round_trips` | a table with zero entries is valid |
//! | `table::large_keys_and_values_round_trip` | keys up to 64 KiB and multi-MiB values are accepted and served |
//! | `table::finish_makes_the_file_durable` | `finish` syncs the file through the `File` it was given |
//! | `table::out_of_order_add_is_invalid_argument` | an entry out of internal-key order is `Error::InvalidArgument` |
//! | `table::damaged_bytes_are_detected_never_served` | every byte served was checked: a flipped byte is `Error::Corruption` naming the file, never data; `verify` finds it |
//! | `table::truncated_or_foreign_file_is_rejected_at_open` | a file that is not a complete table is `Error::Corruption` naming the file at `open` |
//! | `table::os_files_round_trip_and_detect_damage` | the same through `OsFileSystem` (where readers may mmap) |
//! | `table::concurrent_readers_agree` | a table serves many threads at once |

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};
use strata_core::{
    Entry, Error, FileNo, KeyRange, Lookup, SeqNo, Table, TableFormat, TableMeta, ValueKind,
};

use super::memtable::model::model_range;
use super::memtable::{compare_entries, show_range};
use super::report::Report;
use super::runner::{Check, CheckResult, Ctx, bytes_from, ensure, mix, property, run_checks};
use crate::sim_fs::SimFileSystem;

/// What the table format under test supports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TableCaps {
    /// Tables can live in OS files (off for a format bound to another medium). Gates
    /// `table::os_files_round_trip_and_detect_damage`.
    pub os_files: bool,
    /// Checksums cover every byte (off only for a format documented as unchecked, which
    /// the engine should not use). Gates the corruption checks.
    pub corruption_detection: bool,
    /// Size of the large value the suite stores (the contract requires up to 64 MiB;
    /// the default 4 MiB keeps debug runs fast). 0 switches the check off.
    pub large_value_bytes: usize,
}

impl Default for TableCaps {
    fn default() -> Self {
        Self { os_files: true, corruption_detection: true, large_value_bytes: 4 << 20 }
    }
}

impl TableCaps {
    /// Sets [`TableCaps::os_files`].
    #[must_use]
    pub fn with_os_files(mut self, on: bool) -> Self {
        self.os_files = on;
        self
    }
    /// Sets [`TableCaps::corruption_detection`].
    #[must_use]
    pub fn with_corruption_detection(mut self, on: bool) -> Self {
        self.corruption_detection = on;
        self
    }
    /// Sets [`TableCaps::large_value_bytes`].
    #[must_use]
    pub fn with_large_value_bytes(mut self, bytes: usize) -> Self {
        self.large_value_bytes = bytes;
        self
    }
}

struct Subject {
    format: Arc<dyn TableFormat>,
    caps: TableCaps,
}

/// Runs the table suite against `format`.
pub fn run(format: Arc<dyn TableFormat>, caps: TableCaps) -> Report {
    let name = format!("table={}", format.name());
    let (os, corrupt, large) =
        (caps.os_files, caps.corruption_detection, caps.large_value_bytes > 0);
    let subject = Subject { format, caps };
    let checks = vec![
        Check::new("table::round_trip_returns_exactly_the_entries_added", round_trip),
        Check::new("table::meta_describes_the_table", meta_check),
        Check::new("table::model_get_and_range_match_btreemap", model),
        Check::new("table::empty_table_round_trips", empty_table),
        Check::when(
            large,
            "large_value_bytes",
            "table::large_keys_and_values_round_trip",
            large_values,
        ),
        Check::new("table::finish_makes_the_file_durable", finish_durable),
        Check::new("table::out_of_order_add_is_invalid_argument", out_of_order),
        Check::when(
            corrupt,
            "corruption_detection",
            "table::damaged_bytes_are_detected_never_served",
            damaged_bytes,
        ),
        Check::when(
            corrupt,
            "corruption_detection",
            "table::truncated_or_foreign_file_is_rejected_at_open",
            truncated,
        ),
        Check::when(os, "os_files", "table::os_files_round_trip_and_detect_damage", os_files),
        Check::new("table::concurrent_readers_agree", concurrent_readers),
    ];
    run_checks("table", name, &subject, checks)
}

type Model = BTreeMap<(Vec<u8>, u64), (ValueKind, Vec<u8>)>;

const ALL: (Bound<Bytes>, Bound<Bytes>) = (Bound::Unbounded, Bound::Unbounded);

fn sim() -> Result<(SimFileSystem, Arc<dyn FileSystem>), String> {
    let fs = SimFileSystem::new();
    fs.create_dir_all(Path::new("/t")).ctx("mkdir")?;
    let shared = fs.shared();
    Ok((fs, shared))
}

fn path(no: u64) -> PathBuf {
    PathBuf::from(format!("/t/{:06}.sst", no))
}

impl Subject {
    fn build(
        &self,
        fs: &Arc<dyn FileSystem>,
        path: &Path,
        no: u64,
        entries: &[Entry],
    ) -> Result<TableMeta, String> {
        let file = fs.open(path, OpenMode::CreateNew).ctx("create the table file")?;
        let mut b = self.format.builder(file, FileNo(no)).ctx("builder")?;
        for e in entries {
            b.add(&e.key, e.seq, e.kind, &e.value)
                .ctx(&format!("add({})", super::memtable::show(e)))?;
        }
        ensure!(
            b.entries() == entries.len() as u64,
            "builder.entries() is {} after adding {}",
            b.entries(),
            entries.len()
        );
        b.finish().ctx("finish")
    }

    fn open(
        &self,
        fs: &Arc<dyn FileSystem>,
        path: &Path,
        no: u64,
    ) -> strata_core::Result<Arc<dyn Table>> {
        let file = fs.open(path, OpenMode::ReadOnly)?;
        self.format.open(file, FileNo(no))
    }
}

fn scan(t: &Arc<dyn Table>, range: KeyRange, snap: SeqNo) -> strata_core::Result<Vec<Entry>> {
    Arc::clone(t).range(range, snap).collect()
}

fn to_entries(m: &Model) -> Vec<Entry> {
    model_range(m, &ALL, u64::MAX)
}

fn model_get(m: &Model, key: &[u8], snap: u64) -> Option<Lookup> {
    m.range((key.to_vec(), 0)..=(key.to_vec(), snap)).next_back().map(|((_, seq), (kind, v))| {
        match kind {
            ValueKind::Put => Lookup::Value { value: Bytes::copy_from_slice(v), seq: SeqNo(*seq) },
            ValueKind::Delete => Lookup::Deleted { seq: SeqNo(*seq) },
        }
    })
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// `n` keys with 1–3 versions each, some tombstones, values of 0–300 bytes.
fn sample(n: u64, seed: u64) -> Model {
    let mut m = Model::new();
    let mut seq = 1u64;
    for i in 0..n {
        let versions = 1 + mix(seed ^ i) % 3;
        for v in 0..versions {
            let r = mix(seed ^ (i << 8) ^ v);
            let (kind, value) = if r.is_multiple_of(7) {
                (ValueKind::Delete, Vec::new())
            } else {
                (ValueKind::Put, bytes_from(r, usize::try_from(r % 301).unwrap_or(0)))
            };
            m.insert((key(i), seq), (kind, value));
            seq += 1 + r % 3;
        }
    }
    m
}

fn check_table(t: &Arc<dyn Table>, m: &Model, what: &str) -> CheckResult {
    let got = scan(t, ALL, SeqNo::MAX).ctx(&format!("{what}: range"))?;
    compare_entries(
        &to_entries(m),
        &got,
        &format!(
            "{what}: clause `a finished table returns exactly the entries added` (full range at MAX)"
        ),
    )?;
    let keys: Vec<&Vec<u8>> = m.keys().map(|(k, _)| k).collect();
    for k in keys {
        let got = t.get(k, SeqNo::MAX).ctx("get")?;
        let want = model_get(m, k, u64::MAX);
        ensure!(
            got == want,
            "{what}: clause `get(key, snapshot) returns the newest version <= snapshot`: get({:?}, MAX) expected {want:?}, found {got:?}",
            String::from_utf8_lossy(k)
        );
    }
    Ok(())
}

fn round_trip(s: &Subject) -> CheckResult {
    let (_sim, fs) = sim()?;
    let m = sample(400, 1);
    s.build(&fs, &path(1), 1, &to_entries(&m))?;
    let t = s.open(&fs, &path(1), 1).ctx("open")?;
    check_table(&t, &m, "round trip")
}

fn expected_meta(m: &Model, no: u64, size: u64) -> TableMeta {
    let e = to_entries(m);
    TableMeta {
        file_no: FileNo(no),
        size_bytes: size,
        smallest_key: e.first().map(|e| e.key.clone()).unwrap_or_default(),
        largest_key: e.last().map(|e| e.key.clone()).unwrap_or_default(),
        min_seq: e.iter().map(|e| e.seq).min().unwrap_or_default(),
        max_seq: e.iter().map(|e| e.seq).max().unwrap_or_default(),
        entries: e.len() as u64,
        tombstones: e.iter().filter(|e| e.kind == ValueKind::Delete).count() as u64,
    }
}

fn meta_check(s: &Subject) -> CheckResult {
    for (n, seed) in [(1u64, 2u64), (50, 3), (400, 4)] {
        let (sim, fs) = sim()?;
        let m = sample(n, seed);
        let meta = s.build(&fs, &path(7), 7, &to_entries(&m))?;
        let size = sim.read_file(path(7)).map_or(0, |f| f.len() as u64);
        let want = expected_meta(&m, 7, size);
        ensure!(
            meta == want,
            "clause `finish returns the table's metadata` ({n} keys): expected {want:?}, found {meta:?}"
        );
        let t = s.open(&fs, &path(7), 7).ctx("open")?;
        ensure!(
            *t.meta() == want,
            "clause `meta() is the table's metadata as read from the file` ({n} keys): expected {want:?}, found {:?}",
            t.meta()
        );
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Bnd {
    In(u64),
    Ex(u64),
    Un,
}

fn bound(b: &Bnd) -> Bound<Bytes> {
    match b {
        Bnd::In(k) => Bound::Included(Bytes::from(key(*k))),
        Bnd::Ex(k) => Bound::Excluded(Bytes::from(key(*k))),
        Bnd::Un => Bound::Unbounded,
    }
}

fn bnd() -> impl Strategy<Value = Bnd> {
    prop_oneof![(0u64..70).prop_map(Bnd::In), (0u64..70).prop_map(Bnd::Ex), Just(Bnd::Un)]
}

fn model(s: &Subject) -> CheckResult {
    let versions = prop::collection::btree_map(
        (0u64..60, 1u64..200),
        prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..120)),
        0..150,
    );
    let queries = prop::collection::vec((0u64..70, 0u64..210, bnd(), bnd(), 0u64..210), 1..16);
    property(48, (versions, queries), |(versions, queries)| {
        let m: Model = versions
            .into_iter()
            .map(|((k, seq), v)| match v {
                Some(v) => ((key(k), seq), (ValueKind::Put, v)),
                None => ((key(k), seq), (ValueKind::Delete, Vec::new())),
            })
            .collect();
        let (_sim, fs) = sim()?;
        s.build(&fs, &path(3), 3, &to_entries(&m))?;
        let t = s.open(&fs, &path(3), 3).ctx("open")?;
        for (k, snap, lo, hi, rsnap) in queries {
            let got = t.get(&key(k), SeqNo(snap)).ctx("get")?;
            let want = model_get(&m, &key(k), snap);
            ensure!(
                got == want,
                "clause `get(key, snapshot) returns the version with the greatest sequence <= snapshot, never a newer one`: \
                 get(key{k:05}, #{snap}) expected {want:?}, found {got:?}"
            );
            let range: KeyRange = (bound(&lo), bound(&hi));
            let got = scan(&t, range.clone(), SeqNo(rsnap)).ctx("range")?;
            compare_entries(
                &model_range(&m, &range, rsnap),
                &got,
                &format!(
                    "clause `range(range, snapshot) yields every version <= snapshot in range, in internal-key order`: range {} at #{rsnap}",
                    show_range(&range)
                ),
            )?;
        }
        Ok(())
    })
}

fn empty_table(s: &Subject) -> CheckResult {
    let (_sim, fs) = sim()?;
    let meta = s.build(&fs, &path(9), 9, &[])?;
    ensure!(
        meta.entries == 0 && meta.tombstones == 0,
        "clause `a table with zero entries is valid`: meta {meta:?}"
    );
    let t = s
        .open(&fs, &path(9), 9)
        .map_err(|e| format!("clause `a table with zero entries is valid`: open failed: {e}"))?;
    ensure!(t.get(b"a", SeqNo::MAX).ctx("get")?.is_none(), "an empty table answers get");
    ensure!(scan(&t, ALL, SeqNo::MAX).ctx("range")?.is_empty(), "an empty table yields entries");
    let problems = t.verify();
    ensure!(problems.is_empty(), "verify() of an intact empty table reports {problems:?}");
    Ok(())
}

fn large_values(s: &Subject) -> CheckResult {
    let (_sim, fs) = sim()?;
    let mut m = Model::new();
    m.insert((b"a".to_vec(), 1), (ValueKind::Put, b"small".to_vec()));
    m.insert(
        (vec![b'k'; strata_core::batch::MAX_KEY_BYTES], 2),
        (ValueKind::Put, bytes_from(5, 1000)),
    );
    m.insert((b"m".to_vec(), 3), (ValueKind::Put, bytes_from(6, s.caps.large_value_bytes)));
    m.insert((b"m".to_vec(), 2), (ValueKind::Delete, Vec::new()));
    m.insert((b"z".to_vec(), 4), (ValueKind::Put, b"after".to_vec()));
    s.build(&fs, &path(4), 4, &to_entries(&m)).map_err(|e| {
        format!("clause `any key and value size the engine accepts must be accepted`: {e}")
    })?;
    let t = s.open(&fs, &path(4), 4).ctx("open")?;
    check_table(&t, &m, "large keys and values")
}

fn finish_durable(s: &Subject) -> CheckResult {
    let (sim, fs) = sim()?;
    s.build(&fs, &path(5), 5, &to_entries(&sample(100, 5)))?;
    // The directory entry is the caller's to make durable (the engine syncs the
    // directory after renaming a table into place); the file's bytes are the builder's.
    fs.sync_dir(Path::new("/t")).ctx("sync_dir")?;
    let live = sim.read_file(path(5)).unwrap_or_default();
    let durable = sim.durable_file(path(5)).unwrap_or_default();
    ensure!(
        live == durable,
        "clause `finish makes the whole file durable (File::sync_data)`: after finish {} of {} bytes are durable",
        live.iter().zip(&durable).take_while(|(a, b)| a == b).count(),
        live.len()
    );
    ensure!(!live.is_empty(), "finish wrote nothing through the File it was given");
    Ok(())
}

fn out_of_order(s: &Subject) -> CheckResult {
    type Case = (&'static str, [(&'static [u8], u64); 2]);
    let cases: [Case; 3] = [
        ("a smaller key after a larger one", [(b"b", 5), (b"a", 9)]),
        ("the same key with a greater sequence", [(b"a", 5), (b"a", 6)]),
        ("the same key and sequence twice", [(b"a", 5), (b"a", 5)]),
    ];
    for (i, (what, [(k1, s1), (k2, s2)])) in cases.into_iter().enumerate() {
        let (_sim, fs) = sim()?;
        let p = path(20 + i as u64);
        let file = fs.open(&p, OpenMode::CreateNew).ctx("create")?;
        let mut b = s.format.builder(file, FileNo(20 + i as u64)).ctx("builder")?;
        b.add(k1, SeqNo(s1), ValueKind::Put, b"x").ctx("first add")?;
        match b.add(k2, SeqNo(s2), ValueKind::Put, b"y") {
            Err(Error::InvalidArgument(_)) => {}
            other => {
                return Err(format!(
                    "clause `an entry out of order is Error::InvalidArgument`: adding {what} returned {other:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Checks one damaged copy: opening fails with a corruption naming `p`, or every answer
/// is right or a corruption naming `p`, and `verify` reports the damage.
fn check_damaged(
    s: &Subject,
    fs: &Arc<dyn FileSystem>,
    p: &Path,
    no: u64,
    m: &Model,
    at: u64,
) -> CheckResult {
    let clause = "clause `every byte served was checked against its checksum; a damaged block is Error::Corruption naming the file, never data`";
    let names_file = |e: &Error| matches!(e, Error::Corruption { file, .. } if file == p || file.file_name() == p.file_name());
    let t = match s.open(fs, p, no) {
        Err(e) if names_file(&e) => return Ok(()),
        Err(e) => {
            return Err(format!(
                "{clause}: flipped byte at {at}: open failed with {e}, expected a corruption naming {}",
                p.display()
            ));
        }
        Ok(t) => t,
    };
    let mut detected = false;
    let keys: Vec<&Vec<u8>> = m.keys().map(|(k, _)| k).collect();
    for k in keys {
        match t.get(k, SeqNo::MAX) {
            Ok(got) => {
                let want = model_get(m, k, u64::MAX);
                ensure!(
                    got == want,
                    "{clause}: flipped byte at {at}: get({:?}) served {got:?}, expected {want:?}",
                    String::from_utf8_lossy(k)
                );
            }
            Err(e) if names_file(&e) => detected = true,
            Err(e) => return Err(format!("{clause}: flipped byte at {at}: get failed with {e}")),
        }
    }
    let want = to_entries(m);
    let mut it = Arc::clone(&t).range(ALL, SeqNo::MAX);
    let mut i = 0usize;
    while let Some(r) = it.next() {
        match r {
            Ok(e) => {
                ensure!(
                    want.get(i) == Some(&e),
                    "{clause}: flipped byte at {at}: range served {} as entry #{i}, expected {:?}",
                    super::memtable::show(&e),
                    want.get(i).map(super::memtable::show)
                );
                i += 1;
            }
            Err(e) => {
                ensure!(names_file(&e), "{clause}: flipped byte at {at}: range failed with {e}");
                detected = true;
                let extra = it.next();
                ensure!(
                    extra.is_none(),
                    "clause `an Err ends the iteration`: the range iterator yielded {extra:?} after an error"
                );
                break;
            }
        }
    }
    ensure!(
        detected || i == want.len(),
        "{clause}: flipped byte at {at}: range ended after {i} of {} entries without an error",
        want.len()
    );
    let problems = t.verify();
    ensure!(
        !problems.is_empty(),
        "clause `verify reads the whole file and returns every problem found`: a byte flipped at offset {at} went unreported"
    );
    for e in &problems {
        ensure!(names_file(e), "verify() reported {e}, which does not name {}", p.display());
    }
    Ok(())
}

fn damaged_bytes(s: &Subject) -> CheckResult {
    let (sim, fs) = sim()?;
    let m = sample(150, 9);
    s.build(&fs, &path(1), 1, &to_entries(&m))?;
    let img = sim.read_file(path(1)).ok_or("the table file vanished")?;
    let len = img.len() as u64;
    let mut offsets: Vec<u64> =
        (0..32u64).map(|i| i * len / 32 + mix(i) % (len / 32).max(1)).collect();
    offsets.extend([
        0,
        len.saturating_sub(1),
        len.saturating_sub(9),
        len.saturating_sub(30),
        len / 2,
    ]);
    offsets.retain(|o| *o < len);
    offsets.sort_unstable();
    offsets.dedup();
    for (n, at) in offsets.into_iter().enumerate() {
        let p = path(100 + n as u64);
        let mut copy = img.clone();
        if let Some(b) = copy.get_mut(usize::try_from(at).unwrap_or(usize::MAX)) {
            *b ^= 0x10;
        }
        sim.write_file_raw(&p, &copy).ctx("write the damaged copy")?;
        // The format may check that the file number matches; the copy keeps number 1.
        check_damaged(s, &fs, &p, 1, &m, at)?;
    }
    Ok(())
}

fn truncated(s: &Subject) -> CheckResult {
    let (sim, fs) = sim()?;
    let m = sample(100, 11);
    s.build(&fs, &path(1), 1, &to_entries(&m))?;
    let img = sim.read_file(path(1)).ok_or("the table file vanished")?;
    let len = img.len();
    let mut cases: Vec<(String, Vec<u8>)> = [0, 1, len / 2, len.saturating_sub(1)]
        .into_iter()
        .map(|l| {
            (format!("truncated to {l} of {len} bytes"), img.get(..l).unwrap_or_default().to_vec())
        })
        .collect();
    cases.push(("4 KiB of random bytes".into(), bytes_from(77, 4096)));
    cases.push(("4 KiB of zeros".into(), vec![0; 4096]));
    for (n, (what, bytes)) in cases.into_iter().enumerate() {
        let p = path(200 + n as u64);
        sim.write_file_raw(&p, &bytes).ctx("write")?;
        match s.open(&fs, &p, 1) {
            Err(Error::Corruption { file, .. }) if file == p => {}
            Err(e) => {
                return Err(format!(
                    "clause `a file that is not a complete table is Error::Corruption naming the file at open`: {what}: open failed with {e}"
                ));
            }
            Ok(_) => {
                return Err(format!(
                    "clause `a file that is not a complete table is Error::Corruption naming the file at open`: {what}: open succeeded"
                ));
            }
        }
    }
    Ok(())
}

fn os_files(s: &Subject) -> CheckResult {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let fs = OsFileSystem::shared();
    let m = sample(300, 13);
    let p = dir.path().join("000001.sst");
    s.build(&fs, &p, 1, &to_entries(&m))?;
    let t = s.open(&fs, &p, 1).ctx("open an OS file")?;
    check_table(&t, &m, "OS file")?;
    drop(t);
    if s.caps.corruption_detection {
        let img = std::fs::read(&p).ctx("read")?;
        for (n, frac) in [5u64, 30, 55, 80].into_iter().enumerate() {
            let at = img.len() as u64 * frac / 100;
            let mut copy = img.clone();
            if let Some(b) = copy.get_mut(usize::try_from(at).unwrap_or(usize::MAX)) {
                *b ^= 0x01;
            }
            let q = dir.path().join(format!("{:06}.sst", 10 + n));
            std::fs::write(&q, &copy).ctx("write the damaged copy")?;
            check_damaged(s, &fs, &q, 1, &m, at)?;
        }
    }
    Ok(())
}

fn concurrent_readers(s: &Subject) -> CheckResult {
    let (_sim, fs) = sim()?;
    let m = Arc::new(sample(300, 17));
    s.build(&fs, &path(1), 1, &to_entries(&m))?;
    let t = s.open(&fs, &path(1), 1).ctx("open")?;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = Arc::clone(&t);
            let m = Arc::clone(&m);
            std::thread::spawn(move || check_table(&t, &m, "concurrent reader"))
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a reader thread panicked".to_owned())??;
    }
    Ok(())
}
