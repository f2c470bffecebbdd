//! The manual policy passes the failover conformance suite on the OS file system,
//! restarts included; the liveness check of automatic policies is skipped (an operator
//! decides).

use std::sync::Arc;

use strata_failover_manual::ManualFactory;
use strata_harness::conformance::failover::{self, FailoverCaps};

#[test]
fn the_manual_policy_conforms() {
    let report =
        failover::run(Arc::new(ManualFactory), FailoverCaps::default().with_automatic(false));
    report.assert_ok();
    assert_eq!(report.skipped(), ["failover::decide_fails_over_when_it_should"]);
}
