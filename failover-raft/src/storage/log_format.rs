//! The on-disk format of the raft log file `raft_log`, and the scan that opens it.
//!
//! The file starts with a 16-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `STRATRLG` |
//! | 8 | 4 | format version (`1`), little endian |
//! | 12 | 4 | CRC32 of bytes 0..12 |
//!
//! Records follow back to back, one per raft entry, in index order without gaps:
//!
//! | size | field |
//! |---|---|
//! | 4 | body length `n` (at most [`MAX_RECORD_BODY`]) |
//! | 4 | CRC32 over the 4 length bytes and the body |
//! | n | body: the JSON of the openraft entry |
//!
//! Entries are appended and fsynced before openraft is told they are durable; a
//! conflicting suffix is removed by cutting the file (and fsyncing) at the first removed
//! record. Purged entries stay in the file until it is rewritten (temporary file,
//! fsync, rename, directory fsync) and are skipped when it is read.
//!
//! **Torn tail vs. damage.** A crash during an append can leave the last records
//! incomplete or garbled. When the scan meets a record that does not check (its extent
//! passes the end of the file, or its CRC does not match), it looks for any intact record
//! after it: if there is none, the damaged bytes are a torn tail, never acknowledged, and
//! are cut off; if there is one, the damage is in the middle of the log and opening fails
//! with an error naming the file and offset. The length is never trusted before the CRC.

use std::path::Path;

use strata_core::{Error, Result};

use super::blob::le4;
use crate::types::Entry;

/// Magic bytes at the start of the log file.
pub const MAGIC: [u8; 8] = *b"STRATRLG";
/// Format version written by this build.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 16;
/// Size of a record's length + CRC prefix.
pub const RECORD_PREFIX_LEN: usize = 8;
/// Largest record body accepted; a larger length is treated as damage, so a corrupt
/// length can never drive a large allocation.
pub const MAX_RECORD_BODY: usize = 4 << 20;

/// The file header.
pub fn encode_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends the record of `entry` to `out`.
pub fn encode_record(entry: &Entry, out: &mut Vec<u8>) -> Result<()> {
    let body = serde_json::to_vec(entry)
        .map_err(|e| Error::InvalidArgument(format!("raft entry does not encode: {e}")))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n as usize <= MAX_RECORD_BODY)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "raft entry of {} bytes exceeds the maximum record of {MAX_RECORD_BODY}",
                body.len()
            ))
        })?;
    let len_bytes = len.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&body);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// One intact record found by [`scan`].
#[derive(Debug)]
pub struct Record {
    /// Byte offset of the record's prefix in the file.
    pub offset: u64,
    /// The decoded entry.
    pub entry: Entry,
}

/// What [`scan`] found in a log file.
#[derive(Debug)]
pub struct Scan {
    /// Every intact record, in file order (indexes consecutive).
    pub records: Vec<Record>,
    /// Where the intact data ends: the file must be cut here if it is longer (torn tail).
    pub valid_len: u64,
}

enum Check {
    /// An intact record of this total length holding this entry.
    Intact(usize, Box<Entry>),
    /// The bytes at this offset are not an intact record.
    Damaged(String),
}

fn check_record(bytes: &[u8], at: usize) -> Check {
    let rest = bytes.get(at..).unwrap_or_default();
    if rest.len() < RECORD_PREFIX_LEN {
        return Check::Damaged(format!("{} bytes left, less than a record prefix", rest.len()));
    }
    let len = u32::from_le_bytes(le4(rest, 0)) as usize;
    if len > MAX_RECORD_BODY {
        return Check::Damaged(format!(
            "record length {len} exceeds the maximum {MAX_RECORD_BODY}"
        ));
    }
    let Some(body) = rest.get(RECORD_PREFIX_LEN..RECORD_PREFIX_LEN + len) else {
        return Check::Damaged(format!(
            "record of {len} bytes runs past the end of the file ({} bytes left)",
            rest.len() - RECORD_PREFIX_LEN
        ));
    };
    let stored = u32::from_le_bytes(le4(rest, 4));
    let mut crc = crc32fast::Hasher::new();
    crc.update(rest.get(..4).unwrap_or_default());
    crc.update(body);
    let actual = crc.finalize();
    if stored != actual {
        return Check::Damaged(format!(
            "record checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    match serde_json::from_slice::<Entry>(body) {
        Ok(entry) => Check::Intact(RECORD_PREFIX_LEN + len, Box::new(entry)),
        Err(e) => {
            Check::Damaged(format!("record checksum matches but its entry does not decode: {e}"))
        }
    }
}

/// True when an intact record starts anywhere in `bytes` after `from`.
fn intact_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(RECORD_PREFIX_LEN - 1))
        .find(|&at| matches!(check_record(bytes, at), Check::Intact(..)))
}

/// Checks the header and every record of a log file's `bytes`; `path` names it in errors.
///
/// Returns the intact records and where they end; a torn tail (damaged bytes with no
/// intact record after them) is left out, reported by `valid_len < bytes.len()`. Damage
/// followed by an intact record, a bad header and a gap or step back in the indexes are
/// errors naming the file and offset.
pub fn scan(bytes: &[u8], path: &Path) -> Result<Scan> {
    let header = bytes.get(..HEADER_LEN).ok_or_else(|| {
        Error::corruption(
            path,
            0,
            format!("raft log header needs {HEADER_LEN} bytes, file has {}", bytes.len()),
        )
    })?;
    if header.get(..8) != Some(MAGIC.as_slice()) {
        return Err(Error::corruption(path, 0, "not a raft log file (wrong magic)"));
    }
    let stored = u32::from_le_bytes(le4(header, 12));
    let actual = crc32fast::hash(header.get(..12).unwrap_or_default());
    if stored != actual {
        return Err(Error::corruption(
            path,
            12,
            format!(
                "raft log header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ),
        ));
    }
    let version = u32::from_le_bytes(le4(header, 8));
    if version != VERSION {
        return Err(Error::corruption(
            path,
            8,
            format!("unsupported raft log format version {version}"),
        ));
    }

    let mut records: Vec<Record> = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match check_record(bytes, at) {
            Check::Intact(len, entry) => {
                if let Some(prev) = records.last()
                    && entry.log_id.index != prev.entry.log_id.index + 1
                {
                    return Err(Error::corruption(
                        path,
                        at as u64,
                        format!(
                            "raft log entry {} follows entry {}: the log must have no gaps",
                            entry.log_id.index, prev.entry.log_id.index
                        ),
                    ));
                }
                records.push(Record { offset: at as u64, entry: *entry });
                at += len;
            }
            Check::Damaged(why) => {
                if let Some(next) = intact_record_after(bytes, at) {
                    return Err(Error::corruption(
                        path,
                        at as u64,
                        format!(
                            "{why}; an intact record follows at offset {next}, so this is damage \
                             in the middle of the raft log, not a torn tail (restore the node's \
                             raft directory or remove the node and re-add it empty)"
                        ),
                    ));
                }
                return Ok(Scan { records, valid_len: at as u64 });
            }
        }
    }
    Ok(Scan { records, valid_len: at as u64 })
}

#[cfg(test)]
pub(crate) mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::{Command, LogId};

    /// Entry `index` of term 1 carrying a compare-and-set of `value_len` bytes.
    pub(crate) fn entry(index: u64, value_len: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::CompareAndSet {
                expected_version: index,
                value: vec![index as u8; value_len],
            }),
        }
    }

    fn log_of(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = encode_header().to_vec();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(bytes.len());
            encode_record(&entry(i, 5), &mut bytes).expect("encodes");
        }
        (bytes, starts)
    }

    #[test]
    fn intact_log_scans_whole() {
        let (bytes, _) = log_of(4);
        let scan = scan(&bytes, Path::new("raft_log")).expect("intact");
        assert_eq!(scan.valid_len, bytes.len() as u64);
        let idx: Vec<u64> = scan.records.iter().map(|r| r.entry.log_id.index).collect();
        assert_eq!(idx, vec![0, 1, 2, 3]);
    }

    #[test]
    fn every_cut_is_a_torn_tail_keeping_the_whole_records_before_it() {
        let (bytes, starts) = log_of(4);
        for cut in HEADER_LEN..bytes.len() {
            let s = scan(&bytes[..cut], Path::new("raft_log")).expect("a cut is a torn tail");
            let whole =
                starts.iter().skip(1).chain([&bytes.len()]).filter(|end| **end <= cut).count();
            assert_eq!(s.records.len(), whole, "cut at {cut}");
            let valid = if whole == 0 {
                HEADER_LEN
            } else {
                starts.get(whole).copied().unwrap_or(bytes.len())
            };
            assert_eq!(s.valid_len, valid as u64, "cut at {cut}");
        }
    }

    #[test]
    fn damage_before_an_intact_record_is_an_error_at_the_damaged_record() {
        let (bytes, starts) = log_of(4);
        let last = *starts.last().expect("records");
        for at in HEADER_LEN..last {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            let rec = *starts.iter().rev().find(|s| **s <= at).expect("inside a record");
            match scan(&bad, Path::new("raft_log")) {
                Err(Error::Corruption { offset, file, .. }) => {
                    assert_eq!(offset, rec as u64, "flip at {at}");
                    assert_eq!(file, Path::new("raft_log"));
                }
                other => panic!("flip at {at}: expected corruption, got {other:?}"),
            }
        }
        // Damage in the last record cannot be told from a torn write: it is cut.
        let mut bad = bytes.clone();
        bad[last + 9] ^= 0x04;
        let s = scan(&bad, Path::new("raft_log")).expect("damaged last record is a torn tail");
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.valid_len, last as u64);
    }

    #[test]
    fn a_bad_header_or_a_gap_is_an_error() {
        let (bytes, _) = log_of(2);
        for at in 0..HEADER_LEN {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(scan(&bad, Path::new("raft_log")).is_err(), "header flip at {at}");
        }
        let mut gap = encode_header().to_vec();
        encode_record(&entry(0, 1), &mut gap).expect("encodes");
        encode_record(&entry(2, 1), &mut gap).expect("encodes");
        assert!(matches!(scan(&gap, Path::new("raft_log")), Err(Error::Corruption { .. })));
    }
}
