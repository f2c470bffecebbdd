//! [`RaftSettings`]: the settings of one voter of the `raft` failover policy, and
//! [`RaftOptions`], the same as a stack configuration's `[failover]` section spells them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use strata_core::fs::FileSystem;
use strata_core::{Error, Result};

use crate::config::RegisterConfig;
use crate::types::{Member, NodeId, Role};

/// The settings of one voter of the `raft` failover policy: which voter this process
/// is, where it listens, who the voters are, and the group's timings.
///
/// Every voter is given the same `voters`; the one with the lowest id is the
/// **initializer** ([`initializer`](Self::initializer)): when the group is created it
/// forms the raft group from `voters`, and the others wait (up to
/// [`bootstrap_timeout`](Self::with_bootstrap_timeout)) until it has and a leader holds
/// the authority record. After that the voters and addresses live in the replicated
/// raft membership; `voters` is not consulted again on a restart.
#[derive(Clone, PartialEq, Eq)]
pub struct RaftSettings {
    pub(crate) node_id: NodeId,
    pub(crate) listen: SocketAddr,
    pub(crate) voters: BTreeMap<NodeId, Member>,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) election_timeout_min: Duration,
    pub(crate) election_timeout_max: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) bootstrap_timeout: Duration,
    pub(crate) routes: BTreeMap<NodeId, String>,
}

impl fmt::Debug for RaftSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftSettings")
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("voters", &self.voters)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout", &(self.election_timeout_min..self.election_timeout_max))
            .field("request_timeout", &self.request_timeout)
            .field("bootstrap_timeout", &self.bootstrap_timeout)
            .field("routes", &self.routes)
            .finish()
    }
}

impl RaftSettings {
    /// Voter `node_id`, listening on `listen`, in the group of `voters` (which must name
    /// it). Timings default to a 100 ms raft heartbeat, 400–800 ms election timeouts, a
    /// 5 s request timeout and a 30 s bootstrap timeout.
    pub fn new(node_id: NodeId, listen: SocketAddr, voters: BTreeMap<NodeId, Member>) -> Self {
        Self {
            node_id,
            listen,
            voters,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            request_timeout: Duration::from_secs(5),
            bootstrap_timeout: Duration::from_secs(30),
            routes: BTreeMap::new(),
        }
    }

    /// How often the raft leader sends heartbeats (default 100 ms). Also the pause
    /// between retries while no leader is known.
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// A follower that hears no leader for a random time in `[min, max)` starts an
    /// election (default 400–800 ms).
    #[must_use]
    pub fn with_election_timeout(mut self, min: Duration, max: Duration) -> Self {
        self.election_timeout_min = min;
        self.election_timeout_max = max;
        self
    }

    /// The longest any one call of the policy (`record`, `compare_and_set`,
    /// `renew_lease`) takes, retries while an election is under way included (default
    /// 5 s). A call that runs out fails; it never hangs.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long [`create`](crate::RaftPolicy::create) waits for the group to form and
    /// hold the authority record (default 30 s): the other voters may start later.
    #[must_use]
    pub fn with_bootstrap_timeout(mut self, timeout: Duration) -> Self {
        self.bootstrap_timeout = timeout;
        self
    }

    /// This voter reaches voter `peer` at `addr` instead of the address `voters` (and
    /// from then on the raft membership) gives it (default: no route). The membership
    /// holds one address per voter for every voter; a route is this voter's own way
    /// there (a NAT, a tunnel, a proxy). Used for raft messages and for requests
    /// forwarded to the leader; not replicated, so it is given again on every start.
    #[must_use]
    pub fn with_route(mut self, peer: NodeId, addr: impl Into<String>) -> Self {
        self.routes.insert(peer, addr.into());
        self
    }

    /// The routes given with [`RaftSettings::with_route`], by voter id.
    pub fn routes(&self) -> &BTreeMap<NodeId, String> {
        &self.routes
    }

    /// This voter's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address this voter's raft listener binds.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The voters, by id.
    pub fn voters(&self) -> &BTreeMap<NodeId, Member> {
        &self.voters
    }

    /// The request timeout ([`with_request_timeout`](Self::with_request_timeout)).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The voter that forms the group on `create`: the one with the lowest id (`None`
    /// without voters).
    pub fn initializer(&self) -> Option<NodeId> {
        self.voters.keys().next().copied()
    }

    /// Checks the settings; the error is `Error::Config` saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.voters.is_empty() {
            return Err(Error::Config("failover=raft: `voters` is empty".into()));
        }
        if !self.voters.contains_key(&self.node_id) {
            let ids: Vec<String> = self.voters.keys().map(u64::to_string).collect();
            return Err(Error::Config(format!(
                "failover=raft: this node's id {} is not among the voters ({})",
                self.node_id,
                ids.join(", ")
            )));
        }
        if let Some((id, _)) = self.voters.iter().find(|(_, m)| m.addr.trim().is_empty()) {
            return Err(Error::Config(format!("failover=raft: voter {id} has no address")));
        }
        if let Some((id, _)) = self.routes.iter().find(|(_, a)| a.trim().is_empty()) {
            return Err(Error::Config(format!("failover=raft: the route to voter {id} is empty")));
        }
        for (what, d) in [
            ("request_timeout", self.request_timeout),
            ("bootstrap_timeout", self.bootstrap_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("failover=raft: {what} must be above zero")));
            }
        }
        // The raft timings are checked by the register's own rules (openraft's).
        self.register_config(strata_core::fs::OsFileSystem::shared(), Path::new("."))
            .raft_config()
            .map_err(|e| Error::Config(format!("failover=raft: {e}")))?;
        Ok(())
    }

    /// The register's configuration for these settings, keeping its state in `dir`.
    pub(crate) fn register_config(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> RegisterConfig {
        let config = RegisterConfig::new(self.node_id, self.listen, dir)
            .with_fs(fs)
            .with_heartbeat_interval(self.heartbeat_interval)
            .with_election_timeout(self.election_timeout_min, self.election_timeout_max)
            .with_request_timeout(self.request_timeout);
        self.routes.iter().fold(config, |c, (id, addr)| c.with_route(*id, addr.clone()))
    }
}

/// The `raft` policy's settings as a stack configuration spells them (the keys of the
/// `[failover]` section besides `kind`); [`RaftOptions::settings`] checks them.
///
/// ```toml
/// [failover]
/// kind = "raft"
/// node_id = 1
/// listen = "0.0.0.0:7301"
/// voters = [
///     { id = 1, addr = "10.0.0.1:7301" },
///     { id = 2, addr = "10.0.0.2:7301" },
///     { id = 3, addr = "10.0.0.3:7301", role = "witness" },
/// ]
/// request_timeout_ms = 5000
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftOptions {
    /// This voter's id (one of `voters`).
    pub node_id: NodeId,
    /// The address its raft listener binds (`host:port`, an IP address).
    pub listen: String,
    /// Every voter of the group (the same list on every voter).
    pub voters: Vec<VoterOptions>,
    /// Raft heartbeat interval in milliseconds (default 100).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Lower bound of the election timeout in milliseconds (default 400).
    #[serde(default)]
    pub election_timeout_min_ms: Option<u64>,
    /// Upper bound of the election timeout in milliseconds (default 800).
    #[serde(default)]
    pub election_timeout_max_ms: Option<u64>,
    /// Longest one call of the policy takes, in milliseconds (default 5000).
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    /// How long creating the authority waits for the group, in milliseconds (default
    /// 30000).
    #[serde(default)]
    pub bootstrap_timeout_ms: Option<u64>,
}

/// One voter in [`RaftOptions::voters`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterOptions {
    /// Its raft node id (unique, never reused).
    pub id: NodeId,
    /// The `host:port` other voters reach its raft listener at.
    pub addr: String,
    /// `"data"` (default) or `"witness"`.
    #[serde(default)]
    pub role: VoterRole,
}

/// A voter's role as configured: `"data"` or `"witness"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoterRole {
    /// A data node ([`Role::Data`]).
    #[default]
    Data,
    /// A witness ([`Role::Witness`]).
    Witness,
}

impl RaftOptions {
    /// The settings these options describe, checked ([`RaftSettings::validate`]). A
    /// listen address that does not parse, a voter listed twice or any problem
    /// `validate` finds is `Error::Config` naming the key.
    pub fn settings(&self) -> Result<RaftSettings> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            Error::Config(format!(
                "failover=raft: listen = {:?} is not an ip:port address: {e}",
                self.listen
            ))
        })?;
        let mut voters = BTreeMap::new();
        for v in &self.voters {
            let role = match v.role {
                VoterRole::Data => Role::Data,
                VoterRole::Witness => Role::Witness,
            };
            if voters.insert(v.id, Member { addr: v.addr.clone(), role }).is_some() {
                return Err(Error::Config(format!(
                    "failover=raft: voter {} is listed more than once",
                    v.id
                )));
            }
        }
        let ms = Duration::from_millis;
        let mut s = RaftSettings::new(self.node_id, listen, voters);
        if let Some(v) = self.heartbeat_ms {
            s.heartbeat_interval = ms(v);
        }
        if let Some(v) = self.election_timeout_min_ms {
            s.election_timeout_min = ms(v);
        }
        if let Some(v) = self.election_timeout_max_ms {
            s.election_timeout_max = ms(v);
        }
        if let Some(v) = self.request_timeout_ms {
            s.request_timeout = ms(v);
        }
        if let Some(v) = self.bootstrap_timeout_ms {
            s.bootstrap_timeout = ms(v);
        }
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> RaftOptions {
        serde_json::from_str(json).expect("options parse")
    }

    #[test]
    fn options_become_validated_settings() {
        let o = options(
            r#"{"node_id": 2, "listen": "127.0.0.1:7302", "request_timeout_ms": 900,
                "voters": [{"id": 1, "addr": "a:1"}, {"id": 2, "addr": "b:2"},
                           {"id": 3, "addr": "c:3", "role": "witness"}]}"#,
        );
        let s = o.settings().expect("valid");
        assert_eq!(s.node_id(), 2);
        assert_eq!(s.initializer(), Some(1));
        assert_eq!(s.request_timeout(), Duration::from_millis(900));
        assert_eq!(s.voters()[&3].role, Role::Witness);
    }

    #[test]
    fn bad_options_are_config_errors_that_say_why() {
        let cases = [
            (
                r#"{"node_id": 4, "listen": "127.0.0.1:1", "voters": [{"id": 1, "addr": "a:1"}]}"#,
                "not among the voters",
            ),
            (
                r#"{"node_id": 1, "listen": "nowhere", "voters": [{"id": 1, "addr": "a:1"}]}"#,
                "not an ip:port",
            ),
            (r#"{"node_id": 1, "listen": "127.0.0.1:1", "voters": []}"#, "empty"),
            (
                r#"{"node_id": 1, "listen": "127.0.0.1:1", "voters": [{"id": 1, "addr": "a:1"}, {"id": 1, "addr": "b:1"}]}"#,
                "more than once",
            ),
            (
                r#"{"node_id": 1, "listen": "127.0.0.1:1", "heartbeat_ms": 900, "voters": [{"id": 1, "addr": "a:1"}]}"#,
                "raft",
            ),
        ];
        for (json, why) in cases {
            let err = options(json).settings().expect_err(json);
            assert!(matches!(&err, Error::Config(m) if m.contains(why)), "{json}: {err}");
        }
        assert!(
            serde_json::from_str::<RaftOptions>(
                r#"{"node_id": 1, "listen": "x", "voters": [], "peers": 3}"#
            )
            .is_err()
        );
    }
}
