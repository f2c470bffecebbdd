//! `strata inspect` and `strata verify` on a real store: a clean store verifies; a
//! flipped byte in a table, a damaged manifest and a missing table are each reported
//! with the file (and offset), and the command fails. A store open in another process
//! is refused (exit code 2, naming the process) unless `--live` is given, and with it
//! gives no false alarm while the store writes, flushes and compacts. A directory
//! without a store is an error. A WAL segment far larger than the address space the
//! command may use still verifies (it is read in chunks).

mod common;

use common::OutputWithin;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_core::fs::OsFileSystem;
use strata_core::{DbStats, Durability};

fn strata(args: &[&str], dir: &Path) -> Output {
    strata_cmd(args, dir).output_within(common::LIMIT).expect("run strata")
}

fn strata_cmd(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args).arg(dir);
    cmd
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A closed store with tables in L0 and deeper levels.
fn make_store(dir: &Path) {
    let db = strata_harness::stack::tiny_builder(dir, OsFileSystem::shared(), 8 * 1024, 32 * 1024)
        .open()
        .expect("open");
    for i in 0..3000u32 {
        db.put(format!("k{:06}", i % 1500).as_bytes(), &[i as u8; 40], Durability::Buffered)
            .expect("put");
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    db.put(b"tail", b"in the WAL only", Durability::Sync).expect("put");
}

fn tables(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut t: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    t.sort();
    t
}

#[test]
fn a_clean_store_inspects_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_store(dir.path());
    let out = strata(&["inspect", "--tables"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("MANIFEST-") && t.contains("L1") && t.contains("wal_"), "{t}");
    let out = strata(&["verify"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 problem(s)"), "{}", text(&out));
}

#[test]
fn a_flipped_byte_in_a_table_is_reported_with_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_store(dir.path());
    let victim = tables(dir.path()).pop().expect("a table");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[10] ^= 0x40; // inside the first data block
    std::fs::write(&victim, &bytes).expect("write");
    let out = strata(&["verify"], dir.path());
    assert!(!out.status.success(), "verify must fail: {}", text(&out));
    let name = victim.file_name().expect("name").to_string_lossy().into_owned();
    assert!(text(&out).contains(&name), "the report names {name}: {}", text(&out));
    assert!(text(&out).contains("offset"), "{}", text(&out));
}

#[test]
fn a_damaged_manifest_and_a_missing_table_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_store(dir.path());
    let victim = tables(dir.path()).remove(0);
    std::fs::remove_file(&victim).expect("remove");
    let out = strata(&["verify"], dir.path());
    assert!(!out.status.success());
    let name = victim.file_name().expect("name").to_string_lossy().into_owned();
    assert!(text(&out).contains(&name), "{}", text(&out));

    let manifest = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-")))
        .expect("manifest");
    let mut bytes = std::fs::read(&manifest).expect("read");
    bytes[3] ^= 1; // the magic
    std::fs::write(&manifest, &bytes).expect("write");
    let out = strata(&["verify"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("magic"), "{}", text(&out));
    let out = strata(&["inspect"], dir.path());
    assert!(!out.status.success(), "inspect cannot summarise a damaged manifest");
}

/// The deadline every CLI test runs its child under does fire (and kills the child).
#[test]
#[should_panic(expected = "did not finish within")]
fn a_hung_child_is_killed_at_its_deadline() {
    let _ = Command::new("sleep").arg("30").output_within(std::time::Duration::from_millis(200));
}

/// A store open in this process, written by a thread (with tiny memtables, segments and
/// levels, so it flushes, rotates, checkpoints and compacts all the time) until
/// [`LiveStore::stop`].
struct LiveStore {
    stop: Arc<AtomicBool>,
    writer: Option<std::thread::JoinHandle<(u64, DbStats)>>,
    at_start: DbStats,
}

impl LiveStore {
    fn start(dir: &Path) -> LiveStore {
        make_store(dir);
        let db =
            strata_harness::stack::tiny_builder(dir, OsFileSystem::shared(), 8 * 1024, 32 * 1024)
                .open()
                .expect("reopen");
        let at_start = db.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let writer = std::thread::spawn(move || {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let d = if i.is_multiple_of(64) { Durability::Sync } else { Durability::Buffered };
                db.put(format!("k{:06}", i % 2000).as_bytes(), &[i as u8; 40], d).expect("put");
                i += 1;
            }
            db.wait_for_background().expect("settle");
            (i, db.stats())
        });
        LiveStore { stop, writer: Some(writer), at_start }
    }

    /// Stops the writer; returns how many writes, flushes and compactions it did.
    fn stop(mut self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let (writes, end) = self.writer.take().expect("running").join().expect("writer");
        (writes, end.flushes - self.at_start.flushes, end.compactions - self.at_start.compactions)
    }
}

impl Drop for LiveStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Before `--live` existed, 15 to 20 of 30 plain `verify` runs against this store
/// reported lost sequences, missing tables or a sealed segment without successor.
#[test]
fn verify_and_inspect_live_give_no_false_alarms_on_a_running_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = LiveStore::start(dir.path());
    let mut failures = Vec::new();
    let runs = 30;
    for i in 0..runs {
        let args: &[&str] = if i % 5 == 4 { &["inspect", "--live"] } else { &["verify", "--live"] };
        let out = strata(args, dir.path());
        if !out.status.success() || text(&out).contains("DAMAGED") {
            failures.push(format!("{args:?}: {}", text(&out)));
        }
    }
    let (writes, flushes, compactions) = live.stop();
    assert!(
        writes > 1000 && flushes > 10 && compactions > 0,
        "the store worked while verify ran: {writes} writes, {flushes} flushes, \
         {compactions} compactions"
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    // Closed again, the store verifies without --live.
    let out = strata(&["verify"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_open_store_is_refused_without_live_naming_its_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = LiveStore::start(dir.path());
    let pid = format!("process {}", std::process::id());
    for cmd in ["verify", "inspect"] {
        let out = strata(&[cmd], dir.path());
        assert_eq!(out.status.code(), Some(2), "{cmd} is refused with code 2: {}", text(&out));
        let t = text(&out);
        assert!(t.contains("is open by") && t.contains(&pid) && t.contains("--live"), "{cmd}: {t}");
        assert!(!t.contains("PROBLEM"), "a refusal reports no findings: {t}");
    }
    live.stop();
}

/// Real damage on a live store is still reported: every look finds it.
#[test]
fn live_verify_still_reports_a_flipped_table_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_store(dir.path());
    // Reopened with a memtable nothing here fills and levels make_store let settle: no
    // flush or compaction runs, so the damaged table stays listed.
    let db =
        strata_harness::stack::tiny_builder(dir.path(), OsFileSystem::shared(), 1 << 20, 32 * 1024)
            .open()
            .expect("reopen");
    let victim = tables(dir.path()).pop().expect("a table");
    // Flipped in place: truncating a file the store has mapped would not be a bit flip.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&victim).expect("open");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 10).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], 10).expect("write");
    let out = strata(&["verify", "--live"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let name = victim.file_name().expect("name").to_string_lossy().into_owned();
    assert!(text(&out).contains(&name) && text(&out).contains("offset"), "{}", text(&out));
    drop(db);
}

#[test]
fn a_directory_without_a_store_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), b"not a store").expect("write");
    for cmd in ["verify", "inspect"] {
        let out = strata(&[cmd], dir.path());
        assert_eq!(out.status.code(), Some(1), "{cmd} on a dir without a store: {}", text(&out));
        assert!(text(&out).contains("holds no Strata store"), "{cmd}: {}", text(&out));
        assert!(!text(&out).contains("0 problem(s)"), "{cmd}: {}", text(&out));
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let out = strata(&["verify"], empty.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("holds no Strata store"), "{}", text(&out));
    let missing = dir.path().join("no-such-dir");
    for cmd in ["verify", "inspect"] {
        let out = strata(&[cmd], &missing);
        assert_eq!(out.status.code(), Some(1), "{cmd} on a missing dir: {}", text(&out));
        assert!(text(&out).contains("does not exist"), "{cmd}: {}", text(&out));
    }
}

/// `verify` and `inspect` read a WAL segment in chunks: a newest segment of 768 MiB
/// (its records, then preallocated zeros up to the end, as a real segment holds) is
/// checked by a process whose whole address space is limited to 384 MiB. Reading the
/// segment into memory would fail to allocate. The zeros are a sparse extension, so the
/// test costs no disk space.
#[test]
fn a_wal_segment_larger_than_the_address_space_limit_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_store(dir.path());
    let newest = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wal_")))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .expect("a WAL segment");
    let file = std::fs::OpenOptions::new().write(true).open(&newest).expect("open");
    file.set_len(768 << 20).expect("extend");
    drop(file);
    for cmd in ["verify", "inspect"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -v 393216 && exec "$0" "$1" "$2""#)
            .arg(env!("CARGO_BIN_EXE_strata"))
            .arg(cmd)
            .arg(dir.path())
            .output_within(common::LIMIT)
            .expect("run strata under ulimit");
        assert!(out.status.success(), "{cmd} under a 384 MiB address space: {}", text(&out));
        let expect = if cmd == "verify" { "0 problem(s)" } else { "/ 768.0 MiB" };
        assert!(text(&out).contains(expect), "{cmd}: {}", text(&out));
    }
}
