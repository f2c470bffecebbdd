//! The [`Wal`] conformance suite: every clause of the trait's contract, checked through
//! a [`WalFactory`] on the fault-injecting [`SimFileSystem`].
//!
//! | check | clause |
//! |---|---|
//! | `wal::fresh_log_is_empty` | an empty log has `last_seq() == ZERO`, nothing to read, nothing recovered |
//! | `wal::append_assigns_dense_sequences` | `append` assigns the next `count` sequences, starting right after `last_seq()` |
//! | `wal::read_from_yields_committed_batches_in_order` | `read_from(seq)` yields, in order, every batch whose last sequence is `>= seq` |
//! | `wal::reopen_keeps_every_batch` | a reopened log holds exactly the batches written, and appends continue densely |
//! | `wal::model_appends_reopens_and_crashes` | random appends, syncs, reopens and power losses against a model |
//! | `wal::sync_append_survives_power_loss` | `Sync` returns only once the batch and every batch before it is on stable storage |
//! | `wal::sync_makes_buffered_appends_durable` | `sync()` makes every appended batch durable |
//! | `wal::torn_tail_is_cut_and_log_continues` | a torn tail is cut off, the durable prefix stays, the log continues |
//! | `wal::fsync_failure_poisons_the_log` | after a failed sync every `append`/`sync` is `Error::Poisoned`; reads keep working |
//! | `wal::write_failure_poisons_the_log` | after a failed write every `append`/`sync` is `Error::Poisoned` |
//! | `wal::corruption_in_the_middle_is_reported_with_file_and_offset` | damage before the tail is `Error::Corruption` naming file and offset, never skipped or served |
//! | `wal::damaged_last_record_is_cut_or_reported` | damage in the last record is cut off and reported, or is `Error::Corruption`; never served |
//! | `wal::concurrent_appends_are_dense_and_ordered` | concurrent appenders get disjoint dense sequences; on-disk order equals sequence order |
//! | `wal::tailing_reader_waits_for_new_batches` | a reader can wait for batches appended later |
//! | `wal::checkpoint_never_deletes_newer_batches` | `checkpoint(seq)` never deletes a batch `> seq`; deleted ranges are `SequenceUnavailable` |
//! | `wal::reopen_after_full_checkpoint_keeps_last_seq` | sequences stay dense across a reopen even when everything was checkpointed |
//! | `wal::files_lists_existing_log_files` | `files()` names files that exist |
//! | `wal::missing_tailing_is_unsupported_error` | (tailing off) `wait_next` answers like `next_batch` or is `Error::Unsupported`, never another error |
//! | `wal::missing_checkpoint_is_unsupported_error` | (checkpoint off) `checkpoint` is `Ok` (keeps everything) or `Error::Unsupported`, and deletes nothing |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strata_core::{Durability, Error, SeqNo, Wal, WalBatch, WalFactory};

use super::report::Report;
use super::runner::{Check, CheckResult, Ctx, bytes_from, ensure, find, property, run_checks};
use crate::sim_fs::{CrashMode, SimFileSystem};

/// What the WAL under test supports; each flag switches a group of checks on or off.
/// `Default` turns everything on: only switch off what the implementation documents it
/// does not do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WalCaps {
    /// The log is durable: `Sync` appends and `sync()` survive a power loss, and a
    /// torn tail is cut at reopen (off for an in-memory log). Gates the power-loss checks.
    pub durable: bool,
    /// Readers can wait for later commits (`wait_next`). Gates the tailing check.
    pub tailing: bool,
    /// `append` may be called from many threads at once. Gates the concurrency check.
    pub concurrent_appends: bool,
    /// `checkpoint` deletes old data (off for a log that never deletes; the
    /// "never deletes newer batches" clause then holds trivially).
    pub checkpoint: bool,
    /// Payload bytes are stored verbatim and checksummed, so the suite can find a
    /// record in the files and flip its bytes. Gates the corruption checks.
    pub corruption_detection: bool,
}

impl Default for WalCaps {
    fn default() -> Self {
        Self {
            durable: true,
            tailing: true,
            concurrent_appends: true,
            checkpoint: true,
            corruption_detection: true,
        }
    }
}

impl WalCaps {
    /// Sets [`WalCaps::durable`].
    #[must_use]
    pub fn with_durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }
    /// Sets [`WalCaps::tailing`].
    #[must_use]
    pub fn with_tailing(mut self, on: bool) -> Self {
        self.tailing = on;
        self
    }
    /// Sets [`WalCaps::concurrent_appends`].
    #[must_use]
    pub fn with_concurrent_appends(mut self, on: bool) -> Self {
        self.concurrent_appends = on;
        self
    }
    /// Sets [`WalCaps::checkpoint`].
    #[must_use]
    pub fn with_checkpoint(mut self, on: bool) -> Self {
        self.checkpoint = on;
        self
    }
    /// Sets [`WalCaps::corruption_detection`].
    #[must_use]
    pub fn with_corruption_detection(mut self, on: bool) -> Self {
        self.corruption_detection = on;
        self
    }
}

struct Subject {
    factory: Arc<dyn WalFactory>,
}

/// Runs the WAL suite against logs opened by `factory`, with the checks `caps` allows.
pub fn run(factory: Arc<dyn WalFactory>, caps: WalCaps) -> Report {
    let subject = Subject { factory };
    let name = format!("wal={}", subject.factory.name());
    let c = &caps;
    let checks = vec![
        Check::new("wal::fresh_log_is_empty", fresh_log_is_empty),
        Check::new("wal::append_assigns_dense_sequences", append_assigns_dense_sequences),
        Check::new("wal::read_from_yields_committed_batches_in_order", read_from_in_order),
        Check::new("wal::reopen_keeps_every_batch", reopen_keeps_every_batch),
        Check::new(
            "wal::model_appends_reopens_and_crashes",
            if c.durable { model_with_crashes } else { model_without_crashes },
        ),
        Check::when(
            c.durable,
            "durable",
            "wal::sync_append_survives_power_loss",
            sync_append_survives_power_loss,
        ),
        Check::when(
            c.durable,
            "durable",
            "wal::sync_makes_buffered_appends_durable",
            sync_makes_buffered_durable,
        ),
        Check::when(
            c.durable,
            "durable",
            "wal::torn_tail_is_cut_and_log_continues",
            torn_tail_is_cut,
        ),
        Check::new("wal::fsync_failure_poisons_the_log", fsync_failure_poisons),
        Check::new("wal::write_failure_poisons_the_log", write_failure_poisons),
        Check::when(
            c.corruption_detection,
            "corruption_detection",
            "wal::corruption_in_the_middle_is_reported_with_file_and_offset",
            corruption_in_the_middle,
        ),
        Check::when(
            c.corruption_detection,
            "corruption_detection",
            "wal::damaged_last_record_is_cut_or_reported",
            damaged_last_record,
        ),
        Check::when(
            c.concurrent_appends,
            "concurrent_appends",
            "wal::concurrent_appends_are_dense_and_ordered",
            if c.durable { concurrent_durable } else { concurrent_volatile },
        ),
        Check::when(
            c.tailing,
            "tailing",
            "wal::tailing_reader_waits_for_new_batches",
            tailing_reader,
        ),
        Check::when(
            c.checkpoint,
            "checkpoint",
            "wal::checkpoint_never_deletes_newer_batches",
            checkpoint_keeps_newer,
        ),
        Check::when(
            c.checkpoint,
            "checkpoint",
            "wal::reopen_after_full_checkpoint_keeps_last_seq",
            full_checkpoint_reopen,
        ),
        Check::new("wal::files_lists_existing_log_files", files_exist),
        Check::when(
            !c.tailing,
            "tailing is on",
            "wal::missing_tailing_is_unsupported_error",
            tailing_unsupported,
        ),
        Check::when(
            !c.checkpoint,
            "checkpoint is on",
            "wal::missing_checkpoint_is_unsupported_error",
            checkpoint_unsupported,
        ),
    ];
    run_checks("wal", name, &subject, checks)
}

const DIR: &str = "/wal";

/// A batch as the suite appended it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    first: SeqNo,
    count: u32,
    payload: Vec<u8>,
}

impl Rec {
    fn last(&self) -> SeqNo {
        SeqNo(self.first.0 + u64::from(self.count) - 1)
    }
}

fn describe(first: SeqNo, count: u32, payload: &[u8]) -> String {
    let head: Vec<String> = payload.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!(
        "{{first_seq {first}, count {count}, {} payload bytes {}..}}",
        payload.len(),
        head.join("")
    )
}

fn fresh_fs() -> Result<SimFileSystem, String> {
    let fs = SimFileSystem::new();
    strata_core::fs::FileSystem::create_dir_all(&fs, Path::new(DIR))
        .ctx("create the log directory")?;
    Ok(fs)
}

impl Subject {
    fn open(&self, fs: &SimFileSystem) -> Result<Arc<dyn Wal>, String> {
        self.factory.open(fs.shared(), Path::new(DIR)).ctx("open the log")
    }
}

fn payload(seed: u64) -> Vec<u8> {
    let len = 24 + usize::try_from(seed % 41).unwrap_or(0);
    bytes_from(seed.wrapping_mul(0x5851_F42D_4C95_7F2D) ^ 0xA5A5, len)
}

/// Appends and records one batch, checking the returned sequence.
fn append(wal: &dyn Wal, log: &mut Vec<Rec>, seed: u64, count: u32, d: Durability) -> CheckResult {
    let p = payload(seed);
    let want = SeqNo(log.last().map_or(0, |r| r.last().0) + 1);
    let first = wal.append(&p, count, d).ctx("append")?;
    ensure!(
        first == want,
        "clause `append assigns the next count sequences, dense, right after last_seq()`: \
         expected first sequence {want}, found {first}"
    );
    log.push(Rec { first, count, payload: p });
    let last = wal.last_seq();
    ensure!(
        last == SeqNo(first.0 + u64::from(count) - 1),
        "clause `last_seq() is the last sequence appended`: expected {}, found {last}",
        SeqNo(first.0 + u64::from(count) - 1)
    );
    Ok(())
}

fn read_all(wal: &dyn Wal, from: SeqNo) -> Result<Vec<WalBatch>, String> {
    let mut reader = wal.read_from(from).ctx(&format!("read_from({from})"))?;
    let mut out = Vec::new();
    while let Some(b) = reader.next_batch().ctx("next_batch")? {
        out.push(b);
        ensure!(out.len() <= 1_000_000, "the reader never ends (over a million batches)");
    }
    Ok(out)
}

/// Checks that `got` is a prefix of `log` covering at least `acked` batches; returns its
/// length.
fn check_prefix(log: &[Rec], got: &[WalBatch], acked: usize, what: &str) -> Result<usize, String> {
    for (i, b) in got.iter().enumerate() {
        let Some(r) = log.get(i) else {
            return Err(format!(
                "{what}: clause `a reopened log holds exactly the batches that were durable`: \
                 batch #{i} {} was never appended (only {} were)",
                describe(b.first_seq, b.count, &b.payload),
                log.len()
            ));
        };
        ensure!(
            b.first_seq == r.first && b.count == r.count && b.payload[..] == r.payload[..],
            "{what}: clause `read_from yields committed batches in sequence order`: batch #{i} \
             expected {}, found {}",
            describe(r.first, r.count, &r.payload),
            describe(b.first_seq, b.count, &b.payload)
        );
    }
    ensure!(
        got.len() >= acked,
        "{what}: clause `Sync returns Ok only once the batch (and every batch before it) is on \
         stable storage`: {acked} batches were acknowledged as durable, only {} survived",
        got.len()
    );
    Ok(got.len())
}

fn fresh_log_is_empty(s: &Subject) -> CheckResult {
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

fn append_assigns_dense_sequences(s: &Subject) -> CheckResult {
    let fs = fresh_fs()?;
    let wal = s.open(&fs)?;
    let mut log = Vec::new();
    for (i, count) in [1u32, 3, 1, 5, 2, 1, 7].into_iter().enumerate() {
        let d = if i % 2 == 0 { Durability::Buffered } else { Durability::Sync };
        append(&*wal, &mut log, i as u64, count, d)?;
    }
    Ok(())
}

fn read_from_in_order(s: &Subject) -> CheckResult {
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

fn reopen_keeps_every_batch(s: &Subject) -> CheckResult {
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

fn model_with_crashes(s: &Subject) -> CheckResult {
    model(s, true)
}

fn model_without_crashes(s: &Subject) -> CheckResult {
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

fn sync_append_survives_power_loss(s: &Subject) -> CheckResult {
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

fn sync_makes_buffered_durable(s: &Subject) -> CheckResult {
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

fn torn_tail_is_cut(s: &Subject) -> CheckResult {
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

fn after_open(s: &Subject, fs: &SimFileSystem, seed: u64) -> Result<Arc<dyn Wal>, String> {
    s.factory.open(fs.shared(), Path::new(DIR)).map_err(|e| {
        format!("clause `a torn tail is cut off`: reopening after a torn-tail power loss (seed {seed}) failed: {e}")
    })
}

fn expect_poisoned(r: strata_core::Result<impl std::fmt::Debug>, what: &str) -> CheckResult {
    match r {
        Err(Error::Poisoned { .. }) => Ok(()),
        other => Err(format!(
            "clause `after any write or sync failure every later append or sync returns Error::Poisoned`: \
             {what} returned {other:?}"
        )),
    }
}

fn fsync_failure_poisons(s: &Subject) -> CheckResult {
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

fn write_failure_poisons(s: &Subject) -> CheckResult {
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
fn synced_log(
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
fn locate(
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

fn flip(fs: &SimFileSystem, file: &Path, at: usize) -> CheckResult {
    let mut img = fs.read_file(file).ok_or_else(|| format!("{} vanished", file.display()))?;
    let b = img
        .get_mut(at)
        .ok_or_else(|| format!("offset {at} is past the end of {}", file.display()))?;
    *b ^= 0x5A;
    fs.write_file_raw(file, &img).ctx("write the damaged file")
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.file_name().is_some() && a.file_name() == b.file_name())
}

fn corruption_in_the_middle(s: &Subject) -> CheckResult {
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

fn damaged_last_record(s: &Subject) -> CheckResult {
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

fn concurrent_durable(s: &Subject) -> CheckResult {
    concurrent(s, true)
}

fn concurrent_volatile(s: &Subject) -> CheckResult {
    concurrent(s, false)
}

fn concurrent(s: &Subject, durable: bool) -> CheckResult {
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

fn tailing_reader(s: &Subject) -> CheckResult {
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

fn checkpoint_keeps_newer(s: &Subject) -> CheckResult {
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

fn full_checkpoint_reopen(s: &Subject) -> CheckResult {
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

fn files_exist(s: &Subject) -> CheckResult {
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

fn tailing_unsupported(s: &Subject) -> CheckResult {
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

fn checkpoint_unsupported(s: &Subject) -> CheckResult {
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
