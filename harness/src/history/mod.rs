//! Histories of a replicated cluster under faults, and the checker that judges them.
//!
//! A fault test records what its clients and observers saw as [`Event`]s in a
//! [`History`] — every write's invoke and outcome, every epoch a node reported, every
//! promotion with the in-sync set it was chosen from, every batch a subscriber received —
//! and, once the faults have healed and the cluster has converged, each node's final
//! log as [`FinalNode`]s. [`check`] then verifies the invariants of DESIGN §7 and
//! returns every [`Violation`] it finds, each naming its [`Clause`]:
//!
//! 1. at most one node acknowledges writes in any epoch, and a node's epoch never
//!    decreases (also across restarts);
//! 2. every acknowledged write is in the final log at the sequence and epoch it was
//!    acknowledged with — in asynchronous mode, except inside a reported unreplicated
//!    window;
//! 3. committed prefixes are identical across nodes, sequences dense, no entry
//!    duplicated or written by nobody; a subscriber never holds a batch that was later
//!    truncated without being told;
//! 4. only members of the in-sync set are promoted (unless forced by an operator), and
//!    every promotion bumps the epoch;
//! 5. after healing there is exactly one primary and every replica has converged.
//!
//! The checker is plain data in, plain data out, so it is itself tested against a
//! model cluster (valid histories pass, each kind of damage is caught).

mod check;
mod record;

pub use check::{Clause, Mode, UnreplicatedWindow, Violation, check};
pub use record::{Event, FinalNode, History, LogEntry, OpId};

#[cfg(test)]
mod tests;
