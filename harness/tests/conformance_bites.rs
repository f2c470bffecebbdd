//! The harness proves it bites: every deliberately broken implementation in
//! `strata_harness::conformance::broken` fails its suite, and exactly the checks of the
//! clause it breaks fail (not merely "something failed"). A suite that stops catching
//! one of these has lost a check.

use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_harness::conformance::Report;
use strata_harness::conformance::broken::{
    AckBeforeSyncWal, BusyIgnoringPolicy, DivergenceIgnoringWal, DropLastEntryTableFormat,
    EpochReusingWal, FutureVersionMemTable, HidesCorruptionTableFormat, LosesFilePolicy,
    ReorderingWal, SkipsSyncWal,
};
use strata_harness::conformance::compaction::{self, CompactionCaps};
use strata_harness::conformance::engine::{self, EngineCaps};
use strata_harness::conformance::memtable::{self, MemTableCaps};
use strata_harness::conformance::table::{self, TableCaps};
use strata_harness::conformance::wal::{self, WalCaps};
use strata_harness::stack::tiny_builder;
use strata_memtable_skiplist::SkipListFactory;
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};
use strata_wal_file::{FileWalFactory, FileWalOptions};

/// Asserts that the report fails, and fails exactly `expected`.
#[track_caller]
fn assert_fails_exactly(report: &Report, expected: &[&str]) {
    let mut want: Vec<&str> = expected.to_vec();
    want.sort_unstable();
    assert!(!report.is_ok(), "the broken implementation passed its suite:\n{report}");
    assert_eq!(report.failed_names(), want, "unexpected set of failing checks:\n{report}");
    eprintln!("{report}");
}

fn file_wal() -> Arc<FileWalFactory> {
    Arc::new(FileWalFactory::new(FileWalOptions::default().with_segment_size_bytes(4 * 1024)))
}

fn tiny_tables() -> Arc<MmapTableFormat> {
    Arc::new(MmapTableFormat::new(MmapTableOptions::default().with_block_size(256)))
}

fn tiny_leveled() -> Arc<LeveledPolicy> {
    let options = LeveledOptions {
        levels: 4,
        l0_trigger_files: 2,
        l0_max_bytes: 64 * 1024,
        l1_max_bytes: 64 * 1024,
        level_size_multiplier: 3,
        target_file_size: 16 * 1024,
        ..LeveledOptions::default()
    };
    Arc::new(LeveledPolicy::new(options).expect("valid options"))
}

#[test]
fn wal_acknowledging_sync_before_syncing_fails_the_durability_checks() {
    // Segments large enough that no rotation happens: a rotation's fdatasyncs (which run
    // on their own thread) would make the acknowledged batches durable by accident, and
    // whether they run before the power loss is a matter of timing.
    let wal_without_rotation =
        FileWalFactory::new(FileWalOptions::default().with_segment_size_bytes(1 << 20));
    let report =
        wal::run(Arc::new(AckBeforeSyncWal(Arc::new(wal_without_rotation))), WalCaps::default());
    assert_fails_exactly(
        &report,
        &[
            "wal::sync_append_survives_power_loss",
            "wal::model_appends_reopens_and_crashes",
            "wal::fsync_failure_poisons_the_log",
            "wal::concurrent_appends_are_dense_and_ordered",
            "wal::durable_seq_tracks_syncs",
            "wal::truncation_leaves_the_old_or_the_new_log",
        ],
    );
}

#[test]
fn wal_accepting_diverged_batches_fails_the_replication_check() {
    let report = wal::run(Arc::new(DivergenceIgnoringWal(file_wal())), WalCaps::default());
    assert_fails_exactly(&report, &["wal::replicated_appends_continue_the_primary_log"]);
}

#[test]
fn wal_reusing_epochs_fails_the_epoch_check() {
    let report = wal::run(Arc::new(EpochReusingWal(file_wal())), WalCaps::default());
    assert_fails_exactly(
        &report,
        &["wal::epochs_are_never_reused", "wal::replicated_appends_continue_the_primary_log"],
    );
}

#[test]
fn wal_reordering_batches_on_read_fails_the_ordering_checks() {
    let report = wal::run(Arc::new(ReorderingWal(file_wal())), WalCaps::default());
    assert_fails_exactly(
        &report,
        &[
            "wal::read_from_yields_committed_batches_in_order",
            "wal::reopen_keeps_every_batch",
            "wal::model_appends_reopens_and_crashes",
            "wal::sync_append_survives_power_loss",
            "wal::sync_makes_buffered_appends_durable",
            "wal::torn_tail_is_cut_and_log_continues",
            "wal::fsync_failure_poisons_the_log",
            "wal::damaged_last_record_is_cut_or_reported",
            "wal::concurrent_appends_are_dense_and_ordered",
            "wal::checkpoint_never_deletes_newer_batches",
            "wal::copy_to_is_a_consistent_copy",
            "wal::replicated_appends_continue_the_primary_log",
            "wal::truncation_leaves_the_old_or_the_new_log",
        ],
    );
}

#[test]
fn memtable_serving_versions_newer_than_the_snapshot_fails_the_snapshot_checks() {
    let report = memtable::run(
        Arc::new(FutureVersionMemTable(Arc::new(SkipListFactory))),
        MemTableCaps::default(),
    );
    assert_fails_exactly(
        &report,
        &[
            "memtable::get_returns_newest_version_at_snapshot",
            "memtable::model_get_and_range_match_btreemap",
            "memtable::extreme_sequences_are_ordered_and_bounded",
            "memtable::concurrent_inserts_are_all_visible",
        ],
    );
}

#[test]
fn table_format_dropping_the_last_entry_fails_the_round_trip_checks() {
    let report =
        table::run(Arc::new(DropLastEntryTableFormat(tiny_tables())), TableCaps::default());
    assert_fails_exactly(
        &report,
        &[
            "table::round_trip_returns_exactly_the_entries_added",
            "table::meta_describes_the_table",
            "table::model_get_and_range_match_btreemap",
            "table::large_keys_and_values_round_trip",
            "table::os_files_round_trip_and_detect_damage",
            "table::concurrent_readers_agree",
        ],
    );
}

#[test]
fn table_format_hiding_corruption_fails_the_corruption_checks() {
    let report =
        table::run(Arc::new(HidesCorruptionTableFormat(tiny_tables())), TableCaps::default());
    assert_fails_exactly(
        &report,
        &[
            "table::damaged_bytes_are_detected_never_served",
            "table::os_files_round_trip_and_detect_damage",
        ],
    );
}

#[test]
fn compaction_policy_losing_a_file_fails_validation() {
    let report =
        compaction::run(Arc::new(LosesFilePolicy(tiny_leveled())), CompactionCaps::default());
    assert_fails_exactly(
        &report,
        &[
            "compaction::tasks_pass_validate_task",
            "compaction::converges_on_a_model_tree",
            "compaction::tasks_keep_every_read",
        ],
    );
}

#[test]
fn compaction_policy_picking_busy_tables_fails_validation() {
    let report =
        compaction::run(Arc::new(BusyIgnoringPolicy(tiny_leveled())), CompactionCaps::default());
    assert_fails_exactly(
        &report,
        &["compaction::tasks_pass_validate_task", "compaction::all_busy_yields_no_task"],
    );
}

#[test]
fn engine_on_a_wal_skipping_its_sync_fails_power_loss() {
    let stack = |dir: &std::path::Path, fs| {
        tiny_builder(dir, fs, 2048, 8 * 1024).with_wal(Arc::new(SkipsSyncWal(file_wal())))
    };
    let report = engine::run(&stack, EngineCaps::default().with_model_cases(2));
    assert_fails_exactly(
        &report,
        &["engine::power_loss_keeps_acked_sync_writes", "engine::fsync_failure_poisons_the_store"],
    );
}

#[test]
fn engine_on_a_table_format_hiding_corruption_serves_damage_and_fails() {
    let stack = |dir: &std::path::Path, fs| {
        tiny_builder(dir, fs, 2048, 8 * 1024)
            .with_table_format(Arc::new(HidesCorruptionTableFormat(tiny_tables())))
    };
    let report = engine::run(&stack, EngineCaps::default().with_model_cases(2));
    assert_fails_exactly(&report, &["engine::damaged_table_is_reported_never_served"]);
}
