//! `strata bench replication` end to end at a tiny scale: every row of the report is
//! there, in the table and in the JSON (no timing assertions).

mod common;

use common::OutputWithin;
use std::process::Command;

fn bench(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "replication", "--seconds", "0.2", "--writers", "3", "--batch", "4"])
        .args(["--catchup-mib", "6", "--catchup-memtable-mib", "1"])
        .args(["--catchup-segment-mib", "1", "--value-size", "150"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .output_within(common::LIMIT)
        .expect("running strata bench replication");
    assert!(
        out.status.success(),
        "strata bench replication failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

#[test]
fn bench_replication_reports_every_row_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bench(dir.path(), &["--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout must be one JSON document");
    let lags = report["async_lag"].as_array().expect("async_lag");
    let threads: Vec<u64> =
        lags.iter().map(|l| l["lag"]["threads"].as_u64().expect("threads")).collect();
    assert_eq!(threads, [1, 3], "{report}");
    for l in lags {
        assert!(l["lag"]["ops"].as_u64().expect("ops") > 0, "{l}");
        assert_eq!(l["lag"]["ops"], l["primary_write"]["ops"], "a lag per write: {l}");
        assert_eq!(l["lag"]["entries_per_op"].as_u64(), Some(4), "{l}");
        assert_eq!(l["watch"], "poll", "{l}");
        let (p50, max) = (l["lag"]["p50_us"].as_f64(), l["lag"]["max_us"].as_f64());
        assert!(p50.zip(max).is_some_and(|(a, b)| 0.0 < a && a <= b), "{l}");
    }
    for (name, threads, batch) in [("sync_latency", 1, 1), ("group_commit", 3, 4)] {
        let c = &report[name];
        for side in ["single", "node"] {
            assert!(c[side]["ops"].as_u64().expect("ops") > 0, "{name}.{side}: {c}");
            assert_eq!(c[side]["threads"].as_u64(), Some(threads), "{name}.{side}: {c}");
            assert_eq!(c[side]["entries_per_op"].as_u64(), Some(batch), "{name}.{side}: {c}");
        }
        assert!(c["p50_ratio"].as_f64().expect("p50 ratio") > 0.0, "{c}");
        assert!(c["throughput_ratio"].as_f64().expect("throughput ratio") > 0.0, "{c}");
    }
    let c = &report["catchup"];
    assert!(c["bootstraps"].as_u64().expect("bootstraps") >= 1, "{c}");
    assert!(c["transferred_mib"].as_f64().expect("transferred") > 0.0, "{c}");
    assert!(c["mb_per_sec"].as_f64().expect("rate") > 0.0, "{c}");
    assert!(c["primary_last_seq"].as_u64().expect("last seq") > 0, "{c}");
}

#[test]
fn bench_replication_prints_a_table_with_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bench(dir.path(), &["--lag-watch", "log"]);
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "async write (primary)",
        "async lag (replica visible)",
        "single-node sync write",
        "sync-mode node write",
        "async lag, 1 writer(s): p99",
        "async lag, 3 writer(s): p99",
        "watched by commit-log tail",
        "sync write, 1 writer: node p50",
        "group commit, 3 writers × 4 entries",
        "catch-up from a checkpoint",
    ] {
        assert!(table.contains(row), "missing {row:?} in:\n{table}");
    }
    assert_eq!(table.matches("async lag (replica visible)").count(), 2, "{table}");
    assert_eq!(table.matches("sync-mode node write").count(), 2, "{table}");
}
