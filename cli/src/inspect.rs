//! `strata inspect` and `strata verify`: read-only looks at a store directory.
//!
//! Neither command takes the store's LOCK or changes a byte: they read the manifest, the
//! tables and the WAL segments as opening would, and report. On a store that is open
//! in another process they see a moment of it that may be mid-flush; run them on a
//! closed store for a definitive answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};
use strata_core::manifest::{self, ManifestRead, parse_table_file_name};
use strata_core::{Error, TableFormat};
use strata_sstable_mmap::MmapTableFormat;
use strata_wal_file::check::{SegmentCheck, check_dir};

/// Options of `strata inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// List every table, not only the per-level summary.
    #[arg(long)]
    pub tables: bool,
}

/// Options of `strata verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The store directory.
    pub dir: PathBuf,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn key_text(k: &[u8]) -> String {
    if k.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(k).into_owned()
    } else {
        k.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn read_manifest(fs: &dyn FileSystem, dir: &Path) -> Result<Option<ManifestRead>, Error> {
    match manifest::read_current(fs, dir)? {
        Some(n) => manifest::read_manifest(fs, dir, n).map(Some),
        None => Ok(None),
    }
}

/// Prints a summary of the manifest, levels, tables and WAL segments.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let fs = OsFileSystem::shared();
    let dir = &args.dir;
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    println!("store      {}", dir.display());
    let read = read_manifest(&*fs, dir)?;
    let mut listed = BTreeSet::new();
    match &read {
        None => println!("manifest   none (a new store, or one that never flushed)"),
        Some(m) => {
            println!(
                "manifest   {} ({} edits{})",
                m.path.display(),
                m.edits,
                m.torn_tail.map_or(String::new(), |(o, n)| format!(
                    ", torn tail of {n} B at offset {o} would be dropped"
                ))
            );
            println!(
                "format     {}   flushed through #{}   next file {}",
                m.state.table_format.as_deref().unwrap_or("?"),
                m.state.flushed_seq.0,
                m.state.next_file_no
            );
            println!("\nlevel  tables        bytes      entries   tombstones  key range");
            for (level, tables) in m.state.levels.iter().enumerate() {
                let bytes: u64 = tables.values().map(|t| t.size_bytes).sum();
                let entries: u64 = tables.values().map(|t| t.entries).sum();
                let tombs: u64 = tables.values().map(|t| t.tombstones).sum();
                let lo = tables.values().map(|t| &t.smallest_key).min();
                let hi = tables.values().map(|t| &t.largest_key).max();
                let range = match (lo, hi) {
                    (Some(l), Some(h)) => format!("{} .. {}", key_text(l), key_text(h)),
                    _ => "-".into(),
                };
                println!(
                    "L{level:<4} {:>6} {:>12} {entries:>12} {tombs:>12}  {range}",
                    tables.len(),
                    human(bytes)
                );
                listed.extend(tables.keys().copied());
            }
            if args.tables {
                println!(
                    "\nlevel  table         bytes    entries  seq range              key range"
                );
                for (level, t) in m.state.live_tables() {
                    println!(
                        "L{level:<4} {} {:>10} {:>10}  #{}..#{}  {} .. {}",
                        t.file_no,
                        human(t.size_bytes),
                        t.entries,
                        t.min_seq.0,
                        t.max_seq.0,
                        key_text(&t.smallest_key),
                        key_text(&t.largest_key)
                    );
                }
            }
        }
    }
    let orphans: Vec<String> = fs
        .list_dir(dir)?
        .into_iter()
        .filter(|n| parse_table_file_name(n).is_some_and(|no| !listed.contains(&no)))
        .collect();
    if !orphans.is_empty() {
        println!("\nunlisted tables (deleted at the next open): {}", orphans.join(", "));
    }
    let segments = check_dir(&*fs, dir)?;
    println!(
        "\nWAL segment                                   start         last    records   used / file"
    );
    for s in &segments {
        println!(
            "{:<40} {:>10} {:>12} {:>10}   {} / {}{}",
            s.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            s.start_seq.0,
            s.last_seq.0,
            s.records,
            human(s.used_bytes),
            human(s.file_bytes),
            if s.problem.is_some() { "  DAMAGED (run strata verify)" } else { "" }
        );
    }
    Ok(())
}

/// Outcome of `strata verify`.
#[derive(Debug, Default)]
struct Findings {
    problems: Vec<String>,
    notes: Vec<String>,
    tables_checked: usize,
    table_bytes: u64,
}

/// Checks manifest, every table's checksums and the WAL; exits with an error listing
/// every problem (file and offset) when any is found.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let fs = OsFileSystem::shared();
    let dir = &args.dir;
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let f = verify_dir(&fs, dir)?;
    for n in &f.notes {
        println!("note: {n}");
    }
    for p in &f.problems {
        println!("PROBLEM: {p}");
    }
    println!(
        "checked {} tables ({}) and the WAL: {} problem(s)",
        f.tables_checked,
        human(f.table_bytes),
        f.problems.len()
    );
    anyhow::ensure!(
        f.problems.is_empty(),
        "{} problem(s) found in {}",
        f.problems.len(),
        dir.display()
    );
    Ok(())
}

fn verify_dir(fs: &Arc<dyn FileSystem>, dir: &Path) -> anyhow::Result<Findings> {
    let mut f = Findings::default();
    let format = MmapTableFormat::default();
    let mut flushed = None;
    match read_manifest(&**fs, dir) {
        Err(e) => f.problems.push(format!("manifest: {e}")),
        Ok(None) => {
            f.notes.push("no CURRENT/manifest: a new store, or one that never flushed".into());
            if fs.list_dir(dir)?.iter().any(|n| parse_table_file_name(n).is_some()) {
                f.problems.push("table files exist but CURRENT is missing".into());
            }
        }
        Ok(Some(m)) => {
            if let Some((o, n)) = m.torn_tail {
                f.notes.push(format!(
                    "{}: torn last record of {n} B at offset {o} (dropped at open)",
                    m.path.display()
                ));
            }
            if let Some(name) = &m.state.table_format
                && name != format.name()
            {
                f.problems.push(format!(
                    "tables are in format {name:?}; this build verifies {:?}",
                    format.name()
                ));
            }
            flushed = Some(m.state.flushed_seq);
            for (level, meta) in m.state.live_tables() {
                let path = dir.join(meta.file_no.table_file_name());
                f.tables_checked += 1;
                f.table_bytes += meta.size_bytes;
                let file = match fs.open(&path, OpenMode::ReadOnly) {
                    Ok(file) => file,
                    Err(e) => {
                        f.problems.push(format!("L{level} table {}: {e}", meta.file_no));
                        continue;
                    }
                };
                let table = match format.open(file, meta.file_no) {
                    Ok(t) => t,
                    Err(e) => {
                        f.problems.push(e.to_string());
                        continue;
                    }
                };
                let got = table.meta();
                if got.size_bytes != meta.size_bytes || got.entries != meta.entries {
                    f.problems.push(format!(
                        "{}: {} bytes / {} entries on disk, manifest says {} / {}",
                        path.display(),
                        got.size_bytes,
                        got.entries,
                        meta.size_bytes,
                        meta.entries
                    ));
                }
                f.problems.extend(table.verify().into_iter().map(|e| e.to_string()));
            }
        }
    }
    let segments: Vec<SegmentCheck> = check_dir(&**fs, dir)?;
    for s in &segments {
        if let Some(e) = &s.problem {
            f.problems.push(e.to_string());
        }
        if let Some(n) = s.torn_tail_bytes {
            f.notes.push(format!(
                "{}: torn tail of {n} B after offset {} (cut off at open)",
                s.path.display(),
                s.used_bytes
            ));
        }
    }
    if let Some(flushed) = flushed {
        let first = segments.first().map(|s| s.start_seq);
        let last = segments.last().map(|s| s.last_seq);
        match (first, last) {
            (Some(first), Some(last)) => {
                if first.0 > flushed.0 + 1 {
                    f.problems.push(format!(
                        "the WAL starts at #{} but only #{} and earlier are in tables: \
                         sequences in between are lost",
                        first.0, flushed.0
                    ));
                }
                if last < flushed {
                    f.problems.push(format!(
                        "the WAL ends at #{} but the tables hold up to #{}",
                        last.0, flushed.0
                    ));
                }
            }
            _ => f.problems.push("the store has tables but no WAL segment".into()),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_read_naturally() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn binary_keys_print_as_hex() {
        assert_eq!(key_text(b"o/000042"), "o/000042");
        assert_eq!(key_text(&[0, 255]), "00ff");
    }
}
