//! Process crash: a child writes `Sync` batches from several threads and is killed with
//! SIGKILL at random moments. After every kill the store must reopen and hold every
//! acknowledged write (as recorded in the expected-state file), and nothing that was
//! never written. Rounds: 20 by default, `STRATA_CRASH_ROUNDS` for more. The child's
//! store flushes and compacts constantly, so kills also land in table writes, manifest
//! edits and WAL checkpoints.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata_harness::crash::{item_key, item_value, latest_key, read_expected};

const WRITERS: u32 = 4;
const SEED: u64 = 0x5742_4154;

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let rounds: u32 =
        std::env::var("STRATA_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let expected = dir.path().join("expected-state");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(rounds as u64);
    let mut total_acked = 0;
    // The child runs with 64 KiB memtables and tiny leveled sizes, so kills land in
    // flushes, compactions and manifest edits too. On a loaded machine the child may
    // write too little in the planned rounds for that, so rounds continue (up to a cap)
    // until a compaction has moved data below L0.
    let mut compacted = false;
    let mut round = 0;
    while round < rounds || (!compacted && round < rounds * 3 + 20) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&store)
            .arg(&expected)
            .arg(SEED.to_string())
            .arg(WRITERS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the crash writer must succeed");
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        // Child::kill sends SIGKILL on Unix.
        child.kill().expect("kill");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.code().is_none(),
            "round {round}: the writer exited by itself ({:?}) instead of being killed: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        total_acked = check_store(&store, &expected, round);
        compacted |= tables_below_l0(&store) > 0;
        round += 1;
    }
    assert!(total_acked > 0, "the writer never acknowledged anything: the test proved nothing");
    assert!(compacted, "no compaction ever ran in {round} rounds: kills never hit the LSM path");
}

/// Tables the store's manifest lists in L1 or deeper (only compaction puts them there).
fn tables_below_l0(store: &std::path::Path) -> usize {
    let fs = strata_core::fs::OsFileSystem;
    let Some(n) = strata_core::manifest::read_current(&fs, store).expect("CURRENT") else {
        return 0;
    };
    let m = strata_core::manifest::read_manifest(&fs, store, n).expect("manifest");
    m.state.live_tables().filter(|(level, _)| *level >= 1).count()
}

fn listing(dir: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let len = e.metadata().map_or(0, |m| m.len());
                    format!("{} ({len} B)", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(", ")
}

/// Reopens the store and checks it against the expected state; returns the number of
/// acknowledged writes.
fn check_store(store: &std::path::Path, expected: &std::path::Path, round: u32) -> u64 {
    let acked = read_expected(expected).expect("expected-state file must be readable");
    let db = strata_harness::crash::crash_stack(store).open().unwrap_or_else(|e| {
        panic!("round {round}: reopen after SIGKILL failed: {e:?}\nstore: {}", listing(store))
    });
    let mut count = 0;
    for w in 0..WRITERS {
        let latest = db
            .get(&latest_key(w))
            .expect("get")
            .map(|v| String::from_utf8(v.to_vec()).expect("utf8").parse::<u64>().expect("index"));
        let Some(&max_acked) = acked.get(&w) else {
            // Nothing acknowledged: at most the one in-flight write may exist.
            assert!(
                latest.is_none_or(|l| l == 0),
                "round {round}: writer {w} has unacknowledged progress {latest:?}"
            );
            continue;
        };
        count += max_acked + 1;
        let latest =
            latest.unwrap_or_else(|| panic!("round {round}: writer {w} lost its latest key"));
        // One write per writer can be durable but not yet acknowledged when killed.
        assert!(
            latest == max_acked || latest == max_acked + 1,
            "round {round}: writer {w}: latest index {latest}, acknowledged up to {max_acked}"
        );
        for i in 0..=latest {
            let got = db.get(&item_key(w, i)).expect("get");
            let deleted_by = i + 3;
            let deleted = i % 7 == 0 && deleted_by <= latest;
            if deleted {
                assert!(
                    got.is_none(),
                    "round {round}: writer {w} item {i} should have been deleted"
                );
            } else {
                let want = item_value(SEED, w, i);
                assert_eq!(
                    got.as_deref(),
                    Some(&want[..]),
                    "round {round}: writer {w} item {i} (acknowledged up to {max_acked}) is missing or wrong"
                );
            }
        }
        // Nothing that was never written: no item beyond the latest index.
        let beyond: Vec<_> = db
            .scan(item_key(w, latest + 1)..item_key(w + 1, 0))
            .collect::<Result<_, _>>()
            .expect("scan");
        assert!(beyond.is_empty(), "round {round}: writer {w} has items past its latest index");
    }
    count
}
