//! `strata inspect` and `strata verify`: read-only looks at a store directory.
//!
//! Neither command changes a byte or keeps the store's LOCK. Before reading, each checks
//! whether the LOCK is held (a shared try-lock, released at once). A store open in
//! another process changes under a reader — a flush checkpoints WAL segments away, a
//! compaction deletes its input tables, a rotation seals the newest segment just after
//! its successor appears — so without `--live` both refuse such a store with exit code
//! 2, naming the process that holds the lock when `/proc/locks` tells. With `--live`
//! they read a consistent view instead: the manifest is read before the WAL (whose end
//! must reach its flushed sequence) and again after it (whose flushed sequence covers
//! every segment checkpointed before the WAL was listed); a listed table that vanished
//! counts as compacted away when the re-read manifest no longer lists it; a WAL listing
//! whose segment vanished before it was opened is taken again; and a look that still
//! finds a problem is repeated (tables, which never change, are checked once), so only
//! what every look finds is reported.
//!
//! Memory stays bounded by the largest WAL record and table block, not by file sizes:
//! tables are memory-mapped (their pages belong to the page cache, not the process's
//! heap), WAL segments are read in 1 MiB chunks by
//! [`strata_wal_file::check::check_dir`]. The manifest is read whole: the store rolls
//! it over once an edit takes it past `max_manifest_bytes` (16 MiB by default), so only
//! a file the store did not write can be larger.
//!
//! A directory without a store (no `CURRENT`, manifest, table or WAL segment) is an
//! error, never "0 problems".

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::fs::{FileSystem, OpenMode, OsFileSystem};
use strata_core::manifest::{
    self, CURRENT_FILE, ManifestRead, parse_manifest_file_name, parse_table_file_name,
};
use strata_core::{Error, FileNo, LOCK_FILE, TableFormat};
use strata_sstable_mmap::MmapTableFormat;
use strata_wal_file::check::{SegmentCheck, check_dir};
use strata_wal_file::format::parse_segment_file_name;

/// How many looks at a live store may find a problem before it is reported. A race with
/// the store's background work rarely hits one look, and practically never six in a row
/// (the structural races — checkpointed segments, compacted tables — are handled within
/// a look); real damage is found by every look.
const LIVE_LOOKS: usize = 6;

/// Options of `strata inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// List every table, not only the per-level summary.
    #[arg(long)]
    pub tables: bool,
    /// Look at a store that another process has open, retrying what its background
    /// work changes during the look (without it, such a store is refused).
    #[arg(long)]
    pub live: bool,
}

/// Options of `strata verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Verify a store that another process has open, taking a consistent view (without
    /// it, such a store is refused).
    #[arg(long)]
    pub live: bool,
}

/// `inspect` or `verify` refused a store because another process has it open; `main`
/// exits with [`StoreInUse::EXIT_CODE`] for it.
#[derive(Debug)]
pub struct StoreInUse {
    dir: PathBuf,
    /// The process holding the LOCK, when `/proc/locks` names it.
    holder: Option<u32>,
    /// The store was free when the look began and was opened during it.
    opened_during: bool,
}

impl StoreInUse {
    /// The exit code of a refusal (1 stays "problems found" / other errors).
    pub const EXIT_CODE: u8 = 2;
}

impl fmt::Display for StoreInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.holder {
            Some(pid) => format!("process {pid}"),
            None => "another process (not named in /proc/locks)".to_owned(),
        };
        if self.opened_during {
            write!(
                f,
                "store {} was opened by {who} while it was being read, so what was found may \
                 be changes in flight; use --live to read it while it runs, or stop it first",
                self.dir.display()
            )
        } else {
            write!(
                f,
                "store {} is open by {who}; use --live to read it while it runs, or stop it \
                 first",
                self.dir.display()
            )
        }
    }
}

impl std::error::Error for StoreInUse {}

/// Whether a process holds the store's LOCK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockState {
    Free,
    /// Held, by the process named if `/proc/locks` tells.
    Held(Option<u32>),
}

/// Tries the store's LOCK without keeping it.
fn lock_state(dir: &Path) -> anyhow::Result<LockState> {
    let path = dir.join(LOCK_FILE);
    // Opened read-only and never created: a look adds nothing to the directory. A store
    // never opened has no LOCK, and nobody can hold it.
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Free),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("open {}", path.display()))),
    };
    // Shared and released at once: a lock kept through the look would make an open in
    // another process fail with `Error::Locked` meanwhile.
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()
                .map_err(|e| anyhow::Error::new(e).context(format!("unlock {}", path.display())))?;
            Ok(LockState::Free)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(LockState::Held(lock_holder(&file))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("try-lock {}", path.display())))
        }
    }
}

/// The process holding a lock on `file`, from `/proc/locks` (Linux; `None` elsewhere, or
/// when the holder lives in another pid namespace).
fn lock_holder(file: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    // glibc's gnu_dev_major / gnu_dev_minor: /proc/locks prints the device as the
    // kernel's major:minor in hex, then the inode in decimal.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    holder_in_proc_locks(&std::fs::read_to_string("/proc/locks").ok()?, &id)
}

/// The pid of the lock on the file `id` (`major:minor:inode`) in `/proc/locks` text.
fn holder_in_proc_locks(locks: &str, id: &str) -> Option<u32> {
    locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 4711 fd:01:1234 0 EOF`; a process waiting for the
        // lock is listed as `1: -> FLOCK ...` and holds nothing.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") || fields.get(5) != Some(&id) {
            return None;
        }
        fields.get(4)?.parse().ok()
    })
}

/// Refuses a store another process holds, unless the caller looks at it `live`.
fn refuse_if_open(dir: &Path, live: bool) -> anyhow::Result<()> {
    match lock_state(dir)? {
        LockState::Held(holder) if !live => {
            Err(StoreInUse { dir: dir.to_path_buf(), holder, opened_during: false }.into())
        }
        _ => Ok(()),
    }
}

/// After a look that was not `--live` found something wrong: if the store was opened
/// meanwhile, what was found may be its work in flight, so refuse instead of reporting.
fn refuse_if_opened_during(dir: &Path) -> anyhow::Result<()> {
    match lock_state(dir)? {
        LockState::Held(holder) => {
            Err(StoreInUse { dir: dir.to_path_buf(), holder, opened_during: true }.into())
        }
        LockState::Free => Ok(()),
    }
}

/// Fails unless `dir` is a directory holding at least one file of a store.
fn ensure_store(fs: &dyn FileSystem, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(dir.exists(), "{} does not exist", dir.display());
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let is_store_file = |n: &String| {
        n == CURRENT_FILE
            || parse_manifest_file_name(n).is_some()
            || parse_table_file_name(n).is_some()
            || parse_segment_file_name(n).is_some()
    };
    anyhow::ensure!(
        fs.list_dir(dir)?.iter().any(is_store_file),
        "{} holds no Strata store: no CURRENT, manifest, table or WAL segment (a store \
         writes its first WAL segment when it is opened)",
        dir.display()
    );
    Ok(())
}

/// True when `e` says a file is not there (deleted after it was listed).
fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// [`check_dir`], taken again (up to [`LIVE_LOOKS`] times) when `live` and a segment
/// was checkpointed away between listing the directory and opening it.
fn check_wal(fs: &dyn FileSystem, dir: &Path, live: bool) -> Result<Vec<SegmentCheck>, Error> {
    let mut tries = 1;
    loop {
        match check_dir(fs, dir) {
            Err(e) if live && vanished(&e) && tries < LIVE_LOOKS => tries += 1,
            other => return other,
        }
    }
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

/// What `inspect` prints, gathered before printing so a live look can be retried.
struct InspectView {
    manifest: Option<ManifestRead>,
    names: Vec<String>,
    segments: Vec<SegmentCheck>,
}

fn inspect_once(fs: &dyn FileSystem, dir: &Path, live: bool) -> Result<InspectView, Error> {
    let manifest = read_manifest(fs, dir)?;
    let names = fs.list_dir(dir)?;
    let segments = check_wal(fs, dir, live)?;
    Ok(InspectView { manifest, names, segments })
}

/// Reads what `inspect` prints; on a live store, again while the read fails or a
/// segment looks damaged (a manifest rolled over, a segment sealed mid-read).
fn inspect_view(fs: &dyn FileSystem, dir: &Path, live: bool) -> Result<InspectView, Error> {
    let mut looks = 1;
    loop {
        let view = inspect_once(fs, dir, live);
        let unsettled = match &view {
            Ok(v) => v.segments.iter().any(|s| s.problem.is_some()),
            Err(_) => true,
        };
        if !live || !unsettled || looks >= LIVE_LOOKS {
            return view;
        }
        looks += 1;
    }
}

/// Prints a summary of the manifest, levels, tables and WAL segments.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let fs = OsFileSystem::shared();
    let dir = &args.dir;
    ensure_store(&*fs, dir)?;
    refuse_if_open(dir, args.live)?;
    let view = inspect_view(&*fs, dir, args.live);
    let damaged = view.as_ref().map_or(true, |v| v.segments.iter().any(|s| s.problem.is_some()));
    if damaged && !args.live {
        refuse_if_opened_during(dir)?;
    }
    let InspectView { manifest: read, names, segments } = view?;
    println!("store      {}", dir.display());
    let mut listed = std::collections::BTreeSet::new();
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
    let orphans: Vec<&String> = names
        .iter()
        .filter(|n| parse_table_file_name(n).is_some_and(|no| !listed.contains(&no)))
        .collect();
    if !orphans.is_empty() {
        let what = if args.live {
            // On a running store these are flush or compaction outputs not yet in the
            // manifest, or compaction inputs a reader still holds.
            "unlisted tables (being written, or awaiting deletion)"
        } else {
            "unlisted tables (deleted at the next open)"
        };
        let names: Vec<&str> = orphans.iter().map(|n| n.as_str()).collect();
        println!("\n{what}: {}", names.join(", "));
    }
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
    ensure_store(&*fs, dir)?;
    refuse_if_open(dir, args.live)?;
    let f = verify_dir(&fs, dir, args.live);
    let troubled = f.as_ref().map_or(true, |f| !f.problems.is_empty());
    if troubled && !args.live {
        refuse_if_opened_during(dir)?;
    }
    let f = f?;
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

/// Verifies `dir`: once, or on a `live` store up to [`LIVE_LOOKS`] times until a look
/// finds nothing wrong. Tables are immutable, so each is checked once across looks.
fn verify_dir(fs: &Arc<dyn FileSystem>, dir: &Path, live: bool) -> anyhow::Result<Findings> {
    let mut tables = HashMap::new();
    let mut looks = 1;
    loop {
        let found = verify_once(&**fs, dir, live, &mut tables);
        let clean = found.as_ref().is_ok_and(|f| f.problems.is_empty());
        if !live || clean || looks >= LIVE_LOOKS {
            return found.map(|mut f| {
                if looks > 1 {
                    f.notes.push(if clean {
                        format!("the store changed during the look; look {looks} was consistent")
                    } else {
                        format!("each of {looks} looks at the live store found the problems below")
                    });
                }
                f
            });
        }
        looks += 1;
    }
}

/// One look: manifest, its tables, the WAL, the manifest again.
fn verify_once(
    fs: &dyn FileSystem,
    dir: &Path,
    live: bool,
    tables: &mut HashMap<FileNo, Vec<String>>,
) -> anyhow::Result<Findings> {
    let mut f = Findings::default();
    let format = MmapTableFormat::default();
    // Read before the WAL: the store syncs the WAL through a flushed sequence before the
    // manifest edit recording it, so a WAL listed afterwards reaches at least that far.
    let mut flushed_before = None;
    let mut gone = Vec::new();
    let before = read_manifest(fs, dir);
    match &before {
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
            flushed_before = Some(m.state.flushed_seq);
            for (level, meta) in m.state.live_tables() {
                if let Some(found) = tables.get(&meta.file_no) {
                    f.tables_checked += 1;
                    f.table_bytes += meta.size_bytes;
                    f.problems.extend(found.iter().cloned());
                    continue;
                }
                let path = dir.join(meta.file_no.table_file_name());
                let file = match fs.open(&path, OpenMode::ReadOnly) {
                    Ok(file) => file,
                    // Judged against the manifest read after the WAL, below.
                    Err(e) if vanished(&e) => {
                        gone.push((level, meta.file_no, e));
                        continue;
                    }
                    Err(e) => {
                        f.problems.push(format!("L{level} table {}: {e}", meta.file_no));
                        continue;
                    }
                };
                f.tables_checked += 1;
                f.table_bytes += meta.size_bytes;
                // Mapped, not read: checking a table costs address space, not memory.
                let found = match format.open(file, meta.file_no) {
                    Err(e) => vec![e.to_string()],
                    Ok(table) => {
                        let got = table.meta();
                        let mut found = Vec::new();
                        if got.size_bytes != meta.size_bytes || got.entries != meta.entries {
                            found.push(format!(
                                "{}: {} bytes / {} entries on disk, manifest says {} / {}",
                                path.display(),
                                got.size_bytes,
                                got.entries,
                                meta.size_bytes,
                                meta.entries
                            ));
                        }
                        found.extend(table.verify().into_iter().map(|e| e.to_string()));
                        found
                    }
                };
                f.problems.extend(found.iter().cloned());
                tables.insert(meta.file_no, found);
            }
        }
    }
    let segments = check_wal(fs, dir, live)?;
    // Read after the WAL: the store checkpoints segments only up to a flushed sequence
    // it recorded first, so every segment missing from the listing is covered by this
    // manifest's flushed sequence; and a table compaction deleted is no longer in it.
    let after = match &before {
        Ok(Some(_)) => read_manifest(fs, dir).ok().flatten(),
        _ => None,
    };
    let flushed_after = after.as_ref().map(|m| m.state.flushed_seq).or(flushed_before);
    for (level, file_no, e) in gone {
        let still_listed =
            after.as_ref().is_none_or(|m| m.state.live_tables().any(|(_, t)| t.file_no == file_no));
        if still_listed {
            f.problems.push(format!("L{level} table {file_no}: {e}"));
        } else {
            f.notes.push(format!("table {file_no} (L{level}) was compacted away during the look"));
        }
    }
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
    if let (Some(before), Some(after)) = (flushed_before, flushed_after) {
        let first = segments.first().map(|s| s.start_seq);
        let last = segments.last().map(|s| s.last_seq);
        match (first, last) {
            (Some(first), Some(last)) => {
                if first.0 > after.0 + 1 {
                    f.problems.push(format!(
                        "the WAL starts at #{} but only #{} and earlier are in tables: \
                         sequences in between are lost",
                        first.0, after.0
                    ));
                }
                if last < before {
                    f.problems.push(format!(
                        "the WAL ends at #{} but the tables hold up to #{}",
                        last.0, before.0
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

    #[test]
    fn the_lock_holder_is_read_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 17 00:2f:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4711 fd:01:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5000 fd:01:1234 0 EOF\n";
        assert_eq!(holder_in_proc_locks(locks, "fd:01:1234"), Some(4711));
        assert_eq!(holder_in_proc_locks(locks, "fd:01:12345"), None);
        let waiter_only = "2: -> FLOCK  ADVISORY  WRITE 5000 fd:01:1234 0 EOF\n";
        assert_eq!(holder_in_proc_locks(waiter_only, "fd:01:1234"), None);
    }

    /// The lock this process takes through the store's own `FileSystem::lock` is seen
    /// as held, by this process.
    #[test]
    fn a_held_lock_is_seen_with_its_holder() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(lock_state(dir.path())?, LockState::Free);
        assert!(!dir.path().join(LOCK_FILE).exists(), "a look creates no LOCK file");
        let held = OsFileSystem.lock(&dir.path().join(LOCK_FILE))?;
        assert_eq!(lock_state(dir.path())?, LockState::Held(Some(std::process::id())));
        drop(held);
        assert_eq!(lock_state(dir.path())?, LockState::Free);
        // The look released what it tried: the store can be locked again.
        let _again = OsFileSystem.lock(&dir.path().join(LOCK_FILE))?;
        Ok(())
    }
}
