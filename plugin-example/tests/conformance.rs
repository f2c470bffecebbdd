//! The example memtable keeps the `MemTable` contract, alone and inside a whole store:
//! the harness's memtable and engine suites, through the plugin's registered `build`
//! function with default options (as a stack file would build it).

use std::sync::Arc;

use strata_harness::conformance::engine::{self, EngineCaps};
use strata_harness::conformance::memtable::{self, MemTableCaps};

fn factory() -> Arc<dyn strata_core::MemTableFactory> {
    (strata_plugin_example::PLUGIN.build)(&Default::default()).expect("default options build")
}

#[test]
fn example_btree_conforms_to_the_memtable_suite() {
    memtable::run(factory(), MemTableCaps::default()).assert_ok();
}

#[test]
fn a_store_on_example_btree_conforms_to_the_engine_suite() {
    let caps = EngineCaps::default();
    let size = caps.memtable_size_bytes;
    let stack = move |dir: &std::path::Path, fs| {
        strata_harness::stack::tiny_builder(dir, fs, size, 16 * 1024).with_memtable(factory())
    };
    engine::run(&stack, caps).assert_ok();
}
