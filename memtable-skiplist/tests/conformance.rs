//! The memtable conformance suite (`strata_harness::conformance::memtable`) on the
//! crossbeam skiplist memtable.

use std::sync::Arc;

use strata_harness::conformance::memtable::{self, MemTableCaps};
use strata_memtable_skiplist::SkipListFactory;

#[test]
fn skiplist_memtable_conforms() {
    memtable::run(Arc::new(SkipListFactory), MemTableCaps::default()).assert_ok();
}
