//! The physical floor: what one small write plus fdatasync costs on this machine.

use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};

use super::report::Latency;

/// Writes 128 B at advancing offsets into a preallocated (fallocate), already-synced
/// file and fdatasyncs after each write: the I/O of a single `Sync` WAL append minus
/// everything Strata adds. `File` on [`OsFileSystem`] is a direct `pwrite`/`fdatasync`.
pub fn fdatasync_floor(dir: &Path, samples: u64) -> anyhow::Result<Floor> {
    let fs = OsFileSystem;
    let path = dir.join("fdatasync-floor.bin");
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let file = fs.open(&path, OpenMode::CreateNew)?;
    file.allocate(samples.max(1) * 128 + 4096)?;
    file.sync_data()?;
    fs.sync_dir(dir)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let record = [0xabu8; 128];
    let bar = super::phases::progress(samples, "fdatasync floor");
    let started = Instant::now();
    for i in 0..samples {
        let t = Instant::now();
        file.write_all_at(&record, i * 128)?;
        file.sync_data()?;
        hist.record(t.elapsed().as_nanos() as u64)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    drop(file);
    fs.remove_file(&path)?;
    Ok(Floor { hist, samples, elapsed })
}

/// Raw floor samples, kept as a histogram so two runs can be merged.
pub struct Floor {
    hist: Histogram<u64>,
    samples: u64,
    elapsed: std::time::Duration,
}

/// One floor figure from the samples taken before and after the Sync phases.
pub fn merge(before: Floor, after: Floor) -> anyhow::Result<Latency> {
    let mut hist = before.hist;
    hist.add(&after.hist)?;
    Ok(Latency::from_hist(
        "fdatasync floor (128 B)",
        1,
        1,
        &hist,
        before.samples + after.samples,
        before.elapsed + after.elapsed,
    ))
}
