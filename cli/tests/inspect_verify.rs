//! `strata inspect` and `strata verify` on a real store: a clean store verifies; a
//! flipped byte in a table, a damaged manifest and a missing table are each reported
//! with the file (and offset), and the command fails.

mod common;

use common::OutputWithin;
use std::path::Path;
use std::process::{Command, Output};

use strata_core::Durability;
use strata_core::fs::OsFileSystem;

fn strata(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg(dir)
        .output_within(common::LIMIT)
        .expect("run strata")
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
