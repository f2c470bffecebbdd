// The bodies of Strata's fuzz targets, shared by two callers:
//
// - `fuzz/fuzz_targets/*.rs` (libFuzzer, through `fuzz/src/lib.rs`), and
// - `harness/tests/fuzz_regressions.rs` (plain `cargo test` on stable), which replays
//   every saved regression input and a few thousand seeded inputs per target.
//
// This file is `include!`d by both, so it holds items only (no inner attributes or `//!`
// docs) and names crates that both the fuzz crate and `strata-harness` depend on.
//
// Every target feeds bytes from outside (a file, a shared-memory message) to a decoder
// and asserts the contract of DESIGN.md §5: the decoder returns an error (for files,
// `Error::Corruption` naming a file of the store and an offset) or data that is valid
// by the format's own rules. A panic, an arithmetic overflow (the fuzz profile and
// debug tests keep overflow checks on) or an allocation driven by an unchecked length
// (libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb`) is a bug in the decoder.
//
// Checksums stop a fuzzer at the first CRC, so most targets read a flags byte first
// that can ask the target to *repair* the checksums (and magic numbers) of the bytes it
// was given before decoding them: the decoders are then exercised on well-framed but
// arbitrary content, which is what a bug in a writer, or a hostile file, would produce.

use std::cmp::Ordering;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_core::batch::{BatchIter, MAX_KEY_BYTES, MAX_VALUE_BYTES, WriteBatch};
use strata_core::fs::OpenMode;
use strata_core::manifest::{self, ManifestState, ManifestWriter, VersionEdit};
use strata_core::{
    Entry, Error, FileNo, Lookup, SeqNo, Table, TableBuilder, TableMeta, ValueKind, Wal,
    compare_internal,
};
use strata_harness::exchange::{self, ExchangeRecord};
use strata_harness::sim_fs::SimFileSystem;
use strata_sstable_mmap::bloom::{self, BloomFilter};
use strata_sstable_mmap::format::{self as sst, Footer, SectionHandle};
use strata_sstable_mmap::{Compression, MmapTable, MmapTableBuilder, MmapTableOptions};
use strata_wal_file::check::check_dir;
use strata_wal_file::format::{self as walfmt, RecordAt};
use strata_wal_file::{FileWal, FileWalOptions};

/// A fuzz target: its name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target: its name (the directory under `fuzz/regressions/`) and its body.
pub const TARGETS: &[Target] = &[
    ("wal_record", wal_record),
    ("write_batch", write_batch),
    ("manifest_edit", manifest_edit),
    ("sstable", sstable),
    ("sstable_mutate", sstable_mutate),
    ("bloom_filter", bloom_filter),
    ("exchange_message", exchange_message),
];

/// Most batches, records, edits or entries a target walks through, so a long input
/// cannot turn one execution into a slow one.
const MAX_STEPS: usize = 4096;

/// Reads fuzzer bytes as little-endian numbers; once the input runs out every read
/// yields zeros, so any input is a valid description.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes as a little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Asserts that `err` is `Error::Corruption` naming a file at or under `within`, and
/// returns its offset.
fn expect_corruption(err: &Error, within: &Path, what: &str) -> u64 {
    match err {
        Error::Corruption { file, offset, reason } => {
            assert!(
                file.starts_with(within),
                "{what}: corruption names {} instead of a file under {}",
                file.display(),
                within.display()
            );
            assert!(!reason.is_empty(), "{what}: corruption without a reason");
            *offset
        }
        other => panic!("{what}: expected Error::Corruption, got {other:?}"),
    }
}

/// CRC-32 (IEEE, reflected), the checksum of every Strata file format; computed here so
/// the regression test needs no dependency that `strata-harness` lacks.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// An incremental CRC-32, for checksums that cover non-adjacent bytes.
struct Crc32(u32);

impl Crc32 {
    fn new() -> Self {
        Self(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    fn finalize(self) -> u32 {
        !self.0
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut h = Crc32::new();
    h.update(bytes);
    h.finalize()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at.saturating_add(4)) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at.saturating_add(8)) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at.saturating_add(4)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// wal_record
// ---------------------------------------------------------------------------------------

/// Target `wal_record`: WAL segment decoding.
///
/// Input: a flags byte, then segment bytes. The bytes go through `decode_header` and
/// `decode_record` directly, then as one or two segment files of a WAL directory on
/// [`SimFileSystem`] through `check::check_dir` (read-only verification) and
/// `FileWal::open` (recovery), whose log is then replayed.
///
/// Flags: bit 0 repairs the header and record checksums, bit 1 also writes a valid
/// magic and version, bit 2 splits the bytes into two segments (at a 16-bit position
/// read after the flags), bit 3 names the first segment after a fuzzer-chosen start
/// sequence instead of the one its header holds.
///
/// Contract: a record decodes as `Valid` only if it re-encodes to exactly its bytes; a
/// header decodes only with the right magic, version and CRC; every problem checking or
/// opening finds is `Error::Corruption` naming a segment; a directory `check_dir` finds
/// clean opens, recovers the same last sequence and replays every record, densely
/// numbered, without error.
pub fn wal_record(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let split = usize::from(c.u16());
    let name_start = u64::from(c.u8());
    let body = c.rest();
    check_header(body);
    check_records(body);
    check_records(body.get(walfmt::HEADER_LEN..).unwrap_or_default());
    let mut segments: Vec<Vec<u8>> = if flags & 4 != 0 && split < body.len() {
        vec![body[..split].to_vec(), body[split..].to_vec()]
    } else {
        vec![body.to_vec()]
    };
    for seg in &mut segments {
        if flags & 1 != 0 {
            repair_wal_segment(seg, flags & 2 != 0);
        }
    }
    check_wal_dir(&segments, (flags & 8 != 0).then_some(name_start));
}

fn check_header(data: &[u8]) {
    let path = Path::new("wal/header");
    match walfmt::decode_header(data, path) {
        Ok(header) => {
            assert!(data.len() >= walfmt::HEADER_LEN);
            assert_eq!(data[..8], walfmt::MAGIC, "header accepted with a wrong magic");
            let version = le_u32(data, 8);
            assert!(
                version == walfmt::VERSION || version == walfmt::VERSION_1,
                "header accepted with a wrong version"
            );
            assert_eq!(header.version, version);
            assert_eq!(le_u32(data, 28), crc32(&data[..28]), "header accepted with a wrong CRC");
            assert_eq!(le_u64(data, 16), header.start.0, "header start is not bytes 16..24");
        }
        Err(e) => {
            let offset = expect_corruption(&e, path, "decode_header");
            assert!(offset < walfmt::HEADER_LEN as u64, "header error at offset {offset}");
        }
    }
}

fn check_records(data: &[u8]) {
    let mut off = 0usize;
    for _ in 0..MAX_STEPS {
        let rest = &data[off..];
        match walfmt::decode_record(rest, walfmt::VERSION) {
            RecordAt::Valid { first, count, meta, payload, size } => {
                assert!(count > 0, "a valid record holds zero operations");
                assert!(size <= rest.len(), "record of {size} bytes in {} bytes", rest.len());
                assert_eq!(size, walfmt::RECORD_PREFIX_LEN + le_u32(rest, 0) as usize);
                let mut again = Vec::new();
                walfmt::encode_record(&mut again, first, count, meta, payload);
                assert_eq!(again[..], rest[..size], "a valid record does not re-encode to itself");
                off += size;
            }
            RecordAt::Seal { next, meta, size } => {
                let mut again = Vec::new();
                walfmt::encode_seal(&mut again, next, meta);
                assert_eq!(again[..], rest[..size], "a valid seal does not re-encode to itself");
                off += size;
            }
            RecordAt::End => {
                let prefix = &rest[..rest.len().min(walfmt::RECORD_PREFIX_LEN)];
                assert!(prefix.iter().all(|b| *b == 0), "End at a non-zero prefix");
                return;
            }
            RecordAt::Incomplete => {
                let claimed = walfmt::RECORD_PREFIX_LEN + le_u32(rest, 0) as usize;
                assert!(
                    rest.len() < walfmt::RECORD_PREFIX_LEN || claimed > rest.len(),
                    "Incomplete for a record that fits"
                );
                return;
            }
            RecordAt::Damaged(reason) => {
                assert!(!reason.is_empty());
                return;
            }
        }
    }
}

/// Recomputes the header CRC (and with `magic` the magic and version) and the CRC of
/// every record that is framed well enough to be found.
pub fn repair_wal_segment(seg: &mut [u8], magic: bool) {
    if seg.len() < walfmt::HEADER_LEN {
        return;
    }
    if magic {
        seg[..8].copy_from_slice(&walfmt::MAGIC);
        put_u32(seg, 8, walfmt::VERSION);
    }
    let crc = crc32(&seg[..28]);
    put_u32(seg, 28, crc);
    let mut off = walfmt::HEADER_LEN;
    while off + walfmt::RECORD_PREFIX_LEN <= seg.len() {
        let len = le_u32(seg, off) as usize;
        let end = off + walfmt::RECORD_PREFIX_LEN + len;
        if !(walfmt::BODY_PREFIX_LEN..=walfmt::MAX_BODY_LEN).contains(&len) || end > seg.len() {
            return;
        }
        let mut h = Crc32::new();
        h.update(&seg[off..off + 4]);
        h.update(&seg[off + walfmt::RECORD_PREFIX_LEN..end]);
        let crc = h.finalize();
        put_u32(seg, off + 4, crc);
        off = end;
    }
}

fn check_wal_dir(segments: &[Vec<u8>], name_start: Option<u64>) {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("wal");
    fs.create_dir_all(dir).expect("creating a directory on SimFileSystem must succeed");
    for (i, seg) in segments.iter().enumerate() {
        let start = match name_start {
            Some(s) if i == 0 => s,
            _ => le_u64(seg, 16),
        };
        let name = walfmt::segment_file_name(SeqNo(start));
        sim.write_file_raw(dir.join(name), seg).expect("write_file_raw must succeed");
    }

    let (checks, checked) = match check_dir(&*fs, dir) {
        Ok(checks) => (checks, true),
        Err(e) => {
            expect_corruption(&e, dir, "check_dir");
            (Vec::new(), false)
        }
    };
    for c in &checks {
        if let Some(p) = &c.problem {
            expect_corruption(p, dir, "check_dir problem");
        }
        assert!(c.used_bytes <= c.file_bytes, "check_dir: used {c:?}");
    }
    let clean = checked && checks.iter().all(|c| c.problem.is_none());

    let options =
        FileWalOptions::default().with_preallocate(false).with_segment_size_bytes(1 << 16);
    let wal = match FileWal::open(Arc::clone(&fs), dir, options) {
        Ok(wal) => wal,
        Err(e) => {
            expect_corruption(&e, dir, "FileWal::open");
            assert!(!clean, "check_dir found nothing wrong, but open failed: {e}");
            return;
        }
    };
    let recovered = wal.recovery().last_seq;
    if clean && let Some(last) = checks.last() {
        assert_eq!(recovered, last.last_seq, "open and check_dir disagree on the last sequence");
    }
    let mut reader = match wal.read_from(SeqNo::ZERO) {
        Ok(r) => r,
        Err(e) => panic!("read_from(oldest) of an opened log failed: {e}"),
    };
    let mut expected: Option<SeqNo> = None;
    let mut batches = 0u64;
    for _ in 0..MAX_STEPS {
        match reader.next_batch() {
            Ok(Some(batch)) => {
                assert!(batch.count > 0);
                if let Some(e) = expected {
                    assert_eq!(batch.first_seq, e, "replayed batches are not dense");
                }
                // The engine decodes every payload on replay; it must not panic.
                for op in BatchIter::new(&batch.payload).take(MAX_STEPS) {
                    if op.is_err() {
                        break;
                    }
                }
                expected = Some(batch.last_seq().next());
                batches += 1;
            }
            Ok(None) => {
                if clean {
                    let records: u64 = checks.iter().map(|c| c.records).sum();
                    assert_eq!(batches, records, "replay and check_dir disagree on records");
                    if batches > 0 {
                        assert_eq!(expected, Some(recovered.next()), "replay ended early");
                    }
                }
                return;
            }
            Err(e) => {
                expect_corruption(&e, dir, "WAL replay");
                assert!(!clean, "check_dir found nothing wrong, but replay failed: {e}");
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// write_batch
// ---------------------------------------------------------------------------------------

/// Target `write_batch`: `BatchIter` over arbitrary bytes (a WAL record's payload).
///
/// Contract: operations decode within the documented limits (a delete has no value);
/// re-encoding the decoded operations gives back a prefix of the input (all of it when
/// no error came); an error carries an offset inside the input and ends the iteration.
pub fn write_batch(data: &[u8]) {
    let mut iter = BatchIter::new(data);
    let mut again = WriteBatch::new();
    let mut failed = false;
    for _ in 0..=data.len() {
        match iter.next() {
            Some(Ok(op)) => {
                assert!(op.key.len() <= MAX_KEY_BYTES && op.value.len() <= MAX_VALUE_BYTES);
                match op.kind {
                    ValueKind::Put => again.put(op.key, op.value),
                    ValueKind::Delete => {
                        assert!(op.value.is_empty(), "a delete carries a value");
                        again.delete(op.key)
                    }
                };
            }
            Some(Err(e)) => {
                assert!(e.offset <= data.len(), "error offset {} past the input", e.offset);
                assert!(!e.reason.is_empty());
                assert!(iter.next().is_none(), "the iterator goes on after an error");
                failed = true;
                break;
            }
            None => break,
        }
    }
    let bytes = again.as_bytes();
    assert!(data.starts_with(bytes), "decoded operations do not re-encode to the input");
    if !failed {
        assert_eq!(bytes.len(), data.len(), "bytes left over without an error");
    }
}

// ---------------------------------------------------------------------------------------
// manifest_edit
// ---------------------------------------------------------------------------------------

/// Target `manifest_edit`: `VersionEdit::decode` and whole manifests through
/// `read_current` / `read_manifest` on [`SimFileSystem`].
///
/// Input: a flags byte, then the manifest's bytes (also decoded as one edit body).
/// Flags: bit 0 repairs the header (magic, version, CRC), bit 1 the CRC of every framed
/// record, bit 2 takes `CURRENT`'s contents from the input (a length byte, then bytes).
///
/// Contract: an edit that decodes re-encodes to bytes that decode to the same edit; an
/// error is `Error::Corruption` naming the manifest (or `CURRENT`) and an offset; a
/// manifest that reads has at least one edit, each table in exactly one level, a next
/// file number above every table's, and its state survives being written as a new
/// manifest and read back.
pub fn manifest_edit(data: &[u8]) {
    let mut c = Cursor::new(data);
    let flags = c.u8();
    let current = if flags & 4 != 0 {
        let n = usize::from(c.u8());
        Some(c.bytes(n).to_vec())
    } else {
        None
    };
    let body = c.rest();
    check_edit(body);

    let mut file = body.to_vec();
    if flags & 1 != 0 && file.len() >= manifest::HEADER_LEN {
        file[..8].copy_from_slice(&manifest::MAGIC);
        put_u32(&mut file, 8, manifest::VERSION);
        let crc = crc32(&file[..12]);
        put_u32(&mut file, 12, crc);
    }
    if flags & 2 != 0 {
        let mut pos = manifest::HEADER_LEN;
        while pos + 8 <= file.len() {
            let len = le_u32(&file, pos) as usize;
            let end = pos + 8 + len;
            if len > manifest::MAX_EDIT_LEN || end > file.len() {
                break;
            }
            let mut h = Crc32::new();
            h.update(&file[pos..pos + 4]);
            h.update(&file[pos + 8..end]);
            let crc = h.finalize();
            put_u32(&mut file, pos + 4, crc);
            pos = end;
        }
    }

    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("db");
    fs.create_dir_all(dir).expect("creating a directory on SimFileSystem must succeed");
    let name = manifest::manifest_file_name(FileNo(1));
    sim.write_file_raw(dir.join(&name), &file).expect("write_file_raw must succeed");
    let current = current.unwrap_or_else(|| format!("{name}\n").into_bytes());
    sim.write_file_raw(dir.join(manifest::CURRENT_FILE), &current)
        .expect("write_file_raw must succeed");

    match manifest::read_current(&*fs, dir) {
        Ok(Some(n)) => match manifest::read_manifest(&*fs, dir, n) {
            Ok(read) => check_manifest_state(&read.state),
            Err(e) => {
                expect_corruption(&e, dir, "read_manifest via CURRENT");
            }
        },
        Ok(None) => panic!("read_current found no CURRENT, but one was written"),
        Err(e) => {
            expect_corruption(&e, dir, "read_current");
        }
    }
    match manifest::read_manifest(&*fs, dir, FileNo(1)) {
        Ok(read) => {
            assert!(read.edits >= 1, "a manifest read with no edit");
            if let Some((at, n)) = read.torn_tail {
                assert_eq!(at + n, file.len() as u64, "torn tail does not reach the end");
            }
            check_manifest_state(&read.state);
        }
        Err(e) => {
            let offset = expect_corruption(&e, dir, "read_manifest");
            assert!(offset <= file.len() as u64, "error offset {offset} past the manifest");
        }
    }
}

fn check_edit(body: &[u8]) {
    let path = Path::new("db/MANIFEST-000001");
    match VersionEdit::decode(body, path, 16) {
        Ok(edit) => {
            let again = edit.encode();
            match VersionEdit::decode(&again, path, 16) {
                Ok(back) => assert_eq!(back, edit, "an edit does not survive re-encoding"),
                Err(e) => panic!("a re-encoded edit does not decode: {e}"),
            }
        }
        Err(e) => {
            let offset = expect_corruption(&e, path, "VersionEdit::decode");
            assert_eq!(offset, 16, "edit errors name the record's offset");
        }
    }
}

fn tables(state: &ManifestState) -> Vec<(usize, TableMeta)> {
    state.live_tables().map(|(l, t)| (l, t.clone())).collect()
}

fn check_manifest_state(state: &ManifestState) {
    let live = tables(state);
    let mut numbers: Vec<FileNo> = live.iter().map(|(_, t)| t.file_no).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), live.len(), "a table is in two levels");
    for (_, t) in &live {
        assert!(t.file_no < state.next_file_no, "next file number does not exceed table numbers");
    }
    // The state must survive a new manifest: snapshot edit, written, read back.
    let snap = state.snapshot_edit();
    match VersionEdit::decode(&snap.encode(), Path::new("snap"), 0) {
        Ok(back) => assert_eq!(back, snap, "snapshot edit does not round-trip"),
        Err(e) => panic!("snapshot edit does not decode: {e}"),
    }
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("again");
    fs.create_dir_all(dir).expect("creating a directory on SimFileSystem must succeed");
    if let Err(e) = ManifestWriter::create(&*fs, dir, FileNo(2), state) {
        panic!("writing a state read from a manifest failed: {e}");
    }
    match manifest::read_manifest(&*fs, dir, FileNo(2)) {
        Ok(read) => {
            assert_eq!(tables(&read.state), live, "tables change when rewritten");
            assert_eq!(read.state.flushed_seq, state.flushed_seq);
            assert_eq!(read.state.next_file_no, state.next_file_no);
            assert_eq!(read.state.table_format, state.table_format);
        }
        Err(e) => panic!("a rewritten manifest does not read back: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// sstable
// ---------------------------------------------------------------------------------------

const TABLE_DIR: &str = "db";

fn table_path() -> PathBuf {
    Path::new(TABLE_DIR).join(FileNo(1).table_file_name())
}

/// Opens `bytes` as table file 1 on a fresh [`SimFileSystem`].
fn open_table(bytes: &[u8]) -> strata_core::Result<Arc<MmapTable>> {
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
            let Some(e) = sst::decode_index_entry(&body, pos) else { break };
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
fn exercise_table(table: &Arc<MmapTable>, truth: Option<&[Entry]>) -> bool {
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

fn in_bounds(start: &Bound<Bytes>, end: &Bound<Bytes>, key: &[u8]) -> bool {
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
fn table_entries(c: &mut Cursor<'_>) -> Vec<Entry> {
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

fn table_options(c: &mut Cursor<'_>) -> MmapTableOptions {
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
fn build_table(entries: &[Entry], opts: MmapTableOptions) -> Vec<u8> {
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

/// Target `sstable_mutate`: a valid table built from fuzzer-chosen entries and options,
/// then damaged in a fuzzer-chosen way.
///
/// Input: options byte, entries, then a mutation: `0` none, `1` one burst of up to four
/// flipped bytes, `2` truncation, `3` bytes appended, `4` up to eight scattered flips.
///
/// Contract: the intact table opens, verifies clean and returns exactly its entries.
/// After a burst (which every CRC32 detects), a truncation or an extension the table
/// either fails to open with `Error::Corruption`, or `verify` reports the damage and
/// every answer is an error or the right data. After scattered flips nothing panics and
/// every error is `Error::Corruption`.
pub fn sstable_mutate(data: &[u8]) {
    let mut c = Cursor::new(data);
    let opts = table_options(&mut c);
    let entries = table_entries(&mut c);
    let mut file = build_table(&entries, opts);
    let mode = c.u8() % 5;
    let len = file.len();
    let damaged = match mode {
        1 => {
            let at = c.u32() as usize % len;
            let n = 1 + usize::from(c.u8() % 4);
            let mut changed = false;
            for b in file.iter_mut().skip(at).take(n) {
                let x = c.u8();
                changed |= x != 0;
                *b ^= x;
            }
            changed
        }
        2 => {
            file.truncate(c.u32() as usize % len);
            true
        }
        3 => {
            let n = 1 + usize::from(c.u8());
            file.extend_from_slice(c.bytes(n));
            if file.len() == len {
                file.push(0);
            }
            true
        }
        4 => {
            for _ in 0..1 + c.u8() % 8 {
                let at = c.u32() as usize % len;
                file[at] ^= c.u8();
            }
            // Several flips can in principle cancel out in a CRC: no claim on detection.
            return check_damaged_table(&file, None, len);
        }
        _ => {
            let table = match open_table(&file) {
                Ok(t) => t,
                Err(e) => panic!("a freshly built table does not open: {e}"),
            };
            assert!(exercise_table(&table, Some(&entries)), "a fresh table does not verify");
            return;
        }
    };
    if damaged {
        check_damaged_table(&file, Some(&entries), len);
    }
}

/// Opens a damaged table (of originally `len` bytes). With `truth`, the damage is one
/// every check must catch: open fails, or verify reports it and reads serve only errors
/// or the right data.
fn check_damaged_table(file: &[u8], truth: Option<&[Entry]>, len: usize) {
    match open_table(file) {
        Ok(table) => {
            let intact = exercise_table(&table, truth);
            if truth.is_some() {
                assert_eq!(file.len(), len, "a table opened after being cut or extended");
                assert!(!intact, "verify found nothing wrong in a damaged table");
            }
        }
        Err(e) => {
            expect_corruption(&e, &table_path(), "open after damage");
        }
    }
}

// ---------------------------------------------------------------------------------------
// bloom_filter
// ---------------------------------------------------------------------------------------

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
fn replace_filter(valid: &[u8], filter_body: &[u8]) -> Vec<u8> {
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

// ---------------------------------------------------------------------------------------
// exchange_message
// ---------------------------------------------------------------------------------------

/// Target `exchange_message`: the validated rkyv decode of exchange values.
///
/// Input: the value's bytes.
///
/// Contract: `decode` returns an error or a record; the answer does not depend on the
/// input's alignment; a decoded record re-encodes (plain and padded to the input's
/// length) to values that decode to the same record, and its key parses back.
pub fn exchange_message(data: &[u8]) {
    let first = exchange::decode(data);
    // The same bytes at another alignment must give the same answer.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let second = exchange::decode(&shifted[1..]);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "decode depends on alignment"),
        (Err(a), Err(b)) => assert!(!a.message().is_empty() && !b.message().is_empty()),
        _ => panic!("decode depends on alignment: {first:?} vs {second:?}"),
    }
    if let Ok(record) = first {
        round_trip_record(&record, data.len());
    }
}

fn round_trip_record(record: &ExchangeRecord, len: usize) {
    let plain = match exchange::encode(record) {
        Ok(b) => b,
        Err(e) => panic!("a decoded record does not encode: {e}"),
    };
    match exchange::decode(&plain) {
        Ok(back) => assert_eq!(&back, record, "a decoded record does not round-trip"),
        Err(e) => panic!("a re-encoded record does not decode: {e}"),
    }
    match exchange::encode_to_len(record, len) {
        Ok(padded) => {
            assert_eq!(padded.len(), len.max(plain.len()));
            match exchange::decode(&padded) {
                Ok(back) => assert_eq!(&back, record, "padded record does not round-trip"),
                Err(e) => panic!("a padded record does not decode: {e}"),
            }
        }
        Err(e) => panic!("a decoded record cannot be padded to its own length: {e}"),
    }
    assert_eq!(
        exchange::ExchangeKey::parse(&record.key()),
        Some(record.exchange_key()),
        "a record's key does not parse back"
    );
}

// ---------------------------------------------------------------------------------------
// seeds
// ---------------------------------------------------------------------------------------

/// Valid (or nearly valid) inputs for `target`: the starting corpus for libFuzzer and
/// the inputs the regression test mutates.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "wal_record" => wal_seeds(),
        "write_batch" => batch_seeds(),
        "manifest_edit" => manifest_seeds(),
        "sstable" => table_seeds(),
        "sstable_mutate" => vec![vec![0, 20, 1, 2, 3, 4, 5], vec![0x13, 40, 9, 9, 9], vec![1; 64]],
        "bloom_filter" => {
            vec![vec![10, 3, 1, b'a', 1, b'b', 2, b'c', b'd', 7, 0, 0, 0, 0xff, 0x0f]]
        }
        "exchange_message" => exchange_seeds(),
        _ => Vec::new(),
    }
}

fn sample_batch(i: u8) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put([b'k', i], [b'v'; 3]).delete([b'd', i]).put(b"key", b"");
    b
}

const SEED_META: walfmt::RecordMeta =
    walfmt::RecordMeta { epoch: strata_core::Epoch(1), synced_through: SeqNo::ZERO };

fn wal_seeds() -> Vec<Vec<u8>> {
    let mut seg = walfmt::encode_header(SeqNo(1), 0).to_vec();
    let mut next = 1u64;
    for i in 0..3u8 {
        let b = sample_batch(i);
        walfmt::encode_record(&mut seg, SeqNo(next), b.count(), SEED_META, b.as_bytes());
        next += u64::from(b.count());
    }
    let mut padded = seg.clone();
    padded.resize(seg.len() + 40, 0);
    let with = |flags: u8, body: &[u8]| {
        let mut v = vec![flags, 0, 0, 0];
        v.extend_from_slice(body);
        v
    };
    // Two segments, the first cut `cut` bytes after its header (inside its record when
    // `cut` is small).
    let two = |cut: usize| {
        let b = sample_batch(0);
        let mut first = walfmt::encode_header(SeqNo(1), 0).to_vec();
        walfmt::encode_record(&mut first, SeqNo(1), b.count(), SEED_META, b.as_bytes());
        let split = walfmt::HEADER_LEN + cut;
        first.resize(split, 0);
        let mut v = vec![4u8, split as u8, (split >> 8) as u8, 0];
        v.extend_from_slice(&first);
        let mut second = walfmt::encode_header(SeqNo(4), 0).to_vec();
        walfmt::encode_record(&mut second, SeqNo(4), b.count(), SEED_META, b.as_bytes());
        v.extend_from_slice(&second);
        v
    };
    vec![with(0, &seg), with(0, &padded), with(1, &seg[..seg.len() - 5]), two(80), two(40)]
}

fn batch_seeds() -> Vec<Vec<u8>> {
    (0..3).map(|i| sample_batch(i).as_bytes().to_vec()).collect()
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    let sim = SimFileSystem::new();
    let fs = sim.shared();
    let dir = Path::new("db");
    fs.create_dir_all(dir).expect("creating a directory must succeed");
    let mut state = ManifestState::empty(7);
    state.table_format = Some("mmap".into());
    state.flushed_seq = SeqNo(10);
    let mut w = ManifestWriter::create(&*fs, dir, FileNo(1), &state).expect("manifest create");
    let meta = |n: u64| TableMeta {
        file_no: FileNo(n),
        size_bytes: 100 * n,
        smallest_key: Bytes::from_static(b"a"),
        largest_key: Bytes::from_static(b"z"),
        min_seq: SeqNo(1),
        max_seq: SeqNo(9),
        entries: 9,
        tombstones: 1,
    };
    let add = VersionEdit { added: vec![(0, meta(2)), (1, meta(3))], ..VersionEdit::default() };
    w.append(&add).expect("manifest append");
    let mv = VersionEdit {
        added: vec![(2, meta(4))],
        removed: vec![(0, FileNo(2))],
        flushed_seq: Some(SeqNo(20)),
        next_file_no: Some(FileNo(9)),
        table_format: None,
    };
    w.append(&mv).expect("manifest append");
    let file = sim.read_file(dir.join(manifest::manifest_file_name(FileNo(1)))).expect("exists");
    let mut out = vec![[0u8].iter().chain(&file).copied().collect::<Vec<u8>>()];
    out.push([3u8].iter().chain(&file[..file.len() - 3]).copied().collect());
    out.push([0u8].iter().chain(&add.encode()).copied().collect());
    out
}

fn table_seeds() -> Vec<Vec<u8>> {
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

fn exchange_seeds() -> Vec<Vec<u8>> {
    use strata_harness::exchange::{
        AccountUpdate, OrderInsert, Position, Side, TimeInForce, TradeExecuted,
    };
    let records = [
        ExchangeRecord::Order(OrderInsert {
            account_id: 7,
            order_id: 42,
            instrument_id: 3,
            side: Side::Buy,
            price_ticks: -5,
            quantity: 10,
            time_in_force: TimeInForce::GoodTillCancel,
            timestamp_ns: 1,
            client_order_id: "client-order".into(),
        }),
        ExchangeRecord::Trade(TradeExecuted {
            trade_seq: 9,
            instrument_id: 3,
            price_ticks: 100,
            quantity: 2,
            buy_order_id: 1,
            sell_order_id: 2,
            buy_account: 3,
            sell_account: 4,
            timestamp_ns: 5,
            venue_ref: "XNAS".into(),
        }),
        ExchangeRecord::Account(AccountUpdate {
            account_id: 1,
            balance_ticks: 1000,
            available_ticks: 900,
            open_orders: 2,
            positions: vec![Position { instrument_id: 1, quantity: -3 }],
            timestamp_ns: 6,
        }),
    ];
    let mut out = Vec::new();
    for r in &records {
        let plain = exchange::encode(r).expect("encoding a sample record");
        out.push(plain.to_vec());
        out.push(exchange::encode_to_len(r, plain.len() + 21).expect("padding").to_vec());
    }
    out
}
