//! Several policies — in one process or several — share one authority directory: each
//! operation reads the record from the file under the directory's lock, so a change
//! committed through any of them is what every other one sees, checks against and
//! fences with, and concurrent compare-and-sets never lose an update.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{AuthorityRecord, Change, Epoch, Error, FailoverPolicy, LeaseSettings, SeqNo};
use strata_failover_manual::ManualPolicy;
use strata_failover_manual::file::AUTHORITY_LOCK_FILE;

/// Set in a child process of [`processes_sharing_a_directory_lose_no_update`]: the
/// directory it works in.
const CHILD_DIR: &str = "STRATA_MANUAL_SHARED_CHILD_DIR";
/// Set in such a child: its worker name.
const CHILD_NAME: &str = "STRATA_MANUAL_SHARED_CHILD_NAME";
/// Changes each worker (thread or process) commits.
const CHANGES_PER_WORKER: usize = 12;

fn initial() -> AuthorityRecord {
    AuthorityRecord::initial(3, "n1", Epoch(1), SeqNo(1), LeaseSettings::default())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

fn os() -> Arc<dyn FileSystem> {
    Arc::new(OsFileSystem)
}

/// Commits `CHANGES_PER_WORKER` changes for `name` (joining and leaving the in-sync set
/// in turn), each retried on `StaleAuthority` against the record read afresh; returns
/// the version each commit produced.
fn commit_changes(policy: &ManualPolicy, name: &str) -> Vec<u64> {
    let mut versions = Vec::new();
    for i in 0..CHANGES_PER_WORKER {
        let change = if i % 2 == 0 {
            Change::JoinInSync { node: name.into(), epoch: Epoch(1) }
        } else {
            Change::ShrinkInSync { node: name.into(), epoch: Epoch(1) }
        };
        loop {
            let seen = block_on(policy.record()).expect("record");
            match block_on(policy.compare_and_set(seen.version, change.clone())) {
                Ok(next) => {
                    versions.push(next.version);
                    break;
                }
                Err(Error::StaleAuthority { .. }) => continue,
                Err(other) => panic!("{name}: change {i} failed: {other}"),
            }
        }
    }
    versions
}

/// Every commit produced its own version, and they are exactly the versions after the
/// initial one: no change was applied twice or lost.
fn assert_no_lost_update(dir: &Path, versions: Vec<u64>, workers: usize) {
    let total = workers * CHANGES_PER_WORKER;
    let distinct: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(versions.len(), total, "every change committed once");
    assert_eq!(distinct.len(), total, "two commits reported the same version: {versions:?}");
    let want: BTreeSet<u64> = (2..=1 + total as u64).collect();
    assert_eq!(distinct, want);
    let last = block_on(ManualPolicy::open(os(), dir).expect("open").record()).expect("record");
    assert_eq!(last.version, 1 + total as u64);
    // Every worker joined and left as often: the set is back to empty.
    assert!(last.in_sync.is_empty(), "{:?}", last.in_sync);
}

#[test]
fn a_change_through_one_policy_is_seen_checked_and_fenced_through_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = ManualPolicy::create(os(), dir.path(), initial()).expect("create");
    let b = ManualPolicy::open(os(), dir.path()).expect("a second policy on the directory");

    let v2 =
        block_on(a.compare_and_set(1, Change::JoinInSync { node: "n2".into(), epoch: Epoch(1) }))
            .expect("join through a");
    assert_eq!(block_on(b.record()).expect("record through b"), v2);

    let stale = Change::JoinInSync { node: "n3".into(), epoch: Epoch(1) };
    match block_on(b.compare_and_set(1, stale)) {
        Err(Error::StaleAuthority { expected: 1, found: 2 }) => {}
        other => panic!("expected a stale version through b, got {other:?}"),
    }

    // n1 holds a lease through a until b promotes n2; then a fences n1.
    block_on(a.renew_lease(&"n1".into(), Epoch(1))).expect("n1 is primary");
    let promote = Change::Promote { node: "n2".into(), epoch: Epoch(2), first_seq: SeqNo(10) };
    let v3 = block_on(b.compare_and_set(2, promote)).expect("promote through b");
    let err = block_on(a.renew_lease(&"n1".into(), Epoch(1))).expect_err("fenced");
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let lease = block_on(a.renew_lease(&"n2".into(), Epoch(2))).expect("n2 is primary");
    assert_eq!(lease.version, v3.version);
    assert_eq!(block_on(a.record()).expect("record through a"), v3);
}

#[test]
fn threads_with_their_own_policies_lose_no_update() {
    const WORKERS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    drop(ManualPolicy::create(os(), dir.path(), initial()).expect("create"));
    let start = Arc::new(Barrier::new(WORKERS));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (dir, start) = (dir.path().to_path_buf(), Arc::clone(&start));
            std::thread::spawn(move || {
                let policy = ManualPolicy::open(os(), &dir).expect("open");
                start.wait();
                commit_changes(&policy, &format!("w{w}"))
            })
        })
        .collect();
    let versions = handles.into_iter().flat_map(|h| h.join().expect("worker")).collect();
    assert_no_lost_update(dir.path(), versions, WORKERS);
}

/// The body of a child process of the next test; returns at once in a normal run.
#[test]
fn child_process_worker() {
    let (Ok(dir), Ok(name)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_NAME)) else {
        return;
    };
    let policy = ManualPolicy::open(os(), Path::new(&dir)).expect("child open");
    for v in commit_changes(&policy, &name) {
        println!("COMMITTED {v}");
    }
}

#[test]
fn processes_sharing_a_directory_lose_no_update() {
    const CHILDREN: usize = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let me = ManualPolicy::create(os(), dir.path(), initial()).expect("create");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..CHILDREN)
        .map(|c| {
            Command::new(&exe)
                .args(["child_process_worker", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_NAME, format!("p{c}"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    // This process commits too, through the policy it created.
    let mut versions = commit_changes(&me, "parent");
    for child in children {
        let out = child.wait_with_output().expect("child");
        assert!(out.status.success(), "a child failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let mine: Vec<u64> = text
            .lines()
            // The harness may print the test's name on the same line first.
            .filter_map(|l| l.split_once("COMMITTED ").map(|(_, v)| v))
            .map(|v| v.trim().parse().expect("version"))
            .collect();
        assert_eq!(mine.len(), CHANGES_PER_WORKER, "child output: {text}");
        versions.extend(mine);
    }
    assert_no_lost_update(dir.path(), versions, CHILDREN + 1);
}

#[test]
fn of_several_creates_at_once_exactly_one_wins_and_the_rest_are_told_to_open() {
    const CREATORS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Arc::new(Barrier::new(CREATORS));
    let done = Arc::new(Barrier::new(CREATORS));
    let handles: Vec<_> = (0..CREATORS)
        .map(|_| {
            let (dir, start, done) =
                (dir.path().to_path_buf(), Arc::clone(&start), Arc::clone(&done));
            std::thread::spawn(move || {
                start.wait();
                let result = ManualPolicy::create(os(), &dir, initial());
                // Every policy stays open until all creates returned.
                done.wait();
                result.map(|_| ())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("creator")).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    for err in results.into_iter().filter_map(Result::err) {
        assert!(matches!(&err, Error::InvalidArgument(m) if m.contains("already holds")), "{err}");
    }
}

#[test]
fn an_operation_waits_for_the_lock_and_gives_up_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = ManualPolicy::create(os(), dir.path(), initial()).expect("create");
    let lock_path = dir.path().join(AUTHORITY_LOCK_FILE);

    // Held by someone else and released soon: the operation waits, then goes on.
    let held = os().lock(&lock_path).expect("lock");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            tx.send(()).expect("send");
            block_on(policy.record())
        });
        rx.recv().expect("started");
        drop(held);
        waiter.join().expect("waiter")
    });
    assert_eq!(waiter.expect("record after the lock was released").version, 1);

    // Held for good: the operation fails, naming the lock file.
    let _held = os().lock(&lock_path).expect("lock");
    let err = block_on(policy.record()).expect_err("the lock never frees");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains(AUTHORITY_LOCK_FILE), "{err}");
}
