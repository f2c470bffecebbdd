//! Issue 13, "a failed open changes nothing": open checks the manifest, every table it
//! lists and the WAL's continuity before it writes or deletes anything, so an open that
//! fails leaves every file of the store byte-for-byte as it was. A damaged manifest
//! record is corruption with its file and offset, never mistaken for a torn tail; only
//! an incomplete last record is. Unlisted tables are deleted only after a successful
//! open, and only when the manifest proves them unreferenced.

use std::collections::BTreeMap;
use std::path::Path;

use strata_core::fs::FileSystem;
use strata_core::{Db, Durability, Error};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn open(fs: &SimFileSystem) -> Result<Db, Error> {
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024).open()
}

fn k(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn v(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 40) as usize)).into_bytes()
}

/// A closed store whose data sits in several flushed tables (so the manifest holds
/// several edits and the WAL was checkpointed past the older ones).
fn flushed_store() -> SimFileSystem {
    let fs = SimFileSystem::new();
    let db = open(&fs).expect("open");
    for i in 0..1500 {
        db.put(&k(i), &v(i), Durability::Buffered).expect("put");
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    assert!(db.stats().flushes >= 3, "several flushes: {:?}", db.stats());
    drop(db);
    fs
}

/// Every file of the store and its bytes.
fn snapshot(fs: &SimFileSystem) -> BTreeMap<String, Vec<u8>> {
    fs.file_names("/db")
        .into_iter()
        .map(|n| {
            let bytes = fs.read_file(format!("/db/{n}")).expect("listed file reads");
            (n, bytes)
        })
        .collect()
}

fn manifest_name(fs: &SimFileSystem) -> String {
    let current = fs.read_file("/db/CURRENT").expect("CURRENT");
    String::from_utf8(current).expect("utf-8").trim_end().to_owned()
}

/// Offsets of the manifest's records, walking the length fields from the header.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = strata_core::manifest::HEADER_LEN;
    while pos + 8 <= bytes.len() {
        out.push(pos);
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        pos += 8 + len as usize;
    }
    assert_eq!(pos, bytes.len(), "the manifest ends at a record boundary");
    out
}

/// Opens, expects `Error::Corruption` naming `file` (and `offset` if given), and checks
/// that the failed open left every file exactly as it was.
fn assert_open_fails_and_changes_nothing(fs: &SimFileSystem, file: &str, offset: Option<u64>) {
    let before = snapshot(fs);
    let err = open(fs).expect_err("the open must fail");
    match &err {
        Error::Corruption { file: f, offset: o, .. } => {
            assert!(f.ends_with(file), "names {file}: {err}");
            if let Some(want) = offset {
                assert_eq!(*o, want, "names the damaged record's offset: {err}");
            }
        }
        other => panic!("expected corruption, got {other}"),
    }
    let after = snapshot(fs);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "a failed open created or deleted files"
    );
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "a failed open changed {name}");
    }
}

#[test]
fn a_flipped_bit_in_the_last_manifest_record_fails_open_and_changes_nothing() {
    let fs = flushed_store();
    let name = manifest_name(&fs);
    let path = format!("/db/{name}");
    let mut bytes = fs.read_file(&path).expect("manifest");
    let offsets = record_offsets(&bytes);
    assert!(offsets.len() >= 2, "the manifest holds several edits: {offsets:?}");
    let last = *offsets.last().expect("a record");
    // The last byte belongs to the last record's body: the record is complete, its
    // checksum fails. Before the fix this read as a torn tail, the open dropped the
    // flush it recorded, wrote a new manifest and deleted that flush's table.
    let end = bytes.len() - 1;
    bytes[end] ^= 0x01;
    fs.write_file_raw(&path, &bytes).expect("damage");
    assert_open_fails_and_changes_nothing(&fs, &name, Some(last as u64));
}

#[test]
fn a_damaged_length_in_a_middle_manifest_record_is_corruption_not_a_torn_tail() {
    let fs = flushed_store();
    let name = manifest_name(&fs);
    let path = format!("/db/{name}");
    let mut bytes = fs.read_file(&path).expect("manifest");
    let offsets = record_offsets(&bytes);
    assert!(offsets.len() >= 3, "the manifest holds several edits: {offsets:?}");
    let middle = offsets[1];
    // One flipped bit makes the length run past the end of the file; valid records
    // follow at the offsets the true length led to.
    bytes[middle + 2] ^= 0x10;
    fs.write_file_raw(&path, &bytes).expect("damage");
    assert_open_fails_and_changes_nothing(&fs, &name, Some(middle as u64));
}

#[test]
fn a_flipped_length_bit_in_the_last_record_is_corruption_not_a_torn_tail() {
    let fs = flushed_store();
    let name = manifest_name(&fs);
    let path = format!("/db/{name}");
    let mut bytes = fs.read_file(&path).expect("manifest");
    let last = *record_offsets(&bytes).last().expect("a record");
    bytes[last + 1] ^= 0x02; // +512 bytes: past the end, nothing after it
    fs.write_file_raw(&path, &bytes).expect("damage");
    assert_open_fails_and_changes_nothing(&fs, &name, Some(last as u64));
}

#[test]
fn an_open_that_fails_on_wal_continuity_changes_nothing() {
    let fs = flushed_store();
    // An unlisted table the manifest proves unreferenced: a successful open would
    // delete it, a failed one must not.
    fs.write_file_raw("/db/000000.sst", b"left by a crash").expect("orphan");
    for name in fs.file_names("/db").into_iter().filter(|n| n.ends_with(".log")) {
        fs.remove_file(Path::new(&format!("/db/{name}"))).expect("remove WAL segment");
    }
    // The tables hold everything up to the flushed sequence, but the WAL that must
    // continue them is gone: the open must fail — without writing a manifest, deleting
    // the orphan or leaving the segment an empty log's open creates.
    assert_open_fails_and_changes_nothing(&fs, "db", None);
}

#[test]
fn a_torn_last_manifest_record_is_dropped_and_the_store_opens() {
    let fs = flushed_store();
    let name = manifest_name(&fs);
    let path = format!("/db/{name}");
    let mut bytes = fs.read_file(&path).expect("manifest");
    let good_len = bytes.len() as u64;
    let last = *record_offsets(&bytes).last().expect("a record");
    // An interrupted append: a prefix of a record, nothing after it.
    let partial: Vec<u8> = bytes[last..bytes.len() - 5].to_vec();
    bytes.extend_from_slice(&partial);
    fs.write_file_raw(&path, &bytes).expect("torn append");
    let db = open(&fs).expect("a torn tail is not damage");
    assert_eq!(
        db.open_report().manifest_torn_tail,
        Some((good_len, partial.len() as u64)),
        "the torn record is reported"
    );
    for i in 0..1500 {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i)[..]), "key {i}");
    }
}

#[test]
fn unlisted_tables_are_deleted_after_open_only_when_the_manifest_proves_them_unreferenced() {
    let fs = flushed_store();
    let live_tables = fs.file_names("/db").into_iter().filter(|n| n.ends_with(".sst")).count();
    // Number 0 is below every number the manifest handed out: unreferenced, provably.
    fs.write_file_raw("/db/000000.sst", b"an obsolete table").expect("orphan");
    // A number the manifest never handed out: it cannot prove the table unreferenced.
    fs.write_file_raw("/db/999999.sst", b"unknown to the manifest").expect("unknown");
    let db = open(&fs).expect("open");
    let report = db.open_report().clone();
    assert!(
        report.deleted_orphans.iter().any(|p| p.ends_with("000000.sst")),
        "the proven orphan is deleted: {report:?}"
    );
    assert!(fs.read_file("/db/000000.sst").is_none());
    assert!(
        report.kept_unlisted_tables.iter().any(|p| p.ends_with("999999.sst")),
        "the unknown table is kept and reported: {report:?}"
    );
    assert_eq!(
        fs.read_file("/db/999999.sst").as_deref(),
        Some(&b"unknown to the manifest"[..]),
        "a table the manifest cannot account for is never deleted"
    );
    assert_eq!(report.tables, live_tables, "every listed table was opened");
    for i in (0..1500).step_by(7) {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i)[..]), "key {i}");
    }
    // Its number is never reused.
    db.put(b"new", b"value", Durability::Sync).expect("put");
    db.flush().expect("flush");
    assert_eq!(fs.read_file("/db/999999.sst").as_deref(), Some(&b"unknown to the manifest"[..]));
}
