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
    ] {
        assert!(names.contains(&expected), "missing phase {expected:?} in {names:?}");
    }
    for p in phases {
        let (p50, p99, max) = (
            p["p50_us"].as_f64().expect("p50"),
            p["p99_us"].as_f64().expect("p99"),
            p["max_us"].as_f64().expect("max"),
        );
        assert!(p["ops"].as_u64().expect("ops") > 0, "phase {} did no work", p["phase"]);
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "percentiles out of order in {p}");
    }
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
