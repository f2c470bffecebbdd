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
//! | `wal::durable_seq_tracks_syncs` | `durable_seq()` never exceeds `last_seq()`, never decreases, covers every `Sync` append and everything after `sync()` |
//! | `wal::copy_to_is_a_consistent_copy` | `copy_to`, called while a writer appends, gives a log that opens and holds every batch appended before the call, densely |
//! | `wal::epochs_are_never_reused` | each opening starts an epoch greater than every epoch that wrote before, also across power losses; batches carry it; the history ends with it |
//! | `wal::replicated_appends_continue_the_primary_log` | `append_replicated` keeps the primary's sequences, epochs and bytes; re-sent batches are accepted without writing; gaps, other bytes at a held sequence and older epochs are refused with typed errors and write nothing; Sync replicated appends survive a power loss; `start_epoch` refuses an old epoch and local appends then write in the new one |
//! | `wal::truncation_leaves_the_old_or_the_new_log` | a power loss after any number of sync points inside `truncate_after` leaves the old log or the truncated one (never a refusal to open), `Ok` means durable, appends continue densely, a cut inside a batch is refused, a reader past the cut gets an error |
//! | `wal::missing_tailing_is_unsupported_error` | (tailing off) `wait_next` answers like `next_batch` or is `Error::Unsupported`, never another error |
//! | `wal::missing_checkpoint_is_unsupported_error` | (checkpoint off) `checkpoint` is `Ok` (keeps everything) or `Error::Unsupported`, and deletes nothing |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{Durability, Error, SeqNo, Wal, WalBatch, WalFactory};

mod basics;
mod damage;
mod durability;
mod epochs;
mod replication;

use basics::*;
use damage::*;
use durability::*;
use epochs::*;
use replication::*;

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
        Check::new("wal::durable_seq_tracks_syncs", durable_seq_tracks_syncs),
        Check::when(
            c.concurrent_appends,
            "concurrent_appends",
            "wal::copy_to_is_a_consistent_copy",
            copy_to_is_a_consistent_copy,
        ),
        Check::when(c.durable, "durable", "wal::epochs_are_never_reused", epochs_are_never_reused),
        Check::when(
            c.durable,
            "durable",
            "wal::replicated_appends_continue_the_primary_log",
            replicated_appends,
        ),
        Check::when(
            c.durable,
            "durable",
            "wal::truncation_leaves_the_old_or_the_new_log",
            truncation_is_old_or_new,
        ),
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
