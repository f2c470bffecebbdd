//! The `[failover]` section of `strata serve` (and of `strata witness`): which failover
//! policy decides who is primary, the initial authority record, the lease settings and
//! where every node's replication address is; and `strata witness`, a raft voter that
//! runs no store.
//!
//! ```toml
//! [failover]
//! policy = "raft"                # or "manual"
//! primary = "n1"                 # the initial primary (a node name), used on first start
//! peers = { n1 = "127.0.0.1:7400", n2 = "127.0.0.1:7410", n3 = "127.0.0.1:7420" }
//! # optional: cluster_id, in_sync = [], heartbeat_ms = 100, lease_ms = 500,
//! # grace_ms = 800, status_timeout_ms = 200
//! node_id = 1                    # raft: this voter's id
//! listen = "127.0.0.1:7401"      # raft: its raft address
//! voters = [{ id = 1, addr = "127.0.0.1:7401" }, { id = 2, addr = "127.0.0.1:7411" },
//!           { id = 3, addr = "127.0.0.1:7421", role = "witness" }]
//! # optional raft timings: raft_heartbeat_ms = 50, election_timeout_min_ms = 150,
//! # election_timeout_max_ms = 300, request_timeout_ms, bootstrap_timeout_ms
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{AuthorityRecord, Epoch, FailoverPolicy, LeaseSettings, NodeId, SeqNo};
use strata_failover_manual::ManualPolicy;
use strata_failover_raft::{RaftOptions, RaftPolicy, RaftSettings, Role, VoterOptions};
use strata_replication::FailoverConfig;

/// Default lease of a primary, in ms (`LeaseSettings::default`'s): with the grace
/// below, a dead primary is replaced in about grace + lease.
pub const DEFAULT_LEASE_MS: u64 = 500;
/// Default grace before replicas act on a silent primary, in ms.
pub const DEFAULT_GRACE_MS: u64 = 800;
/// Default raft heartbeat, in ms: elections short enough to finish inside the grace
/// when the dead primary was also the raft leader.
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 50;
/// Default raft election timeout range, in ms.
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 150;
/// See [`DEFAULT_ELECTION_TIMEOUT_MIN_MS`].
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 300;

/// The authority's directory under a store (or witness) directory.
pub const AUTHORITY_DIR: &str = "authority";

/// `[failover]`: automatic (raft) or operator (manual) failover through an authority.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSection {
    /// `raft` or `manual`.
    pub policy: String,
    /// The cluster id written into the initial record (the same on every node).
    /// Default: derived from `peers` and `primary`.
    pub cluster_id: Option<u64>,
    /// The initial primary's node name (its `[replication] name`), used when the
    /// authority is created.
    pub primary: String,
    /// The initial in-sync set (node names; default empty: replicas join once caught up).
    #[serde(default)]
    pub in_sync: Vec<String>,
    /// Every data node's replication address by node name.
    pub peers: BTreeMap<String, String>,
    /// Lease settings of the initial record: the primary's renewal interval (default 100).
    pub heartbeat_ms: Option<u64>,
    /// How long a renewed lease lasts (default 1000).
    pub lease_ms: Option<u64>,
    /// Silence after which a replica treats the primary (or a primary a replica) as
    /// gone (default 2000).
    pub grace_ms: Option<u64>,
    /// How long a replica waits for another node's status when it builds a view
    /// (default 200).
    pub status_timeout_ms: Option<u64>,
    /// manual: the authority directory (default `<store dir>/authority`); the nodes of
    /// a cluster on one host may all name the same one.
    pub dir: Option<PathBuf>,
    /// raft: this voter's id.
    pub node_id: Option<u64>,
    /// raft: the address its raft listener binds.
    pub listen: Option<String>,
    /// raft: every voter.
    pub voters: Option<Vec<VoterOptions>>,
    /// raft: the raft leader's heartbeat interval in ms (default [`DEFAULT_RAFT_HEARTBEAT_MS`]).
    pub raft_heartbeat_ms: Option<u64>,
    /// raft: lower bound of the election timeout in ms (default [`DEFAULT_ELECTION_TIMEOUT_MIN_MS`]).
    pub election_timeout_min_ms: Option<u64>,
    /// raft: upper bound of the election timeout in ms (default [`DEFAULT_ELECTION_TIMEOUT_MAX_MS`]).
    pub election_timeout_max_ms: Option<u64>,
    /// raft: the longest one authority call takes, in ms (default 5000).
    pub request_timeout_ms: Option<u64>,
    /// raft: how long the first start waits for the other voters, in ms (default 30000).
    pub bootstrap_timeout_ms: Option<u64>,
    /// raft: this voter's own way to other voters (a NAT, a tunnel, a proxy), used
    /// instead of their `voters` address; not shared with the other voters.
    pub routes: Option<Vec<RouteOptions>>,
}

/// One entry of `[failover] routes`: reach voter `id` at `addr`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOptions {
    /// The voter's id (one of `voters`, not this node).
    pub id: u64,
    /// Where this node reaches it.
    pub addr: String,
}

/// Which authority, resolved.
#[derive(Clone, Debug)]
pub enum Authority {
    /// A raft voter.
    Raft(RaftSettings),
    /// One local file, which any number of nodes on the host may share.
    Manual,
}

/// `[failover]` resolved and checked.
#[derive(Clone, Debug)]
pub struct FailoverPlan {
    /// The policy.
    pub authority: Authority,
    /// Where the authority keeps its state.
    pub dir: PathBuf,
    /// The record written on first start.
    pub initial: AuthorityRecord,
    /// Every data node's replication address.
    pub peers: BTreeMap<NodeId, String>,
    /// [`FailoverConfig::status_timeout`].
    pub status_timeout: Duration,
}

impl FailoverPlan {
    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        match self.authority {
            Authority::Raft(_) => "raft",
            Authority::Manual => "manual",
        }
    }
}

fn ms(key: &str, value: Option<u64>, default: u64) -> anyhow::Result<Duration> {
    match value {
        Some(0) => bail!("[failover] {key} must be at least 1"),
        Some(v) => Ok(Duration::from_millis(v)),
        None => Ok(Duration::from_millis(default)),
    }
}

/// A cluster id from the peers and the initial primary (FNV-1a; never 0), so that
/// every node given the same section derives the same one.
fn derived_cluster_id(f: &FailoverSection) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&f.primary);
    for (name, addr) in &f.peers {
        eat(name);
        eat(addr);
    }
    h.max(1)
}

/// Checks `[failover]` for node `me` (`None` for a witness, which has no replication
/// name) whose state lives under `base_dir`; `relative_to` resolves a relative `dir`.
pub fn plan(
    f: &FailoverSection,
    me: Option<&str>,
    base_dir: &Path,
    relative_to: &Path,
) -> anyhow::Result<FailoverPlan> {
    let raft_only = [
        ("node_id", f.node_id.is_some()),
        ("listen", f.listen.is_some()),
        ("voters", f.voters.is_some()),
        ("raft_heartbeat_ms", f.raft_heartbeat_ms.is_some()),
        ("election_timeout_min_ms", f.election_timeout_min_ms.is_some()),
        ("election_timeout_max_ms", f.election_timeout_max_ms.is_some()),
        ("request_timeout_ms", f.request_timeout_ms.is_some()),
        ("bootstrap_timeout_ms", f.bootstrap_timeout_ms.is_some()),
        ("routes", f.routes.is_some()),
    ];
    let authority = match f.policy.as_str() {
        "raft" => {
            if f.dir.is_some() {
                bail!(
                    "[failover] dir is only for policy = \"manual\": the raft state lives in \
                     <store dir>/{AUTHORITY_DIR}"
                );
            }
            let Some(node_id) = f.node_id else {
                bail!("[failover] node_id is required for policy = \"raft\": this voter's id")
            };
            let Some(listen) = f.listen.clone() else {
                bail!(
                    "[failover] listen is required for policy = \"raft\": the raft address, \
                     e.g. listen = \"127.0.0.1:7401\""
                )
            };
            let Some(voters) = f.voters.clone() else {
                bail!(
                    "[failover] voters is required for policy = \"raft\": voters = [{{ id = 1, \
                     addr = \"host:port\" }}, ...]"
                )
            };
            let options = RaftOptions {
                node_id,
                listen,
                voters,
                heartbeat_ms: f.raft_heartbeat_ms.or(Some(DEFAULT_RAFT_HEARTBEAT_MS)),
                election_timeout_min_ms: f
                    .election_timeout_min_ms
                    .or(Some(DEFAULT_ELECTION_TIMEOUT_MIN_MS)),
                election_timeout_max_ms: f
                    .election_timeout_max_ms
                    .or(Some(DEFAULT_ELECTION_TIMEOUT_MAX_MS)),
                request_timeout_ms: f.request_timeout_ms,
                bootstrap_timeout_ms: f.bootstrap_timeout_ms,
            };
            let mut settings =
                options.settings().context("[failover] (node_id, listen, voters)")?;
            for route in f.routes.iter().flatten() {
                if route.id == node_id {
                    bail!("[failover] routes: voter {} is this node (node_id)", route.id);
                }
                if !settings.voters().contains_key(&route.id) {
                    bail!("[failover] routes: voter {} is not among the voters", route.id);
                }
                settings = settings.with_route(route.id, route.addr.clone());
            }
            Authority::Raft(settings)
        }
        "manual" => {
            if let Some((key, _)) = raft_only.iter().find(|(_, set)| *set) {
                bail!("[failover] {key} is only for policy = \"raft\"");
            }
            Authority::Manual
        }
        other => bail!("[failover] policy = {other:?}: expected \"raft\" or \"manual\""),
    };
    if f.primary.trim().is_empty() {
        bail!("[failover] primary must name the initial primary (a [replication] name)");
    }
    if f.peers.is_empty() {
        bail!("[failover] peers is required: every data node's replication address by name");
    }
    for (name, addr) in &f.peers {
        let resolves = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())
            .is_ok_and(|mut a| a.next().is_some());
        if !resolves {
            bail!("[failover] peers.{name} = {addr:?}: not an address (expected \"host:port\")");
        }
    }
    if !f.peers.contains_key(&f.primary) {
        bail!("[failover] primary = {:?} is not among the peers", f.primary);
    }
    if let Some(me) = me
        && !f.peers.contains_key(me)
    {
        bail!(
            "[failover] peers has no entry for this node ({me:?}, its [replication] name): \
             every data node must be listed"
        );
    }
    let mut in_sync = BTreeSet::new();
    for n in &f.in_sync {
        if !f.peers.contains_key(n) {
            bail!("[failover] in_sync: {n:?} is not among the peers");
        }
        if *n == f.primary {
            bail!("[failover] in_sync: the primary {n:?} cannot be in its own in-sync set");
        }
        in_sync.insert(NodeId::new(n.clone()));
    }
    let lease = LeaseSettings::new(
        ms("heartbeat_ms", f.heartbeat_ms, 100)?,
        ms("lease_ms", f.lease_ms, DEFAULT_LEASE_MS)?,
        ms("grace_ms", f.grace_ms, DEFAULT_GRACE_MS)?,
    )
    .map_err(|e| anyhow::anyhow!("[failover] heartbeat_ms < lease_ms < grace_ms: {e}"))?;
    let cluster = match f.cluster_id {
        Some(0) => bail!("[failover] cluster_id must not be 0"),
        Some(c) => c,
        None => derived_cluster_id(f),
    };
    let mut initial =
        AuthorityRecord::initial(cluster, f.primary.as_str(), Epoch(0), SeqNo(1), lease);
    initial.in_sync = in_sync;
    initial.validate().context("[failover] the initial record")?;
    let dir = match (&f.dir, &authority) {
        (Some(d), _) => relative_to.join(d),
        (None, _) => base_dir.join(AUTHORITY_DIR),
    };
    Ok(FailoverPlan {
        authority,
        dir,
        initial,
        peers: f.peers.iter().map(|(k, v)| (NodeId::new(k.clone()), v.clone())).collect(),
        status_timeout: ms("status_timeout_ms", f.status_timeout_ms, 200)?,
    })
}

/// Whether `dir` exists and holds anything.
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Creates the authority on first start (writing the initial record), or opens it.
/// A raft voter's first start waits for the group to form (its bootstrap timeout).
pub fn open_authority(plan: &FailoverPlan) -> anyhow::Result<Arc<dyn FailoverPolicy>> {
    let fs: Arc<dyn FileSystem> = OsFileSystem::shared();
    let dir = plan.dir.as_path();
    match &plan.authority {
        Authority::Manual => {
            // Several nodes may share the directory and start together: creating checks
            // for a record under the directory's lock, so exactly one creates it and
            // the others, told it exists, open it.
            let record = strata_failover_manual::file::path_in(dir);
            let policy = if fs.exists(&record)? {
                ManualPolicy::open(fs, dir)
            } else {
                match ManualPolicy::create(Arc::clone(&fs), dir, plan.initial.clone()) {
                    Err(strata_core::Error::InvalidArgument(_)) if fs.exists(&record)? => {
                        ManualPolicy::open(fs, dir)
                    }
                    other => other,
                }
            }
            .with_context(|| format!("cannot open the manual authority in {}", dir.display()))?;
            Ok(Arc::new(policy))
        }
        Authority::Raft(settings) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a runtime for the raft authority")?;
            let (settings, initial) = (settings.clone(), plan.initial.clone());
            let policy = rt
                .block_on(async {
                    // A directory with raft state is opened (the record is whatever the
                    // group committed); an empty one is created. A first start that was
                    // cut short may have left either; the other call then sorts it out.
                    let first_open = has_files(dir);
                    let attempt = if first_open {
                        RaftPolicy::open(settings.clone(), Arc::clone(&fs), dir).await
                    } else {
                        RaftPolicy::create(settings.clone(), Arc::clone(&fs), dir, initial.clone())
                            .await
                    };
                    match attempt {
                        Err(strata_core::Error::InvalidArgument(_)) if first_open => {
                            RaftPolicy::create(settings, fs, dir, initial).await
                        }
                        Err(strata_core::Error::InvalidArgument(_)) => {
                            RaftPolicy::open(settings, fs, dir).await
                        }
                        other => other,
                    }
                })
                .with_context(|| format!("cannot start the raft authority in {}", dir.display()))?;
            Ok(Arc::new(policy))
        }
    }
}

/// The node's failover setting.
pub fn config(plan: &FailoverPlan, policy: Arc<dyn FailoverPolicy>) -> FailoverConfig {
    let mut c = FailoverConfig::new(policy, plan.peers.clone());
    c.status_timeout = plan.status_timeout;
    c
}

/// Options of `strata witness`.
#[derive(Debug, Clone, clap::Args)]
pub struct WitnessArgs {
    /// The witness configuration: `dir = "..."` (its raft state, relative to the file)
    /// and the `[failover]` section every node has (policy = "raft"; its `node_id` is a
    /// voter with role = "witness").
    #[arg(long)]
    pub config: PathBuf,
}

/// The witness configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Where the raft state lives (`<dir>/authority`), relative to the file.
    pub dir: PathBuf,
    /// `[failover]`, as the data nodes have it.
    pub failover: FailoverSection,
}

/// Reads and checks a witness configuration.
pub fn witness_plan(path: &Path) -> anyhow::Result<FailoverPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the witness configuration {}", path.display()))?;
    let config: WitnessConfig = toml::from_str(&text)
        .with_context(|| format!("invalid witness configuration {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let state =
        if config.dir == Path::new(".") { base.to_path_buf() } else { base.join(&config.dir) };
    let plan = plan(&config.failover, None, &state, base)
        .with_context(|| format!("invalid witness configuration {}", path.display()))?;
    let Authority::Raft(settings) = &plan.authority else {
        bail!("{}: a witness runs a raft voter: [failover] policy must be \"raft\"", path.display())
    };
    let me = settings.voters().get(&settings.node_id()).map(|m| m.role);
    if me != Some(Role::Witness) {
        bail!(
            "{}: [failover] voters: voter {} (this witness's node_id) must have role = \"witness\"",
            path.display(),
            settings.node_id()
        );
    }
    Ok(plan)
}

/// Runs `strata witness`: the raft voter only, until SIGTERM or Ctrl-C.
pub fn witness(args: &WitnessArgs) -> anyhow::Result<()> {
    let plan = witness_plan(&args.config)?;
    let Authority::Raft(settings) = &plan.authority else { bail!("a witness runs a raft voter") };
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create {}", plan.dir.display()))?;
    println!(
        "witness: raft voter {} on {}, state in {}",
        settings.node_id(),
        settings.listen(),
        plan.dir.display()
    );
    let policy = open_authority(&plan)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    // Listening before "ready" is printed: a stop sent right after it stops cleanly.
    let signals = {
        let _rt = rt.enter();
        crate::serve::StopSignals::install()?
    };
    println!("witness: ready (cluster {:016x})", plan.initial.cluster);
    use std::io::Write as _;
    std::io::stdout().flush().context("stdout")?;
    rt.block_on(signals.wait(None));
    drop(policy);
    eprintln!("witness: stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn section(text: &str) -> anyhow::Result<FailoverPlan> {
        let f: FailoverSection = toml::from_str(text)?;
        plan(&f, Some("n1"), Path::new("/s"), Path::new("/etc"))
    }

    const PEERS: &str = "peers = { n1 = \"127.0.0.1:7400\", n2 = \"127.0.0.1:7410\" }\n";
    const RAFT: &str = "node_id = 1\nlisten = \"127.0.0.1:7401\"\n\
        voters = [{ id = 1, addr = \"127.0.0.1:7401\" }, { id = 2, addr = \"127.0.0.1:7411\" }, \
        { id = 3, addr = \"127.0.0.1:7421\", role = \"witness\" }]\n";

    #[test]
    fn raft_section_with_defaults() {
        let p = section(&format!("policy = \"raft\"\nprimary = \"n1\"\n{PEERS}{RAFT}")).unwrap();
        assert_eq!(p.policy_name(), "raft");
        assert_eq!(p.dir, Path::new("/s/authority"));
        assert_eq!(p.initial.primary.as_str(), "n1");
        assert_eq!(p.initial.epoch, Epoch(0));
        assert_eq!(p.initial.lease.lease, Duration::from_millis(500));
        assert_eq!(p.initial.lease.grace, Duration::from_millis(800));
        assert!(p.initial.in_sync.is_empty());
        assert_eq!(p.peers.len(), 2);
        // Another node given the same section derives the same cluster id.
        let f: FailoverSection =
            toml::from_str(&format!("policy = \"raft\"\nprimary = \"n1\"\n{PEERS}{RAFT}")).unwrap();
        let q = plan(&f, Some("n2"), Path::new("/t"), Path::new("/")).unwrap();
        assert_eq!(p.initial.cluster, q.initial.cluster);
    }

    #[test]
    fn raft_routes_reach_voters_another_way() {
        let p = section(&format!(
            "policy = \"raft\"\nprimary = \"n1\"\n{PEERS}{RAFT}\
             routes = [{{ id = 2, addr = \"127.0.0.1:9002\" }}, {{ id = 3, addr = \"127.0.0.1:9003\" }}]\n"
        ))
        .unwrap();
        let Authority::Raft(settings) = &p.authority else { panic!("raft expected") };
        let routes: Vec<(u64, &str)> =
            settings.routes().iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(routes, [(2, "127.0.0.1:9002"), (3, "127.0.0.1:9003")]);
    }

    #[test]
    fn manual_section() {
        let p = section(&format!(
            "policy = \"manual\"\nprimary = \"n1\"\ndir = \"auth\"\nin_sync = [\"n2\"]\n\
             heartbeat_ms = 50\nlease_ms = 300\ngrace_ms = 600\ncluster_id = 7\n{PEERS}"
        ))
        .unwrap();
        assert_eq!(p.policy_name(), "manual");
        assert_eq!(p.dir, Path::new("/etc/auth"));
        assert_eq!(p.initial.cluster, 7);
        assert!(p.initial.in_sync.contains(&NodeId::new("n2")));
    }

    #[test]
    fn nodes_starting_together_share_one_manual_authority() {
        const NODES: usize = 4;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("authority");
        let plan = section(&format!(
            "policy = \"manual\"\nprimary = \"n1\"\ndir = {:?}\n{PEERS}",
            dir.display().to_string()
        ))
        .unwrap();
        assert_eq!(plan.dir, dir);
        // All start at once on an empty directory: one creates the record, the rest
        // open it, and every node then reads and commits through the same file.
        let start = std::sync::Barrier::new(NODES);
        let policies: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..NODES)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        open_authority(&plan)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let policies: Vec<_> = policies.into_iter().map(|p| p.unwrap()).collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let join = strata_core::Change::JoinInSync { node: "n2".into(), epoch: Epoch(0) };
        let next = rt.block_on(policies[1].compare_and_set(1, join)).unwrap();
        for p in &policies {
            assert_eq!(rt.block_on(p.record()).unwrap(), next);
        }
    }

    #[test]
    fn bad_sections_name_the_key() {
        let raft = format!("policy = \"raft\"\nprimary = \"n1\"\n{PEERS}");
        let cases = [
            (format!("policy = \"paxos\"\nprimary = \"n1\"\n{PEERS}"), "policy = \"paxos\""),
            (raft.clone(), "node_id is required"),
            (format!("{raft}node_id = 1\n"), "listen is required"),
            (format!("{raft}node_id = 1\nlisten = \"127.0.0.1:1\"\n"), "voters is required"),
            (format!("{raft}{RAFT}dir = \"x\"\n"), "dir is only for"),
            (format!("{raft}{RAFT}lease_ms = 5000\n"), "lease_ms"),
            (format!("{raft}{RAFT}heartbeat_ms = 0\n"), "heartbeat_ms"),
            (format!("{raft}{RAFT}cluster_id = 0\n"), "cluster_id"),
            (format!("{raft}{RAFT}in_sync = [\"n9\"]\n"), "in_sync"),
            (format!("{raft}{RAFT}in_sync = [\"n1\"]\n"), "in_sync"),
            (format!("{raft}{RAFT}grace = 3\n"), "unknown field `grace`"),
            (
                format!("policy = \"raft\"\nprimary = \"n7\"\n{PEERS}{RAFT}"),
                "primary = \"n7\" is not among the peers",
            ),
            (
                format!(
                    "policy = \"raft\"\nprimary = \"n1\"\npeers = {{ n1 = \"nowhere\" }}\n{RAFT}"
                ),
                "peers.n1",
            ),
            (
                format!(
                    "policy = \"raft\"\nprimary = \"n2\"\npeers = {{ n2 = \"127.0.0.1:1\" }}\n{RAFT}"
                ),
                "no entry for this node",
            ),
            (
                format!(
                    "{raft}node_id = 9\nlisten = \"127.0.0.1:1\"\nvoters = [{{ id = 1, addr = \"a:1\" }}]\n"
                ),
                "not among the voters",
            ),
            (format!("policy = \"manual\"\nprimary = \"n1\"\n{PEERS}node_id = 1\n"), "node_id"),
            (format!("{raft}{RAFT}routes = [{{ id = 1, addr = \"a:1\" }}]\n"), "is this node"),
            (
                format!("{raft}{RAFT}routes = [{{ id = 8, addr = \"a:1\" }}]\n"),
                "voter 8 is not among the voters",
            ),
            (format!("{raft}{RAFT}routes = [{{ id = 2 }}]\n"), "missing field `addr`"),
            (
                format!(
                    "policy = \"manual\"\nprimary = \"n1\"\n{PEERS}routes = [{{ id = 2, addr = \"a:1\" }}]\n"
                ),
                "routes",
            ),
        ];
        for (text, expect) in cases {
            let e = format!("{:#}", section(&text).unwrap_err());
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }
}
