//! Damaged tables: every kind of damage is `Error::Corruption` naming the file (and,
//! for data blocks, the block's offset), never data and never a panic.

mod common;

use std::ops::Bound;

use bytes::Bytes;
use common::{Env, assert_corruption, simple_entries};
use proptest::prelude::*;
use strata_core::{Entry, Error, Lookup, SeqNo, Table, ValueKind};
use strata_sstable_mmap::format::{
    FILTER_TAG, FOOTER_LEN, Footer, INDEX_TAG, META_TAG, encode_section, read_u64,
};
use strata_sstable_mmap::meta::Properties;
use strata_sstable_mmap::{Compression, MmapTableOptions};

/// 200 entries of 123 bytes in 256-byte blocks: block `j` holds keys `2j` and `2j + 1`.
fn two_per_block(compression: Compression) -> MmapTableOptions {
    MmapTableOptions::default().with_block_size(256).with_compression(compression)
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// Offset where the index section (and so the metadata) starts.
fn index_offset(bytes: &[u8]) -> usize {
    read_u64(bytes, bytes.len() - FOOTER_LEN) as usize
}

#[test]
fn flipped_byte_in_a_data_block_is_reported_with_file_and_block_offset() {
    for env in Env::both() {
        for (n, compression) in [(1, Compression::None), (2, Compression::Lz4)] {
            let entries = simple_entries(200);
            env.build(two_per_block(compression), n, &entries);
            let table = env.open(n).expect("open");
            assert_eq!(table.block_count(), 100);
            let offsets = table.block_offsets();
            drop(table);
            let pristine = env.read_bytes(n);
            let path = env.path(n);
            // Every byte of block 3 (keys 6 and 7), including its trailer.
            let (start, end) = (offsets[3] as usize, offsets[4] as usize);
            let step = if env.is_os() { 7 } else { 1 };
            for at in (start..end).step_by(step) {
                let mut bad = pristine.clone();
                bad[at] ^= 0x20;
                env.write_bytes(n, &bad);
                let t = env.open(n).expect("open does not read data blocks");
                for k in [6, 7] {
                    let err =
                        t.get(&key(k), SeqNo::MAX).expect_err("damaged block must not be served");
                    assert_corruption(&err, &path, Some(offsets[3]));
                }
                // Neighbouring blocks are intact and still served.
                assert!(t.get(&key(5), SeqNo::MAX).expect("block 2 intact").is_some());
                assert!(t.get(&key(8), SeqNo::MAX).expect("block 4 intact").is_some());
                // A scan yields blocks 0..3, then the error, then nothing.
                let mut it = t.clone().range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
                let good: Vec<Entry> = it.by_ref().take(6).map(|e| e.expect("intact")).collect();
                assert_eq!(good, entries[..6].to_vec());
                let err = it.next().expect("an item").expect_err("damaged block");
                assert_corruption(&err, &path, Some(offsets[3]));
                assert!(it.next().is_none(), "nothing after an error");
                // A scan starting inside the damaged block fails the same way.
                let from = Bytes::from(key(7));
                let mut it = t.clone().range((Bound::Included(from), Bound::Unbounded), SeqNo::MAX);
                assert_corruption(
                    &it.next().expect("item").expect_err("damaged"),
                    &path,
                    Some(offsets[3]),
                );
                // verify names exactly this block.
                let problems = t.verify();
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_corruption(&problems[0], &path, Some(offsets[3]));
            }
            env.write_bytes(n, &pristine);
            assert!(env.open(n).expect("open").verify().is_empty());
        }
    }
}

#[test]
fn verify_lists_every_damaged_block() {
    for env in Env::both() {
        env.build(two_per_block(Compression::None), 1, &simple_entries(200));
        let offsets = env.open(1).expect("open").block_offsets();
        let mut bad = env.read_bytes(1);
        for b in [0usize, 42, 99] {
            bad[offsets[b] as usize + 30] ^= 0xff;
        }
        env.write_bytes(1, &bad);
        let t = env.open(1).expect("open");
        let mut named: Vec<u64> = t
            .verify()
            .iter()
            .map(|e| match e {
                Error::Corruption { file, offset, .. } if file == &env.path(1) => *offset,
                other => panic!("unexpected problem {other}"),
            })
            .collect();
        named.sort_unstable();
        assert_eq!(named, vec![offsets[0], offsets[42], offsets[99]]);
    }
}

#[test]
fn verify_on_the_read_path_rereads_the_file() {
    // Without a map the table holds a copy; verify must still see damage done since.
    let env = Env::sim();
    env.build(two_per_block(Compression::None), 1, &simple_entries(200));
    let t = env.open(1).expect("open");
    assert!(t.verify().is_empty());
    let offsets = t.block_offsets();
    let mut bad = env.read_bytes(1);
    bad[offsets[10] as usize] ^= 1;
    env.write_bytes(1, &bad);
    let problems = t.verify();
    assert_eq!(problems.len(), 1);
    assert_corruption(&problems[0], &env.path(1), Some(offsets[10]));
}

#[test]
fn every_flip_in_footer_index_filter_or_meta_fails_open() {
    for env in Env::both() {
        env.build(two_per_block(Compression::None), 1, &simple_entries(40));
        let pristine = env.read_bytes(1);
        let path = env.path(1);
        let start = index_offset(&pristine);
        let step = if env.is_os() { 5 } else { 1 };
        for at in (start..pristine.len()).step_by(step) {
            for flip in [0x01u8, 0x80] {
                let mut bad = pristine.clone();
                bad[at] ^= flip;
                env.write_bytes(1, &bad);
                let err = env.open(1).expect_err("damaged metadata must fail open");
                assert_corruption(&err, &path, None);
            }
        }
    }
}

#[test]
fn truncated_files_fail_open() {
    for env in Env::both() {
        env.build(two_per_block(Compression::None), 1, &simple_entries(40));
        let pristine = env.read_bytes(1);
        let path = env.path(1);
        let lens: Vec<usize> = if env.is_os() {
            vec![
                0,
                1,
                8,
                FOOTER_LEN - 1,
                FOOTER_LEN,
                FOOTER_LEN + 1,
                pristine.len() / 2,
                pristine.len() - 1,
            ]
        } else {
            (0..pristine.len()).collect()
        };
        for len in lens {
            env.write_bytes(1, &pristine[..len]);
            let err = env.open(1).expect_err("truncated");
            assert_corruption(&err, &path, None);
        }
        // Extra bytes after the footer are damage too.
        let mut longer = pristine.clone();
        longer.extend_from_slice(&[0; 10]);
        env.write_bytes(1, &longer);
        assert_corruption(&env.open(1).expect_err("trailing bytes"), &path, None);
    }
}

#[test]
fn wrong_magic_and_version_name_their_offsets() {
    let env = Env::sim();
    env.build(MmapTableOptions::default(), 1, &simple_entries(10));
    let pristine = env.read_bytes(1);
    let len = pristine.len();
    let mut bad = pristine.clone();
    bad[len - 8..].copy_from_slice(b"NOTATABL");
    env.write_bytes(1, &bad);
    assert_corruption(&env.open(1).expect_err("magic"), &env.path(1), Some(len as u64 - 8));

    // Version 2 with a valid footer checksum: refused as unsupported.
    let mut bad = pristine.clone();
    let footer = len - FOOTER_LEN;
    bad[footer + 48..footer + 52].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast_hash(&bad[footer..footer + 52]);
    bad[footer + 52..footer + 56].copy_from_slice(&crc.to_le_bytes());
    env.write_bytes(1, &bad);
    let err = env.open(1).expect_err("version");
    assert_corruption(&err, &env.path(1), Some(footer as u64 + 48));
    assert!(err.to_string().contains("version 2"), "{err}");
}

/// CRC32 (IEEE), bit by bit: the test must not share code with the implementation.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// What the reads of a damaged table may answer.
#[derive(Clone, Copy)]
enum Truth<'a> {
    /// The table was built from these entries (in internal-key order): every read is a
    /// corruption error or exactly the data written, never other data and never less.
    Known(&'a [Entry]),
    /// Bytes of no known meaning: every read is a corruption error or agrees with the
    /// other reads (a scan in internal-key order, lookups that match the scan).
    Unknown,
}

/// The lookup a table must answer for `e`, its key's newest version.
fn lookup_of(e: &Entry) -> Lookup {
    match e.kind {
        ValueKind::Put => Lookup::Value { value: e.value.clone(), seq: e.seq },
        ValueKind::Delete => Lookup::Deleted { seq: e.seq },
    }
}

/// Asserts that a read failed with a corruption error, the only acceptable failure.
fn must_be_corruption(err: &Error, what: &str) {
    assert!(err.is_corruption(), "{what}: expected a corruption error, got {err}");
}

/// Opens `bytes` as table 1 and, if that works, exercises every read path, asserting
/// that each read is a corruption error or correct data (see [`Truth`]). Returns
/// whether open succeeded.
fn poke(env: &Env, bytes: &[u8], truth: Truth<'_>) -> bool {
    env.write_bytes(1, bytes);
    let t = match env.open(1) {
        Ok(t) => t,
        Err(e) => {
            must_be_corruption(&e, "open");
            return false;
        }
    };

    // A full scan: entries, then at most one error, then nothing.
    let mut scanned = Vec::new();
    let mut scan_failed = false;
    let mut it = t.clone().range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    for item in it.by_ref().take(10_000) {
        match item {
            Ok(e) => scanned.push(e),
            Err(e) => {
                must_be_corruption(&e, "scan");
                scan_failed = true;
                break;
            }
        }
    }
    if scan_failed {
        assert!(it.next().is_none(), "the scan went on after an error");
    }
    let mut read_failed = scan_failed;

    match truth {
        Truth::Known(entries) => {
            assert!(scanned.len() <= entries.len(), "the scan made up entries");
            assert!(scanned[..] == entries[..scanned.len()], "the scan served wrong entries");
            assert!(
                scan_failed || scanned.len() == entries.len(),
                "the scan ended after {} of {} entries without an error",
                scanned.len(),
                entries.len()
            );
            for (i, e) in entries.iter().enumerate() {
                match t.get(&e.key, SeqNo::MAX) {
                    Ok(got) => assert_eq!(got, Some(lookup_of(e)), "get of entry {i}"),
                    Err(err) => {
                        must_be_corruption(&err, "get");
                        read_failed = true;
                    }
                }
                // Below its sequence the key did not exist yet (one version per key).
                match t.get(&e.key, SeqNo(e.seq.0 - 1)) {
                    Ok(got) => assert_eq!(got, None, "get of entry {i} before it was written"),
                    Err(err) => {
                        must_be_corruption(&err, "get");
                        read_failed = true;
                    }
                }
            }
            // Keys that were never written, before, between and after the others.
            for absent in [&b""[..], b"key-00000003x", b"zzz"] {
                match t.get(absent, SeqNo::MAX) {
                    Ok(got) => assert_eq!(got, None, "get of absent key {absent:?}"),
                    Err(err) => {
                        must_be_corruption(&err, "get");
                        read_failed = true;
                    }
                }
            }
        }
        Truth::Unknown => {
            // Internal-key order: keys ascending, versions of a key newest first.
            for w in scanned.windows(2) {
                assert!(
                    (&w[0].key, std::cmp::Reverse(w[0].seq))
                        < (&w[1].key, std::cmp::Reverse(w[1].seq)),
                    "the scan is out of order: {:?} then {:?}",
                    w[0],
                    w[1]
                );
            }
            // A lookup agrees with the scan: the first (newest) version of each key.
            for (i, e) in scanned.iter().enumerate() {
                if i > 0 && scanned[i - 1].key == e.key {
                    continue;
                }
                match t.get(&e.key, SeqNo::MAX) {
                    Ok(got) => assert_eq!(got, Some(lookup_of(e)), "get disagrees with the scan"),
                    Err(err) => must_be_corruption(&err, "get"),
                }
            }
            for key in [&b""[..], b"key-00000003"] {
                if let Err(err) = t.get(key, SeqNo(5)) {
                    must_be_corruption(&err, "get");
                }
            }
        }
    }

    // verify reports only corruption, and whatever damage a read ran into.
    let problems = t.verify();
    for p in &problems {
        must_be_corruption(p, "verify");
    }
    if read_failed {
        assert!(!problems.is_empty(), "a read failed but verify found nothing");
    }
    true
}

#[test]
fn garbage_files_of_many_lengths_are_errors_not_panics() {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    let env = Env::sim();
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for len in (0..300).chain([511, 512, 4095, 4096, 65_537]) {
        for _ in 0..3 {
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            assert!(
                !poke(&env, &bytes, Truth::Unknown),
                "random bytes of length {len} opened as a table"
            );
            // Even with the right magic at the end.
            if len >= 8 {
                bytes[len - 8..].copy_from_slice(b"STRATSST");
                assert!(
                    !poke(&env, &bytes, Truth::Unknown),
                    "garbage with magic of length {len} opened"
                );
            }
        }
    }
}

#[test]
fn mmap_path_rejects_garbage_too() {
    let env = Env::os();
    for len in [0usize, 1, 63, 64, 65, 1000] {
        let bytes = vec![0xa5u8; len];
        env.write_bytes(1, &bytes);
        let err = env.open(1).expect_err("garbage");
        assert_corruption(&err, &env.path(1), None);
    }
}

/// The entries of [`table_bytes`].
fn table_entries() -> Vec<Entry> {
    simple_entries(60)
}

/// A real table to damage: random multi-byte damage anywhere in it must never panic and
/// never serve data other than [`table_entries`].
fn table_bytes(compression: Compression) -> Vec<u8> {
    let env = Env::sim();
    env.build(
        MmapTableOptions::default().with_block_size(300).with_compression(compression),
        1,
        &table_entries(),
    );
    env.read_bytes(1)
}

/// Builds a file whose footer and section checksums are all valid around arbitrary
/// bodies, so the checks *behind* the checksums are what stands between the bytes and
/// a panic or a huge allocation.
fn checksummed_garbage(data: &[u8], index: &[u8], filter: &[u8], meta: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let index = encode_section(&mut out, 0, INDEX_TAG, |b| b.extend_from_slice(index));
    let filter = encode_section(&mut out, 0, FILTER_TAG, |b| b.extend_from_slice(filter));
    let meta = encode_section(&mut out, 0, META_TAG, |b| b.extend_from_slice(meta));
    out.extend_from_slice(&Footer { index, filter, meta }.encode());
    out
}

/// A consistent meta body for `blocks` data blocks.
fn meta_body(blocks: u64) -> Vec<u8> {
    let mut b = Vec::new();
    Properties { entries: blocks * 4, data_blocks: blocks, max_seq: 9, ..Properties::default() }
        .encode(&mut b);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_damage_never_panics(
        lz4 in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let mut bytes = table_bytes(compression);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let env = Env::sim();
        poke(&env, &bytes, Truth::Known(&table_entries()));
    }

    #[test]
    fn checksummed_garbage_sections_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        index in proptest::collection::vec(any::<u8>(), 0..200),
        filter in proptest::collection::vec(any::<u8>(), 0..64),
        meta in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let env = Env::sim();
        poke(&env, &checksummed_garbage(&data, &index, &filter, &meta), Truth::Unknown);
    }

    #[test]
    fn checksummed_blocks_with_garbage_payloads_never_panic(
        blocks in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..120), 0u8..3, prop_oneof![Just(None), (0u32..100_000).prop_map(Some)]),
            1..6,
        ),
    ) {
        // Each block: arbitrary payload, a valid CRC over payload, raw length and tag.
        let mut data = Vec::new();
        let mut index = (blocks.len() as u32).to_le_bytes().to_vec();
        for (i, (payload, tag, raw_len)) in blocks.iter().enumerate() {
            let offset = data.len() as u64;
            data.extend_from_slice(payload);
            data.extend_from_slice(&raw_len.unwrap_or(payload.len() as u32).to_le_bytes());
            data.push(*tag);
            let crc = crc32fast_hash(&data[offset as usize..]);
            data.extend_from_slice(&crc.to_le_bytes());
            let len = (data.len() as u64 - offset) as u32;
            index.extend_from_slice(&offset.to_le_bytes());
            index.extend_from_slice(&len.to_le_bytes());
            index.extend_from_slice(&0u64.to_le_bytes());
            let last_key = format!("key-{:08}", 2 * i + 1);
            index.extend_from_slice(&(last_key.len() as u32).to_le_bytes());
            index.extend_from_slice(last_key.as_bytes());
        }
        let env = Env::sim();
        let no_filter = 0u32.to_le_bytes();
        let bytes = checksummed_garbage(&data, &index, &no_filter, &meta_body(blocks.len() as u64));
        // Whatever the payloads hold, reads are corruption errors or agree with each
        // other.
        prop_assert!(poke(&env, &bytes, Truth::Unknown), "a well-formed shell must open");
    }
}
