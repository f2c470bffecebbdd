//! `strata cluster up` / `down`: a local cluster on loopback to try failover with —
//! N `strata serve` nodes with a raft failover authority (the nodes are its voters, or
//! two data nodes plus a `strata witness`), each a background process of its own.
//!
//! `up` writes one directory per node under `--dir` (its `serve.toml`, its store, its
//! log), records what it started in `<dir>/cluster.json` (addresses and pids), and
//! waits until a primary acknowledges a write. `down` stops the processes recorded
//! there (SIGTERM, then SIGKILL after a grace period). `up` on a directory whose
//! cluster is stopped starts it again from its configurations and data.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use strata_replication::{AdminRequest, Status, admin_request};

/// The file `up` records the cluster in.
pub const CLUSTER_FILE: &str = "cluster.json";

/// Options of `strata cluster up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Data nodes to start (at least 2).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// The cluster's directory (created; one subdirectory per node).
    #[arg(long)]
    pub dir: PathBuf,
    /// When the primary acknowledges a write: `sync` (once every in-sync replica has
    /// it durable: no acknowledged write is lost by a failover) or `async`. The nodes
    /// get `min_in_sync = nodes - 2`, so writes are still acknowledged with one node
    /// gone (with two nodes, by the survivor alone).
    #[arg(long, default_value = "sync", value_parser = ["sync", "async"])]
    pub mode: String,
    /// Ports from here on (node i uses base + 10·i + 0..4: replication, raft, client,
    /// gateway, tcp; the witness base + 10·nodes + 1). Default: free ports picked at
    /// random below the ephemeral range.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Make the raft voters the data nodes plus a witness (`strata witness`) instead of
    /// the data nodes alone: the two-data-node deployment (`--nodes 2 --witness`).
    #[arg(long)]
    pub witness: bool,
    /// How long to wait for a primary to acknowledge a write, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Options of `strata cluster down`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    /// The cluster's directory (as given to `strata cluster up`).
    #[arg(long)]
    pub dir: PathBuf,
    /// How long each process has to stop after SIGTERM before it is killed, in seconds.
    #[arg(long, default_value_t = 10)]
    pub grace_secs: u64,
}

/// One process of the cluster, as `cluster.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// The node's name (`n1`, ...) or `witness`.
    pub name: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Its replication address (`strata status`; none for the witness).
    pub replication: Option<String>,
    /// Its client address (`strata put` / `strata get`; none for the witness).
    pub client: Option<String>,
    /// Its WebSocket gateway address (none for the witness).
    pub gateway: Option<String>,
    /// Its TCP commit-stream address (`[tcp]`; none for the witness, and in a
    /// `cluster.json` written before nodes had one).
    #[serde(default)]
    pub tcp: Option<String>,
    /// Its raft address.
    pub raft: String,
    /// The process id while it runs.
    pub pid: Option<u32>,
}

/// `cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    /// The replication mode.
    pub mode: String,
    /// The cluster id in every node's `[failover]`.
    pub cluster_id: u64,
    /// Data nodes, then the witness if any.
    pub members: Vec<Member>,
}

fn load(dir: &Path) -> anyhow::Result<Option<ClusterFile>> {
    let path = dir.join(CLUSTER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a cluster file", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn store(dir: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    let path = dir.join(CLUSTER_FILE);
    let tmp = dir.join(format!("{CLUSTER_FILE}.tmp"));
    let text = serde_json::to_string_pretty(file).context("encode the cluster file")?;
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether process `pid` runs (and is not a zombie) with `config` on its command line:
/// a pid reused by another process does not count.
fn running(pid: u32, config: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name in parentheses, which may hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let config = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == config)
}

fn signal(pid: u32, sig: rustix::process::Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    let pid = rustix::process::Pid::from_raw(raw).context("pid 0")?;
    match rustix::process::kill_process(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot signal process {pid:?}")),
    }
}

/// The last `n` bytes of a log, for an error message.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(n)..]).into_owned()
}

/// `count` loopback ports: from `base` on, or free ones picked at random below the
/// kernel's ephemeral range (all held until every one is picked, so none repeats).
///
/// Not ports the OS picks (`:0`): those come from the ephemeral range, which is also
/// where every outgoing connection's source port comes from, so between this command
/// releasing a port and the node binding it, a connection opened by any process (the
/// nodes' own replication and raft links among them) could take it.
fn ports(base: Option<u16>, count: usize) -> anyhow::Result<Vec<u16>> {
    if let Some(base) = base {
        return (0..count)
            .map(|i| {
                u16::try_from(usize::from(base) + i)
                    .ok()
                    .context("--base-port leaves too few ports below 65536")
            })
            .collect();
    }
    let (lo, hi) = (PICK_FROM, ephemeral_start().unwrap_or(32_768));
    if hi < lo + 1_000 {
        // An ephemeral range that starts this low leaves no room below it.
        let held: Vec<TcpListener> = (0..count)
            .map(|_| TcpListener::bind("127.0.0.1:0").context("cannot pick a free port"))
            .collect::<anyhow::Result<_>>()?;
        return held.iter().map(|l| Ok(l.local_addr().context("port")?.port())).collect();
    }
    let mut rng = rand::thread_rng();
    let mut held = Vec::with_capacity(count);
    for _ in 0..count * 200 {
        if held.len() == count {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", rand::Rng::gen_range(&mut rng, lo..hi))) {
            held.push(l);
        }
    }
    if held.len() < count {
        bail!(
            "cannot find {count} free loopback ports in {lo}..{hi}; pass --base-port P to choose"
        );
    }
    held.iter().map(|l| Ok(l.local_addr().context("port")?.port())).collect()
}

/// The lowest port `cluster up` picks by itself.
const PICK_FROM: u16 = 10_000;

/// The first port of the kernel's ephemeral range (Linux), if it can be read.
fn ephemeral_start() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn lo(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The lease settings `cluster up` writes into every node's `[failover]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// `heartbeat_ms`: the primary's renewal interval.
    pub heartbeat_ms: u64,
    /// `lease_ms`: how long a renewed lease lasts.
    pub lease_ms: u64,
    /// `grace_ms`: silence after which the primary is treated as gone.
    pub grace_ms: u64,
    /// `raft_heartbeat_ms` (none: the `[failover]` default, 50).
    pub raft_heartbeat_ms: Option<u64>,
    /// `election_timeout_min_ms` (none: the default, 150).
    pub election_timeout_min_ms: Option<u64>,
    /// `election_timeout_max_ms` (none: the default, 300).
    pub election_timeout_max_ms: Option<u64>,
}

impl Default for Timings {
    /// The defaults of `[failover]` (`heartbeat_ms = 100`, `lease_ms = 500`,
    /// `grace_ms = 800`, the raft timings unset).
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            lease_ms: crate::failover::DEFAULT_LEASE_MS,
            grace_ms: crate::failover::DEFAULT_GRACE_MS,
            raft_heartbeat_ms: None,
            election_timeout_min_ms: None,
            election_timeout_max_ms: None,
        }
    }
}

impl Timings {
    /// The `[failover]` lines of the raft timings that are set.
    fn raft_lines(&self) -> String {
        [
            ("raft_heartbeat_ms", self.raft_heartbeat_ms),
            ("election_timeout_min_ms", self.election_timeout_min_ms),
            ("election_timeout_max_ms", self.election_timeout_max_ms),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} = {v}\n")))
        .collect()
    }
}

/// Writes the configurations of a new cluster and returns its file (no pids yet).
pub(crate) fn write_configs(args: &UpArgs, timings: Timings) -> anyhow::Result<ClusterFile> {
    let n = args.nodes;
    if !(2..=9).contains(&n) {
        bail!("--nodes {n}: a local cluster has 2 to 9 data nodes");
    }
    let voters = n + usize::from(args.witness);
    // Ports: node i at 10·i + (0 replication, 1 raft, 2 client, 3 gateway, 4 tcp), the
    // witness at 10·n + 1.
    const PER_NODE: usize = 5;
    let all = match args.base_port {
        Some(_) => ports(args.base_port, 10 * n + 2)?,
        None => {
            let picked = ports(None, PER_NODE * n + 1)?;
            let mut all = vec![0; 10 * n + 2];
            for i in 0..n {
                all[10 * i..10 * i + PER_NODE]
                    .copy_from_slice(&picked[PER_NODE * i..PER_NODE * (i + 1)]);
            }
            all[10 * n + 1] = picked[PER_NODE * n];
            all
        }
    };
    let port = |i: usize, k: usize| all[10 * i + k];
    let name = |i: usize| format!("n{}", i + 1);
    let cluster_id = rand::random::<u64>().max(1);
    let mut peers = String::from("{ ");
    for i in 0..n {
        let sep = if i + 1 < n { ", " } else { " }" };
        let _ = write!(peers, "{} = \"{}\"{sep}", name(i), lo(port(i, 0)));
    }
    let mut voter_list = String::from("[\n");
    for i in 0..voters {
        let (addr, role) =
            if i < n { (lo(port(i, 1)), "data") } else { (lo(port(n, 1)), "witness") };
        let _ =
            writeln!(voter_list, "    {{ id = {}, addr = \"{addr}\", role = \"{role}\" }},", i + 1);
    }
    voter_list.push(']');
    let failover = |id: usize, listen: &str| {
        format!(
            "[failover]\npolicy = \"raft\"\ncluster_id = {cluster_id}\nprimary = \"n1\"\n\
             peers = {peers}\nheartbeat_ms = {heartbeat}\nlease_ms = {lease}\n\
             grace_ms = {grace}\nnode_id = {id}\nlisten = \"{listen}\"\n\
             voters = {voter_list}\n{raft}",
            raft = timings.raft_lines(),
            heartbeat = timings.heartbeat_ms,
            lease = timings.lease_ms,
            grace = timings.grace_ms,
        )
    };
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let mut members = Vec::new();
    for i in 0..n {
        let node_dir = dir.join(name(i));
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("cannot create {}", node_dir.display()))?;
        let (repl, raft, client, gateway, tcp) =
            (lo(port(i, 0)), lo(port(i, 1)), lo(port(i, 2)), lo(port(i, 3)), lo(port(i, 4)));
        let text = format!(
            "# Written by `strata cluster up`: node {nm} of a local cluster.\n\
             [store]\ndir = \"store\"\n\n[gateway]\naddr = \"{gateway}\"\n\n\
             [tcp]\naddr = \"{tcp}\"\n\n\
             # `strata put` writes text, not encoded exchange messages\n\
             [commits]\nvalues = \"raw\"\n\n\
             [replication]\nname = \"{nm}\"\nlisten = \"{repl}\"\nmode = \"{mode}\"\n\
             min_in_sync = {min_in_sync}\n\n\
             [client]\nlisten = \"{client}\"\n\n{failover}",
            nm = name(i),
            mode = args.mode,
            min_in_sync = n - 2,
            failover = failover(i + 1, &raft),
        );
        let config = node_dir.join("serve.toml");
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        members.push(Member {
            name: name(i),
            config,
            log: node_dir.join("serve.log"),
            replication: Some(repl),
            client: Some(client),
            gateway: Some(gateway),
            tcp: Some(tcp),
            raft,
            pid: None,
        });
    }
    if args.witness {
        let wdir = dir.join("witness");
        std::fs::create_dir_all(&wdir)
            .with_context(|| format!("cannot create {}", wdir.display()))?;
        let raft = lo(port(n, 1));
        let text = format!(
            "# Written by `strata cluster up`: the witness (a raft voter, no store).\n\
             dir = \".\"\n\n{}",
            failover(n + 1, &raft)
        );
        let config = wdir.join("witness.toml");
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        members.push(Member {
            name: "witness".into(),
            config,
            log: wdir.join("witness.log"),
            replication: None,
            client: None,
            gateway: None,
            tcp: None,
            raft,
            pid: None,
        });
    }
    Ok(ClusterFile { mode: args.mode.clone(), cluster_id, members })
}

/// Starts `m`'s process, its output appended to its log. A `detached` process gets a
/// process group of its own (a Ctrl-C meant for `cluster up` does not stop it); one
/// that is not stays in this process's group, so a Ctrl-C stops it with this process.
pub(crate) fn spawn(m: &Member, detached: bool) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the strata executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&m.log)
        .with_context(|| format!("cannot open {}", m.log.display()))?;
    let err = log.try_clone().context("log file")?;
    let command = if m.replication.is_some() { "serve" } else { "witness" };
    let mut command_line = Command::new(exe);
    command_line
        .args([command, "--config"])
        .arg(&m.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if detached {
        command_line.process_group(0);
    }
    command_line.spawn().with_context(|| format!("cannot start {}", m.name))
}

/// The primary's name and client address if one node reports primary with a lease.
fn primary_of(members: &[Member]) -> (usize, Option<&Member>) {
    let mut answering = 0;
    let mut primary = None;
    for m in members {
        let Some(addr) = &m.replication else { continue };
        let Ok(text) = admin_request(addr, AdminRequest::Status, Duration::from_millis(500)) else {
            continue;
        };
        answering += 1;
        if let Ok(s) = serde_json::from_str::<Status>(&text)
            && s.role == "primary"
            && s.lease_remaining_millis.is_some_and(|l| l > 0)
        {
            primary = Some(m);
        }
    }
    (answering, primary)
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs `strata cluster up`.
pub fn up(args: &UpArgs) -> anyhow::Result<()> {
    let mut file = match load(&args.dir)? {
        Some(existing) => {
            if let Some(m) =
                existing.members.iter().find(|m| m.pid.is_some_and(|p| running(p, &m.config)))
            {
                bail!(
                    "the cluster in {} is running ({} is pid {}): stop it first with \
                     `strata cluster down --dir {}`",
                    args.dir.display(),
                    m.name,
                    m.pid.unwrap_or_default(),
                    args.dir.display()
                );
            }
            println!(
                "restarting the cluster in {} from its configurations (--nodes, --mode, \
                 --base-port and --witness apply to a new directory only)",
                args.dir.display()
            );
            existing
        }
        None => write_configs(args, Timings::default())?,
    };
    let dir = args.dir.as_path();
    let mut children = Vec::new();
    for i in 0..file.members.len() {
        let child = match spawn(&file.members[i], true) {
            Ok(c) => c,
            Err(e) => {
                stop_children(&mut children);
                return Err(e);
            }
        };
        file.members[i].pid = Some(child.id());
        children.push(child);
    }
    store(dir, &file)?;
    let data: Vec<Member> =
        file.members.iter().filter(|m| m.replication.is_some()).cloned().collect();
    let bar = spinner("starting the nodes; waiting for a primary to acknowledge a write");
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let outcome = loop {
        if let Some((i, status)) = children
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
        {
            let m = &file.members[i];
            break Err(anyhow::anyhow!(
                "{} exited ({status}); the end of {}:\n{}",
                m.name,
                m.log.display(),
                log_tail(&m.log, 3000)
            ));
        }
        let (answering, primary) = primary_of(&data);
        match primary {
            Some(p) => {
                bar.set_message(format!(
                    "{answering}/{} nodes answer; primary {}: writing a first key",
                    data.len(),
                    p.name
                ));
                let client = p.client.clone().unwrap_or_default();
                match crate::client::request(
                    &client,
                    "PUT cluster-up hello",
                    Duration::from_secs(5),
                ) {
                    Ok(a) if a.starts_with("OK ") => break Ok((p.clone(), a)),
                    Ok(a) => bar.set_message(format!("primary {}: {a}", p.name)),
                    Err(e) => bar.set_message(format!("primary {}: {e:#}", p.name)),
                }
            }
            None => bar.set_message(format!(
                "{answering}/{} nodes answer; waiting for a primary (the raft group forms, \
                 the primary takes its lease)",
                data.len()
            )),
        }
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "no primary acknowledged a write within {} s; see the logs in {}",
                args.timeout_secs,
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    bar.finish_and_clear();
    let (primary, answer) = match outcome {
        Ok(p) => p,
        Err(e) => {
            stop_children(&mut children);
            for m in &mut file.members {
                m.pid = None;
            }
            store(dir, &file)?;
            return Err(e.context("the cluster did not come up; its processes were stopped"));
        }
    };
    // The children run on without this process (their group is their own).
    drop(children);
    print!("{}", summary(&file, &primary, &answer, dir));
    Ok(())
}

fn stop_children(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn summary(file: &ClusterFile, primary: &Member, answer: &str, dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {:016x} is up in {} (mode {}, raft failover; {} acknowledged the first write: {answer})\n",
        file.cluster_id,
        dir.display(),
        file.mode,
        primary.name
    );
    let _ = writeln!(
        out,
        "{:<8} {:>7}  {:<16} {:<16} {:<16} {:<16} {:<16}",
        "node", "pid", "replication", "client", "gateway", "tcp", "raft"
    );
    let dash = || "-".to_owned();
    for m in &file.members {
        let _ = writeln!(
            out,
            "{:<8} {:>7}  {:<16} {:<16} {:<16} {:<16} {:<16}",
            m.name,
            m.pid.map_or_else(dash, |p| p.to_string()),
            m.replication.clone().unwrap_or_else(dash),
            m.client.clone().unwrap_or_else(dash),
            m.gateway.clone().unwrap_or_else(dash),
            m.tcp.clone().unwrap_or_else(dash),
            m.raft
        );
    }
    let client = primary.client.clone().unwrap_or_default();
    let repl = primary.replication.clone().unwrap_or_default();
    let other = file
        .members
        .iter()
        .find(|m| m.replication.is_some() && m.name != primary.name)
        .and_then(|m| m.replication.clone())
        .unwrap_or_default();
    let pid = primary.pid.unwrap_or_default();
    let _ = writeln!(out, "\nTry it:");
    let _ =
        writeln!(out, "  strata put {client} greeting hello      # a write through the primary");
    let _ = writeln!(out, "  strata get {client} greeting");
    let tcp: Vec<String> = file.members.iter().filter_map(|m| m.tcp.clone()).collect();
    if !tcp.is_empty() {
        let _ = writeln!(
            out,
            "  strata subscribe --transport tcp --payload commits-raw --topic commits --from 1 --addr {}\n\
             \x20                                        # every commit; follows the cluster across failovers",
            tcp.join(",")
        );
    }
    let _ = writeln!(
        out,
        "  strata status {repl}                 # epoch, primary, in-sync set, lease"
    );
    let _ = writeln!(
        out,
        "  kill -9 {pid}                            # the primary ({}) dies",
        primary.name
    );
    let _ = writeln!(
        out,
        "  strata status {other}                 # within seconds: another node is primary at a higher epoch"
    );
    let _ = writeln!(out, "  strata cluster down --dir {}", dir.display());
    let _ = writeln!(out, "Logs: {}/<node>/serve.log", dir.display());
    out
}

/// Runs `strata cluster down`.
pub fn down(args: &DownArgs) -> anyhow::Result<()> {
    let Some(mut file) = load(&args.dir)? else {
        bail!(
            "{} holds no {CLUSTER_FILE}: not a directory of `strata cluster up`",
            args.dir.display()
        );
    };
    let mut stopping = Vec::new();
    for m in &file.members {
        match m.pid {
            Some(pid) if running(pid, &m.config) => {
                signal(pid, rustix::process::Signal::TERM)?;
                stopping.push((m.name.clone(), pid, m.config.clone()));
            }
            Some(pid) => println!("{}: not running (pid {pid} is gone)", m.name),
            None => println!("{}: not running", m.name),
        }
    }
    let bar = ProgressBar::new(stopping.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} stopping {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(args.grace_secs);
    let mut killed = Vec::new();
    loop {
        let left: Vec<&(String, u32, PathBuf)> =
            stopping.iter().filter(|(_, pid, config)| running(*pid, config)).collect();
        bar.set_position((stopping.len() - left.len()) as u64);
        if left.is_empty() {
            break;
        }
        bar.set_message(left.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>().join(" "));
        if Instant::now() >= deadline {
            for (name, pid, _) in left {
                signal(*pid, rustix::process::Signal::KILL)?;
                killed.push(name.clone());
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bar.finish_and_clear();
    for m in &mut file.members {
        m.pid = None;
    }
    store(&args.dir, &file)?;
    for (name, pid, _) in &stopping {
        let how =
            if killed.contains(name) { "killed (SIGKILL after the grace)" } else { "stopped" };
        println!("{name}: {how} (pid {pid})");
    }
    println!(
        "cluster in {} is down (its data stays; `strata cluster up --dir` starts it again)",
        args.dir.display()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let picked = ports(None, 41).unwrap();
        let distinct: std::collections::BTreeSet<u16> = picked.iter().copied().collect();
        assert_eq!(distinct.len(), 41, "{picked:?}");
        if let Some(start) = ephemeral_start().filter(|s| *s >= PICK_FROM + 1_000) {
            assert!(picked.iter().all(|p| (PICK_FROM..start).contains(p)), "{picked:?}");
        }
        // Released: each can be bound again.
        for p in &picked {
            TcpListener::bind(("127.0.0.1", *p)).unwrap();
        }
        assert_eq!(ports(Some(7000), 3).unwrap(), vec![7000, 7001, 7002]);
        assert!(ports(Some(65_534), 3).is_err());
    }
}
