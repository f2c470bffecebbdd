//! The `sstable` target: arbitrary table files opened and read; the table helpers the
//! other table targets share.

use std::cmp::Ordering;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_core::fs::OpenMode;
use strata_core::{Entry, FileNo, Lookup, SeqNo, Table, TableBuilder, ValueKind, compare_internal};
use strata_harness::sim_fs::SimFileSystem;
use strata_sstable_mmap::format::{self as sst};
use strata_sstable_mmap::index::decode_index_entry;
use strata_sstable_mmap::{Compression, MmapTable, MmapTableBuilder, MmapTableOptions};

use super::{Cursor, MAX_STEPS, crc32, expect_corruption, le_u32, le_u64, put_u32};

pub(crate) const TABLE_DIR: &str = "db";

pub(crate) fn table_path() -> PathBuf {
    Path::new(TABLE_DIR).join(FileNo(1).table_file_name())
}

/// Opens `bytes` as table file 1 on a fresh [`SimFileSystem`].
pub(crate) fn open_table(bytes: &[u8]) -> strata_core::Result<Arc<MmapTable>> {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    fs.create_dir_all(Path::new(TABLE_DIR)).expect("creating a directory must succeed");
    sim.write_file_raw(table_path(), bytes).expect("write_file_raw must succeed");
    let file = fs.open(&table_path(), OpenMode::ReadOnly).expect("opening a file just written");
    MmapTable::open(file, FileNo(1))
}

/// Target `sstable`: an arbitrary file opened as a table, then read every way.
///
/// Input: a flags byte, then the file. Flags: bit 0 repairs the checksums of the
/// footer, of the sections it names and of the blocks the index names; bit 1 also
/// writes the magic, version and section tags.
///
/// Contract: open, get, range and verify return `Error::Corruption` naming the file, or
/// data. A table that `verify` finds intact scans without error in strictly increasing
/// internal-key order, and `get` and bounded ranges agree with the scan.
pub fn sstable(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let mut file = c.rest().to_vec();
    if flags & 1 != 0 {
        repair_table(&mut file, flags & 2 != 0);
    }
    let table = match open_table(&file) {
        Ok(t) => t,
        Err(e) => {
            expect_corruption(&e, &table_path(), "MmapTable::open");
            return;
        }
    };
    exercise_table(&table, None);
}

/// Recomputes the CRCs of every data block the index names, of the three sections and
/// of the footer (with `magic`, also the magic, version and section tags).
pub fn repair_table(bytes: &mut [u8], magic: bool) {
    let len = bytes.len();
    let Some(at) = len.checked_sub(sst::FOOTER_LEN) else { return };
    if magic {
        bytes[at + 56..].copy_from_slice(&sst::MAGIC);
        put_u32(bytes, at + 48, sst::VERSION);
    }
    let handle = |b: &[u8], i: usize| {
        let (o, l) = (le_u64(b, at + 16 * i), le_u64(b, at + 16 * i + 8));
        let o = usize::try_from(o).ok()?;
        let l = usize::try_from(l).ok()?;
        (l >= sst::SECTION_OVERHEAD && o.checked_add(l)? <= at).then(|| o..o + l)
    };
    // Blocks first: they lie before the sections, whose CRCs are fixed afterwards.
    if let Some(index) = handle(bytes, 0) {
        let body = bytes[index.start + 4..index.end - 4].to_vec();
        let count = le_u32(&body, 0) as usize;
        let mut pos = 4;
        for _ in 0..count.min(MAX_STEPS) {
            let Some(e) = decode_index_entry(&body, pos) else { break };
            pos += e.size;
            let start = usize::try_from(e.offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(e.len as usize);
            if e.len as usize >= sst::BLOCK_TRAILER_LEN && end <= at {
                let crc = crc32(&bytes[start..end - 4]);
                put_u32(bytes, end - 4, crc);
            }
        }
    }
    for (i, tag) in [sst::INDEX_TAG, sst::FILTER_TAG, sst::META_TAG].into_iter().enumerate() {
        if let Some(r) = handle(bytes, i) {
            if magic {
                bytes[r.start..r.start + 4].copy_from_slice(&tag);
            }
            let crc = crc32(&bytes[r.start..r.end - 4]);
            put_u32(bytes, r.end - 4, crc);
        }
    }
    let crc = crc32(&bytes[at..at + 52]);
    put_u32(bytes, at + 52, crc);
}

/// Reads `table` every way and checks the answers against each other (and, when given,
/// against the entries it was built from). Returns true when `verify` found it intact.
pub(crate) fn exercise_table(table: &Arc<MmapTable>, truth: Option<&[Entry]>) -> bool {
    let path = table_path();
    let problems = table.verify();
    for p in &problems {
        expect_corruption(p, &path, "verify");
    }
    let intact = problems.is_empty();

    // A full scan: internal-key order, and an error ends it.
    let mut scan: Vec<Entry> = Vec::new();
    let mut scan_failed = false;
    let mut it = Arc::clone(table).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    for _ in 0..MAX_STEPS {
        match it.next() {
            Some(Ok(e)) => {
                // Reads check CRCs, not the order inside a block (verify does): only an
                // intact table promises order.
                if let Some(prev) = scan.last().filter(|_| intact) {
                    assert_eq!(
                        compare_internal(&prev.key, prev.seq, &e.key, e.seq),
                        Ordering::Less,
                        "scan out of internal-key order"
                    );
                }
                scan.push(e);
            }
            Some(Err(e)) => {
                expect_corruption(&e, &path, "range");
                assert!(it.next().is_none(), "range goes on after an error");
                scan_failed = true;
                break;
            }
            None => break,
        }
    }
    if intact {
        assert!(!scan_failed, "verify found nothing wrong, but the scan failed");
        assert_eq!(scan.len() as u64, table.meta().entries, "scan and meta disagree");
    }
    if let Some(truth) = truth {
        // Whatever was served is what was written, in order, up to the first error.
        assert!(scan.len() <= truth.len(), "scan returned more than was written");
        assert_eq!(scan[..], truth[..scan.len()], "scan served wrong data");
        if !scan_failed {
            assert_eq!(scan.len(), truth.len(), "scan ended early without an error");
        }
    }
    let reference: Option<&[Entry]> = truth.or((intact && !scan_failed).then_some(&scan[..]));

    // Point lookups for every key seen and a few others, at a few snapshots.
    let mut keys: Vec<Bytes> = scan.iter().map(|e| e.key.clone()).collect();
    if let Some(t) = truth {
        keys.extend(t.iter().map(|e| e.key.clone()));
    }
    keys.extend([Bytes::new(), Bytes::from_static(b"\0"), Bytes::from_static(b"\xff\xff")]);
    keys.sort();
    keys.dedup();
    let mut snapshots: Vec<SeqNo> = scan.iter().map(|e| e.seq).take(8).collect();
    snapshots.extend([SeqNo::ZERO, SeqNo(1), SeqNo::MAX]);
    for key in keys.iter().take(256) {
        let _ = table.may_contain(key);
        for &snap in &snapshots {
            match table.get(key, snap) {
                Ok(found) => {
                    if let Some(reference) = reference {
                        let want =
                            reference.iter().find(|e| e.key == *key && e.seq <= snap).map(|e| {
                                match e.kind {
                                    ValueKind::Put => {
                                        Lookup::Value { value: e.value.clone(), seq: e.seq }
                                    }
                                    ValueKind::Delete => Lookup::Deleted { seq: e.seq },
                                }
                            });
                        assert_eq!(found, want, "get({key:?}, {snap}) disagrees with the scan");
                    }
                }
                Err(e) => {
                    expect_corruption(&e, &path, "get");
                    assert!(!intact, "verify found nothing wrong, but get failed: {e}");
                }
            }
        }
    }

    // Bounded ranges must be the matching slice of the full scan.
    if let Some(reference) = reference {
        let picks: Vec<Bytes> =
            keys.iter().step_by(keys.len().div_ceil(4).max(1)).cloned().collect();
        for lo in &picks {
            for hi in &picks {
                for (start, end) in [
                    (Bound::Included(lo.clone()), Bound::Excluded(hi.clone())),
                    (Bound::Excluded(lo.clone()), Bound::Included(hi.clone())),
                    (Bound::Unbounded, Bound::Included(hi.clone())),
                    (Bound::Excluded(lo.clone()), Bound::Unbounded),
                ] {
                    let snap = SeqNo::MAX;
                    let want: Vec<&Entry> = reference
                        .iter()
                        .filter(|e| in_bounds(&start, &end, &e.key) && e.seq <= snap)
                        .collect();
                    let mut got = Vec::new();
                    let mut failed = false;
                    for r in
                        Arc::clone(table).range((start.clone(), end.clone()), snap).take(MAX_STEPS)
                    {
                        match r {
                            Ok(e) => got.push(e),
                            Err(e) => {
                                expect_corruption(&e, &path, "bounded range");
                                failed = true;
                                break;
                            }
                        }
                    }
                    if failed {
                        assert!(!intact, "verify found nothing wrong, but a range failed");
                        assert!(got.len() <= want.len());
                        assert!(
                            got.iter().zip(&want).all(|(g, w)| g == *w),
                            "range served wrong data"
                        );
                    } else {
                        let same =
                            got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g == *w);
                        assert!(same, "range {start:?}..{end:?} disagrees with the full scan");
                    }
                }
            }
        }
    }
    intact
}

pub(crate) fn in_bounds(start: &Bound<Bytes>, end: &Bound<Bytes>, key: &[u8]) -> bool {
    let above = match start {
        Bound::Included(s) => key >= &s[..],
        Bound::Excluded(s) => key > &s[..],
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= &e[..],
        Bound::Excluded(e) => key < &e[..],
        Bound::Unbounded => true,
    };
    above && below
}

/// Entries for a table described by fuzzer bytes: keys and values use lowercase
/// letters only (so no key can spell the table magic), sorted in internal-key order.
pub(crate) fn table_entries(c: &mut Cursor<'_>) -> Vec<Entry> {
    let n = usize::from(c.u8() % 80);
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let shape = c.u8();
        let key_len = 1 + usize::from(shape % 12);
        let key: Vec<u8> = (0..key_len).map(|_| b'a' + c.u8() % 4).collect();
        let seq = SeqNo(1 + u64::from(c.u16()));
        let kind = if shape & 0x80 != 0 { ValueKind::Delete } else { ValueKind::Put };
        let value_len = match (shape >> 4) & 7 {
            7 => 300 + usize::from(c.u8()) * 4,
            s => usize::from(s) * 5,
        };
        let fill = c.u8();
        let value: Vec<u8> = match kind {
            ValueKind::Put => (0..value_len).map(|i| b'a' + ((i as u8) ^ fill) % 26).collect(),
            ValueKind::Delete => Vec::new(),
        };
        entries.push(Entry { key: Bytes::from(key), seq, kind, value: Bytes::from(value) });
    }
    entries.sort_by(|a, b| compare_internal(&a.key, a.seq, &b.key, b.seq));
    entries.dedup_by(|b, a| a.key == b.key && a.seq == b.seq);
    entries
}

pub(crate) fn table_options(c: &mut Cursor<'_>) -> MmapTableOptions {
    let o = c.u8();
    let block_size = [32, 100, 512, 4096][usize::from(o & 3)];
    let bloom = [0, 1, 10, 64][usize::from((o >> 2) & 3)];
    let compression = if o & 16 != 0 { Compression::Lz4 } else { Compression::None };
    MmapTableOptions::default()
        .with_block_size(block_size)
        .with_bloom_bits_per_key(bloom)
        .with_compression(compression)
}

/// Builds a valid table of `entries` and returns its bytes.
pub(crate) fn build_table(entries: &[Entry], opts: MmapTableOptions) -> Vec<u8> {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    fs.create_dir_all(Path::new(TABLE_DIR)).expect("creating a directory must succeed");
    let file = fs.open(&table_path(), OpenMode::CreateNew).expect("creating a table file");
    let mut b: Box<dyn TableBuilder> =
        Box::new(MmapTableBuilder::new(file, FileNo(1), opts).expect("valid builder options"));
    for e in entries {
        b.add(&e.key, e.seq, e.kind, &e.value).expect("entries are in order and small");
    }
    b.finish().expect("finishing a table on SimFileSystem must succeed");
    sim.read_file(table_path()).expect("the table file exists")
}

pub(crate) fn table_seeds() -> Vec<Vec<u8>> {
    let entries: Vec<Entry> = (0..40u32)
        .map(|i| Entry {
            key: Bytes::from(format!("key{:03}", i / 2)),
            seq: SeqNo(100 - u64::from(i % 2)),
            kind: if i % 5 == 0 { ValueKind::Delete } else { ValueKind::Put },
            value: if i % 5 == 0 { Bytes::new() } else { Bytes::from(format!("value{i}")) },
        })
        .collect();
    let plain = MmapTableOptions::default().with_block_size(128);
    let lz4 = plain.with_compression(Compression::Lz4).with_bloom_bits_per_key(0);
    let mut out = Vec::new();
    for opts in [plain, lz4] {
        let mut v = vec![0u8];
        v.extend_from_slice(&build_table(&entries, opts));
        out.push(v);
    }
    let mut empty = vec![1u8];
    empty.extend_from_slice(&build_table(&[], plain));
    out.push(empty);
    out
}
