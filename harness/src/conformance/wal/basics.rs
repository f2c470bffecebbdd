//! Sequencing, reading, reopening, tailing and the model check of the WAL suite.

use super::*;

pub(super) fn fresh_log_is_empty(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    ensure!(
        wal.last_seq() == SeqNo::ZERO,
        "clause `last_seq is ZERO when empty`: found {}",
        wal.last_seq()
    );
    let rec = wal.recovery();
    ensure!(
        rec.last_seq == SeqNo::ZERO && rec.truncated_tail.is_none(),
        "a fresh log reports recovering something: {rec:?}"
    );
    let got = read_all(&*wal, SeqNo(1))?;
    ensure!(got.is_empty(), "an empty log yielded {} batches", got.len());
    Ok(())
}

pub(super) fn append_assigns_dense_sequences(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for (i, count) in [1u32, 3, 1, 5, 2, 1, 7].into_iter().enumerate() {
        let d = if i % 2 == 0 { Durability::Buffered } else { Durability::Sync };
        append(&*wal, &mut log, i as u64, count, d)?;
    }
    Ok(())
}

pub(super) fn read_from_in_order(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..12u64 {
        append(&*wal, &mut log, 100 + i, 1 + (i % 4) as u32, Durability::Buffered)?;
    }
    let all = read_all(&*wal, SeqNo(1))?;
    ensure!(
        all.len() == log.len(),
        "read_from(#1) yielded {} batches, {} were appended",
        all.len(),
        log.len()
    );
    check_prefix(&log, &all, log.len(), "read_from(#1)")?;
    let last = wal.last_seq();
    for seq in 1..=last.0 {
        let got = read_all(&*wal, SeqNo(seq))?;
        let start = log.iter().position(|r| r.last().0 >= seq).unwrap_or(log.len());
        let want = log.get(start..).unwrap_or_default();
        ensure!(
            got.len() == want.len(),
            "clause `read_from(seq) yields every committed batch whose last sequence is >= seq`: \
             read_from(#{seq}) yielded {} batches, expected {}",
            got.len(),
            want.len()
        );
        check_prefix(want, &got, want.len(), &format!("read_from(#{seq})"))?;
    }
    match wal.read_from(last.next()) {
        Ok(mut r) => {
            let next = r.next_batch().ctx("next_batch past the end")?;
            ensure!(next.is_none(), "read_from(last_seq + 1) yielded {next:?}");
        }
        Err(Error::SequenceUnavailable { .. }) => {}
        Err(e) => return Err(format!("read_from(last_seq + 1) failed: {e}")),
    }
    Ok(())
}

pub(super) fn reopen_keeps_every_batch(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let mut log = Vec::new();
    {
        let wal = s.open(&fs)?;
        for i in 0..20u64 {
            let d = if i % 5 == 4 { Durability::Sync } else { Durability::Buffered };
            append(&*wal, &mut log, 200 + i, 1 + (i % 3) as u32, d)?;
        }
    }
    let wal = s.open(&fs)?;
    let last = log.last().map_or(SeqNo::ZERO, Rec::last);
    ensure!(
        wal.last_seq() == last,
        "after a clean reopen last_seq() is {}, expected {last}",
        wal.last_seq()
    );
    ensure!(
        wal.recovery().last_seq == last,
        "recovery().last_seq is {}, expected {last}",
        wal.recovery().last_seq
    );
    let got = read_all(&*wal, SeqNo(1))?;
    ensure!(
        got.len() == log.len(),
        "after a clean reopen the log holds {} batches, expected {}",
        got.len(),
        log.len()
    );
    check_prefix(&log, &got, log.len(), "after a clean reopen")?;
    append(&*wal, &mut log, 999, 2, Durability::Sync)?;
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Append { count: u32, sync: bool },
    Sync,
    Reopen,
    Crash { torn: Option<u64> },
    ReadFrom(u8),
}

fn op_strategy(crashes: bool) -> impl Strategy<Value = Op> {
    let crash_weight = if crashes { 1 } else { 0 };
    prop_oneof![
        8 => (1u32..4, any::<bool>()).prop_map(|(count, sync)| Op::Append { count, sync }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        crash_weight => prop::option::of(0u64..1000).prop_map(|torn| Op::Crash { torn }),
        1 => any::<u8>().prop_map(Op::ReadFrom),
    ]
}

pub(super) fn model_with_crashes(s: &Subject) -> CheckResult {
    model(s, true)
}

pub(super) fn model_without_crashes(s: &Subject) -> CheckResult {
    model(s, false)
}

fn model(s: &Subject, crashes: bool) -> CheckResult {
    property(64, prop::collection::vec(op_strategy(crashes), 1..40), |ops| {
        let mut fs = fresh_fs()?;
        let mut wal = s.open(&fs)?;
        let mut log: Vec<Rec> = Vec::new();
        let mut durable = 0usize;
        let mut seed = 0u64;
        for op in ops {
            match op {
                Op::Append { count, sync } => {
                    seed += 1;
                    let d = if sync { Durability::Sync } else { Durability::Buffered };
                    append(&*wal, &mut log, seed, count, d)?;
                    if sync {
                        durable = log.len();
                    }
                }
                Op::Sync => {
                    wal.sync().ctx("sync")?;
                    durable = log.len();
                }
                Op::Reopen => {
                    drop(wal);
                    wal = s.open(&fs)?;
                    let got = read_all(&*wal, SeqNo(1))?;
                    ensure!(
                        got.len() == log.len(),
                        "after a clean reopen the log holds {} batches, expected {}",
                        got.len(),
                        log.len()
                    );
                    check_prefix(&log, &got, log.len(), "after a clean reopen")?;
                }
                Op::Crash { torn } => {
                    let mode =
                        torn.map_or(CrashMode::DropUnsynced, |seed| CrashMode::TornTail { seed });
                    let next = fs.crash_with(mode);
                    drop(wal);
                    fs = next;
                    wal = s.open(&fs)?;
                    let got = read_all(&*wal, SeqNo(1))?;
                    let n = check_prefix(
                        &log,
                        &got,
                        durable,
                        &format!("after a power loss ({mode:?})"),
                    )?;
                    log.truncate(n);
                    durable = n;
                    let last = log.last().map_or(SeqNo::ZERO, Rec::last);
                    ensure!(
                        wal.last_seq() == last,
                        "after a power loss last_seq() is {}, but the log holds batches up to {last}",
                        wal.last_seq()
                    );
                }
                Op::ReadFrom(at) => {
                    let last = log.last().map_or(0, |r| r.last().0);
                    let seq = 1 + u64::from(at) % (last + 1);
                    let got = read_all(&*wal, SeqNo(seq))?;
                    let start = log.iter().position(|r| r.last().0 >= seq).unwrap_or(log.len());
                    let want = log.get(start..).unwrap_or_default();
                    ensure!(
                        got.len() == want.len(),
                        "read_from(#{seq}) yielded {} batches, expected {}",
                        got.len(),
                        want.len()
                    );
                    check_prefix(want, &got, want.len(), &format!("read_from(#{seq})"))?;
                }
            }
        }
        Ok(())
    })
}

pub(super) fn tailing_reader(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    append(&*wal, &mut log, 800, 1, Durability::Buffered)?;
    append(&*wal, &mut log, 801, 2, Durability::Buffered)?;
    let mut reader = wal.read_from(SeqNo(1)).ctx("read_from")?;
    for _ in 0..2 {
        ensure!(
            reader.next_batch().ctx("next_batch")?.is_some(),
            "the reader missed a committed batch"
        );
    }
    let none = reader.next_batch().ctx("next_batch when caught up")?;
    ensure!(none.is_none(), "clause `next_batch returns None when caught up`: found {none:?}");
    let none = reader.wait_next(Duration::from_millis(20)).ctx("wait_next with nothing new")?;
    ensure!(
        none.is_none(),
        "clause `wait_next waits up to timeout`: with nothing appended it returned {none:?}"
    );
    let p = payload(802);
    let writer = {
        let wal = Arc::clone(&wal);
        let p = p.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            wal.append(&p, 1, Durability::Buffered)
        })
    };
    let got = reader.wait_next(Duration::from_secs(10)).ctx("wait_next");
    let appended =
        writer.join().map_err(|_| "the appender thread panicked".to_owned())?.ctx("append")?;
    let got = got?;
    match got {
        Some(b) => ensure!(
            b.first_seq == appended && b.payload[..] == p[..],
            "clause `a reader can wait for batches appended later`: expected {}, found {}",
            describe(appended, 1, &p),
            describe(b.first_seq, b.count, &b.payload)
        ),
        None => return Err("clause `a reader can wait for batches appended later`: wait_next(10 s) returned None although a batch was appended after 50 ms".into()),
    }
    Ok(())
}

pub(super) fn files_exist(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..5u64 {
        append(&*wal, &mut log, 1200 + i, 1, Durability::Sync)?;
    }
    let files = wal.files().ctx("files")?;
    ensure!(!files.is_empty(), "files() lists nothing for a log holding 5 batches");
    for f in &files {
        ensure!(fs.read_file(f).is_some(), "files() lists {}, which does not exist", f.display());
    }
    Ok(())
}

pub(super) fn tailing_unsupported(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    append(&*wal, &mut log, 1300, 1, Durability::Buffered)?;
    let mut reader = wal.read_from(SeqNo(1)).ctx("read_from")?;
    match reader.wait_next(Duration::from_millis(10)) {
        Ok(Some(b)) => check_prefix(&log, &[b], 1, "wait_next without tailing").map(drop),
        Err(Error::Unsupported { .. }) => Ok(()),
        other => Err(format!(
            "clause `a capability the plugin lacks is a typed Error::Unsupported`: wait_next returned {other:?}"
        )),
    }
}

pub(super) fn checkpoint_unsupported(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for i in 0..20u64 {
        append(&*wal, &mut log, 1400 + i, 1, Durability::Sync)?;
    }
    match wal.checkpoint(SeqNo(10)) {
        Ok(()) | Err(Error::Unsupported { .. }) => {}
        Err(e) => {
            return Err(format!(
                "clause `a capability the plugin lacks is a typed Error::Unsupported`: checkpoint returned {e}"
            ));
        }
    }
    let got = read_all(&*wal, SeqNo(1))?;
    ensure!(
        got.len() == log.len(),
        "without checkpoint support the log still deleted batches: {} of {} left",
        got.len(),
        log.len()
    );
    Ok(())
}
