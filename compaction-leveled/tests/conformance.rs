//! The compaction conformance suite (`strata_harness::conformance::compaction`) on the
//! leveled policy, with the default shape, with static level targets, and with tiny
//! sizes and few levels (so random trees are far over their targets and tasks reach the
//! last level).

use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_harness::conformance::compaction::assert_conforms;

fn leveled(options: LeveledOptions) -> Arc<LeveledPolicy> {
    Arc::new(LeveledPolicy::new(options).expect("valid options"))
}

#[test]
fn leveled_policy_with_default_options_conforms() {
    assert_conforms(leveled(LeveledOptions::default()));
}

#[test]
fn leveled_policy_with_static_targets_conforms() {
    assert_conforms(leveled(LeveledOptions { dynamic_level_bytes: false, ..Default::default() }));
}

#[test]
fn leveled_policy_with_tiny_options_conforms() {
    assert_conforms(leveled(LeveledOptions {
        levels: 4,
        l0_trigger_files: 2,
        l0_max_bytes: 64 * 1024,
        l1_max_bytes: 64 * 1024,
        level_size_multiplier: 3,
        target_file_size: 16 * 1024,
        max_compaction_bytes: Some(256 * 1024),
        ..LeveledOptions::default()
    }));
}
