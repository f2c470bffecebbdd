//! The engine conformance suite (`strata_harness::conformance::engine`) on the default
//! stack (file WAL, skiplist memtable, mmap tables, leveled compaction) at tiny sizes,
//! so every model step flushes and compacts.

use strata_harness::conformance::engine::{self, EngineCaps};
use strata_harness::stack::tiny_builder;

#[test]
fn default_stack_conforms() {
    let stack = |dir: &std::path::Path, fs| tiny_builder(dir, fs, 2048, 8 * 1024);
    engine::run(&stack, EngineCaps::default()).assert_ok();
}
