//! `strata cluster up` / `down` and automatic failover as someone trying it runs them:
//! real `strata serve` processes with a raft failover authority on loopback (OS-picked
//! ports, temporary directories), writes through `[client]`, SIGKILL of the primary,
//! and bad `[failover]` configurations. Every wait polls against a deadline that fails
//! loudly; nothing asserts on timing.

#![allow(clippy::unwrap_used)]

mod common;

use common::OutputWithin;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_strata");
/// How long a cluster may take to reach a state (debug builds on 2 busy cores).
const DEADLINE: Duration = Duration::from_secs(120);

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output_within(common::LIMIT).unwrap()
}

/// Stops the cluster in `dir` however the test ends.
struct Cluster<'a>(&'a Path);

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["cluster", "down", "--grace-secs", "2", "--dir"])
            .arg(self.0)
            .output_within(common::LIMIT);
    }
}

/// `cluster.json`'s members.
fn members(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["members"].as_array().unwrap().clone()
}

fn status(addr: &str) -> Option<Value> {
    let out = cli(&["status", addr, "--json", "--timeout-ms", "1000"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// One request line to a node's client address; `None` if it does not answer.
fn request(addr: &str, line: &str) -> Option<String> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut w = stream.try_clone().ok()?;
    writeln!(w, "{line}").ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    Some(answer.trim_end().to_owned())
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

/// The data node reporting primary (with a lease), polled until exactly one does and
/// `pred` holds for it. Returns (member, status).
fn wait_primary(nodes: &[&Value], what: &str, pred: impl Fn(&Value) -> bool) -> (Value, Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen: Vec<(Value, Value)> = nodes
            .iter()
            .filter_map(|m| status(m["replication"].as_str().unwrap()).map(|s| ((*m).clone(), s)))
            .collect();
        let primaries: Vec<&(Value, Value)> = seen
            .iter()
            .filter(|(_, s)| {
                s["role"] == "primary" && s["lease_remaining_millis"].as_u64().unwrap_or(0) > 0
            })
            .collect();
        if let [only] = primaries.as_slice()
            && pred(&only.1)
        {
            return (*only).clone();
        }
        let last: Vec<Value> = seen.into_iter().map(|(_, s)| s).collect();
        assert!(Instant::now() < deadline, "never {what}; last statuses: {last:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `key` through `client`, retrying refusals (a new primary acknowledges nothing
/// until its predecessor's lease ran out) until the deadline.
fn put_acknowledged(client: &str, key: &str, value: &str) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = request(client, &format!("PUT {key} {value}"));
        if let Some(seq) = answer.as_deref().and_then(|a| a.strip_prefix("OK ")) {
            return seq.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "{client}: {key} never acknowledged: {answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cluster up`, writes, SIGKILL of the primary, failover, no acknowledged write lost,
/// `cluster down`.
fn kill_the_primary(extra: &[&str], data_nodes: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let dir_s = dir.to_str().unwrap();
    let mut args = vec!["cluster", "up", "--dir", dir_s, "--mode", "sync"];
    args.extend_from_slice(extra);
    let _guard = Cluster(&dir);
    let up = cli(&args);
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "cluster up failed: {stdout}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(stdout.contains("is up") && stdout.contains("kill -9"), "{stdout}");
    let all = members(&dir);
    let data: Vec<&Value> = all.iter().filter(|m| !m["replication"].is_null()).collect();
    assert_eq!(data.len(), data_nodes, "{all:?}");

    // One primary, at an epoch; writes through it are acknowledged.
    let (primary, s) = wait_primary(&data, "one primary", |s| s["epoch"].as_u64() >= Some(1));
    let epoch = s["epoch"].as_u64().unwrap();
    assert_eq!(s["policy"], "raft", "{s}");
    assert_eq!(s["authority_epoch"].as_u64(), Some(epoch), "{s}");
    let client = primary["client"].as_str().unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let (k, v) = (format!("key-{i}"), format!("value-{i}"));
        put_acknowledged(client, &k, &v);
        acknowledged.push((k, v));
    }
    // The human form shows the authority too.
    let human = cli(&["status", primary["replication"].as_str().unwrap()]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("policy raft") && human.contains("lease"), "{human}");

    // kill -9 the primary: another node becomes primary at a higher epoch.
    let pid = primary["pid"].as_u64().unwrap();
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<&Value> = data.iter().copied().filter(|m| m["name"] != primary["name"]).collect();
    let (next, s) = wait_primary(&rest, "a new primary at a higher epoch", |s| {
        s["epoch"].as_u64().unwrap_or(0) > epoch
    });
    assert_ne!(next["name"], primary["name"]);
    assert_eq!(s["authority_primary"], next["name"], "{s}");
    let client = next["client"].as_str().unwrap();
    put_acknowledged(client, "after-failover", "yes");
    // Sync mode: every write acknowledged before the kill is on the new primary.
    for (k, v) in &acknowledged {
        let answer = request(client, &format!("GET {k}"));
        assert_eq!(answer.as_deref(), Some(format!("VALUE {v}").as_str()), "{k}");
    }

    // down stops every process it started.
    let down = cli(&["cluster", "down", "--dir", dir_s]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    for m in &all {
        let pid = m["pid"].as_u64().unwrap();
        assert!(!alive(pid), "{} (pid {pid}) still runs after cluster down", m["name"]);
    }
    assert!(members(&dir).iter().all(|m| m["pid"].is_null()));
}

#[test]
fn three_nodes_fail_over_when_the_primary_is_killed() {
    kill_the_primary(&["--nodes", "3"], 3);
}

#[test]
fn two_nodes_and_a_witness_fail_over() {
    kill_the_primary(&["--nodes", "2", "--witness"], 2);
}

#[test]
fn bad_failover_configs_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "[store]\ndir = \"s\"\n[gateway]\naddr = \"127.0.0.1:0\"\n\
                [replication]\nname = \"n1\"\nlisten = \"127.0.0.1:0\"\n";
    let failover = "[failover]\npolicy = \"raft\"\nprimary = \"n1\"\n\
                    peers = { n1 = \"127.0.0.1:7400\" }\nnode_id = 1\n\
                    listen = \"127.0.0.1:0\"\nvoters = [{ id = 1, addr = \"127.0.0.1:7401\" }]\n";
    let cases = [
        (format!("{base}{failover}lease_ms = 5000\n"), "lease_ms"),
        (format!("{base}{failover}heartbeat_ms = 0\n"), "heartbeat_ms"),
        (format!("{base}{failover}lease = 5\n"), "unknown field `lease`"),
        (format!("{base}{}", failover.replace("node_id = 1\n", "")), "node_id"),
        (format!("{base}{}", failover.replace("raft", "paxos")), "policy = \"paxos\""),
        (format!("{base}{}", failover.replace("n1 =", "n2 =")), "primary = \"n1\""),
        (format!("{base}role = \"primary\"\n{failover}"), "[replication] role"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = cli(&["serve", "--config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: serve started");
        assert!(err.contains(key), "{text}: expected {key:?} in {err}");
    }
    // A witness's voter must be a witness.
    let path = tmp.path().join("witness.toml");
    std::fs::write(&path, format!("dir = \"w\"\n{failover}")).unwrap();
    let out = cli(&["witness", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("role = \"witness\""), "{err}");
}
