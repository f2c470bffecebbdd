//! Block-based SSTable for Strata (work in progress in this commit).
