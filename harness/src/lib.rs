//! # strata-harness
//!
//! Strata's test kit, used as a dev-dependency: the conformance suites every component
//! runs ([`conformance`]), the fault-injecting in-memory file system of the power-loss
//! tests ([`sim_fs`]), the crash-test writer ([`crash`]), the history checker of the
//! failover fault tests ([`history`]), the fault-injecting TCP proxy put between nodes
//! ([`proxy`]) and the small-sized variant of the default stack tests use ([`stack`]).
//! Workloads and peer engines live in the `strata-bench` crate.

pub mod conformance;
pub mod crash;
pub mod history;
pub mod proxy;
pub mod seeded;
pub mod sim_fs;
pub mod stack;
