//! The manual policy's record survives power loss at every point of a change: a change
//! reported committed is there after the crash, a change whose write failed leaves the
//! previous record (and poisons the policy until it is reopened), and a damaged file is
//! refused with its name and offset, never repaired or served.

use std::path::Path;

use strata_core::{AuthorityRecord, Change, Epoch, Error, FailoverPolicy, LeaseSettings, SeqNo};
use strata_failover_manual::ManualPolicy;
use strata_failover_manual::file::{AUTHORITY_FILE, HEADER_BYTES};
use strata_harness::sim_fs::SimFileSystem;

fn initial() -> AuthorityRecord {
    AuthorityRecord::initial(3, "n1", Epoch(1), SeqNo(1), LeaseSettings::default())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

fn changes() -> Vec<Change> {
    vec![
        Change::JoinInSync { node: "n2".into(), epoch: Epoch(1) },
        Change::JoinInSync { node: "n3".into(), epoch: Epoch(1) },
        Change::ShrinkInSync { node: "n3".into(), epoch: Epoch(1) },
        Change::Promote { node: "n2".into(), epoch: Epoch(2), first_seq: SeqNo(10) },
    ]
}

#[test]
fn committed_changes_survive_power_loss_and_failed_ones_leave_the_old_record() {
    let dir = Path::new("/auth");
    let mut fs = SimFileSystem::new();
    let policy = ManualPolicy::create(fs.shared(), dir, initial()).expect("create");
    let mut expected = block_on(policy.record()).expect("record");
    drop(policy);
    for change in changes() {
        // First the write fails (its fsync): nothing changes, the policy is poisoned.
        let policy = ManualPolicy::open(fs.shared(), dir).expect("open");
        fs.fail_sync_after(1);
        let err = block_on(policy.compare_and_set(expected.version, change.clone()))
            .expect_err("sync fails");
        assert!(matches!(err, Error::Io { .. }), "{err}");
        let poisoned = block_on(policy.record()).expect_err("poisoned");
        assert!(matches!(poisoned, Error::Poisoned { .. }), "{poisoned}");
        drop(policy);
        fs = fs.crash();
        let policy = ManualPolicy::open(fs.shared(), dir).expect("reopen after failed write");
        assert_eq!(block_on(policy.record()).expect("record"), expected);

        // Then it succeeds, and a power loss right after keeps it.
        let next = block_on(policy.compare_and_set(expected.version, change)).expect("commit");
        drop(policy);
        fs = fs.crash();
        let policy = ManualPolicy::open(fs.shared(), dir).expect("reopen after commit");
        assert_eq!(block_on(policy.record()).expect("record"), next);
        expected = next;
    }
    assert_eq!((expected.primary.as_str(), expected.epoch), ("n2", Epoch(2)));
}

#[test]
fn damaged_records_are_refused_with_file_and_offset_and_left_as_they_are() {
    let dir = Path::new("/auth");
    let fs = SimFileSystem::new();
    drop(ManualPolicy::create(fs.shared(), dir, initial()).expect("create"));
    let path = dir.join(AUTHORITY_FILE);
    let good = fs.read_file(&path).expect("file");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let truncated = good[..HEADER_BYTES + 3].to_vec();
    for (bad, want_offset) in [(flipped, 16u64), (truncated, HEADER_BYTES as u64 + 3)] {
        fs.write_file_raw(&path, &bad).expect("damage");
        let err = ManualPolicy::open(fs.shared(), dir).expect_err("damaged");
        match &err {
            Error::Corruption { file, offset, .. } => {
                assert_eq!(file, &path);
                assert_eq!(*offset, want_offset, "{err}");
            }
            other => panic!("expected corruption, got {other}"),
        }
        assert!(err.to_string().contains("/auth/AUTHORITY"), "{err}");
        assert_eq!(fs.read_file(&path).expect("file"), bad, "open must not rewrite the file");
    }
}

#[test]
fn no_second_create_and_no_open_without_a_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let os = std::sync::Arc::new(strata_core::fs::OsFileSystem);
    let policy = ManualPolicy::create(os.clone(), dir.path(), initial()).expect("create");
    // Another policy may share the directory (tests/shared_directory.rs), not recreate it.
    let err = ManualPolicy::create(os.clone(), dir.path(), initial()).expect_err("exists");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    drop(policy);
    let err = ManualPolicy::create(os.clone(), dir.path(), initial()).expect_err("exists");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let missing = tempfile::tempdir().expect("tempdir");
    assert!(ManualPolicy::open(os, missing.path()).is_err());
}
