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

use std::collections::HashSet;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::{CompactionPolicy, CompactionTask, FileNo};
use strata_harness::conformance::compaction::model::{ModelTree, Rng, pick_checked};

/// Bytes one entry takes in the model.
const ENTRY: u64 = 16;
/// Keys are `0..KEYS`.
const KEYS: u32 = 20_000;

/// A memtable of random keys becomes the newest L0 table. Key ranges are sometimes
/// narrow (a hot spot) and sometimes wide, so L0 tables overlap in varied ways.
fn flush(tree: &mut ModelTree, rng: &mut Rng) {
    let n = rng.range(20, 100);
    let (lo, span) = if rng.chance(1, 3) {
        (rng.range(0, u64::from(KEYS) - 1000) as u32, 1000)
    } else {
        (0, u64::from(KEYS))
    };
    let keys: Vec<u32> = (0..n).map(|_| lo + rng.range(0, span) as u32).collect();
    tree.flush(&keys);
}

fn assert_converged(tree: &ModelTree, policy: &LeveledPolicy) {
    let view = tree.view();
    let scores = policy.level_scores(&view);
    let last = policy.levels() - 1;
    assert!(scores[..last].iter().all(|&s| s < 1.0), "not converged: {scores:?}");
    assert!(view.level_len(0) < policy.options().l0_trigger_files);
    assert!(!view.levels[last].is_empty(), "data reached the last level: {scores:?}");
    if policy.options().dynamic_level_bytes {
        assert_bottom_heavy(tree, policy);
    }
}

/// Bytes of all levels above the deepest non-empty one, divided by that level's.
fn upper_to_bottom(tree: &ModelTree) -> f64 {
    let sizes = tree.sizes();
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
fn assert_bottom_heavy(tree: &ModelTree, policy: &LeveledPolicy) {
    let opts = policy.options();
    assert_eq!(opts.level_size_multiplier, 4, "the 0.5 bound below is derived for ×4");
    let sizes = tree.sizes();
    let d = sizes.iter().rposition(|&b| b > 0).expect("the tree holds data");
    let constant = (d as u64 - 1) * policy.dynamic_level_floor() + opts.l0_max_bytes;
    assert!(
        sizes[d] >= 6 * constant,
        "the bottom L{d} ({} B) is too small for the bound (needs {} B): load more",
        sizes[d],
        6 * constant
    );
    let ratio = upper_to_bottom(tree);
    assert!(ratio <= 0.5, "levels above the bottom hold {ratio:.3}× its bytes: {sizes:?}");
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

fn pick(
    policy: &LeveledPolicy,
    tree: &ModelTree,
    busy: &HashSet<FileNo>,
) -> Option<CompactionTask> {
    pick_checked(policy, &tree.view(), busy)
}

/// 300 random flushes; after each the engine falls behind by running at most two tasks
/// one at a time, then catches up once the flushes stop. Returns the settled tree and
/// the number of tasks run during the load.
fn run_sequential(policy: &LeveledPolicy, seed: u64) -> (ModelTree, usize) {
    let mut rng = Rng(seed);
    let mut tree = ModelTree::new(policy.levels(), KEYS, ENTRY);
    let none = HashSet::new();
    let mut tasks = 0;
    for _ in 0..300 {
        flush(&mut tree, &mut rng);
        for _ in 0..rng.range(0, 3) {
            let Some(task) = pick(policy, &tree, &none) else { break };
            tree.apply(&task);
            tasks += 1;
        }
        tree.check_reads(1);
    }
    let mut catch_up = 0;
    while let Some(task) = pick(policy, &tree, &none) {
        tree.apply(&task);
        catch_up += 1;
        assert!(catch_up < 10_000, "seed {seed}: compaction does not converge");
    }
    tree.check_reads(1);
    (tree, tasks)
}

/// Tasks applied one at a time.
#[test]
fn sequential_tasks_converge() {
    let policy = LeveledPolicy::new(opts()).expect("valid");
    for seed in 0..4 {
        let (tree, tasks) = run_sequential(&policy, seed);
        assert_converged(&tree, &policy);
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
    assert_converged(&tree, &policy);
    let ratio = upper_to_bottom(&tree);
    assert!(ratio > 0.5, "static targets: {ratio:.3}× the bottom above it, {:?}", tree.sizes());
}

/// Up to three tasks run at once and finish in random order, while flushes go on.
#[test]
fn concurrent_tasks_keep_the_tree_valid_and_converge() {
    let policy = LeveledPolicy::new(opts()).expect("valid");
    for seed in 100..104 {
        let mut rng = Rng(seed);
        let mut tree = ModelTree::new(policy.levels(), KEYS, ENTRY);
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
                    flush(&mut tree, &mut rng);
                    flushes += 1;
                }
                1 if running.len() < 3 => {
                    if let Some(task) = pick(&policy, &tree, &busy_of(&running)) {
                        running.push(task);
                        max_parallel = max_parallel.max(running.len());
                    }
                }
                _ if !running.is_empty() => {
                    let task = running.remove(rng.range(0, running.len() as u64) as usize);
                    tree.apply(&task);
                    tree.check_reads(1);
                }
                _ => {}
            }
        }
        let mut rounds = 0;
        loop {
            while running.len() < 3 {
                let Some(task) = pick(&policy, &tree, &busy_of(&running)) else { break };
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
        tree.check_reads(1);
        assert_converged(&tree, &policy);
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
        let mut tree = ModelTree::new(policy.levels(), KEYS, ENTRY);
        let none = HashSet::new();
        // About 60 000 writes over 20 000 keys.
        for i in 0..1000 {
            flush(&mut tree, &mut rng);
            for _ in 0..rng.range(0, 3) {
                let Some(task) = pick(&policy, &tree, &none) else { break };
                tree.apply(&task);
            }
            if i % 100 == 0 {
                tree.check_reads(1);
            }
        }
        let mut catch_up = 0;
        while let Some(task) = pick(&policy, &tree, &none) {
            tree.apply(&task);
            catch_up += 1;
            assert!(catch_up < 10_000, "compaction does not converge");
        }
        tree.check_reads(1);
        let live = tree.live_keys() * ENTRY;
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
