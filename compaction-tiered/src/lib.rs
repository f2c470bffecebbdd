//! # strata-compaction-tiered
//!
//! A size-tiered ("universal") [`strata_core::CompactionPolicy`] for Strata, name
//! `"tiered"`: [`TieredPolicy`], configured by [`TieredOptions`]. `strata-plugins`
//! registers it as the `compaction = "tiered"` plugin (options: the fields of
//! [`TieredOptions`]).
//!
//! Instead of keeping every level at ten times the one above it (leveled compaction,
//! `strata-compaction-leveled`), the tree is a short list of *sorted runs* — the L0
//! tables, then one run per deeper level, older and larger the deeper it is — and runs
//! are merged only with runs of about their own size. A byte is therefore rewritten
//! about once per doubling of the data written after it, instead of about
//! `multiplier / 2 + 1` times per level it passes through.
//!
//! ## When to prefer it over leveled
//!
//! | | tiered | leveled |
//! |---|---|---|
//! | write amplification | low (≈ log₂ of data / L0 batch, and ≈ 2 for keys that only grow) | high (≈ 5–10 per level) for random keys; 1 for keys that only grow (tables move down without a rewrite) |
//! | space amplification | up to `1 + max_space_amplification_percent / 100` (3× by default) before a full merge | ≈ 1.1× |
//! | read amplification | up to `min_merge_width − 1` L0 tables + one run per level | L0 tables + one table per level |
//! | compaction I/O | bursty: occasional full merges rewrite the whole tree | steady, small tasks |
//!
//! Prefer **tiered** for write-heavy data that is read rarely or mostly recently:
//! event logs, trade and order archives, audit trails, metrics — especially with
//! monotonically increasing keys (order ids, timestamps), where new runs do not
//! overlap old ones and are placed below without rewriting them (leveled moves such
//! tables down without a rewrite too, and writes them exactly once). Prefer **leveled**
//! when reads dominate, when keys are updated in place at random (so duplicates pile
//! up in the runs), or when disk space is tight: a full merge needs free space for a
//! second copy of the tree while it runs.
//!
//! ## How it decides
//!
//! See [`TieredPolicy`] for the exact rules: a space-amplification merge of everything
//! into the bottom level when the bytes above the bottom exceed
//! `max_space_amplification_percent` of it, otherwise a merge of all L0 tables (with the
//! following runs of similar size) once L0 holds `min_merge_width` tables. The policy
//! is a pure function of the [`strata_core::LevelsView`] and the busy set and obeys the
//! [`strata_core::CompactionPolicy`] contract, checked by
//! [`strata_core::compaction::validate_task`].
//!
//! ```
//! use std::collections::HashSet;
//! use strata_compaction_tiered::{TieredOptions, TieredPolicy};
//! use strata_core::{CompactionPolicy, LevelsView};
//!
//! let policy = TieredPolicy::new(TieredOptions { min_merge_width: 6, ..TieredOptions::default() })?;
//! assert_eq!(policy.name(), "tiered");
//! // An empty tree is within its targets.
//! assert_eq!(policy.pick(&LevelsView::default(), &HashSet::new()), None);
//! # Ok::<(), strata_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod options;
mod policy;

pub use options::TieredOptions;
pub use policy::TieredPolicy;
