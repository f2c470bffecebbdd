//! Edge cases of building and reading tables, on the real file system (mmap path) and
//! the simulated one (read-all path).

mod common;

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use common::{Env, del, put, scan, simple_entries, value_for};
use strata_core::fs::OpenMode;
use strata_core::{Error, FileNo, Lookup, SeqNo, Table, TableFormat, ValueKind};
use strata_sstable_mmap::{Compression, MmapTableBuilder, MmapTableFormat, MmapTableOptions};

fn value(t: &dyn Table, key: &[u8], snapshot: u64) -> Option<Bytes> {
    match t.get(key, SeqNo(snapshot)).expect("get") {
        Some(Lookup::Value { value, .. }) => Some(value),
        Some(Lookup::Deleted { .. }) => panic!("unexpected tombstone for {key:?}"),
        None => None,
    }
}

fn keys_in(
    t: &Arc<strata_sstable_mmap::MmapTable>,
    start: Bound<&str>,
    end: Bound<&str>,
) -> Vec<String> {
    let b = |b: Bound<&str>| b.map(|s| Bytes::copy_from_slice(s.as_bytes()));
    t.clone()
        .range((b(start), b(end)), SeqNo::MAX)
        .map(|e| String::from_utf8(e.expect("entry").key.to_vec()).expect("utf8"))
        .collect()
}

#[test]
fn format_is_named_mmap_and_defaults_are_documented() {
    let f = MmapTableFormat::default();
    assert_eq!(f.name(), "mmap");
    let o = MmapTableOptions::default();
    assert_eq!((o.block_size, o.bloom_bits_per_key, o.compression), (4096, 10, Compression::None));
    assert_eq!(o.writeback_bytes, 1024 * 1024);
    assert_eq!(f.options(), &o);
}

/// Building a table starts writeback every `writeback_bytes` written, so a flush or
/// compaction never leaves more than that dirty for its final fdatasync to send at
/// once; 0 turns the hint off. The table reads back the same either way.
#[test]
fn table_builds_start_writeback_every_writeback_bytes() {
    use strata_harness::sim_fs::CountingFileSystem;
    let entries: Vec<_> = (0..12_000u64)
        .map(|i| put(format!("key-{i:08}").as_bytes(), i + 1, [(i % 251) as u8; 250]))
        .collect();
    let run = |every: u64| -> (u64, u64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = CountingFileSystem::os();
        let path = dir.path().join(FileNo(1).table_file_name());
        let file = fs.shared().open(&path, OpenMode::CreateNew).expect("create");
        let opts = MmapTableOptions::default().with_writeback_bytes(every);
        let mut b = MmapTableFormat::new(opts).builder(file, FileNo(1)).expect("builder");
        for e in &entries {
            b.add(&e.key, e.seq, e.kind, &e.value).expect("add");
        }
        let meta = b.finish().expect("finish");
        let file = fs.shared().open(&path, OpenMode::ReadOnly).expect("open");
        let t = MmapTableFormat::default().open_table(file, FileNo(1)).expect("open table");
        assert_eq!(t.meta().entries, 12_000);
        assert_eq!(
            value(&*t, b"key-00011999", u64::MAX).as_deref(),
            Some(&[(11_999 % 251) as u8; 250][..])
        );
        (fs.writeback_count(), meta.size_bytes)
    };
    // About 3.2 MiB of table: one hint per 256 KiB write once 512 KiB have piled up.
    let (hints, size) = run(512 * 1024);
    let expected = size / (512 * 1024);
    assert!(
        hints + 1 >= expected && hints <= expected,
        "{hints} writeback hints for a {size}-byte table at 512 KiB"
    );
    assert_eq!(run(0).0, 0, "writeback_bytes = 0 must give no hint");
}

#[test]
fn empty_table_opens_and_holds_nothing() {
    for env in Env::both() {
        let meta = env.build(MmapTableOptions::default(), 1, &[]);
        assert_eq!(
            (meta.entries, meta.tombstones, meta.min_seq, meta.max_seq),
            (0, 0, SeqNo(0), SeqNo(0))
        );
        let t = env.open(1).expect("open empty table");
        assert_eq!(t.is_mapped(), env.is_os());
        assert_eq!(t.meta(), &meta);
        assert_eq!(t.meta().size_bytes, env.read_bytes(1).len() as u64);
        assert_eq!(t.block_count(), 0);
        assert_eq!(t.get(b"", SeqNo::MAX).expect("get"), None);
        assert_eq!(t.get(b"x", SeqNo::MAX).expect("get"), None);
        assert!(scan(&t).expect("scan").is_empty());
        assert!(t.verify().is_empty());
    }
}

#[test]
fn one_key() {
    for env in Env::both() {
        let meta = env.build(MmapTableOptions::default(), 2, &[put("only", 5, "v")]);
        assert_eq!((&meta.smallest_key[..], &meta.largest_key[..]), (&b"only"[..], &b"only"[..]));
        let t = env.open(2).expect("open");
        assert_eq!(value(&*t, b"only", 5).as_deref(), Some(&b"v"[..]));
        assert_eq!(value(&*t, b"only", 4), None, "a snapshot before the write sees nothing");
        assert_eq!(value(&*t, b"onl", 9), None);
        assert_eq!(value(&*t, b"only\0", 9), None);
        assert_eq!(scan(&t).expect("scan"), vec![put("only", 5, "v")]);
    }
}

#[test]
fn boundary_keys_and_exact_block_boundaries() {
    for env in Env::both() {
        // 123-byte entries in 256-byte blocks: two per block, so even `i` is the first
        // key of a block and odd `i` the last.
        let entries = simple_entries(200);
        let opts = MmapTableOptions::default().with_block_size(256);
        env.build(opts, 3, &entries);
        let t = env.open(3).expect("open");
        assert_eq!(t.block_count(), 100);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(value(&*t, &e.key, u64::MAX).as_deref(), Some(&e.value[..]), "key {i}");
        }
        // Just below the first key, just above the last, between neighbours.
        assert_eq!(value(&*t, b"key-", u64::MAX), None);
        assert_eq!(value(&*t, b"key-00000199\0", u64::MAX), None);
        assert_eq!(value(&*t, b"key-00000050\0", u64::MAX), None);
        assert_eq!(value(&*t, b"zzz", u64::MAX), None);
        assert_eq!(t.block_offsets().len(), t.block_count());
        assert_eq!(scan(&t).expect("scan"), entries);
        // Ranges starting and ending exactly on the first and last keys of blocks.
        for i in [0usize, 4, 5, 6, 99, 198, 199] {
            let k = format!("key-{i:08}");
            assert_eq!(keys_in(&t, Bound::Included(&k), Bound::Unbounded).len(), 200 - i);
            assert_eq!(keys_in(&t, Bound::Excluded(&k), Bound::Unbounded).len(), 199 - i);
            assert_eq!(keys_in(&t, Bound::Unbounded, Bound::Included(&k)).len(), i + 1);
            assert_eq!(keys_in(&t, Bound::Unbounded, Bound::Excluded(&k)).len(), i);
            assert_eq!(keys_in(&t, Bound::Included(&k), Bound::Included(&k)), vec![k.clone()]);
            assert!(keys_in(&t, Bound::Excluded(&k), Bound::Excluded(&k)).is_empty());
        }
        assert!(keys_in(&t, Bound::Included("zzz"), Bound::Unbounded).is_empty());
        assert!(keys_in(&t, Bound::Unbounded, Bound::Excluded("key-")).is_empty());
        assert_eq!(
            keys_in(&t, Bound::Included("key-00000010\0"), Bound::Excluded("key-00000013")).len(),
            2
        );
    }
}

#[test]
fn versions_of_one_key_spanning_many_blocks() {
    for env in Env::both() {
        let mut entries = vec![put("a", 1, "a")];
        entries.extend(
            (1..=100u64)
                .rev()
                .map(|s| if s % 10 == 0 { del("m", s) } else { put("m", s, format!("m@{s}")) }),
        );
        entries.push(put("z", 1, "z"));
        let opts = MmapTableOptions::default().with_block_size(64);
        env.build(opts, 4, &entries);
        let t = env.open(4).expect("open");
        assert!(t.block_count() > 20);
        for snap in 1..=120u64 {
            let want = match snap.min(100) {
                s if s % 10 == 0 => Some(Lookup::Deleted { seq: SeqNo(s) }),
                s => Some(Lookup::Value { value: Bytes::from(format!("m@{s}")), seq: SeqNo(s) }),
            };
            assert_eq!(t.get(b"m", SeqNo(snap)).expect("get"), want, "snapshot {snap}");
        }
        assert_eq!(t.get(b"m", SeqNo(0)).expect("get"), None);
        let at_50: Vec<_> = t
            .clone()
            .range(
                (Bound::Included(Bytes::from("m")), Bound::Included(Bytes::from("m"))),
                SeqNo(50),
            )
            .collect::<Result<_, _>>()
            .expect("range");
        assert_eq!(at_50.len(), 50);
        assert!(at_50.windows(2).all(|w| w[0].seq > w[1].seq));
    }
}

#[test]
fn values_larger_than_a_block_and_a_64_kib_key() {
    for env in Env::both() {
        for (n, compression) in [(5u64, Compression::None), (6, Compression::Lz4)] {
            let big = value_for(1, 1 << 20);
            let key_64k = vec![b'k'; 64 * 1024];
            let entries = vec![
                put("a", 3, "small"),
                put("b", 4, &big),
                put("c", 5, "small"),
                put(&key_64k, 6, "under a huge key"),
                put("l", 7, value_for(2, 5000)),
            ];
            let opts = MmapTableOptions::default().with_compression(compression);
            let meta = env.build(opts, n, &entries);
            let t = env.open(n).expect("open");
            assert_eq!(value(&*t, b"b", 9).as_deref(), Some(&big[..]));
            assert_eq!(value(&*t, &key_64k, 9).as_deref(), Some(&b"under a huge key"[..]));
            assert_eq!(value(&*t, b"l", 9).map(|v| v.len()), Some(5000));
            assert_eq!(scan(&t).expect("scan"), entries);
            assert!(t.block_count() >= 4, "large entries get blocks of their own");
            assert!(t.verify().is_empty());
            if compression == Compression::Lz4 {
                assert!(meta.size_bytes < (1 << 20) / 4, "1 MiB of repeated bytes must compress");
            }
        }
    }
}

#[test]
fn largest_value_the_engine_accepts() {
    let env = Env::sim();
    let v = vec![7u8; strata_core::batch::MAX_VALUE_BYTES];
    env.build(MmapTableOptions::default(), 1, &[put("k", 1, &v)]);
    let t = env.open(1).expect("open");
    assert_eq!(value(&*t, b"k", 1).map(|x| x.len()), Some(v.len()));
}

#[test]
fn all_tombstones() {
    for env in Env::both() {
        let entries: Vec<_> = (0..300).map(|i| del(format!("gone-{i:04}"), 1000 - i)).collect();
        let meta = env.build(MmapTableOptions::default(), 7, &entries);
        assert_eq!((meta.entries, meta.tombstones), (300, 300));
        let t = env.open(7).expect("open");
        for e in &entries {
            assert_eq!(
                t.get(&e.key, SeqNo::MAX).expect("get"),
                Some(Lookup::Deleted { seq: e.seq })
            );
        }
        let all = scan(&t).expect("scan");
        assert_eq!(all, entries);
        assert!(all.iter().all(|e| e.kind == ValueKind::Delete && e.value.is_empty()));
    }
}

#[test]
fn values_are_zero_copy_slices_of_the_map() {
    let env = Env::os();
    let entries = simple_entries(1000);
    env.build(MmapTableOptions::default(), 8, &entries);
    let t = env.open(8).expect("open");
    assert!(t.is_mapped());
    let ptrs: Vec<usize> = (500..520)
        .map(|i| {
            value(&*t, format!("key-{i:08}").as_bytes(), 9999).expect("found").as_ptr() as usize
        })
        .collect();
    // Neighbouring entries in one mapped block have values exactly one encoded entry
    // (varints 2 + kind/seq 9 + key 12 + value 100) apart: slices of one mapping, not
    // heap copies. At most one block boundary falls among 20 neighbours.
    let adjacent = ptrs.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 123).count();
    assert!(adjacent >= 17, "only {adjacent} of 19 neighbouring values are adjacent in memory");
}

#[test]
fn lz4_shrinks_compressible_tables() {
    let env = Env::sim();
    let entries = simple_entries(5000);
    let plain = env.build(MmapTableOptions::default(), 1, &entries);
    let lz4 =
        env.build(MmapTableOptions::default().with_compression(Compression::Lz4), 2, &entries);
    assert!(
        lz4.size_bytes * 2 < plain.size_bytes,
        "lz4 {} vs plain {}",
        lz4.size_bytes,
        plain.size_bytes
    );
    let t = env.open(2).expect("open");
    assert_eq!(t.properties().compression, Compression::Lz4);
    assert_eq!(scan(&t).expect("scan"), entries);
}

#[test]
fn builder_rejects_out_of_order_and_duplicate_entries_and_stays_refused() {
    let env = Env::sim();
    let format = MmapTableFormat::default();
    let cases: [(&[u8], u64, &str); 3] =
        [(b"b", 5, "duplicate"), (b"b", 6, "newer after older"), (b"a", 1, "smaller key")];
    for (i, (key, seq, what)) in cases.into_iter().enumerate() {
        let path = env.path(10 + i as u64);
        let file = env.fs.open(&path, OpenMode::CreateNew).expect("create");
        let mut b = format.builder(file, FileNo(10 + i as u64)).expect("builder");
        b.add(b"b", SeqNo(5), ValueKind::Put, b"v").expect("first add");
        let err = b.add(key, SeqNo(seq), ValueKind::Put, b"v").expect_err(what);
        match &err {
            Error::InvalidArgument(msg) => {
                assert!(
                    msg.contains("\"b\"") && msg.contains("#5"),
                    "{what}: message names keys: {msg}"
                );
            }
            other => panic!("{what}: expected InvalidArgument, got {other}"),
        }
        let again = b.add(b"c", SeqNo(1), ValueKind::Put, b"v").expect_err("refused after error");
        assert!(matches!(again, Error::InvalidArgument(_)), "{again}");
        assert!(b.finish().is_err(), "{what}: finish after an error must fail");
    }
}

#[test]
fn builder_rejects_oversized_keys_and_bad_options() {
    let env = Env::sim();
    let file = env.fs.open(&env.path(1), OpenMode::CreateNew).expect("create");
    let mut b = MmapTableFormat::default().builder(file, FileNo(1)).expect("builder");
    let key = vec![1u8; strata_core::batch::MAX_KEY_BYTES + 1];
    assert!(matches!(b.add(&key, SeqNo(1), ValueKind::Put, b""), Err(Error::InvalidArgument(_))));
    for (n, opts) in [
        MmapTableOptions::default().with_block_size(0),
        MmapTableOptions::default().with_block_size(64 << 20),
        MmapTableOptions::default().with_bloom_bits_per_key(1000),
    ]
    .into_iter()
    .enumerate()
    {
        let file = env.fs.open(&env.path(2 + n as u64), OpenMode::CreateNew).expect("create");
        let err = MmapTableBuilder::new(file, FileNo(2), opts).expect_err("bad options");
        assert!(matches!(err, Error::Config(_)), "{err}");
    }
}

#[test]
fn builder_refuses_a_file_that_is_not_empty() {
    let env = Env::sim();
    env.write_bytes(1, b"old data");
    let file = env.fs.open(&env.path(1), OpenMode::ReadWrite).expect("open");
    let err =
        MmapTableBuilder::new(file, FileNo(1), MmapTableOptions::default()).expect_err("non-empty");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn finish_syncs_so_a_crash_keeps_the_table_and_writes_are_coalesced() {
    let env = Env::sim();
    let sim = env.sim.clone().expect("sim");
    env.fs.sync_dir(&env.dir).expect("sync dir");
    let path = env.path(1);
    let file = env.fs.open(&path, OpenMode::CreateNew).expect("create");
    env.fs.sync_dir(&env.dir).expect("sync dir");
    let (writes, syncs) = (sim.write_count(), sim.sync_data_count());
    let entries = simple_entries(20_000);
    let mut b = MmapTableFormat::default().builder(file, FileNo(1)).expect("builder");
    for e in &entries {
        b.add(&e.key, e.seq, e.kind, &e.value).expect("add");
    }
    let estimate = b.estimated_size();
    let meta = b.finish().expect("finish");
    let writes = sim.write_count() - writes;
    assert_eq!(sim.sync_data_count() - syncs, 1, "finish syncs exactly once");
    // About 2.6 MB in 256 KiB writes.
    assert!(
        writes <= 12,
        "{writes} writes for {} bytes: writes are not coalesced",
        meta.size_bytes
    );
    let diff = estimate.abs_diff(meta.size_bytes);
    assert!(diff * 50 < meta.size_bytes, "estimate {estimate} vs actual {}", meta.size_bytes);
    assert_eq!(sim.durable_file(&path), sim.read_file(&path), "everything written is durable");

    let rebooted = sim.crash();
    let file = rebooted.shared().open(&path, OpenMode::ReadOnly).expect("file survives");
    let t = MmapTableFormat::default().open(file, FileNo(1)).expect("open after crash");
    assert_eq!(t.meta(), &meta);
    assert!(t.verify().is_empty());
    assert_eq!(
        t.get(b"key-00012345", SeqNo::MAX).expect("get").map(|l| l.seq()),
        Some(SeqNo(12346))
    );
}

#[test]
fn unfinished_table_does_not_survive_a_crash() {
    // The control for the test above: without `finish`, nothing was synced.
    let env = Env::sim();
    let sim = env.sim.clone().expect("sim");
    let path = env.path(1);
    let file = env.fs.open(&path, OpenMode::CreateNew).expect("create");
    env.fs.sync_dir(&env.dir).expect("sync dir");
    let mut b = MmapTableFormat::default().builder(file, FileNo(1)).expect("builder");
    for e in simple_entries(20_000) {
        b.add(&e.key, e.seq, e.kind, &e.value).expect("add");
    }
    drop(b);
    let rebooted = sim.crash();
    let file = rebooted.shared().open(&path, OpenMode::ReadOnly).expect("entry survives");
    let err = MmapTableFormat::default().open(file, FileNo(1)).expect_err("no table");
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn write_failure_poisons_the_builder() {
    let env = Env::sim();
    let sim = env.sim.clone().expect("sim");
    let file = env.fs.open(&env.path(1), OpenMode::CreateNew).expect("create");
    let mut b = MmapTableFormat::default().builder(file, FileNo(1)).expect("builder");
    sim.fail_writes_after(1);
    let mut first_err = None;
    for e in simple_entries(20_000) {
        if let Err(err) = b.add(&e.key, e.seq, e.kind, &e.value) {
            first_err = Some(err);
            break;
        }
    }
    assert!(matches!(first_err, Some(Error::Io { .. })), "{first_err:?}");
    sim.clear_faults();
    let err = b.add(b"zzz", SeqNo(1), ValueKind::Put, b"").expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
}

#[test]
fn meta_matches_through_the_trait_object_and_file_number_is_the_callers() {
    let env = Env::os();
    let entries = simple_entries(10);
    env.build(MmapTableOptions::default(), 42, &entries);
    let file = env.fs.open(&env.path(42), OpenMode::ReadOnly).expect("open file");
    let t = MmapTableFormat::default().open(file, FileNo(43)).expect("open");
    assert_eq!(t.meta().file_no, FileNo(43));
    assert_eq!(t.meta().entries, 10);
    assert!(format!("{t:?}").contains("MmapTable"));
}

#[test]
fn iterators_are_independent_and_outlive_the_handle() {
    for env in Env::both() {
        let entries = simple_entries(500);
        env.build(MmapTableOptions::default().with_block_size(512), 9, &entries);
        let t = env.open(9).expect("open");
        let mut a = t.clone().range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
        let b = t
            .clone()
            .range((Bound::Included(Bytes::from("key-00000250")), Bound::Unbounded), SeqNo::MAX);
        drop(t);
        let first = a.next().expect("one").expect("ok");
        assert_eq!(first, entries[0]);
        assert_eq!(b.map(|e| e.expect("ok")).collect::<Vec<_>>(), entries[250..].to_vec());
        assert_eq!(a.count(), 499);
    }
}

#[test]
fn concurrent_lookups_and_scans_share_one_table() {
    for env in Env::both() {
        let entries = simple_entries(2000);
        env.build(MmapTableOptions::default().with_block_size(1024), 1, &entries);
        let t = env.open(1).expect("open");
        std::thread::scope(|s| {
            for th in 0..4usize {
                let (t, entries) = (t.clone(), &entries);
                s.spawn(move || {
                    for (i, e) in entries.iter().enumerate().skip(th).step_by(4) {
                        let got = t.get(&e.key, SeqNo::MAX).expect("get");
                        assert_eq!(
                            got,
                            Some(Lookup::Value { value: e.value.clone(), seq: e.seq }),
                            "{i}"
                        );
                    }
                    assert_eq!(scan(&t).expect("scan").len(), entries.len());
                });
            }
        });
    }
}
