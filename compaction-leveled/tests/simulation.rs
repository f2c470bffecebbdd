//! Simulation: a model LSM tree whose tables hold real (key, sequence) entries is fed
//! random flushes while the policy's tasks are applied to it — one at a time, and with
//! several tasks running at once. Checks along the way:
//!
//! - every task passes `validate_task`;
//! - L1+ stay sorted and disjoint when outputs land (concurrent tasks included);
//! - for every key, versions in shallower levels (and newer L0 tables) are newer, and
//!   a top-down read finds the latest version written;
//!
//! and at the end, once flushes stop and tasks run until `pick` says `None`: every level
//! but the last is under its target and L0 is below its trigger, and (dynamic level
//! targets being on) the levels above the bottom hold at most half the bottom's bytes.
//!
//! A last run loads an overwrite-heavy workload into a tree shaped like the benchmark
//! that motivated dynamic targets and checks the space amplification it settles at.

mod common;

use std::collections::HashSet;

use common::{Rng, key};
use strata_compaction_leveled::{LeveledOptions, LeveledPolicy, validate_task};
use strata_core::{CompactionPolicy, CompactionTask, FileNo, LevelsView, SeqNo, TableMeta};

/// Bytes one entry takes in the model.
const ENTRY: u64 = 16;
/// Keys are `0..KEYS`.
const KEYS: u32 = 20_000;

struct Table {
    meta: TableMeta,
    /// Sorted by key, one version per key.
    entries: Vec<(u32, u64)>,
}

struct Tree {
    levels: Vec<Vec<Table>>,
    next_file: u64,
    next_seq: u64,
    /// The latest sequence written for every key (0: never written).
    latest: Vec<u64>,
}

impl Tree {
    fn new(levels: usize) -> Self {
        Tree {
            levels: (0..levels).map(|_| Vec::new()).collect(),
            next_file: 1,
            next_seq: 1,
            latest: vec![0; KEYS as usize],
        }
    }

    fn view(&self) -> LevelsView {
        LevelsView {
            levels: self
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta.clone()).collect())
                .collect(),
        }
    }

    fn table(&mut self, entries: Vec<(u32, u64)>) -> Table {
        let file_no = FileNo(self.next_file);
        self.next_file += 1;
        let meta = TableMeta {
            file_no,
            size_bytes: entries.len() as u64 * ENTRY,
            smallest_key: key(entries.first().map_or(0, |e| e.0)),
            largest_key: key(entries.last().map_or(0, |e| e.0)),
            min_seq: SeqNo(entries.iter().map(|e| e.1).min().unwrap_or(0)),
            max_seq: SeqNo(entries.iter().map(|e| e.1).max().unwrap_or(0)),
            entries: entries.len() as u64,
            tombstones: 0,
        };
        Table { meta, entries }
    }

    /// A memtable of random keys becomes the newest L0 table. Key ranges are sometimes
    /// narrow (a hot spot) and sometimes wide, so L0 tables overlap in varied ways.
    fn flush(&mut self, rng: &mut Rng) {
        let n = rng.range(20, 100);
        let (lo, span) = if rng.chance(1, 3) {
            (rng.range(0, u64::from(KEYS) - 1000) as u32, 1000)
        } else {
            (0, u64::from(KEYS))
        };
        let mut keys: Vec<u32> = (0..n).map(|_| lo + rng.range(0, span) as u32).collect();
        keys.sort_unstable();
        keys.dedup();
        let entries: Vec<(u32, u64)> = keys
            .into_iter()
            .map(|k| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.latest[k as usize] = seq;
                (k, seq)
            })
            .collect();
        let t = self.table(entries);
        self.levels[0].insert(0, t);
    }

    /// Runs `task` as the engine would: k-way merge keeping the newest version of each
    /// key (no snapshots), outputs cut at the target size, inputs replaced by outputs.
    fn apply(&mut self, task: &CompactionTask) {
        let mut merged: Vec<(u32, u64)> = Vec::new();
        for input in &task.inputs {
            for no in &input.tables {
                let level = &mut self.levels[input.level];
                let at = level.iter().position(|t| t.meta.file_no == *no).unwrap_or_else(|| {
                    panic!("{no} vanished from L{} while its task ran", input.level)
                });
                merged.extend(level.remove(at).entries);
            }
        }
        merged.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        merged.dedup_by_key(|e| e.0);
        let per_file = (task.target_file_size / ENTRY).max(1) as usize;
        let out = task.output_level;
        assert!(out >= 1, "leveled outputs go to L1+");
        for chunk in merged.chunks(per_file) {
            let t = self.table(chunk.to_vec());
            let level = &mut self.levels[out];
            for other in level.iter() {
                assert!(
                    !other.meta.overlaps(&t.meta.smallest_key, &t.meta.largest_key),
                    "output of `{}` overlaps L{out} table {} that is not an input",
                    task.reason,
                    other.meta.file_no
                );
            }
            let at = level.partition_point(|o| o.meta.smallest_key < t.meta.smallest_key);
            level.insert(at, t);
        }
    }

    /// For every key, the versions met by a top-down read (L0 newest table first) have
    /// strictly decreasing sequences, and the first is the latest one written.
    fn check_versions(&self) {
        // The sequence of the version of each key met last on the way down (0: none yet).
        let mut above = vec![0u64; KEYS as usize];
        for (l, level) in self.levels.iter().enumerate() {
            for t in level {
                for &(k, s) in &t.entries {
                    let prev = above[k as usize];
                    if prev == 0 {
                        assert_eq!(
                            s, self.latest[k as usize],
                            "key {k}: a read finds stale version {s} in L{l}"
                        );
                    } else {
                        assert!(
                            s < prev,
                            "key {k}: version {s} in L{l} sits below the older version {prev}"
                        );
                    }
                    above[k as usize] = s;
                }
            }
        }
        for (k, (&found, &written)) in above.iter().zip(&self.latest).enumerate() {
            assert_eq!(found == 0, written == 0, "key {k}: lost or invented");
        }
        for (l, level) in self.levels.iter().enumerate().skip(1) {
            assert!(
                level.windows(2).all(|w| w[0].meta.largest_key < w[1].meta.smallest_key),
                "L{l} is not sorted and disjoint"
            );
        }
    }

    fn assert_converged(&self, policy: &LeveledPolicy) {
        let view = self.view();
        let scores = policy.level_scores(&view);
        let last = policy.levels() - 1;
        assert!(scores[..last].iter().all(|&s| s < 1.0), "not converged: {scores:?}");
        assert!(view.level_len(0) < policy.options().l0_trigger_files);
        assert!(!view.levels[last].is_empty(), "data reached the last level: {scores:?}");
        if policy.options().dynamic_level_bytes {
            self.assert_bottom_heavy(policy);
        }
    }

    /// Bytes per level.
    fn sizes(&self) -> Vec<u64> {
        self.levels.iter().map(|l| l.iter().map(|t| t.meta.size_bytes).sum()).collect()
    }

    /// Bytes of all levels above the deepest non-empty one, divided by that level's.
    fn upper_to_bottom(&self) -> f64 {
        let sizes = self.sizes();
        let d = sizes.iter().rposition(|&b| b > 0).expect("the tree holds data");
        sizes[..d].iter().sum::<u64>() as f64 / sizes[d] as f64
    }

    /// Once a converged tree has settled with dynamic targets, every level `1 ≤ l < d`
    /// (`d` the deepest non-empty level, `B` its bytes, `m` the multiplier) is under
    /// `max(B / m^(d−l), floor)` and L0 under `l0_max_bytes`, so the levels above the
    /// bottom hold less than
    ///
    /// `B/m + B/m² + … + (d−1)·floor + l0_max_bytes ≤ B/(m−1) + (d−1)·floor + l0_max_bytes`
    ///
    /// (`max(a, b) ≤ a + b`). With `m = 4` that is `B/3` plus a constant, which fits in
    /// the remaining `B/6` once `B ≥ 6·((d−1)·floor + l0_max_bytes)` (96 000 B here):
    /// then the upper levels hold at most half the bottom. The runs here settle around
    /// 0.32; static targets leave about 0.64 (see
    /// `static_targets_leave_the_upper_levels_heavy`), so the bound separates the two.
    fn assert_bottom_heavy(&self, policy: &LeveledPolicy) {
        let opts = policy.options();
        assert_eq!(opts.level_size_multiplier, 4, "the 0.5 bound below is derived for ×4");
        let sizes = self.sizes();
        let d = sizes.iter().rposition(|&b| b > 0).expect("the tree holds data");
        let constant = (d as u64 - 1) * policy.dynamic_level_floor() + opts.l0_max_bytes;
        assert!(
            sizes[d] >= 6 * constant,
            "the bottom L{d} ({} B) is too small for the bound (needs {} B): load more",
            sizes[d],
            6 * constant
        );
        let ratio = self.upper_to_bottom();
        assert!(ratio <= 0.5, "levels above the bottom hold {ratio:.3}× its bytes: {sizes:?}");
    }
}

fn opts() -> LeveledOptions {
    // L0: 4 tables or 4000 B; static targets L1 4000 B, L2 16 000 B, L3 64 000 B, L4
    // last; dynamic ones derived from the bottom, never below 4000 B.
    LeveledOptions {
        levels: 5,
        l0_trigger_files: 4,
        l0_max_bytes: 4000,
        l1_max_bytes: 4000,
        level_size_multiplier: 4,
        dynamic_level_bytes: true,
        target_file_size: 1000,
        max_compaction_bytes: Some(8000),
    }
}

fn pick_checked(
    policy: &LeveledPolicy,
    tree: &Tree,
    busy: &HashSet<FileNo>,
) -> Option<CompactionTask> {
    let view = tree.view();
    let task = policy.pick(&view, busy)?;
    validate_task(&view, busy, policy.levels(), &task).unwrap_or_else(|e| panic!("{e}\n{task:#?}"));
    Some(task)
}

/// 300 random flushes; after each the engine falls behind by running at most two tasks
/// one at a time, then catches up once the flushes stop. Returns the settled tree and
/// the number of tasks run during the load.
fn run_sequential(policy: &LeveledPolicy, seed: u64) -> (Tree, usize) {
    let mut rng = Rng(seed);
    let mut tree = Tree::new(policy.levels());
    let none = HashSet::new();
    let mut tasks = 0;
    for _ in 0..300 {
        tree.flush(&mut rng);
        for _ in 0..rng.range(0, 3) {
            let Some(task) = pick_checked(policy, &tree, &none) else { break };
            tree.apply(&task);
            tasks += 1;
        }
        tree.check_versions();
    }
    let mut catch_up = 0;
    while let Some(task) = pick_checked(policy, &tree, &none) {
        tree.apply(&task);
        catch_up += 1;
        assert!(catch_up < 10_000, "seed {seed}: compaction does not converge");
    }
    tree.check_versions();
    (tree, tasks)
}

/// Tasks applied one at a time.
#[test]
fn sequential_tasks_converge() {
    let policy = LeveledPolicy::new(opts()).expect("valid");
    for seed in 0..4 {
        let (tree, tasks) = run_sequential(&policy, seed);
        tree.assert_converged(&policy);
        assert!(tasks > 100, "seed {seed}: the tree was exercised ({tasks} tasks)");
    }
}

/// The same load with static targets also converges, but leaves far more above the
/// bottom than dynamic targets allow: the bound of `assert_bottom_heavy` is not met by
/// accident.
#[test]
fn static_targets_leave_the_upper_levels_heavy() {
    let policy =
        LeveledPolicy::new(LeveledOptions { dynamic_level_bytes: false, ..opts() }).expect("valid");
    let (tree, _) = run_sequential(&policy, 0);
    tree.assert_converged(&policy);
    let ratio = tree.upper_to_bottom();
    assert!(ratio > 0.5, "static targets: {ratio:.3}× the bottom above it, {:?}", tree.sizes());
}

/// Up to three tasks run at once and finish in random order, while flushes go on.
#[test]
fn concurrent_tasks_keep_the_tree_valid_and_converge() {
    let policy = LeveledPolicy::new(opts()).expect("valid");
    for seed in 100..104 {
        let mut rng = Rng(seed);
        let mut tree = Tree::new(policy.levels());
        let mut running: Vec<CompactionTask> = Vec::new();
        let mut max_parallel = 0;
        let busy_of = |running: &[CompactionTask]| -> HashSet<FileNo> {
            running
                .iter()
                .flat_map(|t| t.inputs.iter().flat_map(|i| i.tables.iter().copied()))
                .collect()
        };
        let mut flushes = 0;
        while flushes < 300 {
            match rng.range(0, 3) {
                0 => {
                    tree.flush(&mut rng);
                    flushes += 1;
                }
                1 if running.len() < 3 => {
                    if let Some(task) = pick_checked(&policy, &tree, &busy_of(&running)) {
                        running.push(task);
                        max_parallel = max_parallel.max(running.len());
                    }
                }
                _ if !running.is_empty() => {
                    let task = running.remove(rng.range(0, running.len() as u64) as usize);
                    tree.apply(&task);
                    tree.check_versions();
                }
                _ => {}
            }
        }
        let mut rounds = 0;
        loop {
            while running.len() < 3 {
                let Some(task) = pick_checked(&policy, &tree, &busy_of(&running)) else { break };
                running.push(task);
                max_parallel = max_parallel.max(running.len());
            }
            if running.is_empty() {
                break;
            }
            let task = running.remove(rng.range(0, running.len() as u64) as usize);
            tree.apply(&task);
            rounds += 1;
            assert!(rounds < 10_000, "seed {seed}: compaction does not converge");
        }
        tree.check_versions();
        tree.assert_converged(&policy);
        assert!(max_parallel >= 2, "seed {seed}: tasks did run in parallel");
    }
}

/// Space amplification after an overwrite-heavy load: the benchmark's shape scaled down.
/// There, 2.2 GiB of live data settled as L1 391 MiB over L2 2282 MiB (1.22×) because
/// L1's static target (400 MiB) was about a fifth of the live data while L2 stayed far
/// below its own (4 GiB). Here L1's static target is a fifth of the key space's bytes,
/// ×10, and L2's static target is never reached.
///
/// With dynamic targets L1 settles under `max(B/10, floor)` and L0 under `l0_max_bytes`,
/// where the bottom `B` holds at most one version of each live key, so space
/// amplification is below `1 + 1/10 + (floor + l0_max_bytes)/B`: 1.13 for `B` ≥
/// 240 000 B. The test demands < 1.2, the target set for the engine; static targets
/// settle near 1.2 (checked too, so the comparison means something).
#[test]
fn overwrite_heavy_load_settles_below_1_2x_space_amplification() {
    let opts = LeveledOptions {
        levels: 7,
        l0_trigger_files: 4,
        l0_max_bytes: 4000,
        l1_max_bytes: 64_000, // a fifth of the 320 000 B key space
        level_size_multiplier: 10,
        dynamic_level_bytes: true,
        target_file_size: 1000,
        max_compaction_bytes: Some(25_000),
    };
    let settle = |opts: LeveledOptions| {
        let policy = LeveledPolicy::new(opts).expect("valid");
        let mut rng = Rng(7);
        let mut tree = Tree::new(policy.levels());
        let none = HashSet::new();
        // About 60 000 writes over 20 000 keys.
        for i in 0..1000 {
            tree.flush(&mut rng);
            for _ in 0..rng.range(0, 3) {
                let Some(task) = pick_checked(&policy, &tree, &none) else { break };
                tree.apply(&task);
            }
            if i % 100 == 0 {
                tree.check_versions();
            }
        }
        let mut catch_up = 0;
        while let Some(task) = pick_checked(&policy, &tree, &none) {
            tree.apply(&task);
            catch_up += 1;
            assert!(catch_up < 10_000, "compaction does not converge");
        }
        tree.check_versions();
        let live = tree.latest.iter().filter(|&&s| s != 0).count() as u64 * ENTRY;
        let sizes = tree.sizes();
        let amp = sizes.iter().sum::<u64>() as f64 / live as f64;
        (amp, sizes, live)
    };
    let (amp, sizes, live) = settle(opts.clone());
    assert!(sizes[2] >= 240_000 && sizes[3..].iter().all(|&b| b == 0), "{sizes:?}");
    assert!(amp < 1.2, "dynamic: space amplification {amp:.3} ({sizes:?}, live {live} B)");
    let (static_amp, static_sizes, _) =
        settle(LeveledOptions { dynamic_level_bytes: false, ..opts });
    assert!(
        static_amp > amp + 0.05,
        "static {static_amp:.3} ({static_sizes:?}) vs dynamic {amp:.3} ({sizes:?})"
    );
}
