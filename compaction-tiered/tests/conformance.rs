//! The compaction conformance suite (`strata_harness::conformance::compaction`) on the
//! tiered policy, with the default shape and with a small, eager shape (few levels,
//! merge at 2 tables, tight space amplification) so random trees trigger every rule.

use std::sync::Arc;

use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_harness::conformance::compaction::assert_conforms;

#[test]
fn tiered_policy_with_default_and_eager_options_conforms() {
    let eager = TieredOptions {
        levels: 3,
        min_merge_width: 2,
        size_ratio_percent: 50,
        max_space_amplification_percent: 50,
        target_file_size: 16 * 1024,
    };
    for options in [TieredOptions::default(), eager] {
        assert_conforms(Arc::new(TieredPolicy::new(options).expect("valid options")));
    }
}
