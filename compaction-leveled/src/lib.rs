//! Leveled compaction policy for Strata (work in progress in this commit).
