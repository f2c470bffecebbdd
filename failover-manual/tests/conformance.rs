//! The manual policy passes the failover conformance suite on the OS file system,
//! restarts included; the liveness check of automatic policies is skipped (an operator
//! decides).

use std::path::Path;
use std::sync::Arc;

use strata_core::fs::OsFileSystem;
use strata_core::{AuthorityRecord, FailoverPolicy, Result};
use strata_failover_manual::ManualPolicy;
use strata_harness::conformance::failover::{self, FailoverCaps, FailoverFactory};

struct Manual;

#[async_trait::async_trait]
impl FailoverFactory for Manual {
    fn name(&self) -> String {
        "manual".into()
    }

    async fn create(
        &self,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(ManualPolicy::create(Arc::new(OsFileSystem), dir, initial)?))
    }

    async fn reopen(&self, dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(ManualPolicy::open(Arc::new(OsFileSystem), dir)?))
    }
}

#[test]
fn the_manual_policy_conforms() {
    let report = failover::run(Arc::new(Manual), FailoverCaps::default().with_automatic(false));
    report.assert_ok();
    assert_eq!(report.skipped(), ["failover::decide_fails_over_when_it_should"]);
}
