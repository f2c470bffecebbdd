//! The `bloom_filter` target: bloom filter blocks, alone and inside a table.

use bytes::Bytes;
use strata_core::{Entry, Lookup, SeqNo, Table, ValueKind};
use strata_sstable_mmap::MmapTableOptions;
use strata_sstable_mmap::bloom::{self, BloomFilter};
use strata_sstable_mmap::format::{self as sst, Footer, SectionHandle};

use super::sstable::{build_table, exercise_table, open_table, table_path};
use super::{Cursor, expect_corruption, le_u32};

/// Target `bloom_filter`: building and probing filters, and filter sections decoded from
/// a table file.
///
/// Input: bits-per-key byte, key count, keys (length byte, bytes), then a filter section
/// body that replaces the filter of a valid table holding those keys.
///
/// Contract: a built filter never denies a key it was built from; a stored filter with
/// more than `MAX_HASHES` hashes is `Error::Corruption` at open; any other stored
/// filter probes without panicking, and a table `verify` finds intact (so its filter
/// holds every key) answers every `get` correctly.
pub fn bloom_filter(data: &[u8]) {
    let mut c = Cursor::new(data);
    let bits = u32::from(c.u8()) % (strata_sstable_mmap::MAX_BLOOM_BITS_PER_KEY + 1);
    let n = usize::from(c.u8() % 64);
    let mut keys: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let l = usize::from(c.u8() % 24);
            c.bytes(l).to_vec()
        })
        .collect();
    let filter = BloomFilter::from_keys(keys.iter().map(|k| &k[..]), bits);
    assert_eq!(filter.hash_count(), bloom::hash_count(bits));
    assert!(filter.hash_count() <= bloom::MAX_HASHES);
    for k in &keys {
        assert!(filter.may_contain(k), "a bloom filter denies a key it was built from");
        assert!(filter.may_contain_hash(bloom::key_hash(k)));
    }
    let stored_body = c.rest();
    let _ = filter.may_contain(stored_body);

    // The same keys in a table, whose filter section is replaced by the fuzzer's bytes.
    keys.retain(|k| !k.is_empty());
    keys.sort();
    keys.dedup();
    let entries: Vec<Entry> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Entry {
            key: Bytes::from(k.clone()),
            seq: SeqNo(1 + i as u64),
            kind: ValueKind::Put,
            value: Bytes::from(vec![b'v'; i % 7]),
        })
        .collect();
    let valid = build_table(&entries, MmapTableOptions::default().with_block_size(64));
    let file = replace_filter(&valid, stored_body);
    let k = le_u32(stored_body, 0);
    match open_table(&file) {
        Ok(table) => {
            assert!(stored_body.len() >= 4 && k <= bloom::MAX_HASHES, "filter with k={k} opened");
            assert_eq!(table.filter().hash_count(), k);
            for key in &keys {
                let _ = table.may_contain(key);
            }
            let _ = table.may_contain(stored_body);
            if exercise_table(&table, None) {
                for e in &entries {
                    let got = table.get(&e.key, SeqNo::MAX);
                    let want = Lookup::Value { value: e.value.clone(), seq: e.seq };
                    assert!(
                        matches!(got, Ok(Some(ref l)) if *l == want),
                        "intact table lost a key"
                    );
                }
            }
        }
        Err(e) => {
            expect_corruption(&e, &table_path(), "open with a replaced filter");
        }
    }
}

/// Rebuilds the table `valid` with `filter_body` as its filter section body.
pub(crate) fn replace_filter(valid: &[u8], filter_body: &[u8]) -> Vec<u8> {
    let footer = match Footer::decode(&table_path(), valid) {
        Ok(f) => f,
        Err(e) => panic!("a freshly built table has a bad footer: {e}"),
    };
    let body = |h: SectionHandle| {
        let (o, l) = (h.offset as usize, h.len as usize);
        valid[o + 4..o + l - 4].to_vec()
    };
    let (index, meta) = (body(footer.index), body(footer.meta));
    let mut out = valid[..footer.index.offset as usize].to_vec();
    let index = sst::encode_section(&mut out, 0, sst::INDEX_TAG, |b| b.extend_from_slice(&index));
    let filter =
        sst::encode_section(&mut out, 0, sst::FILTER_TAG, |b| b.extend_from_slice(filter_body));
    let meta = sst::encode_section(&mut out, 0, sst::META_TAG, |b| b.extend_from_slice(&meta));
    out.extend_from_slice(&Footer { index, filter, meta }.encode());
    out
}
