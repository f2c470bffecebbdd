//! `DbOptions::background_nice`: the flush and compaction threads lower their own
//! priority by that much when they start (read back from `/proc`), and leave it alone by
//! default. One test in this binary: it looks at every thread of the process by name.

#![cfg(target_os = "linux")]

use strata_core::fs::OsFileSystem;

/// Nice values of this process's threads whose name starts with `prefix`.
fn nice_of(prefix: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).expect("stat");
        // Fields after the command name (which may hold spaces) start at field 3, the
        // state; nice is field 19.
        let rest = stat.rsplit_once(") ").expect("stat has a command name").1;
        let nice = rest.split(' ').nth(19 - 3).expect("field 19").parse().expect("a number");
        out.push(nice);
    }
    out
}

fn own_nice() -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let rest = stat.rsplit_once(") ").expect("stat has a command name").1;
    rest.split(' ').nth(19 - 3).expect("field 19").parse().expect("a number")
}

fn open(dir: &std::path::Path, nice: i32) -> strata_core::Db {
    let mut b =
        strata_harness::stack::tiny_builder(dir, OsFileSystem::shared(), 64 * 1024, 256 * 1024);
    b.options_mut().background_nice = nice;
    b.open().expect("open")
}

fn wait_for(prefix: &str, want: i64) -> Vec<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = nice_of(prefix);
        if (!got.is_empty() && got.iter().all(|n| *n == want))
            || std::time::Instant::now() > deadline
        {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn background_threads_lower_their_priority_by_background_nice() {
    let base = own_nice();
    let want = (base + 7).min(19);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), 7);
    assert_eq!(wait_for("strata-flush", want), [want], "the flush thread");
    assert_eq!(wait_for("strata-compact", want), [want], "the compaction thread");
    drop(db);
    // Let the threads end before looking at a store with the default.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !nice_of("strata-flush").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _db = open(dir.path(), 0);
    assert_eq!(wait_for("strata-flush", base), [base], "by default the priority is unchanged");
    assert_eq!(wait_for("strata-compact", base), [base]);
}
