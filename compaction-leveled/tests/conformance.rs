//! The compaction conformance suite (`strata_harness::conformance::compaction`) on the
//! leveled policy, with the default shape and with tiny sizes and few levels (so random
//! trees are far over their targets and tasks reach the last level).

use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_harness::conformance::compaction::{self, CompactionCaps};

#[test]
fn leveled_policy_with_default_options_conforms() {
    compaction::run(Arc::new(LeveledPolicy::default()), CompactionCaps::default()).assert_ok();
}

#[test]
fn leveled_policy_with_tiny_options_conforms() {
    let options = LeveledOptions {
        levels: 4,
        l0_trigger_files: 2,
        l0_max_bytes: 64 * 1024,
        l1_max_bytes: 64 * 1024,
        level_size_multiplier: 3,
        target_file_size: 16 * 1024,
        max_compaction_bytes: Some(256 * 1024),
        ..LeveledOptions::default()
    };
    let policy = LeveledPolicy::new(options).expect("tiny options are valid");
    compaction::run(Arc::new(policy), CompactionCaps::default()).assert_ok();
}

#[test]
fn leveled_policy_with_static_targets_conforms() {
    let options = LeveledOptions { dynamic_level_bytes: false, ..LeveledOptions::default() };
    let policy = LeveledPolicy::new(options).expect("static targets are valid");
    compaction::run(Arc::new(policy), CompactionCaps::default()).assert_ok();
}
