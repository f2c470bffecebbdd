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
