//! `strata bench --peers fjall` (and, with the `rocksdb` feature, `--peers fjall,rocksdb`)
//! end to end at a tiny scale: every workload is reported for every engine with the
//! counts asked for, and the HTML report holds well-formed SVG.

mod common;

use common::OutputWithin;
use std::process::Command;

const WORKLOADS: [&str; 11] = [
    "exchange",
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom-hit",
    "readrandom-miss",
    "seek+scan",
    "ycsb-a",
    "ycsb-b",
    "sync-write-1w",
    "sync-write-Nw",
];

#[test]
fn bench_peers_reports_every_workload_for_every_engine() {
    check_peers(&["fjall"]);
}

#[cfg(feature = "rocksdb")]
#[test]
fn bench_peers_with_rocksdb_reports_every_workload_for_every_engine() {
    check_peers(&["fjall", "rocksdb"]);
}

/// Runs the tiny benchmark against `peers` and checks its JSON and HTML report.
fn check_peers(peers: &[&str]) {
    let engines: Vec<&str> = std::iter::once("strata").chain(peers.iter().copied()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("peers.html");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "bench",
            "--peers",
            &peers.join(","),
            "--json",
            "--peer-keys",
            "2000",
            "--peer-ops",
            "600",
        ])
        .args(["--peer-scans", "40", "--peer-scan-len", "10", "--peer-sync-ops", "12"])
        .args(["--peer-threads", "2", "--writers", "3", "--peer-memtable-mib", "1"])
        .args(["--value-size", "100", "--dir"])
        .arg(dir.path().join("run"))
        .arg("--report")
        .arg(&report)
        .output_within(common::LIMIT)
        .expect("running strata bench --peers");
    assert!(
        out.status.success(),
        "strata bench --peers failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout must be one JSON document");
    assert_eq!(json["engines"], serde_json::json!(engines));
    let workloads = json["workloads"].as_array().expect("workloads");
    let names: Vec<&str> =
        workloads.iter().map(|w| w["workload"].as_str().expect("name")).collect();
    assert_eq!(names, WORKLOADS);
    for w in workloads {
        let name = w["workload"].as_str().expect("name");
        let want = match name {
            "fillseq" | "fillrandom" => 2000,
            "seek+scan" => 40,
            "sync-write-1w" | "sync-write-Nw" => 12,
            _ => 600,
        };
        assert_eq!(w["ops_requested"].as_u64(), Some(want), "{name}");
        let results = w["results"].as_array().expect("results");
        let got: Vec<&str> = results.iter().map(|r| r["engine"].as_str().expect("e")).collect();
        assert_eq!(got, engines, "{name}");
        for r in results {
            assert_eq!(r["ops"].as_u64(), Some(want), "{name} {}", r["engine"]);
            let (p50, p99, max) = (
                r["p50_us"].as_f64().expect("p50"),
                r["p99_us"].as_f64().expect("p99"),
                r["max_us"].as_f64().expect("max"),
            );
            assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{name}: {r}");
            assert!(r["ops_per_sec"].as_f64().expect("ops/s") > 0.0);
            assert!(r["disk_bytes"].as_u64().expect("disk") > 0, "{name}: nothing on disk");
            assert_eq!(r["curve"].as_array().expect("curve").len(), 10);
            let found = r["found"].as_u64().expect("found");
            match name {
                "readrandom-hit" => assert_eq!(found, want, "every hit must be found"),
                "readrandom-miss" => assert_eq!(found, 0, "a miss was found"),
                "seek+scan" => assert_eq!(found, 40 * 10),
                "ycsb-a" | "ycsb-b" => assert_eq!(found, r["reads"].as_u64().expect("reads")),
                _ => assert_eq!(r["writes"].as_u64(), Some(want), "{name}"),
            }
        }
        let ratios = w["ratios"].as_array().expect("ratios");
        assert_eq!(ratios.len(), peers.len(), "{name}");
        for (ratio, peer) in ratios.iter().zip(peers) {
            assert_eq!(ratio["peer"], *peer, "{name}");
            assert!(ratio["throughput"].as_f64().expect("ratio") > 0.0, "{name} {peer}");
        }
    }
    // Every store directory was removed.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("run")).expect("run dir").collect();
    assert!(left.is_empty(), "stores left behind: {left:?}");

    let html = std::fs::read_to_string(&report).expect("the HTML report must be written");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // One throughput chart plus one latency chart per workload, every one closed, and
    // one curve per engine per workload.
    assert_eq!(html.matches("<svg ").count(), 1 + WORKLOADS.len());
    assert_eq!(html.matches("</svg>").count(), 1 + WORKLOADS.len());
    assert_eq!(html.matches("<polyline ").count(), engines.len() * WORKLOADS.len());
    for svg in html.split("<svg ").skip(1) {
        let body = &svg[..svg.find("</svg>").expect("closed svg")];
        assert!(!body.contains("NaN") && !body.contains("inf"), "bad number in {body}");
        // `split` consumed the opening `<svg `'s `<`.
        assert_eq!(body.matches('<').count() + 1, body.matches('>').count(), "unbalanced tag");
    }
    for name in WORKLOADS {
        assert!(html.contains(&format!("<h3>{name} (")), "no table for {name}");
    }
}
