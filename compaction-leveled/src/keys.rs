//! Key-range helpers of the policy.

use strata_core::TableMeta;

/// One level of a view, prepared for repeated overlap queries.
pub(crate) struct LevelIndex<'a> {
    tables: &'a [TableMeta],
    /// Positions of the non-empty tables, in view order.
    live: Vec<usize>,
    /// True when the non-empty tables are sorted and pairwise disjoint (the contract of
    /// L1+), which allows binary search; otherwise queries fall back to a linear scan.
    sorted_disjoint: bool,
}

impl<'a> LevelIndex<'a> {
    pub(crate) fn new(tables: &'a [TableMeta]) -> Self {
        let live: Vec<usize> = (0..tables.len()).filter(|&i| tables[i].entries > 0).collect();
        let sorted_disjoint =
            live.windows(2).all(|w| {
                let (a, b) = (&tables[w[0]], &tables[w[1]]);
                a.smallest_key <= a.largest_key && a.largest_key < b.smallest_key
            }) && live.last().is_none_or(|&i| tables[i].smallest_key <= tables[i].largest_key);
        LevelIndex { tables, live, sorted_disjoint }
    }

    pub(crate) fn tables(&self) -> &'a [TableMeta] {
        self.tables
    }

    /// Positions (in view order) of the smallest set of tables that contains every
    /// table overlapping `[lo, hi]` and is closed: no other table of the level overlaps
    /// the hull of `[lo, hi]` and the returned tables.
    pub(crate) fn overlapping(&self, lo: &[u8], hi: &[u8]) -> Vec<usize> {
        if self.sorted_disjoint {
            // The overlapping tables form one run; the tables left of it end before both
            // `lo` and the run's first table starts, those right of it start after both
            // `hi` and the run's last table ends, so the run is already closed.
            let start = self.live.partition_point(|&i| &*self.tables[i].largest_key < lo);
            let end = self.live.partition_point(|&i| &*self.tables[i].smallest_key <= hi);
            return self.live.get(start..end).map_or_else(Vec::new, <[usize]>::to_vec);
        }
        // Not in the documented shape: grow the range until nothing new overlaps.
        let (mut lo, mut hi) = (lo, hi);
        let mut taken = vec![false; self.tables.len()];
        loop {
            let mut grew = false;
            for &i in &self.live {
                let t = &self.tables[i];
                if !taken[i] && t.overlaps(lo, hi) {
                    taken[i] = true;
                    grew = true;
                    lo = lo.min(&*t.smallest_key);
                    hi = hi.max(&*t.largest_key);
                }
            }
            if !grew {
                break;
            }
        }
        (0..self.tables.len()).filter(|&i| taken[i]).collect()
    }
}

/// A key for messages: printable ASCII as is, other bytes escaped.
pub(crate) fn show(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// A byte count for messages: `900 B`, `3.5 KiB`, `40.0 MiB`.
pub(crate) fn show_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Lossy conversion is fine: this is for humans.
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::FileNo;

    fn t(no: u64, lo: &'static str, hi: &'static str) -> TableMeta {
        TableMeta {
            file_no: FileNo(no),
            size_bytes: 10,
            smallest_key: lo.as_bytes().to_vec().into(),
            largest_key: hi.as_bytes().to_vec().into(),
            entries: 1,
            ..TableMeta::default()
        }
    }

    #[test]
    fn sorted_and_unsorted_levels_give_the_same_closed_sets() {
        let level = vec![t(1, "a", "c"), t(2, "e", "g"), t(3, "i", "k"), t(4, "m", "o")];
        let idx = LevelIndex::new(&level);
        assert!(idx.sorted_disjoint);
        assert_eq!(idx.overlapping(b"b", b"b"), vec![0]);
        assert_eq!(idx.overlapping(b"d", b"d"), Vec::<usize>::new());
        assert_eq!(idx.overlapping(b"c", b"i"), vec![0, 1, 2]);
        assert_eq!(idx.overlapping(b"p", b"z"), Vec::<usize>::new());

        // Overlapping tables (a malformed level) need the fixpoint: "b" touches only
        // table 1, whose range reaches table 2.
        let bad = vec![t(1, "a", "f"), t(2, "e", "g"), t(3, "x", "z")];
        let idx = LevelIndex::new(&bad);
        assert!(!idx.sorted_disjoint);
        assert_eq!(idx.overlapping(b"b", b"b"), vec![0, 1]);
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(show_bytes(900), "900 B");
        assert_eq!(show_bytes(3584), "3.5 KiB");
        assert_eq!(show_bytes(40 << 20), "40.0 MiB");
    }
}
