//! `strata status ADDR` and `strata cluster ...`: operator requests to a replication
//! node (`strata serve` with `[replication]`) on its replication address.

use std::time::Duration;

use anyhow::Context;
use strata_replication::{AdminRequest, Status, admin_request};

/// Options of `strata status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The node's replication address (its `[replication] listen`).
    pub addr: String,
    /// Print the node's answer as JSON, as it sent it.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the node, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Options of `strata cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum ClusterCommand {
    /// Start a local cluster on loopback to try failover with: N `strata serve` nodes
    /// (sync replication, raft failover authority; or two nodes plus a witness), each a
    /// background process; waits until a primary acknowledges a write and prints the
    /// addresses and what to try.
    Up(crate::local_cluster::UpArgs),
    /// Stop the processes of a local cluster started by `strata cluster up` (SIGTERM,
    /// SIGKILL after a grace period); the data stays.
    Down(crate::local_cluster::DownArgs),
    /// Remove a replica from a sync primary's in-sync set, so the primary acknowledges
    /// writes again without it (ADDR is the primary's replication address). The replica
    /// rejoins the set on its own once it has caught up.
    RemoveReplica {
        /// The primary's replication address.
        addr: String,
        /// The replica's name (`[replication] name`; `strata status` on the primary
        /// lists them).
        name: String,
        /// How long to wait for the node, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Promote a replica to primary at a new epoch (ADDR is the replica's replication
    /// address). Without `[failover]`: make sure the old primary is stopped first, and
    /// point the other replicas at the new primary. With it: the authority promotes an
    /// in-sync member only (or any replica with `--force`) and fences the old primary.
    Promote {
        /// The replica's replication address.
        addr: String,
        /// With a failover authority: promote even a replica outside the in-sync set
        /// (the old primary is fenced by the new epoch); the answer reports what may be
        /// lost — the promoted node's last sequence, the highest any reachable node
        /// reported, and the unreachable in-sync members whose tails will be truncated.
        #[arg(long)]
        force: bool,
        /// How long to wait for the node, in milliseconds.
        #[arg(long, default_value_t = 10000)]
        timeout_ms: u64,
    },
}

fn request(addr: &str, req: AdminRequest, timeout_ms: u64) -> anyhow::Result<String> {
    let what = match &req {
        AdminRequest::Status => "status".to_owned(),
        AdminRequest::RemoveReplica { node } => format!("remove-replica {node}"),
        AdminRequest::Promote => "promote".to_owned(),
        AdminRequest::ForcePromote => "promote --force".to_owned(),
    };
    admin_request(addr, req, Duration::from_millis(timeout_ms.max(1)))
        .with_context(|| format!("{what}: no answer from the replication node at {addr}"))
}

/// Runs `strata status`.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let text = request(&args.addr, AdminRequest::Status, args.timeout_ms)?;
    if args.json {
        println!("{text}");
        return Ok(());
    }
    match serde_json::from_str::<Status>(&text) {
        Ok(status) => print!("{}", render(&status)),
        // A node of another version: show what it said rather than nothing.
        Err(_) => println!("{text}"),
    }
    Ok(())
}

/// Runs `strata cluster ...`.
pub fn cluster(args: &ClusterArgs) -> anyhow::Result<()> {
    let answer = match &args.command {
        ClusterCommand::Up(up) => return crate::local_cluster::up(up),
        ClusterCommand::Down(down) => return crate::local_cluster::down(down),
        ClusterCommand::RemoveReplica { addr, name, timeout_ms } => {
            request(addr, AdminRequest::RemoveReplica { node: name.clone() }, *timeout_ms)?
        }
        ClusterCommand::Promote { addr, force, timeout_ms } => {
            let req = if *force { AdminRequest::ForcePromote } else { AdminRequest::Promote };
            request(addr, req, *timeout_ms)?
        }
    };
    println!("{answer}");
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The status as a readable table.
fn render(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<12} {value}");
    };
    row("node", s.node.clone());
    match &s.primary {
        Some(p) if s.role == "replica" => row("role", format!("replica of {p}")),
        _ => row("role", s.role.clone()),
    }
    row("cluster", format!("{:016x}", s.cluster));
    row("epoch", s.epoch.to_string());
    row("last seq", s.last_seq.to_string());
    row("durable", s.durable_seq.to_string());
    if s.role == "primary" {
        row("mode", format!("{} (min_in_sync {})", s.mode, s.min_in_sync));
        let set = if s.in_sync.is_empty() { "(empty)".to_owned() } else { s.in_sync.join(", ") };
        row("in-sync", set);
        row("cut off", s.cut_off.to_string());
        row("bootstraps", s.bootstraps.to_string());
    } else {
        row("lag", format!("{} seqs, {} ms", s.lag_seqs, s.lag_millis));
    }
    row("last error", s.last_error.clone().unwrap_or_else(|| "-".into()));
    if let Some(policy) = &s.policy {
        // The authority record as this node last read it (every node has one).
        row("failover", format!("policy {policy}, record version {}", s.authority_version));
        row(
            "authority",
            format!(
                "primary {} at epoch {}",
                s.authority_primary.as_deref().unwrap_or("-"),
                s.authority_epoch
            ),
        );
        if s.role != "primary" {
            let set =
                if s.in_sync.is_empty() { "(empty)".to_owned() } else { s.in_sync.join(", ") };
            row("in-sync", set);
        }
        if let Some(ms) = s.lease_remaining_millis {
            let lease =
                if ms == 0 { "expired or none held".to_owned() } else { format!("{ms} ms left") };
            row("lease", lease);
        }
        row("failover err", s.failover_error.clone().unwrap_or_else(|| "-".into()));
    }
    if s.role == "primary" {
        let _ = writeln!(out);
        if s.replicas.is_empty() {
            let _ = writeln!(out, "no replicas");
        } else {
            let name_w = s.replicas.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
            let addr_w = s.replicas.iter().map(|r| r.addr.len()).max().unwrap_or(0).max(4);
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<addr_w$}  {:<9}  {:<7}  {:>12}  {:>10}",
                "replica", "addr", "connected", "in-sync", "acked seq", "lag seqs"
            );
            for r in &s.replicas {
                let _ = writeln!(
                    out,
                    "{:<name_w$}  {:<addr_w$}  {:<9}  {:<7}  {:>12}  {:>10}",
                    r.name,
                    r.addr,
                    yes_no(r.connected),
                    yes_no(r.in_sync),
                    r.acked,
                    r.lag_seqs
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_replication::ReplicaStatus;

    #[test]
    fn renders_a_primary_and_a_replica() {
        let primary = Status {
            node: "a".into(),
            role: "primary".into(),
            cluster: 0xab,
            epoch: 3,
            last_seq: 120,
            durable_seq: 120,
            mode: "sync".into(),
            min_in_sync: 1,
            in_sync: vec!["b".into()],
            replicas: vec![
                ReplicaStatus {
                    name: "b".into(),
                    addr: "127.0.0.1:5000".into(),
                    connected: true,
                    in_sync: true,
                    acked: 120,
                    lag_seqs: 0,
                },
                ReplicaStatus {
                    name: "c".into(),
                    addr: "127.0.0.1:5001".into(),
                    connected: false,
                    in_sync: false,
                    acked: 90,
                    lag_seqs: 30,
                },
            ],
            ..Status::default()
        };
        let text = render(&primary);
        assert!(text.contains("role         primary"), "{text}");
        assert!(text.contains("sync (min_in_sync 1)"), "{text}");
        assert!(text.contains("in-sync      b\n"), "{text}");
        let c = text.lines().find(|l| l.starts_with("c ")).unwrap_or_default();
        assert!(c.contains("no") && c.ends_with("30"), "{text}");

        let replica = Status {
            node: "b".into(),
            role: "replica".into(),
            primary: Some("127.0.0.1:7400".into()),
            lag_seqs: 4,
            lag_millis: 12,
            ..Status::default()
        };
        let text = render(&replica);
        assert!(text.contains("replica of 127.0.0.1:7400"), "{text}");
        assert!(text.contains("4 seqs, 12 ms"), "{text}");
        assert!(!text.contains("in-sync"), "{text}");
        assert!(!text.contains("failover"), "{text}");

        let with_authority = Status {
            node: "n2".into(),
            role: "replica".into(),
            primary: Some("127.0.0.1:7400".into()),
            in_sync: vec!["n2".into(), "n3".into()],
            policy: Some("raft".into()),
            authority_version: 5,
            authority_epoch: 2,
            authority_primary: Some("n1".into()),
            ..Status::default()
        };
        let text = render(&with_authority);
        assert!(text.contains("policy raft, record version 5"), "{text}");
        assert!(text.contains("primary n1 at epoch 2"), "{text}");
        assert!(text.contains("in-sync      n2, n3"), "{text}");
        assert!(!text.contains("lease"), "{text}");
        let primary =
            Status { role: "primary".into(), lease_remaining_millis: Some(740), ..with_authority };
        assert!(render(&primary).contains("lease        740 ms left"), "{}", render(&primary));
    }
}
