//! `strata bench --compare a.toml,b.toml`: the LSM phases on each stack, one after the
//! other in one run (same machine state, same workload and seed), reported side by side
//! as ratios to the first stack.

use serde::Serialize;

use super::lsm::{self, LsmReport};
use super::report::machine_description;
use super::{BenchArgs, Stack, bench_root};

/// One figure compared across stacks.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: &'static str,
    /// True when a larger value is better (throughput), false for latencies and costs.
    pub higher_is_better: bool,
    /// One value per stack, in the order given.
    pub values: Vec<f64>,
    /// Each value divided by the first stack's (1.0 for the first).
    pub ratios: Vec<f64>,
}

/// What one stack measured.
#[derive(Debug, Clone, Serialize)]
pub struct StackResult {
    pub config: String,
    pub stack: String,
    pub lsm: LsmReport,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub strata_version: &'static str,
    pub machine: String,
    pub seed: u64,
    pub stacks: Vec<StackResult>,
    pub rows: Vec<Row>,
}

type Metric = (&'static str, bool, fn(&LsmReport) -> f64);

const METRICS: &[Metric] = &[
    ("load ops/s", true, |r| r.load.ops_per_sec),
    ("load write p50 µs", false, |r| r.load.p50_us),
    ("load write p99 µs", false, |r| r.load.p99_us),
    ("load write p99.9 µs", false, |r| r.load.p999_us),
    ("load write max µs", false, |r| r.load.max_us),
    ("write during compaction p99.9 µs", false, |r| r.write_during_compaction.p999_us),
    ("p99.9 during compaction / idle", false, |r| r.p999_busy_over_idle),
    ("idle write p99 µs", false, |r| r.write_idle.p99_us),
    ("read hit p50 µs", false, |r| r.read_hit.p50_us),
    ("read hit p99 µs", false, |r| r.read_hit.p99_us),
    ("read miss p99 µs", false, |r| r.read_miss.p99_us),
    ("seek+scan 100 p99 µs", false, |r| r.scan_100.p99_us),
    ("space amplification", false, |r| r.space_amplification),
    ("write amplification", false, |r| r.write_amplification),
    ("compaction MiB/s/thread", true, |r| r.compaction_mib_per_sec_per_thread),
    ("stall ms", false, |r| r.stall_ms),
    ("settle s", false, |r| r.settle_seconds),
    ("reopen s", false, |r| r.reopen_seconds),
];

/// Runs the comparison and prints it.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.load_keys > 0, "--compare runs the LSM phases: --load-keys must be > 0");
    anyhow::ensure!(args.memtable_mib >= 1, "--memtable-mib must be at least 1");
    anyhow::ensure!(args.reads >= 1, "--reads must be at least 1");
    let stacks: Vec<Stack> =
        args.compare.iter().map(|p| Stack::from_path(p)).collect::<anyhow::Result<_>>()?;
    let (_temp, root) = bench_root(args)?;
    let mut results = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        let dir = root.join(format!("lsm-{i}"));
        anyhow::ensure!(
            !dir.exists() || std::fs::read_dir(&dir)?.next().is_none(),
            "{} already holds a store; pass an empty --dir",
            dir.display()
        );
        eprintln!("stack {}: {} ({})", i + 1, stack.summary(), stack.label);
        let lsm = lsm::run(&dir, args, stack)?;
        results.push(StackResult { config: stack.label.clone(), stack: stack.summary(), lsm });
    }
    let rows = METRICS
        .iter()
        .map(|(metric, higher_is_better, get)| {
            let values: Vec<f64> = results.iter().map(|r| get(&r.lsm)).collect();
            let base = values.first().copied().unwrap_or(0.0);
            let ratios = values
                .iter()
                .map(|v| if base.abs() > f64::EPSILON { v / base } else { f64::NAN })
                .collect();
            Row { metric, higher_is_better: *higher_is_better, values, ratios }
        })
        .collect();
    let comparison = Comparison {
        strata_version: env!("CARGO_PKG_VERSION"),
        machine: machine_description(),
        seed: args.seed,
        stacks: results,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        comparison.print_table(args);
    }
    Ok(())
}

impl Comparison {
    fn print_table(&self, args: &BenchArgs) {
        println!("strata bench --compare {} — LSM phases", self.strata_version);
        println!("machine: {}", self.machine);
        println!(
            "{} overwrites, memtable {} MiB, seed {}; ratios are each stack / stack 1",
            args.load_keys, args.memtable_mib, self.seed
        );
        for (i, s) in self.stacks.iter().enumerate() {
            println!("  stack {}: {} ({})", i + 1, s.stack, s.config);
        }
        println!();
        print!("{:<26}", "metric");
        for i in 0..self.stacks.len() {
            if i == 0 {
                print!(" {:>12}", "stack 1");
            } else {
                print!(" {:>12} {:>8}", format!("stack {}", i + 1), "ratio");
            }
        }
        println!();
        for row in &self.rows {
            let better = if row.higher_is_better { "↑" } else { "↓" };
            print!("{:<26}", format!("{} {better}", row.metric));
            for (i, (v, r)) in row.values.iter().zip(&row.ratios).enumerate() {
                if i == 0 {
                    print!(" {v:>12.2}");
                } else if r.is_nan() {
                    print!(" {v:>12.2} {:>8}", "-");
                } else {
                    print!(" {v:>12.2} {:>7.2}×", r);
                }
            }
            println!();
        }
        println!();
        println!("↑ higher is better, ↓ lower is better");
    }
}
