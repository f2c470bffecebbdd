//! The knobs of the leveled policy.

use strata_core::{Error, Result};

const MIB: u64 = 1 << 20;

/// Shape of the leveled tree. Every field is public; start from [`Default`] and change
/// what you need, then let [`crate::LeveledPolicy::new`] check the combination.
///
/// ```
/// use strata_compaction_leveled::LeveledOptions;
///
/// let opts = LeveledOptions { levels: 5, l1_max_bytes: 64 << 20, ..LeveledOptions::default() };
/// assert!(opts.validate().is_ok());
/// assert!(LeveledOptions { level_size_multiplier: 1, ..opts }.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeveledOptions {
    /// Number of levels, L0 included (default 7: L0..L6). At least 2 and at most
    /// [`LeveledOptions::MAX_LEVELS`]. The last level has no size target: it never
    /// compacts down.
    pub levels: usize,
    /// L0 compacts once it holds at least this many tables (default 4). Every L0 table
    /// is a sorted run a read may have to visit, so this bounds read amplification.
    pub l0_trigger_files: usize,
    /// L0 also compacts once its tables total at least this many bytes (default
    /// 40 MiB), so a few large flushes cannot pile up unbounded.
    pub l0_max_bytes: u64,
    /// Static target size of L1 in bytes (default 400 MiB).
    pub l1_max_bytes: u64,
    /// Each level below L1 may hold this many times the level above it (default 10):
    /// the static targets are `max_bytes(Ln) = l1_max_bytes × multiplier^(n−1)`. At
    /// least 2.
    pub level_size_multiplier: u64,
    /// Derive the targets of L1 and deeper levels from the bottom of the tree instead of
    /// using the static ones (default `true`; RocksDB's
    /// `level_compaction_dynamic_level_bytes`).
    ///
    /// Static targets fit a tree only when its bottom level happens to be full: with
    /// 2.2 GiB of live data, L2's static target is 4 GiB, so L1 may keep its full
    /// 400 MiB on top of it and the tree settles at about 1.2× the live bytes. With
    /// dynamic targets, when `d ≥ 2` is the deepest level holding bytes, `Ld`'s target
    /// is `max(bytes(Ld), static target)` and every level `1 ≤ l < d` gets
    /// `max(bytes(Ld) / multiplier^(d−l), floor)`, so each level is about
    /// `1/multiplier` of the one below and, once the bottom outgrows the floor, the
    /// levels above it hold at most about `1/(multiplier − 1)` of its bytes (1/9 with
    /// ×10; `1/multiplier` when L1 is the only level above it). The floor is
    /// [`crate::LeveledPolicy::dynamic_level_floor`]. While only L1 (or nothing) holds
    /// data the static targets apply. See
    /// [`crate::LeveledPolicy::max_bytes_for_level_in`].
    pub dynamic_level_bytes: bool,
    /// Output files are cut at about this size (default 32 MiB); every task carries it.
    pub target_file_size: u64,
    /// Preferred upper bound on the input bytes of one L1+ task (the chosen table plus
    /// the tables it overlaps one level down); default `Some(25 × 32 MiB)` = 800 MiB,
    /// `None` for no bound.
    ///
    /// It is a preference, not a hard limit: candidates over the bound are picked only
    /// when no candidate of the level fits under it, so a level can never get stuck
    /// above its target. It does not apply to L0 tasks, which must read all of L0's
    /// overlap in L1 to keep the tree's invariants.
    pub max_compaction_bytes: Option<u64>,
}

impl LeveledOptions {
    /// The largest accepted `levels`. Deeper trees make no sense: with the smallest
    /// multiplier (2) the size targets already exceed `u64` well before 64 levels.
    pub const MAX_LEVELS: usize = 64;

    /// Checks that the options describe a tree the policy can maintain.
    ///
    /// Returns [`Error::Config`] naming the offending field when `levels` is outside
    /// `2..=MAX_LEVELS`, `l0_trigger_files` is 0, a size (`l0_max_bytes`,
    /// `l1_max_bytes`, `target_file_size`, `max_compaction_bytes`) is 0, or
    /// `level_size_multiplier` is below 2.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, rule: &str, got: impl std::fmt::Display) -> Result<()> {
            Err(Error::Config(format!("leveled compaction option `{field}` {rule} (got {got})")))
        }
        if self.levels < 2 || self.levels > Self::MAX_LEVELS {
            return bad(
                "levels",
                &format!(
                    "must be between 2 and {} (L0 needs a level to compact into)",
                    Self::MAX_LEVELS
                ),
                self.levels,
            );
        }
        if self.l0_trigger_files == 0 {
            return bad("l0_trigger_files", "must be at least 1", 0);
        }
        if self.l0_max_bytes == 0 {
            return bad("l0_max_bytes", "must be greater than 0", 0);
        }
        if self.l1_max_bytes == 0 {
            return bad("l1_max_bytes", "must be greater than 0", 0);
        }
        if self.level_size_multiplier < 2 {
            return bad("level_size_multiplier", "must be at least 2", self.level_size_multiplier);
        }
        if self.target_file_size == 0 {
            return bad("target_file_size", "must be greater than 0", 0);
        }
        if self.max_compaction_bytes == Some(0) {
            return bad("max_compaction_bytes", "must be greater than 0, or None for no bound", 0);
        }
        Ok(())
    }
}

impl Default for LeveledOptions {
    /// The shape from the design: 7 levels, L0 at 4 files or 40 MiB, L1 400 MiB, ×10 per
    /// level, dynamic level targets, 32 MiB files, tasks of at most about 800 MiB.
    fn default() -> Self {
        LeveledOptions {
            levels: 7,
            l0_trigger_files: 4,
            l0_max_bytes: 40 * MIB,
            l1_max_bytes: 400 * MIB,
            level_size_multiplier: 10,
            dynamic_level_bytes: true,
            target_file_size: 32 * MIB,
            max_compaction_bytes: Some(25 * 32 * MIB),
        }
    }
}
