//! Helpers shared by the rotation and spare-segment tests.

use std::path::Path;

use strata_core::{SeqNo, Wal};
use strata_wal_file::FileWal;

/// Every batch from sequence 1, as (first sequence, payload).
pub fn read_all(wal: &FileWal) -> Vec<(u64, Vec<u8>)> {
    let mut r = wal.read_from(SeqNo(1)).expect("reader");
    let mut out = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        out.push((b.first_seq.0, b.payload.to_vec()));
    }
    out
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
