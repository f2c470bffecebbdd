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
struct Cluster(std::path::PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["cluster", "down", "--grace-secs", "2", "--dir"])
            .arg(&self.0)
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
        if let Some(rest) = answer.as_deref().and_then(|a| a.strip_prefix("OK ")) {
            // `OK <seq> <epoch>`.
            return rest.split_whitespace().next().unwrap().parse().unwrap();
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
    let _guard = Cluster(dir.clone());
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

/// `cluster up --nodes 3 --mode sync` in `<tmp>/cluster`: the guard that stops it and
/// its members.
fn three_sync_nodes(tmp: &Path) -> (Cluster, Vec<Value>) {
    let dir = tmp.join("cluster");
    let guard = Cluster(dir.clone());
    let up =
        cli(&["cluster", "up", "--dir", dir.to_str().unwrap(), "--mode", "sync", "--nodes", "3"]);
    assert!(up.status.success(), "cluster up: {}", String::from_utf8_lossy(&up.stderr));
    (guard, members(&dir))
}

/// The data frames (`seq`, `span`) and notices a `strata subscribe` printed, in order,
/// checked for what the issue asks of a subscriber across a failover: sequences dense
/// from 1, nothing printed twice unless a `{"rewritten":..}` notice said it comes again.
fn check_subscriber_lines(lines: &[String]) -> u64 {
    let mut next = 1u64;
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Some(rw) = v.get("rewritten") {
            let from = rw["from"].as_u64().unwrap();
            assert!(from <= next, "rewritten from {from} beyond what was printed: {line}");
            next = from;
            continue;
        }
        assert!(v.get("gap").is_none(), "a gap in a sync-mode cluster: {line}");
        let (Some(seq), Some(span)) = (v["seq"].as_u64(), v["span"].as_u64()) else {
            continue;
        };
        assert_eq!(seq, next, "frames not dense or printed twice at {line}");
        next = seq + span;
    }
    next - 1
}

/// A subscriber given every node's gateway follows the cluster through a SIGKILL of the
/// primary: it resumes on another node with no gap and no duplicate and sees every
/// acknowledged write, before and after the failover.
#[test]
fn a_subscriber_follows_the_cluster_across_a_failover() {
    subscriber_follows_the_cluster("ws");
}

/// The same over TCP: `strata subscribe --transport tcp` given every node's `[tcp]`
/// address moves to the next node when the primary dies and resumes there with the
/// epoch it saw last, which the node checks against its store's epoch history.
#[test]
fn a_tcp_subscriber_follows_the_cluster_across_a_failover() {
    subscriber_follows_the_cluster("tcp");
}

fn subscriber_follows_the_cluster(transport: &str) {
    use std::sync::{Arc, Mutex};

    let tmp = tempfile::tempdir().unwrap();
    let (_guard, all) = three_sync_nodes(tmp.path());
    let data: Vec<&Value> = all.iter().filter(|m| !m["replication"].is_null()).collect();
    let (primary, s) = wait_primary(&data, "one primary", |s| s["epoch"].as_u64() >= Some(1));
    let epoch = s["epoch"].as_u64().unwrap();
    // The primary's address first, so the subscriber has to move when it dies.
    let key = if transport == "ws" { "gateway" } else { "tcp" };
    let mut addrs = vec![primary[key].as_str().unwrap().to_owned()];
    addrs.extend(
        data.iter()
            .filter(|m| m["name"] != primary["name"])
            .map(|m| m[key].as_str().unwrap().to_owned()),
    );
    let mut sub = std::process::Command::new(BIN)
        .args(["subscribe", "--transport", transport, "--topic", "commits", "--from", "1"])
        .args(["--follow-secs", "120", "--addr", &addrs.join(",")])
        // `[commits] values = "raw"`: what `strata put` wrote is text.
        .args(if transport == "tcp" { &["--payload", "commits-raw"][..] } else { &[] })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, stdout) = (Arc::clone(&lines), sub.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |key: &str| {
        let needle = format!("\"{key}\"");
        lines.lock().unwrap().iter().any(|l| l.contains(&needle))
    };
    let wait_seen = |key: &str| {
        let deadline = Instant::now() + DEADLINE;
        while !seen(key) {
            assert!(Instant::now() < deadline, "the subscriber never printed {key}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let client = primary["client"].as_str().unwrap();
    for i in 0..20 {
        put_acknowledged(client, &format!("before-{i}"), "v");
    }
    wait_seen("before-19");
    let pid = primary["pid"].as_u64().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let rest: Vec<&Value> = data.iter().copied().filter(|m| m["name"] != primary["name"]).collect();
    let (next, _) =
        wait_primary(&rest, "a new primary", |s| s["epoch"].as_u64().unwrap_or(0) > epoch);
    let client = next["client"].as_str().unwrap();
    for i in 0..20 {
        put_acknowledged(client, &format!("after-{i}"), "v");
    }
    wait_seen("after-19");
    let _ = sub.kill();
    let _ = sub.wait();
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut sub.stderr.take().unwrap(), &mut stderr).unwrap();
    let moved = if transport == "ws" { "resuming on" } else { "moving on to the next server" };
    assert!(stderr.contains(moved), "the subscriber never moved: {stderr}");

    let lines = lines.lock().unwrap().clone();
    let last = check_subscriber_lines(&lines);
    assert!(last >= 40, "only up to sequence {last} printed: {lines:#?}");
    for i in 0..20 {
        for key in [format!("before-{i}"), format!("after-{i}")] {
            let needle = format!("\"{key}\"");
            assert!(lines.iter().any(|l| l.contains(&needle)), "{key} never printed");
        }
    }
}

#[test]
fn the_subscriber_line_checker_catches_duplicates_and_holes() {
    let f = |seq: u64, span: u64| format!(r#"{{"seq":{seq},"span":{span},"ops":[]}}"#);
    assert_eq!(check_subscriber_lines(&[f(1, 2), f(3, 1)]), 3);
    let rewound =
        [f(1, 2), f(3, 2), r#"{"rewritten":{"from":4,"to":5,"epoch":2}}"#.into(), f(4, 3)];
    assert_eq!(check_subscriber_lines(&rewound), 6);
    for bad in [vec![f(1, 2), f(2, 1)], vec![f(1, 1), f(3, 1)], vec![f(2, 1)]] {
        let caught = std::panic::catch_unwind(|| check_subscriber_lines(&bad));
        assert!(caught.is_err(), "{bad:?} passed");
    }
}

/// SIGSTOP of the primary past its lease: another node takes over at a higher epoch;
/// after SIGCONT the old primary acknowledges nothing (its lease lapsed while it was
/// stopped, and the authority fences it), answers writes with an error naming the new
/// primary, follows it, and no write acknowledged by anyone is lost.
#[test]
fn a_primary_paused_past_its_lease_is_fenced_when_it_wakes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_guard, all) = three_sync_nodes(tmp.path());
    let data: Vec<&Value> = all.iter().filter(|m| !m["replication"].is_null()).collect();
    let (old, s) = wait_primary(&data, "one primary", |s| s["epoch"].as_u64() >= Some(1));
    let epoch = s["epoch"].as_u64().unwrap();
    let old_client = old["client"].as_str().unwrap();
    for i in 0..10 {
        put_acknowledged(old_client, &format!("before-{i}"), "v");
    }

    let pid = old["pid"].as_u64().unwrap().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    // SIGCONT however the test ends, so `cluster down` can stop it.
    struct Cont(String);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-CONT", &self.0]).status();
        }
    }
    let cont = Cont(pid.clone());
    let rest: Vec<&Value> = data.iter().copied().filter(|m| m["name"] != old["name"]).collect();
    let (next, _) =
        wait_primary(&rest, "a new primary", |s| s["epoch"].as_u64().unwrap_or(0) > epoch);
    let client = next["client"].as_str().unwrap();
    for i in 0..10 {
        put_acknowledged(client, &format!("after-{i}"), "v");
    }
    drop(cont);

    // Awake again: whatever it answers, it is never an acknowledgement, and once it has
    // heard of the new record its refusal names the new primary.
    let next_name = next["name"].as_str().unwrap();
    let next_repl = next["replication"].as_str().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut answers = Vec::new();
    loop {
        let answer = request(old_client, "PUT woken-write x");
        if let Some(a) = &answer {
            assert!(!a.starts_with("OK"), "the fenced primary acknowledged a write: {a}");
            answers.push(a.clone());
            if a.starts_with("ERR") && (a.contains(next_repl) || a.contains(next_name)) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the woken primary never named the new one; answers: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = status(old["replication"].as_str().unwrap()).unwrap();
    assert_eq!(s["role"], "replica", "the woken primary did not step down: {s}");
    // Every acknowledged write is on the new primary, and the woken write is not.
    for key in (0..10).flat_map(|i| [format!("before-{i}"), format!("after-{i}")]) {
        let answer = request(client, &format!("GET {key}"));
        assert_eq!(answer.as_deref(), Some("VALUE v"), "{key}");
    }
    assert_eq!(request(client, "GET woken-write").as_deref(), Some("NONE"));
}

/// `strata cluster promote --force` on an in-sync replica of a live cluster: the
/// authority moves the primary there at a higher epoch, the answer reports what may be
/// lost (nothing: an in-sync member), the old primary steps down and redirects, and a
/// forced promotion of the primary itself is refused.
#[test]
fn a_forced_promotion_reports_the_possible_loss_and_fences_the_old_primary() {
    let tmp = tempfile::tempdir().unwrap();
    let (_guard, all) = three_sync_nodes(tmp.path());
    let data: Vec<&Value> = all.iter().filter(|m| !m["replication"].is_null()).collect();
    let (old, s) = wait_primary(&data, "one primary", |s| {
        s["epoch"].as_u64() >= Some(1) && s["in_sync"].as_array().is_some_and(|a| a.len() == 2)
    });
    let epoch = s["epoch"].as_u64().unwrap();
    for i in 0..10 {
        put_acknowledged(old["client"].as_str().unwrap(), &format!("k{i}"), "v");
    }
    let refused = cli(&["cluster", "promote", "--force", old["replication"].as_str().unwrap()]);
    assert!(!refused.status.success(), "forcing the primary itself was accepted");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already the primary"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let target = data.iter().find(|m| m["name"] != old["name"]).unwrap();
    let out = cli(&["cluster", "promote", "--force", target["replication"].as_str().unwrap()]);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{answer}{}", String::from_utf8_lossy(&out.stderr));
    assert!(answer.contains("forced promotion") && answer.contains("possible loss"), "{answer}");
    assert!(answer.contains("in-sync set"), "an in-sync member's report: {answer}");
    let (next, _) =
        wait_primary(&data, "the forced primary", |s| s["epoch"].as_u64().unwrap_or(0) > epoch);
    assert_eq!(next["name"], target["name"]);
    let client = next["client"].as_str().unwrap();
    for i in 0..10 {
        assert_eq!(request(client, &format!("GET k{i}")).as_deref(), Some("VALUE v"));
    }
    put_acknowledged(client, "after", "v");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let a = request(old["client"].as_str().unwrap(), "PUT stale x").unwrap_or_default();
        assert!(!a.starts_with("OK"), "the old primary acknowledged after the forced promotion");
        let named = a.contains(target["replication"].as_str().unwrap())
            || a.contains(target["name"].as_str().unwrap());
        if a.starts_with("ERR") && named {
            break;
        }
        assert!(Instant::now() < deadline, "the old primary never redirected: {a}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port free now, below the ephemeral range (so no outgoing connection takes it
/// before the node binds it).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Kills the `strata serve` children however the test ends.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two `strata serve` processes whose `[failover] policy = "manual"` points at one
/// shared authority directory: an operator's `strata cluster promote` sent to the
/// replica commits in that record, the replica becomes primary at the next epoch with
/// every acknowledged write, and the old primary — a live process reading the same
/// record — is fenced and redirects to it.
#[test]
fn a_manual_authority_shared_by_two_processes_takes_an_operator_promotion() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("authority");
    let names = ["n1", "n2"];
    let ports: Vec<[u16; 3]> =
        names.iter().map(|_| [free_port(), free_port(), free_port()]).collect();
    let repl = |i: usize| format!("127.0.0.1:{}", ports[i][0]);
    let client = |i: usize| format!("127.0.0.1:{}", ports[i][1]);
    let peers = format!("{{ n1 = \"{}\", n2 = \"{}\" }}", repl(0), repl(1));
    let mut children = Children(Vec::new());
    for (i, name) in names.iter().enumerate() {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\ndir = \"store\"\n\n[gateway]\naddr = \"127.0.0.1:{gw}\"\n\n\
                 [commits]\nvalues = \"raw\"\n\n\
                 [replication]\nname = \"{name}\"\nlisten = \"{repl}\"\nmode = \"sync\"\n\
                 min_in_sync = 1\n\n[client]\nlisten = \"{client}\"\n\n\
                 [failover]\npolicy = \"manual\"\nprimary = \"n1\"\npeers = {peers}\n\
                 dir = \"{shared}\"\n",
                gw = ports[i][2],
                repl = repl(i),
                client = client(i),
                shared = shared.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        children.0.push(
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let member = |i: usize| serde_json::json!({ "name": names[i], "replication": repl(i), "client": client(i) });
    let nodes = [member(0), member(1)];
    let both: Vec<&Value> = nodes.iter().collect();
    let (first, s) = wait_primary(&both, "n1 primary", |s| s["epoch"].as_u64() >= Some(1));
    assert_eq!(first["name"], "n1");
    let epoch = s["epoch"].as_u64().unwrap();
    // Sync with min_in_sync 1: acknowledged only once n2 (joined the set) has them.
    for i in 0..10 {
        put_acknowledged(&client(0), &format!("k{i}"), "v");
    }

    let out = cli(&["cluster", "promote", &repl(1)]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (next, _) = wait_primary(&both, "n2 primary", |s| s["epoch"].as_u64().unwrap_or(0) > epoch);
    assert_eq!(next["name"], "n2");
    for i in 0..10 {
        assert_eq!(request(&client(1), &format!("GET k{i}")).as_deref(), Some("VALUE v"));
    }
    put_acknowledged(&client(1), "after", "v");
    // n1's process saw the shared record: it acknowledges nothing and names n2.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let a = request(&client(0), "PUT stale x").unwrap_or_default();
        assert!(!a.starts_with("OK"), "the old primary acknowledged after the promotion: {a}");
        if a.starts_with("ERR") && (a.contains(&repl(1)) || a.contains("n2")) {
            break;
        }
        assert!(Instant::now() < deadline, "the old primary never redirected: {a}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
