//! Damaged records and checkpoints: what a log may delete and what it must report.

use super::*;

pub(super) fn synced_log(
    s: &Subject,
    fs: &SimFileSystem,
    n: u64,
    seed: u64,
) -> Result<(Vec<Rec>, Vec<PathBuf>), String> {
    let wal = s.open(fs)?;
    let mut log = Vec::new();
    for i in 0..n {
        append(&*wal, &mut log, seed + i, 1, Durability::Sync)?;
    }
    let files = wal.files().ctx("files")?;
    Ok((log, files))
}

/// Finds `needle` in one of `files`; returns the file and the offset.
pub(super) fn locate(
    fs: &SimFileSystem,
    files: &[PathBuf],
    needle: &[u8],
) -> Result<(PathBuf, usize), String> {
    for f in files {
        if let Some(at) = fs.read_file(f).as_deref().and_then(|img| find(img, needle)) {
            return Ok((f.clone(), at));
        }
    }
    Err(format!(
        "cannot find a batch's payload bytes in any file listed by files() ({files:?}); the corruption \
         checks need payloads stored verbatim (turn off WalCaps::corruption_detection otherwise)"
    ))
}

pub(super) fn flip(fs: &SimFileSystem, file: &Path, at: usize) -> CheckResult {
    let mut img = fs.read_file(file).ok_or_else(|| format!("{} vanished", file.display()))?;
    let b = img
        .get_mut(at)
        .ok_or_else(|| format!("offset {at} is past the end of {}", file.display()))?;
    *b ^= 0x5A;
    fs.write_file_raw(file, &img).ctx("write the damaged file")
}

pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.file_name().is_some() && a.file_name() == b.file_name())
}

pub(super) fn corruption_in_the_middle(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let (log, files) = synced_log(s, &fs, 10, 600)?;
    let victim = log.get(2).ok_or("log too short")?;
    let (file, at) = locate(&fs, &files, &victim.payload)?;
    let flipped = at + 10;
    flip(&fs, &file, flipped)?;
    let clause = "clause `damage anywhere but the tail is Error::Corruption naming the file and offset, never skipped`";
    let check_err = |e: Error, when: &str| -> CheckResult {
        match e {
            Error::Corruption { file: f, offset, .. } => {
                ensure!(
                    same_file(&f, &file),
                    "{clause}: {when}: the error names {}, the damage is in {}",
                    f.display(),
                    file.display()
                );
                ensure!(
                    offset <= flipped as u64,
                    "{clause}: {when}: the error names offset {offset}, past the damaged byte at {flipped}"
                );
                Ok(())
            }
            other => Err(format!("{clause}: {when}: expected Error::Corruption, found: {other}")),
        }
    };
    let wal = match s.factory.open(fs.shared(), Path::new(DIR)) {
        Ok(w) => w,
        Err(e) => return check_err(e, "open"),
    };
    let mut reader = match wal.read_from(SeqNo(1)) {
        Ok(r) => r,
        Err(e) => return check_err(e, "read_from"),
    };
    for (i, want) in log.iter().enumerate() {
        match reader.next_batch() {
            Err(e) => {
                ensure!(i <= 2, "{clause}: batch #{i} (after the damaged #2) failed to read: {e}");
                return check_err(e, "reading");
            }
            Ok(None) => {
                return Err(format!(
                    "{clause}: the log silently ends after {i} batches (batch #2 of {} was damaged; \
                     recovery {:?})",
                    log.len(),
                    wal.recovery()
                ));
            }
            Ok(Some(b)) => {
                ensure!(
                    b.first_seq == want.first && b.payload[..] == want.payload[..],
                    "{clause}: batch #{i} expected {}, served {}",
                    describe(want.first, want.count, &want.payload),
                    describe(b.first_seq, b.count, &b.payload)
                );
            }
        }
    }
    Err(format!(
        "{clause}: a flipped byte at offset {flipped} of {} inside batch #2 was not detected",
        file.display()
    ))
}

pub(super) fn damaged_last_record(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let (log, files) = synced_log(s, &fs, 5, 700)?;
    let victim = log.last().ok_or("empty log")?;
    let (file, at) = locate(&fs, &files, &victim.payload)?;
    let flipped = at + 5;
    flip(&fs, &file, flipped)?;
    let clause =
        "clause `a torn tail is cut off (and reported in WalRecovery); damage is never served`";
    let wal = match s.factory.open(fs.shared(), Path::new(DIR)) {
        Ok(w) => w,
        Err(Error::Corruption { file: f, .. }) if same_file(&f, &file) => return Ok(()),
        Err(e) => return Err(format!("{clause}: open failed with {e}")),
    };
    let got = read_all(&*wal, SeqNo(1)).map_err(|e| format!("{clause}: reading failed: {e}"))?;
    ensure!(
        got.len() == 4,
        "{clause}: after damaging the last of 5 batches the log yields {} batches, expected the 4 intact ones",
        got.len()
    );
    check_prefix(&log, &got, 4, "after damaging the last record")?;
    match wal.recovery().truncated_tail {
        Some((f, offset, _)) => {
            ensure!(
                same_file(&f, &file),
                "{clause}: truncation reported in {}, the damage is in {}",
                f.display(),
                file.display()
            );
            ensure!(
                offset <= flipped as u64,
                "{clause}: truncation reported at offset {offset}, past the damaged byte {flipped}"
            );
        }
        None => {
            return Err(format!(
                "{clause}: the damaged last record was dropped but recovery() reports no truncated tail"
            ));
        }
    }
    let last = log.get(3).map_or(SeqNo::ZERO, Rec::last);
    ensure!(
        wal.last_seq() == last,
        "{clause}: last_seq() is {} after cutting the tail, expected {last}",
        wal.last_seq()
    );
    Ok(())
}

pub(super) fn checkpoint_keeps_newer(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let mut log = Vec::new();
    let wal = s.open(&fs)?;
    for i in 0..120u64 {
        let p = bytes_from(900 + i, 400);
        let first = wal.append(&p, 1, Durability::Buffered).ctx("append")?;
        log.push(Rec { first, count: 1, payload: p });
    }
    wal.sync().ctx("sync")?;
    let cut = log.get(59).map_or(SeqNo::ZERO, Rec::last);
    wal.checkpoint(cut).ctx("checkpoint")?;
    for round in 0..2 {
        let wal = if round == 0 { Arc::clone(&wal) } else { s.open(&fs)? };
        let what = if round == 0 { "after checkpoint" } else { "after checkpoint and reopen" };
        let newer = log.get(60..).unwrap_or_default();
        let got = read_all(&*wal, cut.next())?;
        ensure!(
            got.len() == newer.len(),
            "clause `checkpoint never deletes a batch > seq`: {what}, read_from({}) yields {} batches, expected {}",
            cut.next(),
            got.len(),
            newer.len()
        );
        check_prefix(newer, &got, newer.len(), what)?;
        match wal.read_from(SeqNo(1)) {
            Err(Error::SequenceUnavailable { .. }) => {}
            Err(e) => {
                return Err(format!(
                    "{what}: read_from(#1) failed with {e}, expected Ok or SequenceUnavailable"
                ));
            }
            Ok(_) => {
                let got = read_all(&*wal, SeqNo(1))?;
                ensure!(
                    got.len() == log.len(),
                    "clause `read_from(seq) is SequenceUnavailable if seq was deleted`: {what}, read_from(#1) \
                     succeeded but yields {} of {} batches (it silently skipped deleted ones)",
                    got.len(),
                    log.len()
                );
            }
        }
        ensure!(
            wal.last_seq() == log.last().map_or(SeqNo::ZERO, Rec::last),
            "{what}: last_seq() is {}",
            wal.last_seq()
        );
    }
    Ok(())
}

pub(super) fn full_checkpoint_reopen(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let mut log = Vec::new();
    {
        let wal = s.open(&fs)?;
        for i in 0..50u64 {
            append(&*wal, &mut log, 1100 + i, 1, Durability::Sync)?;
        }
        wal.checkpoint(wal.last_seq()).ctx("checkpoint(last_seq)")?;
    }
    let wal = s.open(&fs)?;
    let last = log.last().map_or(SeqNo::ZERO, Rec::last);
    ensure!(
        wal.last_seq() == last,
        "clause `append assigns sequences dense, right after last_seq()`: after checkpoint(last_seq) and \
         a reopen, last_seq() is {}, expected {last} (sequences would be reused)",
        wal.last_seq()
    );
    let first = wal.append(b"after", 1, Durability::Sync).ctx("append")?;
    ensure!(
        first == last.next(),
        "after checkpoint(last_seq) and a reopen, append returned {first}, expected {}",
        last.next()
    );
    Ok(())
}
