//! Model test: the skiplist memtable against the harness's `BTreeMap` model
//! (`strata_harness::conformance::memtable::model`), with random inserts (colliding keys,
//! sequences arriving out of order), then random point lookups and random range scans at
//! random snapshots. Outputs are compared exactly.

use std::sync::Arc;

use proptest::prelude::*;
use strata_harness::conformance::memtable::model::{check_model, random_case};
use strata_memtable_skiplist::SkipListMemTable;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_btreemap_model(case in random_case()) {
        check_model(Arc::new(SkipListMemTable::new()), &case)?;
    }
}
