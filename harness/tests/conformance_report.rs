//! The report and the capability gates themselves: a capability switched off shows up
//! as a skipped check (not a silent pass), and `assert_ok` panics listing every failure.

use std::sync::Arc;

use strata_harness::conformance::broken::FutureVersionMemTable;
use strata_harness::conformance::memtable::{self, MemTableCaps};
use strata_harness::conformance::{CheckStatus, Report};
use strata_memtable_skiplist::SkipListFactory;

#[test]
fn switched_off_capabilities_are_reported_as_skipped() {
    let caps =
        MemTableCaps::default().with_concurrent_insert(false).with_exact_memory_accounting(false);
    let report = memtable::run(Arc::new(SkipListFactory), caps);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.skipped(), vec!["memtable::concurrent_inserts_are_all_visible"]);
    assert_eq!(report.passed().len() + report.skipped().len(), report.outcomes.len());
    assert!(report.to_string().contains("skipped memtable::concurrent_inserts_are_all_visible"));
}

#[test]
fn assert_ok_panics_with_every_failure_listed() {
    let report: Report = memtable::run(
        Arc::new(FutureVersionMemTable(Arc::new(SkipListFactory))),
        MemTableCaps::default(),
    );
    let failures = report.failures();
    assert!(failures.len() >= 2, "{report}");
    let panic = std::panic::catch_unwind(|| report.assert_ok()).expect_err("assert_ok must panic");
    let text =
        panic.downcast_ref::<String>().cloned().expect("assert_ok panics with a formatted message");
    for (name, message) in failures {
        assert!(text.contains(name), "{name} missing from the panic message:\n{text}");
        assert!(text.contains(message), "the message of {name} is missing:\n{text}");
    }
    assert!(
        report
            .outcomes
            .iter()
            .any(|o| matches!(&o.status, CheckStatus::Failed(m) if m.contains("expected"))),
        "failure messages say what was expected:\n{report}"
    );
}
