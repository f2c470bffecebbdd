//! Durability positions and epochs: `durable_seq`, and epochs that are never reused.

use super::*;

pub(super) fn durable_seq_tracks_syncs(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    let mut last_durable = wal.durable_seq();
    let mut check = |wal: &dyn Wal, what: &str| -> CheckResult {
        let (durable, last) = (wal.durable_seq(), wal.last_seq());
        ensure!(
            durable <= last,
            "clause `durable_seq never exceeds last_seq`: {what}: durable {durable}, last {last}"
        );
        ensure!(
            durable >= last_durable,
            "clause `durable_seq never decreases`: {what}: {last_durable} then {durable}"
        );
        last_durable = durable;
        Ok(())
    };
    for i in 0..4u64 {
        append(&*wal, &mut log, 1400 + i, 1, Durability::Buffered)?;
        check(&*wal, "after a Buffered append")?;
    }
    append(&*wal, &mut log, 1410, 2, Durability::Sync)?;
    check(&*wal, "after a Sync append")?;
    let synced = log.last().map_or(SeqNo::ZERO, Rec::last);
    ensure!(
        wal.durable_seq() >= synced,
        "clause `durable_seq is the last sequence on stable storage`: a Sync append of {synced} \
         returned, durable_seq is {}",
        wal.durable_seq()
    );
    append(&*wal, &mut log, 1420, 1, Durability::Buffered)?;
    wal.sync().ctx("sync")?;
    check(&*wal, "after sync()")?;
    ensure!(
        wal.durable_seq() == wal.last_seq(),
        "clause `durable_seq is the last sequence on stable storage`: after sync() durable_seq \
         is {}, last_seq {}",
        wal.durable_seq(),
        wal.last_seq()
    );
    Ok(())
}

pub(super) fn epochs_are_never_reused(s: &Subject) -> CheckResult {
    let mut fs = fresh_fs()?;
    let mut seen = Vec::new();
    let mut log = Vec::new();
    for round in 0..3u64 {
        let wal = s.open(&fs)?;
        let epoch = wal.epoch();
        ensure!(
            seen.iter().all(|e| *e < epoch),
            "clause `each opening for writing starts a new epoch, never reused`: round {round} \
             writes in {epoch}, after epochs {seen:?} wrote batches"
        );
        log.truncate(read_all(&*wal, SeqNo(1))?.len());
        // Unsynced batches: the power loss below takes them, but their epoch was used.
        for i in 0..3u64 {
            append(&*wal, &mut log, 1500 + round * 10 + i, 1, Durability::Buffered)?;
        }
        let batches = read_all(&*wal, SeqNo(1))?;
        let last = batches.last().map(|b| b.epoch);
        ensure!(
            last == Some(epoch),
            "clause `every batch carries the epoch it was written in`: the newest batch says \
             {last:?}, the log writes in {epoch}"
        );
        let history = wal.epoch_history();
        ensure!(
            history.last().map(|e| e.epoch) == Some(epoch),
            "clause `the epoch is in the durable history before its first batch`: history \
             {history:?} does not end with {epoch}"
        );
        seen.push(epoch);
        let next = fs.crash();
        drop(wal);
        fs = next;
    }
    Ok(())
}

pub(super) fn copy_to_is_a_consistent_copy(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..20u64 {
        let d = if i % 4 == 0 { Durability::Sync } else { Durability::Buffered };
        append(&*wal, &mut log, 1600 + i, 1 + (i % 3) as u32, d)?;
    }
    // A writer keeps appending while the copies are taken.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (wal, stop) = (Arc::clone(&wal), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) && n < 2000 {
                if wal.append(&payload(1700 + n), 1, Durability::Buffered).is_err() {
                    break;
                }
                n += 1;
            }
        })
    };
    let mut result = Ok(());
    for round in 0..4 {
        let before = wal.last_seq();
        let dir = PathBuf::from(format!("/copy-{round}"));
        let copied = strata_core::fs::FileSystem::create_dir_all(&fs, &dir)
            .ctx("create the copy's directory")
            .and_then(|()| wal.copy_to(&fs, &dir).ctx("copy_to"))
            .and_then(|()| s.factory.open(fs.shared(), &dir).ctx("open the copy"))
            .and_then(|copy| read_all(&*copy, SeqNo(1)));
        let check = copied.and_then(|got| {
            check_prefix(&log, &got[..got.len().min(log.len())], log.len(), "the copy")?;
            let last = got.last().map_or(SeqNo::ZERO, WalBatch::last_seq);
            ensure!(
                last >= before,
                "clause `copy_to copies every batch appended before the call`: round {round}: \
                 the log was at {before} when the copy started, the copy ends at {last}"
            );
            for pair in got.windows(2) {
                ensure!(
                    pair[1].first_seq == pair[0].last_seq().next(),
                    "clause `copy_to copies the log as it stood at one moment`: round {round}: \
                     the copy jumps from {} to {}",
                    pair[0].last_seq(),
                    pair[1].first_seq
                );
            }
            Ok(())
        });
        if check.is_err() {
            result = check;
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let _ = writer.join();
    result
}
