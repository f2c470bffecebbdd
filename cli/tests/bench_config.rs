//! `strata bench --config` and `--compare` on stacks described in TOML, including a
//! memtable plugin loaded from a shared library through `[[load]]`: the run must use the
//! configured stack (the report names it) and compare two stacks as ratios.

mod common;

use common::OutputWithin;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TINY: &[&str] = &[
    "--load-keys",
    "20000",
    "--memtable-mib",
    "1",
    "--ops",
    "500",
    "--reads",
    "500",
    "--replay-mib",
    "0",
    "--sync-seconds",
    "0.2",
    "--floor-samples",
    "4",
    "--memtable-inserts",
    "500",
    "--writers",
    "2",
    "--probe-ops",
    "2000",
];

/// Builds the example plugin library (a no-op when up to date) into the target
/// directory this test binary lives in (`<target>/<profile>/deps/`) and returns it.
fn example_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps");
        let target = profile.parent().expect("<target>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "strata-plugin-example", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .arg("--target-dir")
            .arg(target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => panic!("unexpected profile directory {}", profile.display()),
        }
        let out =
            cmd.output_within(std::time::Duration::from_secs(1200)).expect("running cargo build");
        assert!(out.status.success(), "build failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let lib = profile.join(format!(
            "{}strata_plugin_example{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        assert!(lib.exists(), "{} was not built", lib.display());
        lib
    })
}

fn bench(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("bench")
        .args(TINY)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output_within(common::LIMIT)
        .expect("running strata bench")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "strata bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn example_stack(dir: &Path) -> PathBuf {
    let path = dir.join("btree.toml");
    std::fs::write(
        &path,
        format!(
            "[[load]]\npath = {:?}\n\n[memtable]\nkind = \"example-btree\"\n\n\
             [wal]\nsegment_size_bytes = 1048576\n\n[engine]\ncompaction_threads = 1\n",
            example_plugin().display().to_string()
        ),
    )
    .expect("write config");
    path
}

#[test]
fn bench_config_runs_every_phase_on_a_loaded_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = example_stack(dir.path());
    let out =
        bench(&["--json", "--config", config.to_str().expect("utf-8")], &dir.path().join("run"));
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out)).expect("stdout must be one JSON document");
    let stack = report["stack"].as_str().expect("stack");
    assert!(stack.contains("memtable=example-btree"), "{stack}");
    assert!(report["phases"].as_array().expect("phases").len() >= 6);
    let lsm = &report["lsm"];
    assert!(lsm["flushes"].as_u64().expect("flushes") >= 2, "{lsm}");
    assert!(lsm["read_hit"]["ops"].as_u64().expect("reads") == 500, "{lsm}");
}

#[test]
fn bench_compare_reports_ratios_to_the_first_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let default = dir.path().join("default.toml");
    std::fs::write(&default, strata_plugins::default_stack_toml()).expect("write");
    let example = example_stack(dir.path());
    let list = format!("{},{}", default.display(), example.display());
    let out = bench(&["--json", "--compare", &list], &dir.path().join("run"));
    let cmp: serde_json::Value = serde_json::from_str(&ok(&out)).expect("one JSON document");
    let stacks = cmp["stacks"].as_array().expect("stacks");
    assert_eq!(stacks.len(), 2);
    assert!(stacks[0]["stack"].as_str().expect("s").contains("memtable=skiplist"));
    assert!(stacks[1]["stack"].as_str().expect("s").contains("memtable=example-btree"));
    let rows = cmp["rows"].as_array().expect("rows");
    let load = rows.iter().find(|r| r["metric"] == "load ops/s").expect("load row");
    let values = load["values"].as_array().expect("values");
    let ratios = load["ratios"].as_array().expect("ratios");
    assert_eq!(ratios[0].as_f64(), Some(1.0));
    let expected = values[1].as_f64().expect("v1") / values[0].as_f64().expect("v0");
    assert!((ratios[1].as_f64().expect("r1") - expected).abs() < 1e-9, "{load}");

    // The table form prints a ratio column.
    let out = bench(&["--compare", &list], &dir.path().join("run2"));
    let table = ok(&out);
    assert!(table.contains("ratio") && table.contains("load ops/s"), "{table}");
}

#[test]
fn bench_config_with_an_unknown_plugin_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[table]\nkind = \"parquet\"\n").expect("write");
    let out = bench(&["--config", config.to_str().expect("utf-8")], &dir.path().join("run"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown table plugin `parquet`") && err.contains("mmap"), "{err}");
}

#[test]
fn strata_plugins_lists_linked_and_loaded_plugins() {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("plugins")
        .arg("--load")
        .arg(example_plugin())
        .output_within(common::LIMIT)
        .expect("running strata plugins");
    let text = ok(&out);
    for name in ["file*", "skiplist*", "mmap*", "leveled*", "example-btree"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("(from "), "the loaded plugin names its library:\n{text}");
}
