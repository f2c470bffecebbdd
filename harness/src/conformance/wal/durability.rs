//! Power loss, torn tails, poisoning after I/O failures and concurrent appenders.

use super::*;

pub(super) fn sync_append_survives_power_loss(s: &Subject) -> CheckResult {
    let mut fs = fresh_fs()?;
    let mut log = Vec::new();
    for round in 0..4u64 {
        let wal = s.open(&fs)?;
        for i in 0..6u64 {
            append(&*wal, &mut log, round * 100 + i, 1, Durability::Buffered)?;
        }
        append(&*wal, &mut log, round * 100 + 50, 2, Durability::Sync)?;
        let acked = log.len();
        for i in 0..4u64 {
            append(&*wal, &mut log, round * 100 + 60 + i, 1, Durability::Buffered)?;
        }
        let next = fs.crash();
        drop(wal);
        fs = next;
        let wal = s.open(&fs)?;
        let got = read_all(&*wal, SeqNo(1))?;
        let n = check_prefix(&log, &got, acked, &format!("round {round}, after a power loss"))?;
        log.truncate(n);
    }
    Ok(())
}

pub(super) fn sync_makes_buffered_durable(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..8u64 {
        append(&*wal, &mut log, 300 + i, 1, Durability::Buffered)?;
    }
    wal.sync().ctx("sync")?;
    let after = fs.crash();
    drop(wal);
    let wal = s.open(&after)?;
    let got = read_all(&*wal, SeqNo(1))?;
    ensure!(
        got.len() == log.len(),
        "clause `sync() makes every appended batch durable`: {} batches appended and synced, {} survived a power loss",
        log.len(),
        got.len()
    );
    check_prefix(&log, &got, log.len(), "after sync() and a power loss")?;
    Ok(())
}

pub(super) fn torn_tail_is_cut(s: &Subject) -> CheckResult {
    for seed in 0..8u64 {
        let fs = fresh_fs()?;
        let mut log = Vec::new();
        let wal = s.open(&fs)?;
        for i in 0..5u64 {
            append(&*wal, &mut log, seed * 50 + i, 1, Durability::Sync)?;
        }
        for i in 0..6u64 {
            append(&*wal, &mut log, seed * 50 + 10 + i, 1 + (i % 2) as u32, Durability::Buffered)?;
        }
        let after = fs.crash_with(CrashMode::TornTail { seed });
        drop(wal);
        let wal = after_open(s, &after, seed)?;
        let got = read_all(&*wal, SeqNo(1))?;
        let n = check_prefix(&log, &got, 5, &format!("torn tail (seed {seed})"))?;
        log.truncate(n);
        let last = log.last().map_or(SeqNo::ZERO, Rec::last);
        ensure!(
            wal.last_seq() == last,
            "torn tail (seed {seed}): last_seq() is {}, the log holds batches up to {last}",
            wal.last_seq()
        );
        ensure!(
            wal.recovery().last_seq == last,
            "torn tail (seed {seed}): recovery().last_seq is {}, expected {last}",
            wal.recovery().last_seq
        );
        append(&*wal, &mut log, seed * 50 + 40, 1, Durability::Sync)?;
        drop(wal);
        let wal = s.open(&after)?;
        let got = read_all(&*wal, SeqNo(1))?;
        ensure!(
            got.len() == log.len(),
            "torn tail (seed {seed}): after appending past the cut and reopening, {} batches, expected {}",
            got.len(),
            log.len()
        );
        check_prefix(
            &log,
            &got,
            log.len(),
            &format!("torn tail (seed {seed}), reopened after appending"),
        )?;
    }
    Ok(())
}

pub(super) fn after_open(
    s: &Subject,
    fs: &SimFileSystem,
    seed: u64,
) -> Result<Arc<dyn Wal>, String> {
    s.factory.open(fs.shared(), Path::new(DIR)).map_err(|e| {
        format!("clause `a torn tail is cut off`: reopening after a torn-tail power loss (seed {seed}) failed: {e}")
    })
}

pub(super) fn expect_poisoned(
    r: strata_core::Result<impl std::fmt::Debug>,
    what: &str,
) -> CheckResult {
    match r {
        Err(Error::Poisoned { .. }) => Ok(()),
        other => Err(format!(
            "clause `after any write or sync failure every later append or sync returns Error::Poisoned`: \
             {what} returned {other:?}"
        )),
    }
}

pub(super) fn fsync_failure_poisons(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..3u64 {
        append(&*wal, &mut log, 400 + i, 1, Durability::Sync)?;
    }
    fs.fail_sync_after(1);
    let r = wal.append(&payload(410), 1, Durability::Sync);
    ensure!(
        r.is_err(),
        "clause `Sync returns Ok only once the batch is on stable storage`: the fsync failed but append(Sync) returned {r:?}"
    );
    expect_poisoned(
        wal.append(&payload(411), 1, Durability::Buffered),
        "append(Buffered) after a failed fsync",
    )?;
    expect_poisoned(wal.sync().map(|()| 0), "sync() after a failed fsync")?;
    fs.clear_faults();
    expect_poisoned(
        wal.append(&payload(412), 1, Durability::Sync),
        "append(Sync) after the fault cleared",
    )?;
    let got = read_all(&*wal, SeqNo(1))
        .map_err(|e| format!("clause `reads keep working after poisoning`: {e}"))?;
    ensure!(
        got.len() >= 3,
        "clause `reads keep working after poisoning`: {} batches readable, expected at least 3",
        got.len()
    );
    let prefix: Vec<WalBatch> = got.into_iter().take(3).collect();
    check_prefix(&log, &prefix, 3, "reading a poisoned log")?;
    let after = fs.crash();
    drop(wal);
    let wal = s.open(&after)?;
    let got = read_all(&*wal, SeqNo(1))?;
    let mut model = log.clone();
    model.push(Rec { first: SeqNo(4), count: 1, payload: payload(410) });
    check_prefix(&model, &got, 3, "reopened after a failed fsync and a power loss")?;
    Ok(())
}

pub(super) fn write_failure_poisons(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    append(&*wal, &mut log, 500, 1, Durability::Sync)?;
    fs.fail_writes_after(1);
    let r = wal.append(&payload(501), 1, Durability::Buffered);
    ensure!(
        r.is_err(),
        "clause `Buffered returns once the OS holds the bytes`: the write failed but append returned {r:?}"
    );
    fs.clear_faults();
    expect_poisoned(
        wal.append(&payload(502), 1, Durability::Buffered),
        "append(Buffered) after a failed write",
    )?;
    expect_poisoned(wal.sync().map(|()| 0), "sync() after a failed write")?;
    Ok(())
}

/// Writes `n` single-op `Sync` batches, closes the log, and returns them with the files.
pub(super) fn concurrent_durable(s: &Subject) -> CheckResult {
    concurrent(s, true)
}

pub(super) fn concurrent_volatile(s: &Subject) -> CheckResult {
    concurrent(s, false)
}

pub(super) fn concurrent(s: &Subject, durable: bool) -> CheckResult {
    const THREADS: u64 = 4;
    const PER: u64 = 40;
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || -> Result<Vec<(Rec, bool)>, String> {
                let mut mine = Vec::new();
                for i in 0..PER {
                    let p = payload(t * 1000 + i + 10_000);
                    let count = 1 + (i % 3) as u32;
                    let sync = i % 2 == 0;
                    let d = if sync { Durability::Sync } else { Durability::Buffered };
                    let first = wal.append(&p, count, d).ctx("concurrent append")?;
                    mine.push((Rec { first, count, payload: p }, sync));
                }
                Ok(mine)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "an appender thread panicked".to_owned())??);
    }
    all.sort_by_key(|(r, _)| r.first);
    let mut next = 1u64;
    for (r, _) in &all {
        ensure!(
            r.first.0 == next,
            "clause `append assigns dense sequences`: concurrent appends left a gap or overlap: \
             expected a batch starting at #{next}, found one at {}",
            r.first
        );
        next = r.last().0 + 1;
    }
    ensure!(
        wal.last_seq() == SeqNo(next - 1),
        "last_seq() is {} after concurrent appends, expected #{}",
        wal.last_seq(),
        next - 1
    );
    let log: Vec<Rec> = all.iter().map(|(r, _)| r.clone()).collect();
    let got = read_all(&*wal, SeqNo(1))?;
    ensure!(
        got.len() == log.len(),
        "read back {} batches after concurrent appends, expected {}",
        got.len(),
        log.len()
    );
    check_prefix(
        &log,
        &got,
        log.len(),
        "clause `on-disk order equals sequence order`, after concurrent appends",
    )?;
    if durable {
        let acked = all.iter().rposition(|(_, sync)| *sync).map_or(0, |i| i + 1);
        let after = fs.crash();
        drop(wal);
        let wal = s.open(&after)?;
        let got = read_all(&*wal, SeqNo(1))?;
        check_prefix(&log, &got, acked, "after concurrent Sync appends and a power loss")?;
    }
    Ok(())
}
