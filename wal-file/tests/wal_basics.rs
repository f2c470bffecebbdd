//! Append, read back, tail, rotate, reopen and checkpoint the file WAL on a real
//! directory.

use std::sync::Arc;
use std::time::Duration;

use strata_core::fs::OsFileSystem;
use strata_core::{Durability, Error, SeqNo, Wal, WalBatch};
use strata_wal_file::{FileWal, FileWalOptions};

fn open(dir: &std::path::Path, options: FileWalOptions) -> FileWal {
    FileWal::open(OsFileSystem::shared(), dir, options).expect("open must succeed")
}

fn drain(wal: &dyn Wal, from: SeqNo) -> Vec<WalBatch> {
    let mut r = wal.read_from(from).expect("reader");
    let mut out = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        out.push(b);
    }
    out
}

#[test]
fn sequences_are_dense_and_survive_reopen() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = open(dir.path(), FileWalOptions::default());
        assert_eq!(wal.append(b"a", 1, Durability::Sync)?, SeqNo(1));
        assert_eq!(wal.append(b"bb", 3, Durability::Buffered)?, SeqNo(2));
        assert_eq!(wal.append(b"c", 1, Durability::Sync)?, SeqNo(5));
        assert_eq!(wal.last_seq(), SeqNo(5));
    }
    let wal = open(dir.path(), FileWalOptions::default());
    assert_eq!(wal.last_seq(), SeqNo(5));
    assert_eq!(wal.recovery().truncated_tail, None);
    let batches = drain(&wal, SeqNo(1));
    let firsts: Vec<_> =
        batches.iter().map(|b| (b.first_seq.0, b.count, b.payload.to_vec())).collect();
    assert_eq!(firsts, vec![(1, 1, b"a".to_vec()), (2, 3, b"bb".to_vec()), (5, 1, b"c".to_vec())]);
    assert_eq!(wal.append(b"d", 1, Durability::Sync)?, SeqNo(6));
    Ok(())
}

#[test]
fn read_from_the_middle_of_a_batch_starts_with_that_batch() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path(), FileWalOptions::default());
    wal.append(b"x", 3, Durability::Buffered)?; // 1..=3
    wal.append(b"y", 2, Durability::Buffered)?; // 4..=5
    let b = drain(&wal, SeqNo(3));
    assert_eq!(b.iter().map(|b| b.first_seq.0).collect::<Vec<_>>(), vec![1, 4]);
    let b = drain(&wal, SeqNo(4));
    assert_eq!(b.iter().map(|b| b.first_seq.0).collect::<Vec<_>>(), vec![4]);
    assert!(drain(&wal, SeqNo(6)).is_empty());
    Ok(())
}

#[test]
fn rotation_spreads_records_over_segments_and_reads_them_all() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileWalOptions::default().with_segment_size_bytes(4096);
    let payload = vec![7u8; 300];
    {
        let wal = open(dir.path(), options.clone());
        for i in 0..100u64 {
            assert_eq!(wal.append(&payload, 1, Durability::Buffered)?, SeqNo(i + 1));
        }
        assert!(wal.segment_count() > 5, "expected rotation, got {} segments", wal.segment_count());
        // A record bigger than a segment gets one of its own.
        let big = vec![1u8; 10_000];
        assert_eq!(wal.append(&big, 1, Durability::Sync)?, SeqNo(101));
        wal.append(b"after", 1, Durability::Sync)?;
    }
    let wal = open(dir.path(), options);
    let all = drain(&wal, SeqNo(1));
    assert_eq!(all.len(), 102);
    assert_eq!(all[100].payload.len(), 10_000);
    assert_eq!(&all[101].payload[..], b"after");
    for (i, b) in all.iter().enumerate() {
        assert_eq!(b.first_seq, SeqNo(i as u64 + 1));
    }
    Ok(())
}

#[test]
fn tailing_reader_wakes_up_for_new_commits() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(open(dir.path(), FileWalOptions::default().with_segment_size_bytes(1024)));
    let mut reader = wal.read_from(SeqNo(1))?;
    assert!(reader.wait_next(Duration::from_millis(10))?.is_none(), "nothing written yet");
    let writer = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            for i in 0..50u32 {
                std::thread::sleep(Duration::from_millis(1));
                wal.append(&i.to_le_bytes(), 1, Durability::Buffered).expect("append");
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 50 {
        match reader.wait_next(Duration::from_secs(10))? {
            Some(b) => seen.push(b.first_seq.0),
            None => panic!("tailing reader timed out after {} batches", seen.len()),
        }
    }
    writer.join().expect("writer thread");
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn checkpoint_deletes_only_covered_segments_and_respects_retention() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileWalOptions::default().with_segment_size_bytes(2048).with_preallocate(false);
    let wal = open(dir.path(), options.clone());
    for _ in 0..60 {
        wal.append(&[3u8; 200], 1, Durability::Buffered)?;
    }
    let before = wal.segment_count();
    assert!(before >= 5);
    wal.checkpoint(SeqNo(30))?;
    let oldest = wal.oldest_seq();
    assert!(oldest <= SeqNo(31), "a batch above the checkpoint was deleted: oldest {oldest}");
    assert!(wal.segment_count() < before, "nothing was deleted");
    let err = wal.read_from(SeqNo(1)).expect_err("deleted sequences must be refused");
    assert!(matches!(err, Error::SequenceUnavailable { .. }), "{err}");
    assert_eq!(drain(&wal, oldest).last().map(|b| b.first_seq), Some(SeqNo(60)));

    // With a retention floor larger than the log, a checkpoint deletes nothing.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let wal2 = open(dir2.path(), options.with_retention_bytes(1 << 30));
    for _ in 0..60 {
        wal2.append(&[3u8; 200], 1, Durability::Buffered)?;
    }
    let n = wal2.segment_count();
    wal2.checkpoint(SeqNo(60))?;
    assert_eq!(wal2.segment_count(), n);
    assert_eq!(drain(&wal2, SeqNo(1)).len(), 60);
    Ok(())
}

#[test]
fn empty_batches_and_oversized_segments_options_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path(), FileWalOptions::default());
    assert!(matches!(wal.append(b"", 0, Durability::Sync), Err(Error::InvalidArgument(_))));
    let err = FileWal::open(
        OsFileSystem::shared(),
        &dir.path().join("other"),
        FileWalOptions::default().with_segment_size_bytes(10),
    )
    .expect_err("tiny segments must be refused");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn concurrent_appenders_get_disjoint_dense_sequences() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal =
        Arc::new(open(dir.path(), FileWalOptions::default().with_segment_size_bytes(64 * 1024)));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..200u32 {
                    let d = if i % 2 == 0 { Durability::Sync } else { Durability::Buffered };
                    let payload = [t as u8; 40];
                    mine.push(wal.append(&payload, 2, d).expect("append").0);
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..1600).map(|i| 1 + 2 * i).collect();
    assert_eq!(all, expected);
    let read: Vec<u64> = drain(&*wal, SeqNo(1)).iter().map(|b| b.first_seq.0).collect();
    assert_eq!(read, expected, "on-disk order must equal sequence order");
    Ok(())
}

/// A tailing reader's buffer can be filled while the writer is halfway through a record
/// (its length written, its body still the preallocated zeros). Such a stale view must
/// be re-read, never reported as corruption; every payload must come back intact.
#[test]
fn tailing_reader_never_reports_a_half_written_record_as_damage() -> strata_core::Result<()> {
    const BATCHES: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        FileWalOptions::default().with_preallocate(true).with_segment_size_bytes(4 * 1024 * 1024);
    let wal = Arc::new(open(dir.path(), options));
    let payload = |seq: u64| -> Vec<u8> {
        let len = 1 + (seq.wrapping_mul(2_654_435_761) % 3000) as usize;
        (0..len).map(|i| (seq as u8).wrapping_add(i as u8) | 1).collect()
    };
    let writer = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || -> strata_core::Result<()> {
            for seq in 1..=BATCHES {
                wal.append(&payload(seq), 1, Durability::Buffered)?;
            }
            Ok(())
        })
    };
    let mut reader = wal.read_from(SeqNo(1))?;
    let mut next = 1u64;
    while next <= BATCHES {
        match reader.wait_next(Duration::from_secs(30))? {
            Some(b) => {
                assert_eq!(b.first_seq, SeqNo(next));
                assert_eq!(b.payload.as_ref(), payload(next).as_slice(), "payload of {next}");
                next += 1;
            }
            None => panic!("tailing reader timed out at sequence {next}"),
        }
    }
    writer.join().expect("writer thread")?;
    Ok(())
}

/// Zero-ahead keeps written zeros past the writer (so a `Sync` append's fdatasync has no
/// extent or size change to commit), and the zeros read as the clean end of the log.
#[test]
fn zero_ahead_keeps_zeros_past_the_writer_and_reopen_sees_exactly_the_records()
-> strata_core::Result<()> {
    let len_of = |dir: &std::path::Path| -> u64 {
        let mut lens: Vec<u64> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().expect("metadata").len())
            .collect();
        assert_eq!(lens.len(), 1, "one segment expected");
        lens.pop().unwrap_or(0)
    };
    let base = FileWalOptions::default().with_preallocate(false).with_segment_size_bytes(1 << 20);
    let record = [7u8; 1000];

    // Without zero-ahead the file is exactly header plus records.
    let plain = tempfile::tempdir().expect("tempdir");
    let wal = open(plain.path(), base.clone().with_zero_ahead_bytes(0));
    let header = len_of(plain.path());
    wal.append(&record, 1, Durability::Sync)?;
    let per_record = len_of(plain.path()) - header;
    assert!(per_record > 1000 && per_record < 1100, "record footprint {per_record}");

    let ahead = 64 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = open(dir.path(), base.clone().with_zero_ahead_bytes(ahead));
        assert_eq!(len_of(dir.path()), header + ahead, "a new segment is zeroed up front");
        // Topped up in steps of ahead/16: never less than ahead - step past the writer,
        // and never more than one step (plus the record) written at once, so a Sync
        // append's fdatasync never flushes a large run of fresh zeros.
        let step = ahead / 16;
        let mut prev = header + ahead;
        for n in 1..=200u64 {
            wal.append(&record, 1, Durability::Sync)?;
            let end = header + n * per_record;
            let len = len_of(dir.path());
            assert!(
                len >= end + ahead - step && len <= end + ahead,
                "after {n} records ending at {end}: file is {len} bytes"
            );
            assert!(
                len - prev <= step + per_record,
                "after {n} records: topped up {} bytes",
                len - prev
            );
            prev = len;
        }
    }
    let wal = open(dir.path(), base.with_zero_ahead_bytes(ahead));
    assert_eq!(wal.recovery().truncated_tail, None, "zeros are not a torn tail");
    assert_eq!(wal.last_seq(), SeqNo(200));
    let batches = drain(&wal, SeqNo(1));
    assert_eq!(batches.len(), 200);
    assert!(batches.iter().all(|b| b.payload.as_ref() == record.as_slice()));
    wal.append(b"after reopen", 1, Durability::Sync)?;
    assert_eq!(drain(&wal, SeqNo(201)).len(), 1);
    Ok(())
}

/// Buffered appends start writeback every `writeback_bytes`, so a segment never piles up
/// more dirty data than that for the fdatasync that closes it; 0 turns the hint off.
#[test]
fn writeback_is_started_every_writeback_bytes_of_appends() -> strata_core::Result<()> {
    use strata_harness::sim_fs::CountingFileSystem;
    let record = [9u8; 1000];
    let run = |every: u64| -> strata_core::Result<u64> {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = CountingFileSystem::os();
        let options = FileWalOptions::default()
            .with_preallocate(false)
            .with_segment_size_bytes(16 << 20)
            .with_writeback_bytes(every)
            // The spare segment's own writeback would be counted too.
            .with_spare_segment(false);
        let wal = FileWal::open(fs.shared(), dir.path(), options)?;
        for _ in 0..1024 {
            wal.append(&record, 1, Durability::Buffered)?;
        }
        assert_eq!(drain(&wal, SeqNo(1)).len(), 1024);
        Ok(fs.writeback_count())
    };
    // About 1 MiB appended: one hint per 64 KiB, give or take the last partial one.
    let hints = run(64 * 1024)?;
    assert!((15..=17).contains(&hints), "{hints} writeback hints for ~1 MiB at 64 KiB");
    assert_eq!(run(0)?, 0, "writeback_bytes = 0 must give no hint");
    Ok(())
}

/// A lagging reader pins the segments it has yet to read: a checkpoint keeps them while
/// the pinned log stays within `reader_retention_bytes`, and the reader reads on without
/// a gap. Past the limit the reader is cut off with `SequenceUnavailable`, counted.
#[test]
fn a_lagging_reader_pins_the_log_up_to_the_limit_then_is_cut_off() -> strata_core::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileWalOptions::default()
        .with_segment_size_bytes(1024)
        .with_reader_retention_bytes(16 * 1024);
    let wal = open(dir.path(), options);
    for _ in 0..3 {
        wal.append(&[1u8; 200], 1, Durability::Buffered)?;
    }
    let mut lagging = wal.read_from(SeqNo(1))?;
    assert_eq!(lagging.next_batch()?.map(|b| b.first_seq), Some(SeqNo(1)));
    // About 8 KiB more: within the limit.
    for _ in 0..30 {
        wal.append(&[2u8; 200], 1, Durability::Buffered)?;
    }
    let before = wal.segment_count();
    wal.checkpoint(wal.last_seq())?;
    assert_eq!(wal.segment_count(), before, "segments a reader still needs were deleted");
    let mut next = 2;
    while let Some(b) = lagging.next_batch()? {
        assert_eq!(b.first_seq, SeqNo(next), "the lagging reader skipped batches");
        next += 1;
    }
    assert_eq!(next, 34);
    assert_eq!(wal.readers_cut_off(), 0);

    // A reader that lags past the limit is cut off with a clear error, and counted.
    let mut stalled = wal.read_from(wal.last_seq())?;
    assert!(stalled.next_batch()?.is_some());
    drop(lagging);
    for _ in 0..120 {
        wal.append(&[3u8; 200], 1, Durability::Buffered)?;
    }
    wal.checkpoint(wal.last_seq())?;
    assert!(wal.segment_count() < 100, "the limit bounds what a reader pins");
    let err = stalled.next_batch().expect_err("a cut-off reader must be told");
    assert!(matches!(err, Error::SequenceUnavailable { .. }), "{err}");
    assert_eq!(wal.readers_cut_off(), 1);
    Ok(())
}

/// A copy taken while writers append and the log rotates opens cleanly — no torn
/// record, no seal without its successor — and holds every batch appended before the
/// copy started, densely.
#[test]
fn copies_taken_under_concurrent_appends_open_and_hold_everything_acknowledged()
-> strata_core::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileWalOptions::default().with_segment_size_bytes(8 * 1024);
    let wal = Arc::new(open(dir.path(), options.clone()));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (wal, acked, stop) = (Arc::clone(&wal), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || -> strata_core::Result<()> {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) && i < 3000 {
                let d = if i.is_multiple_of(3) { Durability::Sync } else { Durability::Buffered };
                let seq = wal.append(&[i as u8; 300], 1, d)?;
                acked.store(seq.0, Ordering::Release);
                i += 1;
            }
            Ok(())
        })
    };
    for round in 0..30 {
        while acked.load(Ordering::Acquire) < 50 * (round + 1) {
            std::thread::yield_now();
        }
        let before = acked.load(Ordering::Acquire);
        let copy = dir.path().join(format!("copy-{round}"));
        std::fs::create_dir(&copy).expect("mkdir");
        wal.copy_to(&OsFileSystem, &copy)?;
        let copied = FileWal::open(OsFileSystem::shared(), &copy, options.clone())
            .unwrap_or_else(|e| panic!("round {round}: the copy does not open: {e}"));
        assert_eq!(copied.recovery().truncated_tail, None, "round {round}: a torn copy");
        let batches = drain(&copied, SeqNo(1));
        assert!(
            batches.len() as u64 >= before,
            "round {round}: {} batches copied, {before} were appended before the copy",
            batches.len()
        );
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(b.first_seq, SeqNo(i as u64 + 1), "round {round}: not dense");
        }
    }
    stop.store(true, Ordering::Release);
    writer.join().expect("writer")?;
    Ok(())
}
