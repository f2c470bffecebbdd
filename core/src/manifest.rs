//! The manifest: the durable history of which tables make up the store.
//!
//! A manifest file `MANIFEST-{n:06}` starts with a 16-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `STRATMAN` |
//! | 8 | 4 | format version (`1`), little endian |
//! | 12 | 4 | CRC32 of bytes 0..12 |
//!
//! then holds one record per [`VersionEdit`], back to back, framed like WAL records:
//! body length (4, LE), CRC32 over the length bytes and the body (4), body. An edit's
//! body is a list of fields, each a one-byte tag followed by its payload (integers are
//! little endian, byte strings are a 4-byte length then the bytes):
//!
//! | tag | field | payload |
//! |---|---|---|
//! | 1 | add table | level (1), file number (8), size (8), min seq (8), max seq (8), entries (8), tombstones (8), smallest key, largest key |
//! | 2 | remove table | level (1), file number (8) |
//! | 3 | flushed sequence | sequence (8): everything at or below it is in tables |
//! | 4 | next file number | number (8) |
//! | 5 | table format | name (byte string) |
//!
//! The file `CURRENT` names the live manifest (`MANIFEST-000007\n`); it is replaced by
//! writing `CURRENT.tmp`, syncing it, renaming it over `CURRENT` and syncing the
//! directory, so a crash leaves either the old or the new manifest in charge. Edits are
//! checked against the state they change before they are written ([`ManifestWriter`]
//! refuses one that removes a table the state does not hold, adds one it holds, names a
//! level out of range or moves the flushed sequence backwards), then appended and synced
//! before the engine acts on them.
//!
//! Reading: only a last record that is *incomplete* — the file ends inside it — with no
//! valid record after it is a torn tail (an append a crash interrupted) and is dropped.
//! A complete record that fails its checksum, even the last one, is damage, and so is a
//! record whose length runs past the end of the file while a valid record starts inside
//! the bytes it claims: both are `Error::Corruption` with the file and offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fs::{File, FileSystem, OpenMode, read_all};
use crate::table::{FileNo, TableMeta};
use crate::types::SeqNo;

/// Magic bytes at the start of every manifest.
pub const MAGIC: [u8; 8] = *b"STRATMAN";
/// Current manifest format version.
pub const VERSION: u32 = 1;
/// Size of the manifest header.
pub const HEADER_LEN: usize = 16;
/// Name of the pointer file.
pub const CURRENT_FILE: &str = "CURRENT";
/// Largest edit body accepted; a larger length is damage, never an allocation.
pub const MAX_EDIT_LEN: usize = 64 << 20;

const TAG_ADD: u8 = 1;
const TAG_REMOVE: u8 = 2;
const TAG_FLUSHED: u8 = 3;
const TAG_NEXT_FILE: u8 = 4;
const TAG_FORMAT: u8 = 5;

/// File name of manifest number `n`.
pub fn manifest_file_name(n: FileNo) -> String {
    format!("MANIFEST-{:06}", n.0)
}

/// Parses `MANIFEST-000007` back into its number.
pub fn parse_manifest_file_name(name: &str) -> Option<FileNo> {
    let digits = name.strip_prefix("MANIFEST-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(FileNo)
}

/// Parses `000042.sst` back into its table number.
pub fn parse_table_file_name(name: &str) -> Option<FileNo> {
    let digits = name.strip_suffix(".sst")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(FileNo)
}

/// One change to the set of tables, applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// Tables added, with their level.
    pub added: Vec<(usize, TableMeta)>,
    /// Tables removed, with their level.
    pub removed: Vec<(usize, FileNo)>,
    /// New flushed sequence, if it moved.
    pub flushed_seq: Option<SeqNo>,
    /// New next file number, if it moved.
    pub next_file_no: Option<FileNo>,
    /// The table format's name (written in every snapshot edit).
    pub table_format: Option<String>,
}

impl VersionEdit {
    /// Encodes the edit body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.added.len() * 96);
        for (level, file_no) in &self.removed {
            out.push(TAG_REMOVE);
            out.push(*level as u8);
            out.extend_from_slice(&file_no.0.to_le_bytes());
        }
        for (level, t) in &self.added {
            out.push(TAG_ADD);
            out.push(*level as u8);
            for n in [t.file_no.0, t.size_bytes, t.min_seq.0, t.max_seq.0, t.entries, t.tombstones]
            {
                out.extend_from_slice(&n.to_le_bytes());
            }
            put_bytes(&mut out, &t.smallest_key);
            put_bytes(&mut out, &t.largest_key);
        }
        if let Some(seq) = self.flushed_seq {
            out.push(TAG_FLUSHED);
            out.extend_from_slice(&seq.0.to_le_bytes());
        }
        if let Some(n) = self.next_file_no {
            out.push(TAG_NEXT_FILE);
            out.extend_from_slice(&n.0.to_le_bytes());
        }
        if let Some(name) = &self.table_format {
            out.push(TAG_FORMAT);
            put_bytes(&mut out, name.as_bytes());
        }
        out
    }

    /// Decodes an edit body; `file` and `offset` (of the record) name it in errors.
    pub fn decode(body: &[u8], file: &Path, offset: u64) -> Result<VersionEdit> {
        let mut r = Reader { buf: body, pos: 0, file, offset };
        let mut edit = VersionEdit::default();
        while r.pos < body.len() {
            match r.u8()? {
                TAG_ADD => {
                    let level = usize::from(r.u8()?);
                    let file_no = FileNo(r.u64()?);
                    let size_bytes = r.u64()?;
                    let min_seq = SeqNo(r.u64()?);
                    let max_seq = SeqNo(r.u64()?);
                    let entries = r.u64()?;
                    let tombstones = r.u64()?;
                    let smallest_key = r.bytes()?;
                    let largest_key = r.bytes()?;
                    edit.added.push((
                        level,
                        TableMeta {
                            file_no,
                            size_bytes,
                            smallest_key,
                            largest_key,
                            min_seq,
                            max_seq,
                            entries,
                            tombstones,
                        },
                    ));
                }
                TAG_REMOVE => {
                    let level = usize::from(r.u8()?);
                    edit.removed.push((level, FileNo(r.u64()?)));
                }
                TAG_FLUSHED => edit.flushed_seq = Some(SeqNo(r.u64()?)),
                TAG_NEXT_FILE => edit.next_file_no = Some(FileNo(r.u64()?)),
                TAG_FORMAT => {
                    let name = r.bytes()?;
                    let name = std::str::from_utf8(&name)
                        .map_err(|_| r.err("table format name is not UTF-8"))?;
                    edit.table_format = Some(name.to_owned());
                }
                tag => return Err(r.err(&format!("unknown edit field tag {tag}"))),
            }
        }
        Ok(edit)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    file: &'a Path,
    offset: u64,
}

impl Reader<'_> {
    fn err(&self, reason: &str) -> Error {
        Error::corruption(
            self.file,
            self.offset,
            format!("manifest edit at body byte {}: {reason}", self.pos),
        )
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(&format!(
                "field needs {n} bytes but the edit has {} left",
                self.buf.len() - self.pos
            ))),
        }
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<Bytes> {
        let n = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
}

/// The table set a manifest describes, after replaying its edits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestState {
    /// Tables per level, keyed by file number.
    pub levels: Vec<BTreeMap<FileNo, TableMeta>>,
    /// Everything at or below this sequence is in tables.
    pub flushed_seq: SeqNo,
    /// The next file number to hand out.
    pub next_file_no: FileNo,
    /// The table format that wrote the tables.
    pub table_format: Option<String>,
}

impl ManifestState {
    /// An empty store's state.
    pub fn empty(levels: usize) -> Self {
        Self {
            levels: vec![BTreeMap::new(); levels],
            flushed_seq: SeqNo::ZERO,
            next_file_no: FileNo(1),
            table_format: None,
        }
    }

    /// Applies one edit; an edit that contradicts the state is corruption.
    pub fn apply(&mut self, edit: &VersionEdit, file: &Path, offset: u64) -> Result<()> {
        for (level, no) in &edit.removed {
            let gone = self.levels.get_mut(*level).and_then(|l| l.remove(no));
            if gone.is_none() {
                return Err(Error::corruption(
                    file,
                    offset,
                    format!("edit removes table {no} from L{level}, which does not hold it"),
                ));
            }
        }
        for (level, meta) in &edit.added {
            if *level >= 64 {
                return Err(Error::corruption(file, offset, format!("edit names level {level}")));
            }
            if self.levels.len() <= *level {
                self.levels.resize(*level + 1, BTreeMap::new());
            }
            if self.levels.iter().any(|l| l.contains_key(&meta.file_no)) {
                return Err(Error::corruption(
                    file,
                    offset,
                    format!("edit adds table {} twice", meta.file_no),
                ));
            }
            self.levels[*level].insert(meta.file_no, meta.clone());
            if meta.file_no >= self.next_file_no {
                // The largest number would leave no number for the next file.
                let Some(next) = meta.file_no.0.checked_add(1) else {
                    return Err(Error::corruption(
                        file,
                        offset,
                        format!("edit adds table {}, a file number out of range", meta.file_no),
                    ));
                };
                self.next_file_no = FileNo(next);
            }
        }
        if let Some(seq) = edit.flushed_seq {
            self.flushed_seq = self.flushed_seq.max(seq);
        }
        if let Some(n) = edit.next_file_no {
            self.next_file_no = self.next_file_no.max(n);
        }
        if let Some(name) = &edit.table_format {
            self.table_format = Some(name.clone());
        }
        Ok(())
    }

    /// Checks that `edit` is a change this state can take, without applying it: every
    /// removed table is in the level named, every added table's number is new (in no
    /// level, not twice in the edit, below the largest number) — or is a table the same
    /// edit removes, added back with the same metadata (a move) — and its level is one of
    /// the state's levels, the flushed sequence and the next file number do not move
    /// backwards, and the table format does not change. Returns why not.
    pub fn check_edit(&self, edit: &VersionEdit) -> std::result::Result<(), String> {
        let mut removed = std::collections::HashMap::new();
        for (level, no) in &edit.removed {
            let Some(meta) = self.levels.get(*level).and_then(|l| l.get(no)) else {
                return Err(format!("removes table {no} from L{level}, which does not hold it"));
            };
            if removed.insert(*no, meta).is_some() {
                return Err(format!("removes table {no} twice"));
            }
        }
        let mut added = std::collections::HashSet::new();
        for (level, meta) in &edit.added {
            let no = meta.file_no;
            if *level >= self.levels.len() {
                return Err(format!(
                    "adds table {no} to L{level}, but the store has {} levels",
                    self.levels.len()
                ));
            }
            // A table the same edit removes may come back unchanged: a move re-files it
            // in another level without rewriting it.
            match removed.get(&no) {
                Some(&old) if old != meta => {
                    return Err(format!(
                        "moves table {no} but changes its metadata ({old:?} -> {meta:?})"
                    ));
                }
                Some(_) => {}
                None if self.levels.iter().any(|l| l.contains_key(&no)) => {
                    return Err(format!("adds table {no}, a number already in use"));
                }
                None => {}
            }
            if !added.insert(no) {
                return Err(format!("adds table {no}, a number already in use"));
            }
            if no.0 == u64::MAX {
                return Err(format!("adds table {no}, a file number out of range"));
            }
        }
        if let Some(seq) = edit.flushed_seq
            && seq < self.flushed_seq
        {
            return Err(format!(
                "moves the flushed sequence back from {} to {seq}",
                self.flushed_seq
            ));
        }
        if let Some(n) = edit.next_file_no
            && n < self.next_file_no
        {
            return Err(format!(
                "moves the next file number back from {} to {n}",
                self.next_file_no
            ));
        }
        if let (Some(new), Some(old)) = (&edit.table_format, &self.table_format)
            && new != old
        {
            return Err(format!("changes the table format from {old:?} to {new:?}"));
        }
        Ok(())
    }

    /// One edit that recreates this whole state (the first record of a new manifest).
    pub fn snapshot_edit(&self) -> VersionEdit {
        VersionEdit {
            added: self
                .levels
                .iter()
                .enumerate()
                .flat_map(|(level, l)| l.values().map(move |t| (level, t.clone())))
                .collect(),
            removed: Vec::new(),
            flushed_seq: Some(self.flushed_seq),
            next_file_no: Some(self.next_file_no),
            table_format: self.table_format.clone(),
        }
    }

    /// Every table file number in the state.
    pub fn live_tables(&self) -> impl Iterator<Item = (usize, &TableMeta)> {
        self.levels.iter().enumerate().flat_map(|(level, l)| l.values().map(move |t| (level, t)))
    }
}

/// What reading a manifest found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRead {
    /// The manifest file read.
    pub path: PathBuf,
    /// Its number.
    pub number: FileNo,
    /// The state after every intact edit.
    pub state: ManifestState,
    /// Number of edits applied.
    pub edits: u64,
    /// Set when a torn last record was ignored: its offset and the bytes dropped.
    pub torn_tail: Option<(u64, u64)>,
}

/// Reads `CURRENT` in `dir`; `None` when the store has no manifest yet.
pub fn read_current(fs: &dyn FileSystem, dir: &Path) -> Result<Option<FileNo>> {
    let path = dir.join(CURRENT_FILE);
    if !fs.exists(&path)? {
        return Ok(None);
    }
    let file = fs.open(&path, OpenMode::ReadOnly)?;
    if file.len()? > 256 {
        return Err(Error::corruption(&path, 0, "CURRENT is longer than a manifest name"));
    }
    let bytes = read_all(&*file)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::corruption(&path, 0, "CURRENT is not UTF-8"))?;
    let name = text.strip_suffix('\n').unwrap_or(text);
    parse_manifest_file_name(name).map(Some).ok_or_else(|| {
        Error::corruption(&path, 0, format!("CURRENT holds {name:?}, not a manifest name"))
    })
}

/// Reads and replays the manifest `CURRENT` points to.
pub fn read_manifest(fs: &dyn FileSystem, dir: &Path, number: FileNo) -> Result<ManifestRead> {
    let path = dir.join(manifest_file_name(number));
    if !fs.exists(&path)? {
        return Err(Error::corruption(
            dir.join(CURRENT_FILE),
            0,
            format!("CURRENT names {} but that file is missing", path.display()),
        ));
    }
    let file = fs.open(&path, OpenMode::ReadOnly)?;
    let bytes = read_all(&*file)?;
    decode_header(&bytes, &path)?;
    let mut state = ManifestState::empty(0);
    let mut pos = HEADER_LEN;
    let mut edits = 0u64;
    let mut torn_tail = None;
    while pos < bytes.len() {
        match frame_at(&bytes, pos) {
            Frame::Record { body, next } => {
                let edit = VersionEdit::decode(body, &path, pos as u64)?;
                state.apply(&edit, &path, pos as u64)?;
                edits += 1;
                pos = next;
            }
            Frame::Torn => {
                torn_tail = Some((pos as u64, (bytes.len() - pos) as u64));
                break;
            }
            Frame::Damaged(reason) => return Err(Error::corruption(&path, pos as u64, reason)),
        }
    }
    if edits == 0 {
        return Err(Error::corruption(&path, HEADER_LEN as u64, "manifest holds no edit"));
    }
    Ok(ManifestRead { path, number, state, edits, torn_tail })
}

enum Frame<'a> {
    Record { body: &'a [u8], next: usize },
    Torn,
    Damaged(String),
}

/// The record at `pos` if it is complete and its checksum holds (length bytes + body).
fn valid_record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let prefix = bytes.get(pos..pos.checked_add(8)?)?;
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if len > MAX_EDIT_LEN {
        return None;
    }
    let end = pos + 8 + len;
    let body = bytes.get(pos + 8..end)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&prefix[..4]);
    h.update(body);
    (h.finalize() == crc).then_some((body, end))
}

/// The first offset after `pos` where a complete, checksummed record starts whose body
/// decodes as an edit: proof that the record at `pos` is damage, not a torn tail.
fn valid_record_after(bytes: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..bytes.len().saturating_sub(7)).find(|&q| {
        valid_record_at(bytes, q)
            .is_some_and(|(body, _)| VersionEdit::decode(body, Path::new(""), 0).is_ok())
    })
}

/// Classifies the record at `pos`.
///
/// Only a record that is *incomplete* (the file ends inside it) with nothing valid after
/// it is a torn tail: an append writes the whole record at once, so a crash leaves a
/// prefix of it. A complete record whose checksum fails is damage wherever it sits, and
/// so is a record whose length runs past the end of the file while a valid record
/// starts inside the bytes it claims, or while the bytes that are there form a complete
/// record under their true length (a flipped length bit in the last record).
fn frame_at(bytes: &[u8], pos: usize) -> Frame<'_> {
    let Some(prefix) = bytes.get(pos..pos + 8) else {
        // Not even a whole length and checksum: nothing can follow, so this is the
        // start of an interrupted append.
        return Frame::Torn;
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if len > MAX_EDIT_LEN {
        // An append writes the real length in the same write as the body, so a torn
        // append cannot produce an absurd one: this is damage, and treating it as a
        // torn tail would silently drop every edit after it.
        return Frame::Damaged(format!(
            "manifest record length {len} exceeds the {MAX_EDIT_LEN}-byte limit"
        ));
    }
    let end = pos + 8 + len;
    if end > bytes.len() {
        if let Some(q) = valid_record_after(bytes, pos) {
            return Frame::Damaged(format!(
                "manifest record claims {len} bytes, running past the end of the file, but a \
                 valid record starts at offset {q}: its length is damaged"
            ));
        }
        let rest = &bytes[pos + 8..];
        let mut h = crc32fast::Hasher::new();
        h.update(&(rest.len() as u32).to_le_bytes());
        h.update(rest);
        if h.finalize() == crc {
            return Frame::Damaged(format!(
                "manifest record claims {len} bytes but the {} bytes after it form a complete \
                 record: its length is damaged",
                rest.len()
            ));
        }
        // A record running past the end with nothing valid after it is what an
        // interrupted append leaves behind.
        return Frame::Torn;
    }
    match valid_record_at(bytes, pos) {
        Some((body, next)) => Frame::Record { body, next },
        None if bytes[pos..].iter().all(|&b| b == 0) => {
            // Zeros to the end: space the file system extended the file by without the
            // append's bytes reaching it. Nothing was written there.
            Frame::Torn
        }
        None => Frame::Damaged(format!(
            "manifest record checksum mismatch (a complete record of {len} bytes{})",
            if end == bytes.len() { ", the last one" } else { ", more records follow" }
        )),
    }
}

fn encode_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn decode_header(bytes: &[u8], path: &Path) -> Result<()> {
    let Some(h) = bytes.get(..HEADER_LEN) else {
        return Err(Error::corruption(
            path,
            0,
            format!("manifest header needs {HEADER_LEN} bytes, file has {}", bytes.len()),
        ));
    };
    if h[0..8] != MAGIC {
        return Err(Error::corruption(path, 0, format!("bad magic {:02x?}", &h[0..8])));
    }
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if crc32fast::hash(&h[..12]) != crc {
        return Err(Error::corruption(path, 12, "manifest header checksum mismatch"));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(Error::corruption(
            path,
            8,
            format!("manifest format version {version}, this build reads {VERSION}"),
        ));
    }
    Ok(())
}

fn encode_record(edit: &VersionEdit) -> Vec<u8> {
    let body = edit.encode();
    let mut rec = Vec::with_capacity(body.len() + 8);
    let len = (body.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(&body);
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&h.finalize().to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

/// Appends edits to a manifest, syncing each before returning.
#[derive(Debug)]
pub struct ManifestWriter {
    file: Arc<dyn File>,
    len: u64,
    number: FileNo,
    /// The state the manifest on disk describes: every edit is checked against it
    /// before a byte of it is written.
    state: ManifestState,
}

impl ManifestWriter {
    /// Creates manifest `number` in `dir` holding `state` as its first edit, syncs it,
    /// and points `CURRENT` at it (temp file, sync, rename, directory sync).
    pub fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        number: FileNo,
        state: &ManifestState,
    ) -> Result<ManifestWriter> {
        let path = dir.join(manifest_file_name(number));
        let file = fs.open(&path, OpenMode::CreateNew)?;
        let mut bytes = encode_header().to_vec();
        bytes.extend_from_slice(&encode_record(&state.snapshot_edit()));
        file.write_all_at(&bytes, 0)?;
        file.sync_data()?;
        fs.sync_dir(dir)?;
        write_current(fs, dir, number)?;
        Ok(ManifestWriter { file, len: bytes.len() as u64, number, state: state.clone() })
    }

    /// Checks `edit` against the state this manifest describes, then appends and syncs
    /// it. An edit the state cannot take (see [`ManifestState::check_edit`]) is
    /// `Error::InvalidArgument` and nothing is written: a bad edit never reaches the
    /// disk, where it would make the manifest unreadable. Once this returns `Ok` the
    /// edit survives a crash; after an I/O `Err` the manifest's state on disk is unknown
    /// and the store must stop changing its table set.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        self.state.check_edit(edit).map_err(|why| {
            Error::InvalidArgument(format!(
                "manifest edit rejected, nothing written to {}: it {why}",
                self.file.path().display()
            ))
        })?;
        let rec = encode_record(edit);
        self.file.write_all_at(&rec, self.len)?;
        self.file.sync_data()?;
        let offset = self.len;
        self.len += rec.len() as u64;
        // Cannot fail after `check_edit` passed; if it did, the caller poisons the store.
        self.state.apply(edit, self.file.path(), offset)
    }

    /// The state the manifest on disk describes (after every appended edit).
    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Bytes in the manifest so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing but the header was written (never, after `create`).
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN as u64
    }

    /// This manifest's number.
    pub fn number(&self) -> FileNo {
        self.number
    }
}

/// Points `CURRENT` in `dir` at manifest `number`, atomically and durably.
pub fn write_current(fs: &dyn FileSystem, dir: &Path, number: FileNo) -> Result<()> {
    let tmp = dir.join("CURRENT.tmp");
    if fs.exists(&tmp)? {
        fs.remove_file(&tmp)?;
    }
    let file = fs.open(&tmp, OpenMode::CreateNew)?;
    file.write_all_at(format!("{}\n", manifest_file_name(number)).as_bytes(), 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&tmp, &dir.join(CURRENT_FILE))?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(no: u64) -> TableMeta {
        TableMeta {
            file_no: FileNo(no),
            size_bytes: 1000 + no,
            smallest_key: Bytes::from_static(b"a"),
            largest_key: Bytes::from_static(b"zz"),
            min_seq: SeqNo(1),
            max_seq: SeqNo(9),
            entries: 5,
            tombstones: 1,
        }
    }

    #[test]
    fn edit_round_trips() {
        let e = VersionEdit {
            added: vec![(0, meta(3)), (2, meta(4))],
            removed: vec![(1, FileNo(2))],
            flushed_seq: Some(SeqNo(77)),
            next_file_no: Some(FileNo(5)),
            table_format: Some("mmap".into()),
        };
        let body = e.encode();
        assert_eq!(VersionEdit::decode(&body, Path::new("m"), 0).ok(), Some(e));
        for cut in 0..body.len() {
            let r = VersionEdit::decode(&body[..cut], Path::new("m"), 0);
            // Some prefixes end exactly at a field boundary and decode to a smaller edit;
            // none may panic, and a cut inside a field is an error.
            if let Ok(partial) = r {
                assert_ne!(partial.encode(), body);
            }
        }
    }

    #[test]
    fn an_absurd_length_is_damage_and_a_short_last_record_is_torn() {
        let edit = VersionEdit { flushed_seq: Some(SeqNo(5)), ..VersionEdit::default() };
        let rec = encode_record(&edit);
        let mut bytes = rec.clone();
        bytes.extend_from_slice(&rec);
        assert!(matches!(frame_at(&bytes, 0), Frame::Record { .. }));
        let mut absurd = bytes.clone();
        absurd[..4].copy_from_slice(&((MAX_EDIT_LEN as u32) + 1).to_le_bytes());
        assert!(matches!(frame_at(&absurd, 0), Frame::Damaged(_)), "absurd length");
        let cut = &bytes[..bytes.len() - 3];
        assert!(matches!(frame_at(cut, rec.len()), Frame::Torn), "interrupted append");
    }

    #[test]
    fn only_an_incomplete_last_record_with_nothing_valid_after_it_is_torn() {
        let edit = VersionEdit { flushed_seq: Some(SeqNo(5)), ..VersionEdit::default() };
        let rec = encode_record(&edit);
        let two = [rec.clone(), rec.clone()].concat();
        let mut flipped = two.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(frame_at(&flipped, rec.len()), Frame::Damaged(_)), "complete, bad crc");
        let mut long_first = two.clone();
        long_first[1] ^= 0x40; // the first record's length now runs past the end
        assert!(matches!(frame_at(&long_first, 0), Frame::Damaged(_)), "valid record follows");
        let mut long_last = two.clone();
        long_last[rec.len() + 1] ^= 0x40;
        assert!(matches!(frame_at(&long_last, rec.len()), Frame::Damaged(_)), "length flip");
        let zeros = [rec.clone(), vec![0u8; rec.len()]].concat();
        assert!(matches!(frame_at(&zeros, rec.len()), Frame::Torn), "zeros were never written");
    }

    #[test]
    fn check_edit_names_what_is_wrong() {
        let mut s = ManifestState::empty(3);
        s.table_format = Some("mmap".into());
        s.apply(
            &VersionEdit { added: vec![(0, meta(4))], ..VersionEdit::default() },
            Path::new("m"),
            0,
        )
        .expect("add");
        s.flushed_seq = SeqNo(10);
        let bad = [
            VersionEdit { removed: vec![(1, FileNo(4))], ..VersionEdit::default() },
            VersionEdit { added: vec![(0, meta(4))], ..VersionEdit::default() },
            VersionEdit { added: vec![(0, meta(6)), (1, meta(6))], ..VersionEdit::default() },
            VersionEdit { added: vec![(3, meta(7))], ..VersionEdit::default() },
            VersionEdit { flushed_seq: Some(SeqNo(9)), ..VersionEdit::default() },
            VersionEdit { next_file_no: Some(FileNo(2)), ..VersionEdit::default() },
            VersionEdit { table_format: Some("other".into()), ..VersionEdit::default() },
        ];
        for e in &bad {
            assert!(s.check_edit(e).is_err(), "{e:?} must be refused");
        }
        let good = VersionEdit {
            added: vec![(1, meta(8))],
            removed: vec![(0, FileNo(4))],
            flushed_seq: Some(SeqNo(10)),
            next_file_no: Some(FileNo(9)),
            table_format: Some("mmap".into()),
        };
        assert_eq!(s.check_edit(&good), Ok(()));
    }

    #[test]
    fn apply_rejects_contradictions() {
        let mut s = ManifestState::empty(7);
        let add = VersionEdit { added: vec![(0, meta(1))], ..VersionEdit::default() };
        s.apply(&add, Path::new("m"), 0).expect("first add");
        assert!(s.apply(&add, Path::new("m"), 0).is_err(), "double add");
        let rm = VersionEdit { removed: vec![(3, FileNo(1))], ..VersionEdit::default() };
        assert!(s.apply(&rm, Path::new("m"), 0).is_err(), "remove from wrong level");
        assert_eq!(s.next_file_no, FileNo(2));
    }

    /// A move is one edit that removes a table from one level and adds it, unchanged,
    /// to another: accepted, applied, and read back from its encoding as the same edit.
    /// The same number with other metadata is a reused number, not a move.
    #[test]
    fn a_move_re_adds_the_table_it_removes() {
        let mut s = ManifestState::empty(3);
        let add = VersionEdit { added: vec![(1, meta(4))], ..VersionEdit::default() };
        s.apply(&add, Path::new("m"), 0).expect("add");
        let mv = VersionEdit {
            removed: vec![(1, FileNo(4))],
            added: vec![(2, meta(4))],
            ..VersionEdit::default()
        };
        assert_eq!(s.check_edit(&mv), Ok(()));
        let decoded = VersionEdit::decode(&mv.encode(), Path::new("m"), 0).expect("decode");
        assert_eq!(decoded, mv);
        let mut moved = s.clone();
        moved.apply(&decoded, Path::new("m"), 0).expect("apply the move");
        assert!(moved.levels[1].is_empty());
        assert_eq!(moved.levels[2].get(&FileNo(4)), Some(&meta(4)));

        let mut changed = meta(4);
        changed.size_bytes += 1;
        let reused = VersionEdit {
            removed: vec![(1, FileNo(4))],
            added: vec![(2, changed)],
            ..VersionEdit::default()
        };
        assert!(s.check_edit(&reused).is_err(), "a changed table under a moved number");
        let twice = VersionEdit {
            removed: vec![(1, FileNo(4))],
            added: vec![(2, meta(4)), (0, meta(4))],
            ..VersionEdit::default()
        };
        assert!(s.check_edit(&twice).is_err(), "moved to two levels");
        // Adding it back without removing it is still a number in use.
        let dup = VersionEdit { added: vec![(2, meta(4))], ..VersionEdit::default() };
        assert!(s.check_edit(&dup).is_err());
    }
}
