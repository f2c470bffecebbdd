//! The `raft` policy passes the failover conformance suite — automatic decisions and
//! restarts included — with a real group of three voters on loopback behind every
//! authority the suite creates: the factory starts a whole group per `create` and
//! hands the suite voter 2's policy (a follower or the leader, whichever raft made it),
//! and `open` restarts all three from their directories.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::group::{create_three, free_addrs, open_three, settings};
use parking_lot::Mutex;
use strata_core::fs::FileSystem;
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, Error, FailoverFactory, FailoverPolicy,
    Lease, NodeId, Result,
};
use strata_failover_raft::{RaftPolicy, Role};
use strata_harness::conformance::failover::{self, FailoverCaps};

/// The voter whose policy the suite talks to (the other two only vote).
const FRONT: usize = 1;

/// Makes a group of three voters per authority; remembers each group's addresses so
/// `open` restarts it where its raft membership says the voters are.
#[derive(Debug, Default)]
struct GroupFactory {
    addrs: Mutex<HashMap<PathBuf, Vec<SocketAddr>>>,
}

/// Three voters; the trait's calls go to voter `FRONT + 1`.
#[derive(Debug)]
struct GroupPolicy {
    voters: Vec<RaftPolicy>,
}

#[async_trait::async_trait]
impl FailoverPolicy for GroupPolicy {
    fn name(&self) -> &'static str {
        self.voters[FRONT].name()
    }

    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        self.voters[FRONT].decide(record, view)
    }

    async fn record(&self) -> Result<AuthorityRecord> {
        self.voters[FRONT].record().await
    }

    async fn compare_and_set(&self, expected: u64, change: Change) -> Result<AuthorityRecord> {
        self.voters[FRONT].compare_and_set(expected, change).await
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        self.voters[FRONT].renew_lease(node, epoch).await
    }
}

#[async_trait::async_trait]
impl FailoverFactory for GroupFactory {
    fn name(&self) -> &'static str {
        "raft"
    }

    async fn create(
        &self,
        _fs: Arc<dyn FileSystem>,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        let addrs = free_addrs(3);
        self.addrs.lock().insert(dir.to_path_buf(), addrs.clone());
        let voters = create_three(&settings(&addrs, &[Role::Data; 3]), dir, &initial).await?;
        Ok(Arc::new(GroupPolicy { voters }))
    }

    async fn open(&self, _fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        let addrs = self.addrs.lock().get(dir).cloned().ok_or_else(|| {
            Error::InvalidArgument(format!("no group was created in {}", dir.display()))
        })?;
        let voters = open_three(&settings(&addrs, &[Role::Data; 3]), dir).await?;
        Ok(Arc::new(GroupPolicy { voters }))
    }
}

#[test]
fn the_raft_policy_conforms_with_a_three_voter_group() {
    // The default case counts: every one of the 48 model cases starts a group of three.
    let report = failover::run(Arc::new(GroupFactory::default()), FailoverCaps::default());
    report.assert_ok();
    assert!(report.skipped().is_empty(), "skipped: {:?}", report.skipped());
}
