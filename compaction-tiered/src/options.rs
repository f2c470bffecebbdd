//! The knobs of the tiered policy.

use strata_core::{Error, Result};

const MIB: u64 = 1 << 20;

/// Shape of the tiered tree. Every field is public; start from [`Default`] and change
/// what you need, then let [`crate::TieredPolicy::new`] check the combination.
///
/// ```
/// use strata_compaction_tiered::TieredOptions;
///
/// let opts = TieredOptions { min_merge_width: 8, ..TieredOptions::default() };
/// assert!(opts.validate().is_ok());
/// assert!(TieredOptions { min_merge_width: 1, ..opts }.validate().is_err());
/// ```
///
/// As the `compaction = "tiered"` plugin, the options are these fields by name (any
/// left out keep their default; unknown names are rejected).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TieredOptions {
    /// Number of levels, L0 included (default 7). At least 2 and at most
    /// [`TieredOptions::MAX_LEVELS`]. L0 holds flushed tables (one sorted run each);
    /// every deeper level holds at most one sorted run, older and larger the deeper it
    /// is. More levels allow more runs to coexist (lower write amplification, higher
    /// read amplification); 7 matches the leveled default, so a store can switch
    /// between the two policies without moving data.
    pub levels: usize,
    /// L0 is merged once it holds at least this many tables (default 4, at least 2).
    /// Every L0 table is a sorted run a read may visit, so this bounds L0's share of
    /// read amplification to `min_merge_width - 1` runs between merges.
    pub min_merge_width: usize,
    /// How much larger than the runs merged so far the next older run may be and still
    /// be merged with them, in percent (default 20: the next run joins when it is at
    /// most 1.2× the accumulated size).
    ///
    /// RocksDB's universal compaction defaults to 1 %; this policy defaults to 20 %
    /// because its runs are built from whole groups of flushes whose sizes vary with
    /// compression and with how full the memtable was when it rotated. With 1 % two
    /// "equal" runs of 4 flushes each would often fail to merge and the tree would
    /// carry one extra run; 20 % still keeps merges between runs of roughly equal size,
    /// which is what bounds write amplification to about one rewrite per doubling.
    pub size_ratio_percent: u64,
    /// Merge everything into the bottom run once the bytes above the bottom exceed
    /// this percentage of the bottom's bytes (default 200: the tree may hold up to 3×
    /// the bottom's bytes). This is RocksDB universal's estimate: it counts bytes, not
    /// duplicates, so with keys that never repeat (sequential ids) it overstates the
    /// real amplification. At least 1.
    pub max_space_amplification_percent: u64,
    /// Output files written into L1 and deeper are cut at about this size (default
    /// 64 MiB). Merges whose output stays in L0 write one table, whatever its size, so
    /// that one merge always makes exactly one L0 run.
    pub target_file_size: u64,
}

impl TieredOptions {
    /// The largest accepted `levels`.
    pub const MAX_LEVELS: usize = 64;

    /// Checks that the options describe a tree the policy can maintain.
    ///
    /// Returns [`Error::Config`] naming the offending field when `levels` is outside
    /// `2..=MAX_LEVELS`, `min_merge_width` is below 2, `max_space_amplification_percent`
    /// is 0, or `target_file_size` is 0.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, rule: &str, got: impl std::fmt::Display) -> Result<()> {
            Err(Error::Config(format!("tiered compaction option `{field}` {rule} (got {got})")))
        }
        if self.levels < 2 || self.levels > Self::MAX_LEVELS {
            return bad(
                "levels",
                &format!(
                    "must be between 2 and {} (L0 needs a level to merge into)",
                    Self::MAX_LEVELS
                ),
                self.levels,
            );
        }
        if self.min_merge_width < 2 {
            return bad(
                "min_merge_width",
                "must be at least 2 (merging one table would not reduce the run count)",
                self.min_merge_width,
            );
        }
        if self.max_space_amplification_percent == 0 {
            return bad("max_space_amplification_percent", "must be at least 1", 0);
        }
        if self.target_file_size == 0 {
            return bad("target_file_size", "must be greater than 0", 0);
        }
        Ok(())
    }
}

impl Default for TieredOptions {
    /// 7 levels, merge at 4 L0 tables, size ratio 20 %, space amplification 200 %,
    /// 64 MiB output files.
    fn default() -> Self {
        TieredOptions {
            levels: 7,
            min_merge_width: 4,
            size_ratio_percent: 20,
            max_space_amplification_percent: 200,
            target_file_size: 64 * MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(opts: &TieredOptions) -> String {
        match opts.validate() {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_validate_and_each_bad_field_is_named() {
        let d = TieredOptions::default();
        assert!(d.validate().is_ok());
        let cases: Vec<(TieredOptions, &str)> = vec![
            (TieredOptions { levels: 1, ..d.clone() }, "`levels`"),
            (TieredOptions { levels: 65, ..d.clone() }, "`levels`"),
            (TieredOptions { min_merge_width: 1, ..d.clone() }, "`min_merge_width`"),
            (
                TieredOptions { max_space_amplification_percent: 0, ..d.clone() },
                "`max_space_amplification_percent`",
            ),
            (TieredOptions { target_file_size: 0, ..d.clone() }, "`target_file_size`"),
        ];
        for (opts, field) in cases {
            let msg = field_of(&opts);
            assert!(msg.contains(field), "{msg} should name {field}");
        }
    }
}
