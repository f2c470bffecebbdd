//! `strata bench`: the exchange workload on the default embedded stack.
//!
//! Phases, each measured with HdrHistogram (per-operation latency) and wall time:
//! the machine's raw fdatasync floor, memtable inserts, Buffered and Sync writes with
//! one and with N writers (group commit), point reads (hits and misses), reopen
//! (WAL replay into memtables) and raw WAL replay throughput.

mod floor;
mod lsm;
mod phases;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use strata_core::Durability;

use report::Report;

/// Options of `strata bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Store directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Operations (batches of one entry) in each Buffered write phase.
    #[arg(long, default_value_t = 200_000)]
    pub ops: u64,
    /// Writer threads in the multi-writer phases.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Value size in bytes (default: the exchange mix of 100–300 B).
    #[arg(long)]
    pub value_size: Option<usize>,
    /// Upper bound on the duration of each Sync write phase, in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub sync_seconds: f64,
    /// Entries per batch in the multi-writer Sync phase (a matching engine commits the
    /// events of one match together).
    #[arg(long, default_value_t = 64)]
    pub sync_batch: usize,
    /// Samples of the raw fdatasync floor (half before, half after the Sync phases).
    #[arg(long, default_value_t = 600)]
    pub floor_samples: u64,
    /// Point reads in each read phase.
    #[arg(long, default_value_t = 200_000)]
    pub reads: u64,
    /// Inserts in the memtable phase (400 000 entries of 16 B + 200 B fill one default
    /// 128 MiB memtable).
    #[arg(long, default_value_t = 400_000)]
    pub memtable_inserts: u64,
    /// Size of the log written for the raw WAL replay phase, in MiB (0 skips it).
    #[arg(long, default_value_t = 1024)]
    pub replay_mib: u64,
    /// Writes in the LSM load phase (random keys over a key space half this size, so
    /// most are overwrites). The default fills several memtables and finishes in about
    /// a minute here; `--load-keys 50000000` makes a store of about 10 GB written.
    /// 0 skips the LSM phases.
    #[arg(long, default_value_t = 3_000_000)]
    pub load_keys: u64,
    /// Writes in each of the LSM "while compacting" and "idle" write-latency probes.
    #[arg(long, default_value_t = 200_000)]
    pub probe_ops: u64,
    /// Memtable size of the LSM store, in MiB.
    #[arg(long, default_value_t = 128)]
    pub memtable_mib: u64,
    /// Workload seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.writers >= 1, "--writers must be at least 1");
    anyhow::ensure!(args.sync_batch >= 1, "--sync-batch must be at least 1");
    anyhow::ensure!(args.ops >= 1 && args.reads >= 1, "--ops and --reads must be at least 1");
    anyhow::ensure!(args.floor_samples >= 2, "--floor-samples must be at least 2");
    let temp;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("strata-bench-")
                .tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
                .context("creating a temporary directory for the store")?;
            temp.path().to_path_buf()
        }
    };
    let store = root.join("store");
    anyhow::ensure!(
        !store.exists() || std::fs::read_dir(&store)?.next().is_none(),
        "{} already holds a store; pass an empty --dir",
        store.display()
    );

    let mut report = Report::new(args, &root);
    let sync_limit = Duration::from_secs_f64(args.sync_seconds);

    report.phases.extend(phases::memtable_inserts(args.memtable_inserts, args.seed)?);

    let db = strata_harness::stack::default_builder(&store).open()?;
    let mut runner = phases::Runner::new(db, args.clone());
    report.phases.push(runner.writes(
        "write buffered",
        1,
        1,
        args.ops,
        Durability::Buffered,
        None,
    )?);
    report.phases.push(runner.writes(
        "write buffered",
        args.writers,
        1,
        args.ops,
        Durability::Buffered,
        None,
    )?);
    // The floor is measured right before and right after the Sync phases, on the same
    // file system, so disk-state drift over the run hits both sides alike.
    let floor_before = floor::fdatasync_floor(&root, args.floor_samples / 2)?;
    report.phases.push(runner.writes(
        "write sync",
        1,
        1,
        u64::MAX,
        Durability::Sync,
        Some(sync_limit),
    )?);
    report.phases.push(runner.writes(
        "write sync",
        args.writers,
        args.sync_batch,
        u64::MAX,
        Durability::Sync,
        Some(sync_limit),
    )?);
    let floor_after = floor::fdatasync_floor(&root, args.floor_samples - args.floor_samples / 2)?;
    report.floor = Some(floor::merge(floor_before, floor_after)?);
    report.phases.push(runner.reads("read hit", true)?);
    report.phases.push(runner.reads("read miss", false)?);
    report.store = Some(runner.store_stats());
    report.reopen = Some(runner.reopen(&store)?);
    drop(runner);
    if args.replay_mib > 0 {
        report.replay = Some(phases::wal_replay(&root.join("replay"), args.replay_mib)?);
    }
    if args.load_keys > 0 {
        anyhow::ensure!(args.memtable_mib >= 1, "--memtable-mib must be at least 1");
        report.lsm = Some(lsm::run(&root.join("lsm"), args)?);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}
