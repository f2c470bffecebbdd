//! The failover suite passes on the in-memory reference authority (automatic
//! decisions; the manual policy runs it in `failover-manual/tests/conformance.rs`) and
//! bites: every broken policy of `conformance::broken` fails exactly the checks of the
//! clause it breaks, plus the model check, which every broken rule also trips.

use std::sync::Arc;

use strata_harness::conformance::Report;
use strata_harness::conformance::broken::{FailoverFault, FaultyFailoverFactory};
use strata_harness::conformance::failover::memory::MemoryFactory;
use strata_harness::conformance::failover::{self, FailoverCaps};

#[track_caller]
fn assert_fails_exactly(report: &Report, expected: &[&str]) {
    let mut want: Vec<&str> = expected.to_vec();
    want.sort_unstable();
    assert!(!report.is_ok(), "the broken policy passed its suite:\n{report}");
    assert_eq!(report.failed_names(), want, "unexpected set of failing checks:\n{report}");
    eprintln!("{report}");
}

fn broken(fault: FailoverFault) -> Report {
    failover::run(
        Arc::new(FaultyFailoverFactory(fault)),
        FailoverCaps::default().with_restart(false),
    )
}

#[test]
fn the_in_memory_reference_conforms() {
    let report =
        failover::run(Arc::new(MemoryFactory), FailoverCaps::default().with_restart(false));
    report.assert_ok();
    assert_eq!(report.skipped(), ["failover::changes_survive_a_restart"]);
}

#[test]
fn promoting_an_out_of_sync_replica_is_caught() {
    assert_fails_exactly(
        &broken(FailoverFault::PromotesOutOfSync),
        &[
            "failover::decide_promotes_only_the_best_in_sync_member",
            "failover::only_in_sync_members_are_promoted",
            "failover::sequences_match_the_model",
        ],
    );
}

#[test]
fn skipping_the_epoch_bump_is_caught() {
    assert_fails_exactly(
        &broken(FailoverFault::SkipsEpochBump),
        &[
            "failover::decide_promotes_at_the_next_epoch",
            "failover::promotion_takes_exactly_the_next_epoch",
            "failover::sequences_match_the_model",
        ],
    );
}

#[test]
fn acknowledging_before_a_shrink_is_committed_is_caught() {
    assert_fails_exactly(
        &broken(FailoverFault::AcksBeforeShrinkCommitted),
        &["failover::lease_names_the_committed_in_sync_set", "failover::sequences_match_the_model"],
    );
}

#[test]
fn accepting_a_lower_epoch_is_caught() {
    assert_fails_exactly(
        &broken(FailoverFault::AcceptsLowerEpoch),
        &["failover::lower_epochs_are_fenced", "failover::sequences_match_the_model"],
    );
}

#[test]
fn a_lease_longer_than_the_grace_is_caught() {
    assert_fails_exactly(
        &broken(FailoverFault::LeaseLongerThanGrace),
        &["failover::lease_ends_before_the_grace_period", "failover::sequences_match_the_model"],
    );
}
