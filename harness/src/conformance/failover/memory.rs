//! An in-memory authority with automatic decisions: the reference the broken
//! policies wrap, and a stand-in for tests that need a policy but no durability.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use strata_core::failover::automatic_decision;
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, Error, FailoverPolicy, Lease, NodeId,
    Result,
};

use strata_core::FailoverFactory;
use strata_core::fs::FileSystem;

/// A [`FailoverPolicy`] whose record lives in memory only (lost when dropped, so the
/// suite's restart checks do not apply) and whose `decide` is
/// [`automatic_decision`]. Test kit only: it is not an authority several processes
/// can share.
#[derive(Debug)]
pub struct MemoryAuthority {
    record: Mutex<AuthorityRecord>,
}

impl MemoryAuthority {
    /// An authority holding `initial` (checked with [`AuthorityRecord::validate`]).
    pub fn new(initial: AuthorityRecord) -> Result<Self> {
        initial.validate()?;
        Ok(Self { record: Mutex::new(initial) })
    }

    /// Replaces the record if it is at `expected_version`, without any rule: how the
    /// broken policies commit what the rules refuse.
    pub(crate) fn overwrite(&self, expected_version: u64, next: AuthorityRecord) -> Result<()> {
        let mut record = self.record.lock();
        if record.version != expected_version {
            return Err(Error::StaleAuthority {
                expected: expected_version,
                found: record.version,
            });
        }
        *record = next;
        Ok(())
    }
}

#[async_trait::async_trait]
impl FailoverPolicy for MemoryAuthority {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        automatic_decision(record, view)
    }

    async fn record(&self) -> Result<AuthorityRecord> {
        Ok(self.record.lock().clone())
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord> {
        let mut record = self.record.lock();
        if record.version != expected_version {
            return Err(Error::StaleAuthority {
                expected: expected_version,
                found: record.version,
            });
        }
        let next = record.apply(&change)?;
        *record = next.clone();
        Ok(next)
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        let started = Instant::now();
        self.record.lock().grant_lease(node, epoch, started)
    }
}

/// Creates [`MemoryAuthority`]s for the suite (`open` is `Error::Unsupported`: run
/// with [`FailoverCaps::restart`](super::FailoverCaps::restart) off).
#[derive(Debug, Default)]
pub struct MemoryFactory;

#[async_trait::async_trait]
impl FailoverFactory for MemoryFactory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create(
        &self,
        _fs: Arc<dyn FileSystem>,
        _dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(MemoryAuthority::new(initial)?))
    }

    async fn open(&self, _fs: Arc<dyn FileSystem>, _dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        Err(Error::Unsupported { component: "failover=memory", capability: "restart" })
    }
}
