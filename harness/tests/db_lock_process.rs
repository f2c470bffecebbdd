//! A second process opening a store that is in use gets a clear `Locked` error.
//!
//! This lives in its own test binary on purpose: between fork and exec a child briefly
//! shares the parent's file descriptors (and so its flock), which would make concurrent
//! lock tests in the same process flaky.

use std::process::Command;

#[test]
fn second_process_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let _db = strata_plugins::default_builder(&store).open().expect("open");
    let out = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(&store)
        .arg(dir.path().join("expected"))
        .args(["1", "1"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "the second process must fail, not write");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already open") && stderr.contains("LOCK"), "{stderr}");
}
