//! Full verification of a table's bytes: every section and every block, and whether
//! the blocks agree with the index, the filter and the meta section.

use std::cmp::Ordering;
use std::path::Path;

use bytes::Bytes;
use strata_core::{Error, SeqNo, ValueKind, compare_internal};

use crate::block::{BlockView, malformed, read_block};
use crate::bloom::{BloomFilter, parse_filter};
use crate::format::Footer;
use crate::index::{IndexEntry, parse_index};
use crate::meta::{Properties, parse_meta};

/// What the blocks hold, tallied while walking them.
#[derive(Default)]
struct Tally {
    props: Properties,
    /// The last entry seen, for order checks across block boundaries; `None` after a
    /// damaged block (the next block cannot be compared with what is missing).
    last: Option<(Bytes, SeqNo)>,
}

/// Checks the table held in `data` (the file at `path`) and returns every problem found,
/// each naming the file and the offset of the damaged block or section.
pub(crate) fn verify_table(path: &Path, data: &Bytes) -> Vec<Error> {
    let footer = match Footer::decode(path, data) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    let props = parse_meta(path, data, footer.meta).map_err(|e| errors.push(e)).ok();
    let filter = parse_filter(path, data, footer.filter).map_err(|e| errors.push(e)).ok();
    let Some(index) = parse_index(path, data, &footer).map_err(|e| errors.push(e)).ok() else {
        return errors;
    };
    let mut tally = Tally::default();
    for i in 0..index.len() {
        let Some(entry) = index.entry(i) else { break };
        if let Err(e) = verify_block(path, data, i, &entry, filter.as_ref(), footer, &mut tally) {
            errors.push(e);
            tally.last = None;
        }
    }
    // Totals only mean something when every block could be read.
    if let Some(props) = props
        && errors.is_empty()
    {
        let seen = &mut tally.props;
        seen.largest_key = tally.last.map(|(k, _)| k.to_vec()).unwrap_or_default();
        let expect =
            (props.entries, props.tombstones, props.min_seq, props.max_seq, props.distinct_keys);
        let found = (seen.entries, seen.tombstones, seen.min_seq, seen.max_seq, seen.distinct_keys);
        if expect != found
            || props.smallest_key != seen.smallest_key
            || props.largest_key != seen.largest_key
        {
            errors.push(Error::corruption(
                path,
                footer.meta.offset,
                format!(
                    "meta section (entries, tombstones, min seq, max seq, keys) = {expect:?} and \
                     its key range do not match the blocks' {found:?}"
                ),
            ));
        }
    }
    errors
}

/// Checks block `i`: checksum, entry encoding, order (also against the previous block),
/// last key against the index, every key against the filter.
fn verify_block(
    path: &Path,
    data: &Bytes,
    i: usize,
    ie: &IndexEntry<'_>,
    filter: Option<&BloomFilter>,
    footer: Footer,
    tally: &mut Tally,
) -> Result<(), Error> {
    let start = ie.offset as usize;
    let raw = read_block(path, data, start..start + ie.len as usize, ie.offset)?;
    let block = BlockView::new(path, raw, ie.offset)?;
    let mut pos = 0;
    let mut starts = Vec::new();
    while pos < block.entries_end() {
        let e = block.entry_at(pos).ok_or_else(|| malformed(path, ie.offset, pos))?;
        starts.push(pos);
        let key = block.raw().slice(e.key.clone());
        let new_key = match &tally.last {
            Some((k, s)) if compare_internal(k, *s, &key, e.seq) != Ordering::Less => {
                return Err(Error::corruption(
                    path,
                    ie.offset,
                    format!("entry at byte {pos} of block {i} is out of internal-key order"),
                ));
            }
            Some((k, _)) => *k != key,
            None => true,
        };
        if new_key && filter.is_some_and(|f| !f.may_contain(&key)) {
            return Err(Error::corruption(
                path,
                footer.filter.offset,
                format!("bloom filter says a key of block {i} (at {}) is absent", ie.offset),
            ));
        }
        let seen = &mut tally.props;
        if seen.entries == 0 {
            seen.smallest_key = key.to_vec();
            seen.min_seq = e.seq.0;
        }
        seen.entries += 1;
        seen.distinct_keys += u64::from(new_key);
        seen.tombstones += u64::from(e.kind == ValueKind::Delete);
        seen.min_seq = seen.min_seq.min(e.seq.0);
        seen.max_seq = seen.max_seq.max(e.seq.0);
        pos = e.next;
        tally.last = Some((key, e.seq));
    }
    // Lookups binary-search the restarts: they must be where the entries are.
    block.check_restarts(&starts).map_err(|r| {
        Error::corruption(
            path,
            ie.offset,
            format!("restart array entry {r} of block {i} is not where its entry starts"),
        )
    })?;
    let matches_index =
        tally.last.as_ref().is_some_and(|(k, s)| &k[..] == ie.last_key && s.0 == ie.last_seq);
    if pos == 0 || !matches_index {
        return Err(Error::corruption(
            path,
            ie.offset,
            format!("the last entry of block {i} is not the one the index names"),
        ));
    }
    Ok(())
}
