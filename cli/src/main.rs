//! `strata`: the command-line front end of Strata.
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod bench;
mod inspect;

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
    /// Run the exchange workload on the default embedded stack and print latency and
    /// throughput figures.
    Bench(bench::BenchArgs),
    /// Summarise a store: manifest, levels, tables and WAL segments (read-only).
    Inspect(inspect::InspectArgs),
    /// Check a store end to end — manifest, every table's checksums, the WAL — and
    /// report each problem with its file and offset (read-only; exits 1 on problems).
    Verify(inspect::VerifyArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Inspect(args) => inspect::inspect(&args),
        Command::Verify(args) => inspect::verify(&args),
    }
}
