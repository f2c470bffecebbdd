//! `strata bench`: the exchange workload on the default embedded stack, or on a stack
//! described in TOML (`--config stack.toml`), or the LSM phases on several stacks side
//! by side (`--compare a.toml,b.toml`).
//!
//! Phases, each measured with HdrHistogram (per-operation latency) and wall time:
//! the machine's raw fdatasync floor, memtable inserts, Buffered and Sync writes with
//! one and with N writers (group commit), point reads (hits and misses), reopen
//! (WAL replay into memtables) and raw WAL replay throughput.
//!
//! `--peers fjall[,rocksdb]` instead runs the side-by-side workloads against Strata's
//! peers (see `peers.rs` and docs/peers.md).
//!
//! `strata bench distribution` measures the distribution layer instead (see
//! `distribution.rs`).

mod compare;
mod distribution;
mod failover;
mod floor;
mod lsm;
mod peers;
mod peers_report;
mod phases;
mod replication;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use strata_core::{DbBuilder, Durability};
use strata_plugins::StackConfig;

use phases::Reads;
use report::Report;

/// One stack under test: its configuration and where it came from.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The configuration file, or `default`.
    pub label: String,
    /// The components and engine options.
    pub config: StackConfig,
}

impl Stack {
    /// The default stack (`wal=file memtable=skiplist table=mmap compaction=leveled`).
    pub fn default_stack() -> Self {
        Self { label: "default".into(), config: StackConfig::default() }
    }

    /// The stack described by the TOML file at `path` (its `[[load]]` libraries are
    /// loaded when a store is first opened).
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let config = StackConfig::from_path(path)?;
        Ok(Self { label: path.display().to_string(), config })
    }

    /// A builder for a store of this stack in `dir`.
    pub fn builder(&self, dir: &Path) -> anyhow::Result<DbBuilder> {
        Ok(self.config.builder(dir)?)
    }

    /// The components in one line, with the file system.
    pub fn summary(&self) -> String {
        format!("{} fs=os", self.config)
    }
}

/// Benchmarks other than the main job.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// The distribution layer: iceoryx one-way latency (Strata vs raw iceoryx2) and
    /// batched throughput, TCP loopback latency and throughput, and the per-message
    /// cost of each subscriber tier.
    Distribution(distribution::DistributionArgs),
    /// Replication on loopback: async lag, sync-mode write latency and group commit
    /// against a single store, catch-up of a new replica from a checkpoint.
    Replication(replication::ReplicationArgs),
    /// Failover on loopback: a local cluster of `strata serve` child processes with a
    /// raft authority; each round kills the primary with SIGKILL and measures failure
    /// detection and failover (kill → first acknowledged write on the new primary).
    Failover(failover::FailoverArgs),
}

/// Options of `strata bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Run another benchmark instead of the main job.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
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
    /// Key order of the LSM load: `random` (overwrite-heavy, the default) or
    /// `sequential` (increasing ids, each written once, as the exchange's order ids).
    #[arg(long, value_enum, default_value_t = lsm::LoadOrder::Random)]
    pub load_order: lsm::LoadOrder,
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
    /// Run on the stack described by this TOML file (`[wal]`, `[memtable]`, `[table]`,
    /// `[compaction]`, `[engine]`, `[[load]]`; see docs/writing-a-plugin.md) instead of
    /// the default stack. The LSM phases take their memtable size from --memtable-mib.
    #[arg(long, conflicts_with = "compare")]
    pub config: Option<PathBuf>,
    /// Run only the LSM phases on each of these stack files, one after the other in
    /// one run, and print each figure with its ratio to the first stack's.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub compare: Vec<PathBuf>,
    /// Compare the default stack with these engines (fjall; rocksdb when built with
    /// `--features rocksdb`) on the peer workloads, alternating engines per workload.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with_all = ["compare", "config"])]
    pub peers: Vec<String>,
    /// Peers: keys filled by fillseq/fillrandom and preloaded for reads and YCSB.
    #[arg(long, default_value_t = 300_000)]
    pub peer_keys: u64,
    /// Peers: operations of exchange, overwrite, readrandom and YCSB.
    #[arg(long, default_value_t = 300_000)]
    pub peer_ops: u64,
    /// Peers: seeks of seek+scan.
    #[arg(long, default_value_t = 20_000)]
    pub peer_scans: u64,
    /// Peers: entries read after each seek.
    #[arg(long, default_value_t = 100)]
    pub peer_scan_len: usize,
    /// Peers: puts of each Sync write workload (1 writer, --writers writers).
    #[arg(long, default_value_t = 2_000)]
    pub peer_sync_ops: u64,
    /// Peers: threads of exchange, readrandom, seek+scan and YCSB.
    #[arg(long, default_value_t = 2)]
    pub peer_threads: usize,
    /// Peers: memtable (write buffer) size of every engine, in MiB.
    #[arg(long, default_value_t = 32)]
    pub peer_memtable_mib: u64,
    /// Peers: block cache of fjall and RocksDB, in MiB (Strata reads through mmap).
    #[arg(long, default_value_t = 64)]
    pub peer_cache_mib: u64,
    /// Peers: run only these workloads (default: all).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub peer_workloads: Vec<String>,
    /// Peers: the HTML report (inline SVG charts) to write.
    #[arg(long, default_value_os_t = peers::default_report_path())]
    pub report: PathBuf,
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Distribution(d)) = &args.command {
        return distribution::run(d);
    }
    if let Some(BenchCommand::Replication(r)) = &args.command {
        return replication::run(r);
    }
    if let Some(BenchCommand::Failover(f)) = &args.command {
        return failover::run(f);
    }
    if !args.peers.is_empty() {
        return peers::run(args);
    }
    if !args.compare.is_empty() {
        return compare::run(args);
    }
    let stack = match &args.config {
        Some(path) => Stack::from_path(path)?,
        None => Stack::default_stack(),
    };
    anyhow::ensure!(args.writers >= 1, "--writers must be at least 1");
    anyhow::ensure!(args.sync_batch >= 1, "--sync-batch must be at least 1");
    anyhow::ensure!(args.ops >= 1 && args.reads >= 1, "--ops and --reads must be at least 1");
    anyhow::ensure!(args.floor_samples >= 2, "--floor-samples must be at least 2");
    let (_temp, root) = bench_root(args)?;
    let store = root.join("store");
    anyhow::ensure!(
        !store.exists() || std::fs::read_dir(&store)?.next().is_none(),
        "{} already holds a store; pass an empty --dir",
        store.display()
    );

    let mut report = Report::new(args, &root, &stack);
    let sync_limit = Duration::from_secs_f64(args.sync_seconds);

    let memtables = stack.config.memtable_factory()?;
    report.phases.extend(phases::memtable_inserts(&*memtables, args.memtable_inserts, args.seed)?);

    let db = stack.builder(&store)?.open()?;
    let mut runner = phases::Runner::new(db, args.clone(), stack.clone());
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
    report.phases.push(runner.reads("read hit", Reads::Hit)?);
    report.phases.push(runner.reads("read miss", Reads::Miss)?);
    report.phases.push(runner.reads("read miss in range", Reads::MissInRange)?);
    report.store = Some(runner.store_stats());
    report.reopen = Some(runner.reopen(&store)?);
    drop(runner);
    if args.replay_mib > 0 {
        report.replay = Some(phases::wal_replay(&root.join("replay"), args.replay_mib)?);
    }
    if args.load_keys > 0 {
        anyhow::ensure!(args.memtable_mib >= 1, "--memtable-mib must be at least 1");
        report.lsm = Some(lsm::run(&root.join("lsm"), args, &stack)?);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}

/// The directory the run works in: `--dir`, or a temporary directory (returned too, so
/// that it lives until the run ends and is removed then).
fn bench_root(args: &BenchArgs) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("strata-bench-")
                .tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
                .context("creating a temporary directory for the store")?;
            let root = temp.path().to_path_buf();
            (Some(temp), root)
        }
    })
}
