//! # strata-harness
//!
//! Test support and workloads for Strata: the exchange schema and its seeded workload
//! generator, the fault-injecting in-memory file system used by power-loss tests, and
//! the default stack used by tests and `strata bench`.

pub mod conformance;
pub mod crash;
pub mod exchange;
pub mod peers;
pub mod sim_fs;
pub mod stack;
pub mod workload;
