//! Test scaffolding for compaction policies, shared by every policy crate's tests and by
//! the suite itself: table builders for hand-made views, a splitmix64 generator, and
//! [`ModelTree`], a model LSM tree whose tables hold real (key, sequence, kind) entries
//! and which runs a policy's tasks — merges, moves and drops — the way the engine does,
//! checking the tree after each one.

use std::collections::HashSet;

use bytes::Bytes;
use strata_core::compaction::{TaskKind, validate_task};
use strata_core::{CompactionPolicy, CompactionTask, FileNo, LevelsView, SeqNo, TableMeta};

/// A non-empty table with string keys: 10 entries, no tombstones, `min_seq` 5 below
/// `max_seq`.
pub fn t(no: u64, lo: &str, hi: &str, size: u64, max_seq: u64) -> TableMeta {
    TableMeta {
        file_no: FileNo(no),
        size_bytes: size,
        smallest_key: Bytes::copy_from_slice(lo.as_bytes()),
        largest_key: Bytes::copy_from_slice(hi.as_bytes()),
        min_seq: SeqNo(max_seq.saturating_sub(5)),
        max_seq: SeqNo(max_seq),
        entries: 10,
        tombstones: 0,
    }
}

/// Like [`t`], but every entry is a tombstone.
pub fn tombstones(no: u64, lo: &str, hi: &str, size: u64, max_seq: u64) -> TableMeta {
    TableMeta { tombstones: 10, ..t(no, lo, hi, size, max_seq) }
}

/// A table holding no entries (it overlaps nothing).
pub fn empty(no: u64, size: u64) -> TableMeta {
    TableMeta { file_no: FileNo(no), size_bytes: size, ..TableMeta::default() }
}

/// A key as 4 big-endian bytes, so byte order is numeric order.
pub fn key(k: u32) -> Bytes {
    Bytes::copy_from_slice(&k.to_be_bytes())
}

/// A busy set from file numbers.
pub fn busy(nos: &[u64]) -> HashSet<FileNo> {
    nos.iter().map(|&n| FileNo(n)).collect()
}

/// File numbers the task reads from `level`, in task order.
pub fn files(task: &CompactionTask, level: usize) -> Vec<u64> {
    task.inputs
        .iter()
        .filter(|i| i.level == level)
        .flat_map(|i| i.tables.iter().map(|f| f.0))
        .collect()
}

/// Every file number the task reads, in task order.
pub fn all_files(task: &CompactionTask) -> Vec<u64> {
    task.tables().map(|f| f.0).collect()
}

/// Picks, checks the answer with [`validate_task`] and that a second pick gives the same
/// answer, and hands it back. Panics (naming the policy and the clause) otherwise.
pub fn pick_checked(
    policy: &dyn CompactionPolicy,
    view: &LevelsView,
    busy: &HashSet<FileNo>,
) -> Option<CompactionTask> {
    let task = policy.pick(view, busy);
    if let Some(task) = &task
        && let Err(why) = validate_task(view, busy, policy.levels(), task)
    {
        panic!("{} broke the contract: {why}\n{task:#?}", policy.name());
    }
    assert_eq!(policy.pick(view, busy), task, "{}: pick is not deterministic", policy.name());
    task
}

/// splitmix64: a tiny deterministic generator for simulations.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den.max(1) < num
    }
}

/// One version of one key in a [`ModelTree`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// The key (see [`key`] for its bytes).
    pub key: u32,
    /// Its sequence.
    pub seq: u64,
    /// A tombstone rather than a put.
    pub delete: bool,
}

/// A table of a [`ModelTree`]: its metadata and its entries, sorted by key, one version
/// per key.
#[derive(Clone, Debug)]
pub struct ModelTable {
    /// What a policy sees.
    pub meta: TableMeta,
    /// What a read sees.
    pub entries: Vec<ModelEntry>,
}

/// A model LSM tree: flushes add L0 tables, [`ModelTree::apply`] runs a task as the
/// engine would (merges keep the newest version of each key and drop tombstones nothing
/// below needs; moves re-file tables; drops remove them), and every step is checked:
/// outputs never overlap a table of L1 or deeper, moves land on free ranges, drops
/// remove only tombstones, and [`ModelTree::check_reads`] finds the latest write of
/// every key. Write amplification counts bytes flushed and bytes merges wrote; moves
/// and drops write nothing.
#[derive(Debug)]
pub struct ModelTree {
    /// Tables per level; L0 newest first, deeper levels sorted by key.
    pub levels: Vec<Vec<ModelTable>>,
    next_file: u64,
    next_seq: u64,
    /// The latest write of each key: sequence and whether it was a delete.
    latest: Vec<Option<(u64, bool)>>,
    entry_bytes: u64,
    /// Bytes of tables written by flushes.
    pub flushed_bytes: u64,
    /// Bytes of tables written by merges.
    pub merged_bytes: u64,
    /// Tables moved by moves.
    pub moved_tables: u64,
    /// Tables removed by drops.
    pub dropped_tables: u64,
}

impl ModelTree {
    /// An empty tree of `levels` levels over the keys `0..keys`, each entry taking
    /// `entry_bytes` bytes.
    pub fn new(levels: usize, keys: u32, entry_bytes: u64) -> Self {
        ModelTree {
            levels: (0..levels).map(|_| Vec::new()).collect(),
            next_file: 1,
            next_seq: 1,
            latest: vec![None; keys as usize],
            entry_bytes,
            flushed_bytes: 0,
            merged_bytes: 0,
            moved_tables: 0,
            dropped_tables: 0,
        }
    }

    /// What a policy sees.
    pub fn view(&self) -> LevelsView {
        LevelsView {
            levels: self
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta.clone()).collect())
                .collect(),
        }
    }

    fn table(&mut self, entries: Vec<ModelEntry>) -> ModelTable {
        let file_no = FileNo(self.next_file);
        self.next_file += 1;
        let meta = TableMeta {
            file_no,
            size_bytes: entries.len() as u64 * self.entry_bytes,
            smallest_key: key(entries.first().map_or(0, |e| e.key)),
            largest_key: key(entries.last().map_or(0, |e| e.key)),
            min_seq: SeqNo(entries.iter().map(|e| e.seq).min().unwrap_or(0)),
            max_seq: SeqNo(entries.iter().map(|e| e.seq).max().unwrap_or(0)),
            entries: entries.len() as u64,
            tombstones: entries.iter().filter(|e| e.delete).count() as u64,
        };
        ModelTable { meta, entries }
    }

    /// A memtable of puts of `keys` becomes the newest L0 table.
    pub fn flush(&mut self, keys: &[u32]) {
        let ops: Vec<(u32, bool)> = keys.iter().map(|&k| (k, false)).collect();
        self.flush_ops(&ops);
    }

    /// A memtable of `(key, delete)` writes becomes the newest L0 table (the last write
    /// of a key in the batch wins). Nothing happens for an empty batch.
    pub fn flush_ops(&mut self, ops: &[(u32, bool)]) {
        let mut last: Vec<(u32, bool)> = Vec::new();
        for &(k, delete) in ops.iter().rev() {
            if !last.iter().any(|&(x, _)| x == k) {
                last.push((k, delete));
            }
        }
        if last.is_empty() {
            return;
        }
        last.sort_unstable_by_key(|&(k, _)| k);
        let entries: Vec<ModelEntry> = last
            .into_iter()
            .map(|(k, delete)| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.latest[k as usize] = Some((seq, delete));
                ModelEntry { key: k, seq, delete }
            })
            .collect();
        let t = self.table(entries);
        self.flushed_bytes += t.meta.size_bytes;
        self.levels[0].insert(0, t);
    }

    /// Takes the task's input tables out of the tree.
    fn take_inputs(&mut self, task: &CompactionTask) -> Vec<ModelTable> {
        let mut taken = Vec::new();
        for input in &task.inputs {
            for no in &input.tables {
                let level = &mut self.levels[input.level];
                let at = level.iter().position(|t| t.meta.file_no == *no).unwrap_or_else(|| {
                    panic!("{no} vanished from L{} while its task ran", input.level)
                });
                taken.push(level.remove(at));
            }
        }
        taken
    }

    /// Files `t` in level `out`, checking that L1+ stays sorted and disjoint.
    fn place(&mut self, out: usize, t: ModelTable, why: &str) {
        let level = &mut self.levels[out];
        if out == 0 {
            level.push(t);
            level.sort_by_key(|t| std::cmp::Reverse(t.meta.max_seq));
            return;
        }
        for other in level.iter() {
            assert!(
                !other.meta.overlaps(&t.meta.smallest_key, &t.meta.largest_key),
                "{why}: table {} lands on L{out} table {} that is not an input",
                t.meta.file_no,
                other.meta.file_no
            );
        }
        let at = level.partition_point(|o| o.meta.smallest_key < t.meta.smallest_key);
        level.insert(at, t);
    }

    /// Whether a table of a level deeper than `out` holds `k`.
    fn below_holds(&self, out: usize, k: u32) -> bool {
        self.levels
            .iter()
            .skip(out + 1)
            .flatten()
            .any(|t| t.entries.binary_search_by_key(&k, |e| e.key).is_ok())
    }

    /// Runs `task` as the engine would (no snapshots are held in the model).
    pub fn apply(&mut self, task: &CompactionTask) {
        let out = task.output_level;
        match task.kind {
            TaskKind::Move => {
                for t in self.take_inputs(task) {
                    self.moved_tables += 1;
                    self.place(out, t, &format!("move `{}`", task.reason));
                }
            }
            TaskKind::Drop => {
                for t in self.take_inputs(task) {
                    assert!(
                        t.entries.iter().all(|e| e.delete),
                        "drop `{}` removes table {} holding puts",
                        task.reason,
                        t.meta.file_no
                    );
                    self.dropped_tables += 1;
                }
            }
            TaskKind::Merge => {
                let mut merged: Vec<ModelEntry> =
                    self.take_inputs(task).into_iter().flat_map(|t| t.entries).collect();
                merged.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(b.seq.cmp(&a.seq)));
                merged.dedup_by_key(|e| e.key);
                if out > 0 {
                    merged.retain(|e| !e.delete || self.below_holds(out, e.key));
                }
                let per_file = usize::try_from(task.target_file_size / self.entry_bytes.max(1))
                    .unwrap_or(usize::MAX)
                    .max(1);
                for chunk in merged.chunks(per_file) {
                    let t = self.table(chunk.to_vec());
                    self.merged_bytes += t.meta.size_bytes;
                    self.place(out, t, &format!("merge `{}`", task.reason));
                }
            }
        }
    }

    /// Applies the policy's tasks (each checked with [`pick_checked`]) until it has
    /// none; returns how many ran. Panics after `max_tasks`.
    pub fn settle(&mut self, policy: &dyn CompactionPolicy, max_tasks: usize) -> usize {
        let mut n = 0;
        while let Some(task) = pick_checked(policy, &self.view(), &HashSet::new()) {
            self.apply(&task);
            n += 1;
            assert!(n <= max_tasks, "{} never settles: {n} tasks", policy.name());
        }
        n
    }

    /// For every `step`-th key, a top-down read (L0 newest first, then each level)
    /// meets versions in strictly decreasing sequence order, and answers with the
    /// latest write (a key last deleted, or never written, reads as absent). Also
    /// checks that every level below L0 is sorted and disjoint.
    pub fn check_reads(&self, step: usize) {
        let step = step.max(1);
        // The first version a read meets, and the last one met on the way down.
        let mut first: Vec<Option<ModelEntry>> = vec![None; self.latest.len()];
        let mut above: Vec<Option<ModelEntry>> = vec![None; self.latest.len()];
        for (l, level) in self.levels.iter().enumerate() {
            for t in level {
                for e in t.entries.iter().filter(|e| (e.key as usize).is_multiple_of(step)) {
                    let k = e.key as usize;
                    if let Some(prev) = above[k] {
                        assert!(
                            e.seq < prev.seq,
                            "key {k}: version {} in L{l} (table {}) sits below the older version {}",
                            e.seq,
                            t.meta.file_no,
                            prev.seq
                        );
                    } else {
                        first[k] = Some(*e);
                    }
                    above[k] = Some(*e);
                }
            }
        }
        for (k, (latest, met)) in self.latest.iter().zip(&first).enumerate().step_by(step) {
            let read = met.filter(|e| !e.delete).map(|e| e.seq);
            let want = latest.filter(|&(_, delete)| !delete).map(|(seq, _)| seq);
            assert_eq!(
                read, want,
                "key {k}: a read meets {met:?} first, the latest write is {latest:?}"
            );
        }
        for (l, level) in self.levels.iter().enumerate().skip(1) {
            assert!(
                level.windows(2).all(|w| w[0].meta.largest_key < w[1].meta.smallest_key),
                "L{l} is not sorted and disjoint"
            );
        }
    }

    /// Bytes per level.
    pub fn sizes(&self) -> Vec<u64> {
        self.levels.iter().map(|l| l.iter().map(|t| t.meta.size_bytes).sum()).collect()
    }

    /// Entries stored over all tables.
    pub fn stored_entries(&self) -> u64 {
        self.levels.iter().flatten().map(|t| t.meta.entries).sum()
    }

    /// Keys whose latest write is a put.
    pub fn live_keys(&self) -> u64 {
        self.latest.iter().filter(|l| l.is_some_and(|(_, delete)| !delete)).count() as u64
    }

    /// `stored_entries / live_keys`.
    pub fn space_amplification(&self) -> f64 {
        self.stored_entries() as f64 / self.live_keys().max(1) as f64
    }

    /// `(flushed + merged bytes) / flushed bytes`.
    pub fn write_amplification(&self) -> f64 {
        (self.flushed_bytes + self.merged_bytes) as f64 / self.flushed_bytes.max(1) as f64
    }
}
