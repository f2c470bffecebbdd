//! `strata serve` with `[replication]`, `strata status` and `strata cluster` as an
//! operator runs them: real processes on loopback, a primary writing its synthetic
//! feed, replicas following it, SIGKILL and restart, promotion, removal from the
//! in-sync set, and bad configurations. Every wait polls against a deadline; nothing
//! asserts on timing.

#![allow(clippy::unwrap_used)]

mod common;

use common::OutputWithin;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_strata");
/// How long a node may take to reach a state (debug builds on 2 busy cores).
const DEADLINE: Duration = Duration::from_secs(120);

/// A running `strata serve`, killed (SIGKILL) when dropped.
struct Serve {
    child: Child,
    /// The gateway's address.
    ws: String,
    /// What serve printed before it was ready.
    banner: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(config: &Path) -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let ws = loop {
        let line = lines.next().expect("serve exited before printing its address").unwrap();
        if let Some(rest) = line.strip_prefix("gateway: ws://") {
            break rest.split('/').next().unwrap().to_owned();
        }
        banner.push(line);
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serve { child, ws, banner }
}

fn write_config(dir: &Path, file: &str, store: &str, replication: &str, feed: bool) -> PathBuf {
    let path = dir.join(file);
    let feed = if feed { "[feed]\nrate = 400\nbatch = 4\n" } else { "" };
    std::fs::write(
        &path,
        format!(
            "[store]\ndir = \"{store}\"\n[gateway]\naddr = \"127.0.0.1:0\"\n{feed}\
             [replication]\nheartbeat_ms = 50\n{replication}"
        ),
    )
    .unwrap();
    path
}

/// `strata status ADDR --json`, or `None` when the node does not answer.
fn status(addr: &str) -> Option<Value> {
    let out =
        Command::new(BIN).args(["status", addr, "--json"]).output_within(common::LIMIT).unwrap();
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Polls `addr`'s status until `pred` holds; returns that status. Panics with the last
/// status seen after [`DEADLINE`].
fn wait_status(addr: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    loop {
        if let Some(s) = status(addr) {
            if pred(&s) {
                return s;
            }
            last = Some(s);
        }
        assert!(Instant::now() < deadline, "{addr}: never {what}; last status: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seq(s: &Value) -> u64 {
    s["last_seq"].as_u64().unwrap()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output_within(common::LIMIT).unwrap()
}

#[test]
fn replica_follows_resumes_after_sigkill_and_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let (p_addr, r_addr) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let primary_config = write_config(
        dir.path(),
        "primary.toml",
        "primary",
        &format!("role = \"primary\"\nname = \"p\"\nlisten = \"{p_addr}\"\n"),
        true,
    );
    // The replica's config asks for a feed too: a replica takes no writes and says so.
    let replica_config = write_config(
        dir.path(),
        "replica.toml",
        "replica",
        &format!(
            "role = \"replica\"\nname = \"r1\"\nlisten = \"{r_addr}\"\nprimary = \"{p_addr}\"\n"
        ),
        true,
    );
    let primary = start(&primary_config);
    assert!(
        primary.banner.iter().any(|l| l.starts_with(&format!("replication: {p_addr} node p"))),
        "{:?}",
        primary.banner
    );
    let replica = start(&replica_config);
    assert!(
        replica.banner.iter().any(|l| l.contains("feed: not started") && l.contains(&p_addr)),
        "{:?}",
        replica.banner
    );

    // Both answer with their role; the replica converges to the primary's position.
    let p = wait_status(&p_addr, "wrote", |s| seq(s) > 40);
    assert_eq!(p["role"], "primary", "{p}");
    assert_eq!(p["mode"], "async", "{p}");
    let epoch = p["epoch"].as_u64().unwrap();
    let target = seq(&p);
    let r = wait_status(&r_addr, "caught up", |s| seq(s) >= target);
    assert_eq!(r["role"], "replica", "{r}");
    assert_eq!(r["primary"], p_addr.as_str(), "{r}");
    assert_eq!(r["cluster"], p["cluster"], "{r}\n{p}");
    // The primary sees the replica acknowledge, and it joins the in-sync set.
    let p = wait_status(&p_addr, "saw r1 acknowledge", |s| {
        s["replicas"].as_array().unwrap().iter().any(|x| {
            x["name"] == "r1" && x["connected"] == true && x["acked"].as_u64().unwrap() >= target
        })
    });
    assert!(p["in_sync"].as_array().unwrap().iter().any(|n| n == "r1"), "{p}");

    // The readable table.
    let out = cli(&["status", &p_addr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["role         primary", "epoch", "last seq", "durable", "mode", "in-sync"] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("r1 ") && l.contains(" yes ")), "{text}");
    let out = cli(&["status", &r_addr]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("replica of {p_addr}")) && text.contains("lag"), "{text}");

    // The replica serves subscriptions: its commit stream from the start holds the
    // primary's trades, consecutive.
    let out = cli(&[
        "subscribe",
        "--transport",
        "ws",
        "--topic",
        "commits",
        "--from",
        "1",
        "--count",
        "5",
        "--addr",
        &replica.ws,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("seq").is_some())
        .collect();
    assert_eq!(frames[0]["seq"], 1, "{frames:?}");
    for pair in frames.windows(2) {
        let end = pair[0]["seq"].as_u64().unwrap() + pair[0]["span"].as_u64().unwrap();
        assert_eq!(pair[1]["seq"].as_u64().unwrap(), end, "{frames:?}");
    }
    assert_eq!(frames[0]["ops"][0]["message"]["type"], "trade", "{frames:?}");

    // kill -9 the replica while the primary writes on; restarted, it resumes from
    // where it was and reaches the primary again.
    drop(replica);
    let before = seq(&wait_status(&p_addr, "wrote on", |s| seq(s) > target + 40));
    let replica = start(&replica_config);
    // It reopened its own store where the crash left it (a process crash keeps every
    // batch it had applied), and follows from there.
    let reopened_at: u64 = replica
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("store: ").and_then(|l| l.rsplit_once("last seq ")))
        .map(|(_, n)| n.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no store line: {:?}", replica.banner));
    assert!(reopened_at >= target, "reopened at {reopened_at}, had {target}");
    let r = wait_status(&r_addr, "resumed", |s| seq(s) >= before);
    assert_eq!(r["role"], "replica", "{r}");
    let now = seq(&status(&p_addr).unwrap());
    wait_status(&r_addr, "caught up again", |s| seq(s) >= now);

    // Manual failover: the primary goes away, the replica is promoted at a new epoch.
    drop(primary);
    let out = cli(&["cluster", "promote", &r_addr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("promoted to primary at epoch"), "{said}");
    let r = status(&r_addr).unwrap();
    assert_eq!(r["role"], "primary", "{r}");
    assert!(r["epoch"].as_u64().unwrap() > epoch, "epoch {epoch} before: {r}");
    // Promoting it again is refused, with the reason.
    let out = cli(&["cluster", "promote", &r_addr]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already the primary"));
    drop(replica);
}

/// A sync primary whose in-sync replica is gone stops acknowledging (its feed stops
/// advancing) until the operator removes that replica from the in-sync set.
#[test]
fn sync_primary_waits_for_its_in_sync_replica_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (p_addr, r_addr) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    // min_in_sync = 0: the primary may acknowledge with an empty in-sync set, but not
    // without a member that is in it.
    let primary_config = write_config(
        dir.path(),
        "primary.toml",
        "primary",
        &format!(
            "role = \"primary\"\nname = \"p\"\nlisten = \"{p_addr}\"\nmode = \"sync\"\n\
             min_in_sync = 0\n"
        ),
        true,
    );
    let replica_config = write_config(
        dir.path(),
        "replica.toml",
        "replica",
        &format!(
            "role = \"replica\"\nname = \"r1\"\nlisten = \"{r_addr}\"\nprimary = \"{p_addr}\"\n"
        ),
        false,
    );
    let _primary = start(&primary_config);
    let replica = start(&replica_config);
    let p = wait_status(&p_addr, "took r1 in sync", |s| {
        s["in_sync"].as_array().unwrap().iter().any(|n| n == "r1") && seq(s) > 20
    });
    assert_eq!(p["mode"], "sync", "{p}");

    // The in-sync replica dies: the primary stops acknowledging, so its feed stops.
    drop(replica);
    let stalled = wait_status(&p_addr, "noticed r1 gone", |s| {
        s["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "r1" && x["connected"] == false)
    });
    assert!(stalled["in_sync"].as_array().unwrap().iter().any(|n| n == "r1"), "{stalled}");
    // Stalled: two looks a second apart see the same position (one batch may have been
    // in flight when the replica died).
    let mut a = seq(&status(&p_addr).unwrap());
    let deadline = Instant::now() + DEADLINE;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let b = seq(&status(&p_addr).unwrap());
        if a == b {
            break;
        }
        assert!(Instant::now() < deadline, "the sync primary kept acknowledging without r1");
        a = b;
    }

    // Removing a name that is not in the set is refused; removing r1 unblocks the feed.
    let out = cli(&["cluster", "remove-replica", &p_addr, "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the in-sync set"));
    let out = cli(&["cluster", "remove-replica", &p_addr, "r1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed r1"));
    let p = wait_status(&p_addr, "acknowledged again", |s| seq(s) > a + 8);
    assert!(!p["in_sync"].as_array().unwrap().iter().any(|n| n == "r1"), "{p}");
}

#[test]
fn bad_replication_config_and_unreachable_nodes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("role = \"replica\"\n", "[replication] primary is required for role = \"replica\""),
        ("role = \"leader\"\n", "[replication] role = \"leader\""),
        ("role = \"primary\"\nmode = \"semi\"\n", "[replication] mode = \"semi\""),
        ("role = \"primary\"\nlisten = \"nowhere\"\n", "[replication] listen = \"nowhere\""),
        ("role = \"primary\"\nmin_in_sync = \"all\"\n", "min_in_sync"),
        ("role = \"primary\"\nlisen = \"127.0.0.1:1\"\n", "unknown field `lisen`"),
    ];
    for (section, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("[store]\ndir = \"s\"\n[replication]\n{section}")).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .output_within(common::LIMIT)
            .unwrap();
        assert!(!out.status.success(), "{section} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{section}: {err}");
    }

    // Nobody listens there: exit 1 with the address and the reason.
    let addr = format!("127.0.0.1:{}", free_port());
    for args in [
        vec!["status", addr.as_str()],
        vec!["cluster", "promote", addr.as_str()],
        vec!["cluster", "remove-replica", addr.as_str(), "r1"],
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&addr) && err.contains("Error:"), "{args:?}: {err}");
    }
}

/// A replica whose primary's log no longer holds its position (here: an empty replica
/// joining after the primary flushed and deleted its first WAL segments) receives a
/// checkpoint, reopens its store on it and follows from there; serve moves its commit
/// stream to the new store, so subscribers of the replica keep receiving.
#[test]
fn new_replica_bootstraps_from_a_checkpoint_and_streams_on() {
    let dir = tempfile::tempdir().unwrap();
    let (p_addr, r_addr) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let small = "[store.stack.wal]\nsegment_size_bytes = 1048576\n\
                 [store.stack.engine]\nmemtable_size_bytes = 262144\n";
    let primary_config = dir.path().join("primary.toml");
    std::fs::write(
        &primary_config,
        format!(
            "[store]\ndir = \"primary\"\n{small}[gateway]\naddr = \"127.0.0.1:0\"\n\
             [feed]\nrate = 20000\nbatch = 50\n[replication]\nrole = \"primary\"\n\
             name = \"p\"\nlisten = \"{p_addr}\"\nheartbeat_ms = 50\n"
        ),
    )
    .unwrap();
    let replica_config = write_config(
        dir.path(),
        "replica.toml",
        "replica",
        &format!(
            "role = \"replica\"\nname = \"r1\"\nlisten = \"{r_addr}\"\nprimary = \"{p_addr}\"\n"
        ),
        false,
    );
    let _primary = start(&primary_config);
    // Several segments' worth of trades, flushed: the first segments are gone.
    wait_status(&p_addr, "wrote 5 MB", |s| seq(s) > 40_000);
    let replica = start(&replica_config);
    let target = seq(&status(&p_addr).unwrap());
    let r = wait_status(&r_addr, "caught up", |s| seq(s) >= target);
    let p = status(&p_addr).unwrap();
    assert!(p["bootstraps"].as_u64().unwrap() >= 1, "no checkpoint was sent: {p}");
    assert_eq!(r["cluster"], p["cluster"], "{r}\n{p}");

    // The replica's gateway streams what it applies after the checkpoint.
    let from = (seq(&r) + 1).to_string();
    let out = cli(&[
        "subscribe",
        "--transport",
        "ws",
        "--topic",
        "commits",
        "--from",
        &from,
        "--count",
        "3",
        "--duration",
        "60",
        "--addr",
        &replica.ws,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("seq").is_some())
        .collect();
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[0]["seq"].as_u64().unwrap(), seq(&r) + 1, "{frames:?}");
    for pair in frames.windows(2) {
        let end = pair[0]["seq"].as_u64().unwrap() + pair[0]["span"].as_u64().unwrap();
        assert_eq!(pair[1]["seq"].as_u64().unwrap(), end, "{frames:?}");
    }
    assert_eq!(frames[0]["ops"][0]["message"]["type"], "trade", "{frames:?}");
}
