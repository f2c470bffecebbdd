//! `strata bench distribution` end to end at a tiny scale: every phase runs for real and
//! reports plausible figures, as a table and as JSON. No timing is asserted.

mod common;

use common::OutputWithin;
use std::process::{Command, Output};
use std::sync::Mutex;

/// The runs pin busy-polling threads to cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(extra: &[&str]) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "distribution", "--messages", "2000", "--tier-batch", "8"])
        .args(extra)
        .current_dir(dir.path())
        .output_within(common::LIMIT)
        .expect("running strata bench distribution");
    assert!(
        out.status.success(),
        "strata bench distribution failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn check_latency(l: &serde_json::Value, what: &str) {
    let count = l["count"].as_u64().expect("count");
    let p50 = l["p50_ns"].as_u64().expect("p50");
    let p99 = l["p99_ns"].as_u64().expect("p99");
    let p999 = l["p999_ns"].as_u64().expect("p999");
    let max = l["max_ns"].as_u64().expect("max");
    let mean = l["mean_ns"].as_f64().expect("mean");
    assert_eq!(count, 2000, "{what}: every measured message is recorded: {l}");
    assert!(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max, "{what}: percentiles {l}");
    assert!(mean > 0.0 && mean <= max as f64, "{what}: mean {l}");
}

fn check_throughput(t: &serde_json::Value, what: &str, at_least: u64) {
    assert!(t["messages"].as_u64().expect("messages") >= at_least, "{what}: {t}");
    assert!(t["seconds"].as_f64().expect("seconds") > 0.0, "{what}: {t}");
    assert!(t["msgs_per_sec"].as_f64().expect("rate") > 0.0, "{what}: {t}");
}

#[test]
fn distribution_bench_reports_every_phase_as_json() {
    let out = run(&["--json"]);
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout must be one JSON document");
    let ice = &r["iceoryx_latency"];
    check_latency(&ice["strata"], "strata iceoryx");
    check_latency(&ice["raw"], "raw iceoryx2");
    check_latency(&ice["raw_threadsafe"], "raw iceoryx2 threadsafe");
    for ratio in ["mean_ratio", "p50_ratio", "p99_ratio", "mean_ratio_threadsafe"] {
        let x = ice[ratio].as_f64().expect("ratio");
        assert!(x.is_finite() && x > 0.0, "{ratio} = {x}");
    }
    check_latency(&r["tcp_latency"], "tcp");
    check_latency(&r["tcp_raw_latency"], "raw std::net tcp");
    check_throughput(&r["iceoryx_throughput"], "iceoryx batched", 200_000);
    check_throughput(&r["tcp_throughput"], "tcp", 2000);
    let tiers = r["tiers"]["results"].as_array().expect("tier results");
    let names: Vec<&str> = tiers.iter().map(|t| t["tier"].as_str().expect("tier")).collect();
    for prefix in ["transport poll", "realtime", "delayed", "commit stream poll", "resumable"] {
        assert!(names.iter().any(|n| n.starts_with(prefix)), "no {prefix} tier in {names:?}");
    }
    for t in tiers {
        assert_eq!(t["messages"].as_u64().expect("messages"), 2000, "{t}");
        assert!(t["msgs_per_sec"].as_f64().expect("rate") > 0.0, "{t}");
        assert!(t["ns_per_msg"].as_f64().expect("ns") > 0.0, "{t}");
        let is_base = t["baseline"].is_null();
        assert_eq!(is_base, t["overhead_ns_per_msg"].is_null(), "{t}");
    }
    let resumable = tiers
        .iter()
        .find(|t| t["tier"].as_str().is_some_and(|n| n.starts_with("resumable")))
        .expect("resumable");
    assert_eq!(resumable["frames"].as_u64(), Some(250), "2000 ops in batches of 8: {resumable}");
}

#[test]
fn distribution_bench_prints_a_table_and_keeps_the_main_bench_flags() {
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "strata iceoryx",
        "raw iceoryx2",
        "raw iceoryx2 threadsafe",
        "strata tcp",
        "strata/raw iceoryx2: mean",
        "iceoryx batched",
        "tcp loopback",
        "realtime (callback)",
        "delayed (10 ms windows)",
        "resumable (durable checkpoint)",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
    // The main job's options still parse; mixing them with the subcommand is refused.
    let help = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--help"])
        .output_within(common::LIMIT)
        .expect("strata bench --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--peers") && help.contains("distribution"), "{help}");
    let mixed = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--ops", "10", "distribution"])
        .output_within(common::LIMIT)
        .expect("strata bench --ops 10 distribution");
    assert!(!mixed.status.success(), "main-job flags with the subcommand must be refused");
}
