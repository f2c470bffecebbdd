//! The memtable conformance suite (`strata_harness::conformance::memtable`) on the
//! vector memtable.

use std::sync::Arc;

use strata_harness::conformance::memtable::{self, MemTableCaps};
use strata_memtable_vector::VectorFactory;

#[test]
fn vector_memtable_conforms() {
    memtable::run(Arc::new(VectorFactory::new()), MemTableCaps::default()).assert_ok();
}
