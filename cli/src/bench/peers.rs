//! `strata bench --peers fjall[,rocksdb]`: the same workloads on Strata and its peers,
//! in one run, alternating engines workload by workload (Strata, fjall, rocksdb, then
//! the next workload in reverse order, and so on) so machine noise hits every engine
//! alike. Each engine runs each workload in a fresh directory under the run's
//! directory, removed afterwards, after `sync -f` wrote back what earlier runs left
//! dirty.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use strata_bench::peers::workloads::{self, Measurement, Sizes, Workload};
use strata_bench::peers::{self, EngineKind, PeerConfig};

use super::report::{Latency, machine_description};
use super::{BenchArgs, bench_root, peers_report};

/// Percentiles of the latency curve in the report (100 is the maximum).
pub const CURVE: [f64; 10] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0];

/// One engine's result on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct EngineResult {
    pub engine: String,
    #[serde(flatten)]
    pub latency: Latency,
    /// Bytes allocated on disk after the workload and a flush + compaction settle.
    pub disk_bytes: u64,
    /// Of which write-ahead log / journal files (Strata preallocates its segment).
    pub wal_bytes: u64,
    /// Reads that found their key, or entries visited by scans.
    pub found: u64,
    pub reads: u64,
    pub writes: u64,
    /// `(percentile, µs)` along [`CURVE`].
    pub curve: Vec<(f64, f64)>,
    /// Engine figures after the measured part and the settle (Strata: stalls,
    /// flushes, compactions since open, tables per level, live table bytes).
    pub engine_stats: Vec<(String, u64)>,
}

/// Strata against one peer on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub peer: String,
    /// Strata ops/s ÷ peer ops/s (above 1: Strata is faster).
    pub throughput: f64,
    /// Strata p99 ÷ peer p99 (below 1: Strata's tail is shorter).
    pub p99: f64,
    /// Strata bytes on disk ÷ peer bytes on disk.
    pub disk: f64,
    /// The same without write-ahead log files (tables, manifests: the data itself).
    pub disk_without_wal: f64,
}

/// One workload on every engine.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub workload: String,
    pub threads: usize,
    pub ops_requested: u64,
    pub sync: bool,
    pub results: Vec<EngineResult>,
    pub ratios: Vec<Ratio>,
}

/// Matched settings, as run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub exchange_value_bytes: String,
    pub keys: u64,
    pub ops: u64,
    pub scans: u64,
    pub scan_len: usize,
    pub sync_ops: u64,
    pub threads: usize,
    pub sync_writers: usize,
    pub memtable_mib: u64,
    pub cache_mib: u64,
    pub background_threads: usize,
    pub bloom_bits_per_key: u32,
    pub block_size: usize,
    pub compression: &'static str,
    pub wal: &'static str,
    pub seed: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    pub strata_version: &'static str,
    pub command: String,
    pub date_utc: String,
    pub machine: String,
    pub load_average: String,
    pub engines: Vec<String>,
    pub settings: Settings,
    pub workloads: Vec<WorkloadResult>,
}

/// Runs the comparison, prints it (table or JSON) and writes the HTML report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let engines = engines(&args.peers)?;
    let sizes = Sizes {
        keys: args.peer_keys,
        ops: args.peer_ops,
        scans: args.peer_scans,
        scan_len: args.peer_scan_len,
        sync_ops: args.peer_sync_ops,
        value_size: args.value_size.unwrap_or(200),
        exchange_value_size: args.value_size,
        threads: args.peer_threads,
        sync_writers: args.writers,
        seed: args.seed,
    };
    anyhow::ensure!(sizes.keys >= 1, "--peer-keys must be at least 1");
    anyhow::ensure!(sizes.threads >= 1 && sizes.sync_writers >= 1, "thread counts must be >= 1");
    anyhow::ensure!(
        (1..=strata_core::batch::MAX_VALUE_BYTES).contains(&sizes.value_size),
        "--value-size must be between 1 and {}",
        strata_core::batch::MAX_VALUE_BYTES
    );
    let config = PeerConfig {
        memtable_bytes: args.peer_memtable_mib.max(1) << 20,
        cache_bytes: args.peer_cache_mib << 20,
        ..PeerConfig::default()
    };
    let selected: Vec<Workload> = if args.peer_workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.peer_workloads.iter().map(|w| w.parse()).collect::<Result<_, _>>()?
    };
    let (_temp, root) = bench_root(args)?;

    let mut report = PeerReport {
        strata_version: env!("CARGO_PKG_VERSION"),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date_utc: utc_now(),
        machine: machine_description(),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        engines: engines.iter().map(|e| e.name().to_string()).collect(),
        settings: settings(&sizes, &config),
        workloads: Vec::new(),
    };
    for (index, workload) in selected.into_iter().enumerate() {
        // Every other workload runs the engines in reverse order, so that no engine is
        // always the one that runs right after the previous workload's stores.
        let mut order: Vec<usize> = (0..engines.len()).collect();
        if index % 2 == 1 {
            order.reverse();
        }
        let mut results: Vec<Option<EngineResult>> = vec![None; engines.len()];
        for i in order {
            let engine = engines[i];
            if !args.json {
                eprintln!("{:<16} {}", workload.name(), engine.name());
            }
            let dir = root.join(format!("peer-{}-{}", workload.name().replace('+', "-"), engine));
            // Write back what earlier runs left dirty, so it does not compete with this
            // run's writes and fdatasyncs.
            settle_disk(&root);
            let result = run_one(engine, workload, &sizes, &config, &dir)
                .with_context(|| format!("{} on {}", workload.name(), engine));
            // Every engine's store is removed, measured or failed.
            let removed = std::fs::remove_dir_all(&dir);
            let result = result?;
            removed.with_context(|| format!("removing {}", dir.display()))?;
            results[i] = Some(result);
        }
        let results: Vec<EngineResult> = results.into_iter().flatten().collect();
        report.workloads.push(WorkloadResult {
            workload: workload.name().to_string(),
            threads: workload.threads(&sizes),
            ops_requested: workload.ops(&sizes),
            sync: workload.sync(),
            ratios: ratios(&results),
            results,
        });
    }

    let html = peers_report::html(&report);
    std::fs::write(&args.report, html)
        .with_context(|| format!("writing the report to {}", args.report.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
        println!("report: {}", args.report.display());
    }
    Ok(())
}

/// `sync -f DIR`: writes back the dirty pages of the file system holding `dir` (best
/// effort: without coreutils' `sync` the runs just start with whatever is pending).
fn settle_disk(dir: &Path) {
    let synced = std::process::Command::new("sync").arg("-f").arg(dir).status();
    if !matches!(synced, Ok(s) if s.success()) {
        tracing::debug!(?synced, "sync -f failed; not waiting for write-back");
    }
}

fn engines(peers: &[String]) -> anyhow::Result<Vec<EngineKind>> {
    let mut out = vec![EngineKind::Strata];
    for p in peers {
        let kind: EngineKind = p.parse()?;
        anyhow::ensure!(
            kind.available(),
            "{kind} is not in this build: rebuild with `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu \
             ROCKSDB_INCLUDE_DIR=/usr/include cargo build --release -p strata-cli --features \
             rocksdb` (links Debian's RocksDB: `apt-get install librocksdb-dev`; without the two \
             variables RocksDB is compiled from C++, over an hour; see docs/peers.md)"
        );
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    anyhow::ensure!(out.len() > 1, "--peers needs at least one peer (fjall or rocksdb)");
    Ok(out)
}

fn run_one(
    engine: EngineKind,
    workload: Workload,
    sizes: &Sizes,
    config: &PeerConfig,
    dir: &Path,
) -> anyhow::Result<EngineResult> {
    anyhow::ensure!(
        !dir.exists() || std::fs::read_dir(dir)?.next().is_none(),
        "{} already exists and is not empty",
        dir.display()
    );
    let store = peers::open(engine, dir, config)?;
    let m: Measurement = workloads::run(&*store, workload, sizes)?;
    store.settle()?;
    let engine_stats = store.engine_stats();
    let usage = peers::disk_usage(dir)?;
    drop(store);
    let latency = Latency::from_hist(workload.name(), m.threads, 1, &m.hist, m.ops, m.elapsed);
    let curve = CURVE
        .iter()
        .map(|&p| {
            let ns = if p >= 100.0 { m.hist.max() } else { m.hist.value_at_percentile(p) };
            (p, ns as f64 / 1000.0)
        })
        .collect();
    Ok(EngineResult {
        engine: engine.name().to_string(),
        latency,
        disk_bytes: usage.total,
        wal_bytes: usage.wal,
        found: m.found,
        reads: m.reads,
        writes: m.writes,
        curve,
        engine_stats,
    })
}

fn ratios(results: &[EngineResult]) -> Vec<Ratio> {
    let Some(strata) = results.first() else { return Vec::new() };
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    results[1..]
        .iter()
        .map(|peer| Ratio {
            peer: peer.engine.clone(),
            throughput: div(strata.latency.ops_per_sec, peer.latency.ops_per_sec),
            p99: div(strata.latency.p99_us, peer.latency.p99_us),
            disk: div(strata.disk_bytes as f64, peer.disk_bytes as f64),
            disk_without_wal: div(
                strata.disk_bytes.saturating_sub(strata.wal_bytes) as f64,
                peer.disk_bytes.saturating_sub(peer.wal_bytes) as f64,
            ),
        })
        .collect()
}

fn settings(sizes: &Sizes, config: &PeerConfig) -> Settings {
    Settings {
        key_bytes: workloads::KEY_LEN,
        value_bytes: sizes.value_size,
        exchange_value_bytes: sizes
            .exchange_value_size
            .map_or("100-300 (exchange mix)".into(), |v| v.to_string()),
        keys: sizes.keys,
        ops: sizes.ops,
        scans: sizes.scans,
        scan_len: sizes.scan_len,
        sync_ops: sizes.sync_ops,
        threads: sizes.threads,
        sync_writers: sizes.sync_writers,
        memtable_mib: config.memtable_bytes >> 20,
        cache_mib: config.cache_bytes >> 20,
        background_threads: config.background_threads,
        bloom_bits_per_key: config.bloom_bits_per_key,
        block_size: config.block_size,
        compression: "none",
        wal: "on (Buffered: write(2) per write, no fsync; Sync: fdatasync per write)",
        seed: sizes.seed,
    }
}

fn print_table(r: &PeerReport) {
    println!("strata bench --peers {} — {}", r.engines[1..].join(","), r.date_utc);
    println!("machine: {} (load average at start: {})", r.machine, r.load_average);
    let s = &r.settings;
    println!(
        "keys {} B, values {} B (exchange: {}), {} keys, {} ops, {} scans × {}, {} sync ops, \
         {} threads, {} sync writers, memtable {} MiB, cache {} MiB, bloom {} bits/key, \
         blocks {} B, no compression",
        s.key_bytes,
        s.value_bytes,
        s.exchange_value_bytes,
        s.keys,
        s.ops,
        s.scans,
        s.scan_len,
        s.sync_ops,
        s.threads,
        s.sync_writers,
        s.memtable_mib,
        s.cache_mib,
        s.bloom_bits_per_key,
        s.block_size
    );
    for w in &r.workloads {
        println!();
        println!("{} ({} threads, {} ops)", w.workload, w.threads, w.ops_requested);
        println!(
            "  {:<8} {:>12} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8}",
            "engine",
            "ops/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "disk MiB",
            "WAL MiB",
            "found"
        );
        for e in &w.results {
            let l = &e.latency;
            println!(
                "  {:<8} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>10.1} {:>9.1} {:>8}",
                e.engine,
                l.ops_per_sec,
                l.p50_us,
                l.p99_us,
                l.p999_us,
                l.max_us,
                e.disk_bytes as f64 / (1024.0 * 1024.0),
                e.wal_bytes as f64 / (1024.0 * 1024.0),
                e.found
            );
            if !e.engine_stats.is_empty() {
                let stats: Vec<String> =
                    e.engine_stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("           {}", stats.join(" "));
            }
        }
        for q in &w.ratios {
            println!(
                "  strata/{:<7} throughput {:.2}×   p99 {:.2}×   disk {:.2}× ({:.2}× without WAL)",
                q.peer, q.throughput, q.p99, q.disk, q.disk_without_wal
            );
        }
    }
}

/// Now as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Default file of the HTML report.
pub fn default_report_path() -> PathBuf {
    PathBuf::from("strata-peers.html")
}
