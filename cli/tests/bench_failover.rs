//! `strata bench failover` end to end at a tiny scale: a 3-node cluster of real
//! processes, two rounds of kill -9 of the primary, every acknowledged write read back.
//! Checks the report's structure and that every round completed; nothing asserts on
//! timing.

mod common;

use common::OutputWithin;
use std::process::Command;

#[test]
fn bench_failover_completes_every_round_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "failover", "--rounds", "2", "--json", "--dir"])
        .arg(dir.path())
        .output_within(common::LIMIT)
        .expect("running strata bench failover");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "strata bench failover failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout must be one JSON document");
    assert_eq!(report["nodes"].as_u64(), Some(3), "{report}");
    assert_eq!(report["policy"], "raft", "{report}");
    // The [failover] defaults.
    let t = &report["timings"];
    assert_eq!(
        (t["heartbeat_ms"].as_u64(), t["lease_ms"].as_u64(), t["grace_ms"].as_u64()),
        (Some(100), Some(500), Some(800)),
        "{report}"
    );
    let rounds = report["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{report}");
    for (i, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"].as_u64(), Some(i as u64 + 1), "{r}");
        assert_ne!(r["killed"], r["new_primary"], "{r}");
        let (before, after) = (r["epoch_before"].as_u64(), r["epoch_after"].as_u64());
        assert!(before.zip(after).is_some_and(|(b, a)| a > b), "{r}");
        let ms = |k: &str| r[k].as_f64().unwrap_or(-1.0);
        assert!(ms("detection_ms") > 0.0 && ms("failover_ms") > 0.0, "{r}");
        assert!(ms("rejoin_ms") >= ms("failover_ms").min(ms("detection_ms")), "{r}");
        assert!(r["acknowledged"].as_u64().expect("acknowledged") > 0, "{r}");
    }
    for name in ["detection", "failover", "rejoin"] {
        let s = &report[name];
        assert_eq!(s["n"].as_u64(), Some(2), "{name}: {s}");
        let v = |k: &str| s[k].as_f64().unwrap_or(-1.0);
        assert!(0.0 < v("min_ms") && v("min_ms") <= v("p50_ms"), "{name}: {s}");
        assert!(v("p50_ms") <= v("p99_ms") && v("p99_ms") <= v("max_ms"), "{name}: {s}");
    }
    assert!(report["detection_met"].is_boolean() && report["failover_met"].is_boolean());
    let w = &report["writes"];
    let acked = w["acknowledged"].as_u64().expect("acknowledged");
    assert!(acked > 0, "{w}");
    assert_eq!(w["verified"].as_u64(), Some(acked), "{w}");
    assert_eq!(w["lost"].as_u64(), Some(0), "{w}");
    assert!(report["unplanned_epochs"].is_u64(), "{report}");
    assert_eq!(report["definitions"].as_array().map(Vec::len), Some(4), "{report}");
}
