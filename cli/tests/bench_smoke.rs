//! `strata bench` end to end at a tiny scale: the main job must run on a fresh machine
//! and produce a complete, sane JSON report.

mod common;

use common::OutputWithin;
use std::process::Command;

#[test]
fn bench_runs_and_reports_every_phase_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--json", "--ops", "2000", "--reads", "500", "--writers", "4"])
        .args(["--sync-seconds", "0.3", "--sync-batch", "8", "--floor-samples", "20"])
        .args(["--memtable-inserts", "2000", "--replay-mib", "4", "--value-size", "150"])
        .args(["--load-keys", "40000", "--probe-ops", "3000", "--memtable-mib", "1"])
        .arg("--dir")
        .arg(dir.path())
        .output_within(common::LIMIT)
        .expect("running strata bench must succeed");
    assert!(
        out.status.success(),
        "strata bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout must be one JSON document");
    let phases = report["phases"].as_array().expect("phases");
    let names: Vec<(&str, u64)> = phases
        .iter()
        .map(|p| (p["phase"].as_str().expect("name"), p["threads"].as_u64().expect("threads")))
        .collect();
    for expected in [
        ("write buffered", 1),
        ("write buffered", 4),
        ("write sync", 1),
        ("write sync", 4),
        ("read hit", 1),
        ("read miss", 1),
        ("read miss in range", 1),
    ] {
        assert!(names.contains(&expected), "missing phase {expected:?} in {names:?}");
    }
    // Every store phase appears once, and each counted phase did exactly the operations
    // asked for (the sync phases run for a time, so only their batch size is fixed).
    let phase = |name: &str, threads: u64| {
        let found: Vec<&serde_json::Value> = phases
            .iter()
            .filter(|p| p["phase"] == name && p["threads"].as_u64() == Some(threads))
            .collect();
        assert_eq!(found.len(), 1, "phase {name:?} with {threads} threads: {found:?}");
        found[0]
    };
    let ops = |p: &serde_json::Value| p["ops"].as_u64().expect("ops");
    for (name, threads, want) in [
        ("write buffered", 1, 2000),
        ("write buffered", 4, 2000),
        ("read hit", 1, 500),
        ("read miss", 1, 500),
        ("read miss in range", 1, 500),
    ] {
        assert_eq!(ops(phase(name, threads)), want, "{name} {threads}w: {}", phase(name, threads));
    }
    let (sync1, sync4) = (phase("write sync", 1), phase("write sync", 4));
    assert_eq!(sync1["entries_per_op"].as_u64(), Some(1), "{sync1}");
    assert_eq!(sync4["entries_per_op"].as_u64(), Some(8), "{sync4}");
    for p in phases {
        let (p50, p99, max) = (
            p["p50_us"].as_f64().expect("p50"),
            p["p99_us"].as_f64().expect("p99"),
            p["max_us"].as_f64().expect("max"),
        );
        assert!(ops(p) > 0, "phase {} did no work", p["phase"]);
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "percentiles out of order in {p}");
    }
    // Every acknowledged write holds one sequence: the store saw exactly the writes the
    // phases report, and holds them all after the run (reopened here, by the library).
    let written = 2000 + 2000 + ops(sync1) + 8 * ops(sync4);
    assert_eq!(report["store"]["visible_seq"].as_u64(), Some(written), "{}", report["store"]);
    let replayed = report["reopen"]["replayed_ops"].as_u64().expect("replayed");
    assert!(replayed <= written, "replayed {replayed} of {written} ops");
    let db = strata_plugins::StackConfig::default()
        .builder(dir.path().join("store"))
        .expect("builder")
        .open()
        .expect("the store the bench wrote opens");
    assert_eq!(db.stats().visible_seq.0, written, "the store lost acknowledged writes");
    drop(db);
    assert!(report["floor"]["p50_us"].as_f64().expect("floor") > 0.0);
    assert!(report["reopen"]["replayed_ops"].as_u64().expect("replayed") > 0);
    assert!(report["replay"]["batches"].as_u64().expect("replay batches") > 0);
    let lsm = &report["lsm"];
    assert!(
        lsm["flushes"].as_u64().expect("flushes") >= 5,
        "40k writes of 170 B fill 1 MiB memtables often: {lsm}"
    );
    assert!(lsm["compactions"].as_u64().expect("compactions") >= 1, "{lsm}");
    let space = lsm["space_amplification"].as_f64().expect("space amp");
    assert!(space > 0.5 && space < 3.0, "space amplification {space} is not plausible");
    assert!(lsm["write_amplification"].as_f64().expect("write amp") >= 1.0);
    assert!(lsm["read_hit"]["ops"].as_u64().expect("reads") > 0);
    assert_eq!(lsm["reopen_replayed_ops"].as_u64(), Some(0), "a settled store replays nothing");
}

#[test]
fn bench_refuses_a_directory_that_already_holds_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("store")).expect("mkdir");
    std::fs::write(dir.path().join("store").join("wal_00000000000000000001.log"), b"x")
        .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--ops", "10"])
        .arg("--dir")
        .arg(dir.path())
        // A user's mistake gets the message, not a backtrace, even with this set.
        .env("RUST_BACKTRACE", "1")
        .output_within(common::LIMIT)
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds a store"), "{stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}
