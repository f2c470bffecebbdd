//! `strata`: the command-line front end of Strata.
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod bench;
mod client;
mod cluster;
mod failover;
mod inspect;
mod local_cluster;
mod serve;
mod subscribe;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Strata: durable, streamable event storage.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the exchange workload on the default embedded stack (or the stack of
    /// --config, or compare stacks with --compare) and print latency and throughput
    /// figures.
    Bench(Box<bench::BenchArgs>),
    /// Summarise a store: manifest, levels, tables and WAL segments (read-only).
    Inspect(inspect::InspectArgs),
    /// List the registered plugins: those linked into this binary and those of the
    /// libraries named with --load or in a stack file's [[load]] sections.
    Plugins(PluginsArgs),
    /// Check a store end to end — manifest, every table's checksums, the WAL — and
    /// report each problem with its file and offset (read-only; exits 1 on problems,
    /// 2 when another process has the store open and --live was not given).
    Verify(inspect::VerifyArgs),
    /// Run a store with its commit stream published to a topic (in-process to the
    /// WebSocket gateway, and over TCP when configured), the gateway, and optionally a
    /// synthetic trade feed, from a TOML file (see docs/gateway.md).
    Serve(serve::ServeArgs),
    /// Tail a topic over TCP or the WebSocket gateway: print each frame as JSON, or
    /// live statistics (rate, gaps, latency percentiles) with --stats.
    Subscribe(subscribe::SubscribeArgs),
    /// Show a replication node's state (`strata serve` with [replication]): role,
    /// epoch, last and durable sequence, mode, in-sync set, each replica's position
    /// and lag. ADDR is its replication address; exits 1 when it does not answer.
    Status(cluster::StatusArgs),
    /// Local clusters and operator commands to replication nodes: up, down,
    /// remove-replica, promote.
    Cluster(cluster::ClusterArgs),
    /// Run only a raft voter of the failover authority, with no store: the witness of a
    /// two-data-node cluster (`[failover]` as the nodes have it), until SIGTERM or Ctrl-C.
    Witness(failover::WitnessArgs),
    /// Write one key through a node's client address (`strata serve` with [client]);
    /// prints the sequence once the write is acknowledged.
    Put(client::PutArgs),
    /// Read one key from a node's client address (a replica answers from its applied
    /// state); exits 1 when the key is absent.
    Get(client::GetArgs),
}

/// mimalloc instead of glibc's malloc. A store's flush thread drops each flushed
/// memtable, freeing its entries, which the writer threads allocated: glibc sends every
/// such free to the allocating thread's arena under that arena's lock, so writers that
/// allocate meanwhile sleep on the lock (`__lll_lock_wait_private` in `perf record -e
/// sched:sched_switch`). mimalloc frees across threads without a lock. Measured with
/// `strata bench --peers fjall --peer-keys 1000000 --peer-workloads fillrandom fillseq
/// overwrite` (two runs each): Strata's put p99 went from 12.5–28.8 µs to 6.2–7.8 µs;
/// fjall's, in the same process and on the same allocator, was 8.8–13.5 µs. See the
/// README's "Allocator" note.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, as anyhow's `Debug` prints them but without the
            // backtrace it would add under RUST_BACKTRACE=1: these are the user's errors
            // (a bad path, a bad config), not the program's. STRATA_BACKTRACE=1 adds it.
            eprintln!("Error: {e}");
            let causes: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
            if !causes.is_empty() {
                eprintln!("\nCaused by:");
                for (i, c) in causes.iter().enumerate() {
                    eprintln!("    {i}: {c}");
                }
            }
            if std::env::var_os("STRATA_BACKTRACE").is_some_and(|v| v == "1") {
                eprintln!("\n{}", e.backtrace());
            }
            // A refusal to read a store another process has open is not a finding: its
            // own code lets scripts tell it from "problems found".
            if e.downcast_ref::<inspect::StoreInUse>().is_some() {
                return std::process::ExitCode::from(inspect::StoreInUse::EXIT_CODE);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // No colour codes in a log file (`strata cluster up` sends each node's there).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    strata_transport_iceoryx::quiet_iceoryx_logs();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Inspect(args) => inspect::inspect(&args),
        Command::Verify(args) => inspect::verify(&args),
        Command::Plugins(args) => list_plugins(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Subscribe(args) => subscribe::run(&args),
        Command::Status(args) => cluster::status(&args),
        Command::Cluster(args) => cluster::cluster(&args),
        Command::Witness(args) => failover::witness(&args),
        Command::Put(args) => client::put(&args),
        Command::Get(args) => client::get(&args),
    }
}

/// Options of `strata plugins`.
#[derive(Debug, clap::Args)]
struct PluginsArgs {
    /// Plugin libraries to load first (repeatable).
    #[arg(long)]
    load: Vec<std::path::PathBuf>,
    /// A stack file whose [[load]] libraries to load first.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn list_plugins(args: &PluginsArgs) -> anyhow::Result<()> {
    let mut libraries = args.load.clone();
    if let Some(config) = &args.config {
        libraries.extend(strata_plugins::StackConfig::from_path(config)?.load);
    }
    for lib in &libraries {
        strata_plugins::load_library(lib)?;
    }
    println!("{:<11} {:<16} description", "kind", "name");
    for p in strata_plugins::plugins() {
        let default = if strata_plugins::default_plugin(p.kind) == p.name { "*" } else { "" };
        let source = match &p.source {
            strata_plugins::PluginSource::Linked => String::new(),
            other => format!(" (from {other})"),
        };
        println!(
            "{:<11} {:<16} {}{source}",
            p.kind.to_string(),
            format!("{}{default}", p.name),
            p.description
        );
    }
    println!("\n* the default of its kind");
    Ok(())
}
