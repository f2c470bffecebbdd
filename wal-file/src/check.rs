//! Read-only verification of a WAL directory, for `strata verify` and `strata inspect`.
//!
//! Unlike opening the log, checking never truncates or deletes anything: it reports what
//! opening would find — every damaged record with its file and offset, and the torn
//! tail that opening would cut off.

use std::path::{Path, PathBuf};

use strata_core::fs::{FileSystem, OpenMode, read_exact_at};
use strata_core::{Error, Result, SeqNo};

use crate::format::{HEADER_LEN, RecordAt, decode_header, parse_segment_file_name};
use crate::recovery::{TailScan, Window, scan_last_segment};

/// What checking one segment found.
#[derive(Debug)]
pub struct SegmentCheck {
    /// The segment file.
    pub path: PathBuf,
    /// Start sequence from its name.
    pub start_seq: SeqNo,
    /// File size in bytes (preallocation included).
    pub file_bytes: u64,
    /// Bytes holding valid records (header included).
    pub used_bytes: u64,
    /// Valid records.
    pub records: u64,
    /// Last sequence in the segment (`start - 1` when it holds none).
    pub last_seq: SeqNo,
    /// Bytes of a torn tail that opening would cut off (last segment only).
    pub torn_tail_bytes: Option<u64>,
    /// The damage found, if any (file and offset inside).
    pub problem: Option<Error>,
}

/// Checks every segment under `dir`, oldest first, without modifying anything.
pub fn check_dir(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<SegmentCheck>> {
    let names = fs.list_dir(dir)?;
    let mut segments: Vec<(SeqNo, String)> =
        names.iter().filter_map(|n| parse_segment_file_name(n).map(|s| (s, n.clone()))).collect();
    segments.sort();
    // New segments not yet renamed into place (a rotation in flight in a live store, or
    // one a crash interrupted): open adopts the successor of the newest segment, or the
    // only segment when none has its final name (see `FileWal::open`); so does the check.
    let mut tmps: Vec<(SeqNo, String)> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix(".tmp").and_then(parse_segment_file_name).map(|s| (s, n.clone()))
        })
        .collect();
    tmps.sort();
    let lone_tmps = segments.is_empty() && !tmps.is_empty();
    if lone_tmps && let Some(first) = tmps.first() {
        segments.push(first.clone());
    }
    // A truncation interrupted by a crash: the log ends at the sequence it keeps (open
    // finishes the cut), so segments past it are not part of the log.
    let keep = crate::truncation::load(fs, dir)?;
    if let Some(k) = keep {
        while segments.len() > 1 && segments.last().is_some_and(|(s, _)| s.0 > k.0 + 1) {
            segments.pop();
        }
    }
    let mut out = Vec::with_capacity(segments.len() + 1);
    let mut expected: Option<SeqNo> = None;
    // The newest segment's tail: whether it ends in a seal, and its torn bytes.
    let mut newest_tail: Option<TailScan> = None;
    let count = segments.len();
    for (i, (start, name)) in segments.into_iter().enumerate() {
        let path = dir.join(&name);
        let mut check = SegmentCheck {
            path: path.clone(),
            start_seq: start,
            file_bytes: 0,
            used_bytes: 0,
            records: 0,
            last_seq: SeqNo(start.0.saturating_sub(1)),
            torn_tail_bytes: None,
            problem: None,
        };
        if let Some(e) = expected
            && e != start
        {
            check.problem = Some(Error::corruption(
                &path,
                0,
                format!("segment starts at {start} but the previous one ended before {e}: a gap"),
            ));
        }
        let file = fs.open(&path, OpenMode::ReadOnly)?;
        check.file_bytes = file.len()?;
        let mut header = [0u8; HEADER_LEN];
        let header = match read_exact_at(&*file, &mut header, 0)
            .and_then(|()| decode_header(&header, &path))
        {
            Ok(h) if h.start == start => h,
            Ok(h) => {
                check.problem.get_or_insert(Error::corruption(
                    &path,
                    16,
                    format!("header says start {} but the name says {start}", h.start),
                ));
                out.push(check);
                continue;
            }
            Err(e) => {
                check.problem.get_or_insert(e);
                out.push(check);
                continue;
            }
        };
        if i + 1 == count {
            match scan_last_segment(&*file, &path, header, keep) {
                Ok(tail) => {
                    check.used_bytes = tail.end;
                    check.last_seq = tail.last_seq;
                    check.torn_tail_bytes = tail.torn_bytes;
                    check.records = tail.records;
                    newest_tail = Some(tail);
                }
                Err(e) => {
                    check.problem.get_or_insert(e);
                }
            }
        } else {
            let len = check.file_bytes;
            let mut w = Window::new(&*file, len);
            let mut off = HEADER_LEN as u64;
            let mut next = start;
            loop {
                match w.record_at(off, header.version)? {
                    RecordAt::Valid { first, count, size, .. } if first == next => {
                        next = SeqNo(first.0 + u64::from(count));
                        check.records += 1;
                        off += size as u64;
                    }
                    RecordAt::Seal { next: n, size, .. } if n == next => {
                        off += size as u64;
                        break;
                    }
                    RecordAt::End => break,
                    RecordAt::Valid { first, .. } => {
                        check.problem.get_or_insert(Error::corruption(
                            &path,
                            off,
                            format!("record starts at {first}, expected {next}"),
                        ));
                        break;
                    }
                    RecordAt::Seal { next: n, .. } => {
                        check.problem.get_or_insert(Error::corruption(
                            &path,
                            off,
                            format!("seal names the next segment start {n}, expected {next}"),
                        ));
                        break;
                    }
                    RecordAt::Incomplete => {
                        check.problem.get_or_insert(Error::corruption(
                            &path,
                            off,
                            "record runs past the end of a segment that is not the last",
                        ));
                        break;
                    }
                    RecordAt::Damaged(reason) => {
                        check.problem.get_or_insert(Error::corruption(&path, off, reason));
                        break;
                    }
                }
            }
            check.used_bytes = off;
            check.last_seq = SeqNo(next.0 - 1);
        }
        expected = Some(check.last_seq.next());
        out.push(check);
    }
    if lone_tmps
        && tmps.len() > 1
        && let Some(only) = out.first_mut()
    {
        let names: Vec<&str> = tmps.iter().map(|(_, n)| n.as_str()).collect();
        only.problem.get_or_insert(Error::corruption(
            &only.path,
            0,
            format!(
                "the log has no segment under its final name but {} temporary ones ({})",
                tmps.len(),
                names.join(", ")
            ),
        ));
    }
    if let (Some(tail), false) = (newest_tail, lone_tmps) {
        let paths: Vec<(SeqNo, PathBuf)> =
            tmps.iter().map(|(start, name)| (*start, dir.join(name))).collect();
        match crate::wal::adoptable(fs, &paths, &tail, OpenMode::ReadOnly) {
            Ok(Some((path, file, header))) => out.push(check_successor(path, &*file, header)?),
            Ok(None) => {
                if let (Some(next), Some(last)) = (tail.sealed, out.last_mut()) {
                    last.problem.get_or_insert(Error::corruption(
                        &last.path,
                        tail.end,
                        format!(
                            "the newest segment was sealed for a successor starting at \
                             {next}, which is missing (deleted or lost)"
                        ),
                    ));
                }
            }
            // A sealed segment's successor that open would refuse.
            Err(e) => {
                if let Some(last) = out.last_mut() {
                    last.problem.get_or_insert(e);
                }
            }
        }
    }
    Ok(out)
}

/// The check of the newest segment's successor still under its temporary name, which
/// open would adopt (see `wal::adoptable`): scanned as the log's newest segment.
fn check_successor(
    path: PathBuf,
    file: &dyn strata_core::fs::File,
    header: crate::format::SegmentHeader,
) -> Result<SegmentCheck> {
    let mut check = SegmentCheck {
        path: path.clone(),
        start_seq: header.start,
        file_bytes: file.len()?,
        used_bytes: 0,
        records: 0,
        last_seq: SeqNo(header.start.0.saturating_sub(1)),
        torn_tail_bytes: None,
        problem: None,
    };
    match scan_last_segment(file, &path, header, None) {
        Ok(tail) => {
            check.used_bytes = tail.end;
            check.last_seq = tail.last_seq;
            check.torn_tail_bytes = tail.torn_bytes;
            check.records = tail.records;
            if let Some(n) = tail.sealed {
                check.problem = Some(Error::corruption(
                    &path,
                    tail.end,
                    format!(
                        "a segment that was never renamed into place ends in a seal naming {n}"
                    ),
                ));
            }
        }
        Err(e) => check.problem = Some(e),
    }
    Ok(check)
}
