//! The LOCK file keeps a second opener out: another handle in this process and another
//! process both get a clear `Locked` error, and the store opens again once released.

use strata_core::{Durability, Error};

#[test]
fn second_open_in_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = strata_plugins::default_builder(dir.path()).open().expect("first open");
    db.put(b"k", b"v", Durability::Sync).expect("write");
    let err = strata_plugins::default_builder(dir.path()).open().expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("LOCK"), "the message names the lock: {err}");
    drop(db);
    let db = strata_plugins::default_builder(dir.path()).open().expect("reopen");
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
}

#[test]
fn missing_components_are_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = strata_core::DbBuilder::new(dir.path()).open().expect_err("no WAL");
    assert!(matches!(err, Error::Config(_)), "{err}");
    let err = strata_plugins::default_builder(dir.path())
        .with_memtable_size_bytes(0)
        .open()
        .expect_err("zero memtable size");
    assert!(matches!(err, Error::Config(_)), "{err}");
}
