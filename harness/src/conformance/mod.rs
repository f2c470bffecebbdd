//! Conformance suites: one per component trait, modelled on Apache OpenDAL's behavior
//! tests, LevelDB's table harness and RocksDB's fault-injection file system.
//!
//! Each suite takes the component under test (a factory, a format or a policy) and a
//! capability table, runs every check whose capabilities are on, and returns a
//! [`Report`]. A check is one contract clause of the trait's rustdoc; its name says which
//! (`wal::sync_append_survives_power_loss`) and its failure message says how it broke
//! (expected vs found). Checks run isolated (`catch_unwind`), so one broken clause does
//! not hide the others, and a check switched off by a capability is listed as skipped
//! rather than silently passing.
//!
//! A plugin crate runs a suite from `tests/conformance.rs` in a few lines:
//!
//! ```no_run
//! use std::sync::Arc;
//! use strata_harness::conformance::{self, wal::WalCaps};
//! let factory = Arc::new(strata_wal_file::FileWalFactory::default());
//! conformance::wal::run(factory, WalCaps::default()).assert_ok();
//! ```
//!
//! The suites are library code (they run inside other crates' tests) and use proptest's
//! [`TestRunner`](proptest::test_runner::TestRunner) programmatically with a fixed seed
//! and a modest number of cases, so they stay fast and reproducible.
//!
//! [`broken`] holds deliberately broken implementations that each break one clause; the
//! harness's own tests prove that every one of them fails the expected checks.

pub mod broken;
pub mod compaction;
pub mod engine;
pub mod failover;
pub mod memtable;
pub mod table;
pub mod transport;
pub mod wal;

mod report;
mod runner;

pub use report::{CheckOutcome, CheckStatus, Report};
