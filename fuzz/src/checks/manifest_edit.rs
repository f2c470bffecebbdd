//! The `manifest_edit` target: manifest edits and whole manifests.

use std::path::Path;

use bytes::Bytes;
use strata_core::manifest::{self, ManifestState, ManifestWriter, VersionEdit};
use strata_core::{FileNo, SeqNo, TableMeta};
use strata_harness::sim_fs::SimFileSystem;

use super::{Crc32, Cursor, crc32, expect_corruption, le_u32, put_u32};

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

pub(crate) fn check_edit(body: &[u8]) {
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

pub(crate) fn tables(state: &ManifestState) -> Vec<(usize, TableMeta)> {
    state.live_tables().map(|(l, t)| (l, t.clone())).collect()
}

pub(crate) fn check_manifest_state(state: &ManifestState) {
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

pub(crate) fn manifest_seeds() -> Vec<Vec<u8>> {
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
