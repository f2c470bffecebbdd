//! Leveled compaction for Strata: the classic LevelDB/RocksDB shape.
//!
//! The tree has `levels` levels. L0 holds tables flushed from memtables (key ranges may
//! overlap, newest first); every deeper level is a sorted run of disjoint tables whose
//! target size grows by `level_size_multiplier` per level. The static targets are
//! L1 400 MiB, L2 4 GiB, ...; with `dynamic_level_bytes` (the default) the targets of
//! the levels above the deepest non-empty one are derived from that bottom level
//! instead (`bottom / multiplier` for the level right above it, and so on, never below
//! a floor), so a tree whose bottom is far from its static target does not carry a
//! disproportionate L1 — see [`LeveledPolicy::max_bytes_for_level_in`].
//! [`LeveledPolicy`] is the [`strata_core::CompactionPolicy`] that keeps the tree in that
//! shape: it scores every level against its target, and for the most urgent level it
//! picks a task for the engine to run:
//!
//! - **L0** (≥ `l0_trigger_files` tables, or ≥ `l0_max_bytes`): every L0 table (or, if
//!   some are busy, the oldest not-busy ones) plus every L1 table overlapping them,
//!   merged into L1.
//! - **Ln, n ≥ 1** (≥ its target size): one Ln table — the one that costs the least
//!   rewriting per byte moved, see [`LeveledPolicy`] — plus every Ln+1 table overlapping
//!   it, merged into Ln+1.
//! - The last level never compacts down.
//!
//! - A table with nothing to overlap below goes down by a **trivial move** (a manifest
//!   edit, no rewrite), and tables whose every entry is a tombstone with nothing below
//!   them are **dropped**; see [`LeveledPolicy`].
//!
//! The policy is a pure function of the [`strata_core::LevelsView`] and the busy set; it
//! holds no state and does no I/O. Its answers are checked against the
//! [`strata_core::CompactionPolicy`] contract by [`strata_core::compaction::validate_task`],
//! the one validator the engine and the conformance harness use.
//!
//! ```
//! use std::collections::HashSet;
//! use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
//! use strata_core::{CompactionPolicy, LevelsView};
//!
//! let policy = LeveledPolicy::new(LeveledOptions::default())?;
//! let view = LevelsView::default();
//! let busy = HashSet::new();
//! // An empty tree is within its targets.
//! assert_eq!(policy.pick(&view, &busy), None);
//! assert!(policy.level_scores(&view).iter().all(|&s| s == 0.0));
//! # Ok::<(), strata_core::Error>(())
//! ```

mod keys;
mod options;
mod policy;

pub use options::LeveledOptions;
pub use policy::LeveledPolicy;
