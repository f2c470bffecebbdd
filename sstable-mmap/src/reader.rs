//! Reading a table: open (footer, meta, index, filter) and point lookups. Range scans
//! live in [`crate::iter`], full verification in [`crate::verify`].

use std::fmt;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_core::fs::{File, read_all};
use strata_core::{
    Error, FileNo, KeyRange, Lookup, Result, SeqNo, Table, TableIter, TableMeta, ValueKind,
};

use crate::block::{BlockView, malformed, read_block};
use crate::bloom::{BloomFilter, parse_filter};
use crate::format::Footer;
use crate::index::{Index, parse_index};
use crate::iter::RangeIter;
use crate::meta::{Properties, parse_meta};
use crate::verify::verify_table;

/// Maps a table file read-only and hands the map to `Bytes`, so every value served
/// from the table is a zero-copy slice that keeps the map alive.
#[expect(unsafe_code, reason = "memory-mapping a file is unsafe; this is the crate's only use")]
fn map_file(fd: BorrowedFd<'_>, path: &Path) -> Result<Bytes> {
    // SAFETY: `Mmap::map` is unsafe because another writer could change or truncate the
    // file while it is mapped. A table file is immutable once `finish` synced it: the
    // engine never writes to, truncates or rewrites a finished table (file numbers are
    // never reused), and removing the file only unlinks it, which leaves the mapping
    // valid. Damage on the disk itself is caught by the checksums, not trusted.
    let map = unsafe { memmap2::Mmap::map(&fd) }.map_err(|e| Error::io("mmap", path, e))?;
    Ok(Bytes::from_owner(map))
}

/// The whole file: mapped when the file system has a descriptor, read otherwise (the
/// simulated file system of the harness).
fn load(file: &dyn File) -> Result<(Bytes, bool)> {
    match file.as_fd() {
        // A zero-length map is refused by some kernels; the empty file is damage anyway
        // and decoding the footer reports it.
        Some(fd) if file.len()? > 0 => Ok((map_file(fd, file.path())?, true)),
        _ => Ok((Bytes::from(read_all(file)?), false)),
    }
}

/// Everything decoded from a file's fixed metadata.
struct Parsed {
    props: Properties,
    index: Index,
    filter: BloomFilter,
}

fn parse(path: &Path, data: &Bytes) -> Result<Parsed> {
    let footer = Footer::decode(path, data)?;
    let props = parse_meta(path, data, footer.meta)?;
    let index = parse_index(path, data, &footer)?;
    let filter = parse_filter(path, data, footer.filter)?;
    if props.data_blocks != index.len() as u64 {
        return Err(Error::corruption(
            path,
            footer.meta.offset,
            format!("meta counts {} data blocks, the index {}", props.data_blocks, index.len()),
        ));
    }
    Ok(Parsed { props, index, filter })
}

/// An open table; see [`strata_core::Table`] for the contract.
///
/// Keys and values it returns are slices of the mapped file (or of one decompressed
/// block) that keep the mapping alive: hold them briefly, or copy them, since a mapping
/// of a deleted table file keeps its disk space until the last slice is dropped.
pub struct MmapTable {
    path: PathBuf,
    file: Arc<dyn File>,
    data: Bytes,
    mapped: bool,
    meta: TableMeta,
    props: Properties,
    index: Index,
    filter: BloomFilter,
}

impl fmt::Debug for MmapTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapTable")
            .field("path", &self.path)
            .field("mapped", &self.mapped)
            .field("meta", &self.meta)
            .field("blocks", &self.index.len())
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl MmapTable {
    /// Opens table `file_no` stored in `file`: maps it (or reads it whole when the file
    /// system has no descriptor) and checks footer, meta, index and filter. Data blocks
    /// are checked when they are read.
    pub fn open(file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<MmapTable>> {
        let path = file.path().to_path_buf();
        let (data, mapped) = load(&*file)?;
        let Parsed { props, index, filter } = parse(&path, &data)?;
        let meta = TableMeta {
            file_no,
            size_bytes: data.len() as u64,
            // Copied, so metadata kept by the manifest does not pin the mapping (and the
            // disk space of a deleted file) after the table is closed.
            smallest_key: Bytes::copy_from_slice(&props.smallest_key),
            largest_key: Bytes::copy_from_slice(&props.largest_key),
            min_seq: SeqNo(props.min_seq),
            max_seq: SeqNo(props.max_seq),
            entries: props.entries,
            tombstones: props.tombstones,
        };
        if props.file_no != file_no.get() {
            tracing::warn!(
                path = %path.display(),
                written_as = props.file_no,
                opened_as = file_no.get(),
                "table was written under another file number"
            );
        }
        Ok(Arc::new(MmapTable { path, file, data, mapped, meta, props, index, filter }))
    }

    /// False when `key` is certainly not in the table (bloom filter).
    #[inline]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.filter.may_contain(key)
    }

    /// The table's bloom filter.
    pub fn filter(&self) -> &BloomFilter {
        &self.filter
    }

    /// True when the file is memory-mapped (false: read into memory at open).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    /// File offsets of the data blocks, in order (for tools and corruption tests).
    pub fn block_offsets(&self) -> Vec<u64> {
        (0..self.index.len()).filter_map(|i| self.index.entry(i)).map(|e| e.offset).collect()
    }

    /// The properties stored in the meta section (builder options, block and key
    /// counts).
    pub fn properties(&self) -> &Properties {
        &self.props
    }

    /// The path the table was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// Reads, checks and (if compressed) decompresses block `i`.
    pub(crate) fn block(&self, i: usize) -> Result<BlockView> {
        let Some(e) = self.index.entry(i) else {
            return Err(Error::corruption(&self.path, 0, format!("no data block {i}")));
        };
        // Offsets and lengths were checked against the file at open.
        let start = e.offset as usize;
        let raw = read_block(&self.path, &self.data, start..start + e.len as usize, e.offset)?;
        BlockView::new(&self.path, raw, e.offset)
    }

    pub(crate) fn block_offset(&self, i: usize) -> u64 {
        self.index.entry(i).map_or(0, |e| e.offset)
    }

    fn lookup(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Lookup>> {
        let mut i = self.index.find(key, snapshot);
        while i < self.index.len() {
            let block = self.block(i)?;
            match block.seek(key, snapshot) {
                Ok(Some(e)) if block.key(&e) == key => {
                    return Ok(Some(match e.kind {
                        ValueKind::Put => {
                            Lookup::Value { value: block.raw().slice(e.value), seq: e.seq }
                        }
                        ValueKind::Delete => Lookup::Deleted { seq: e.seq },
                    }));
                }
                Ok(Some(_)) => return Ok(None),
                // The index said this block ends at or after the target; an intact table
                // never gets here, but moving on is still the right answer.
                Ok(None) => i += 1,
                Err(pos) => return Err(malformed(&self.path, self.block_offset(i), pos)),
            }
        }
        Ok(None)
    }
}

impl Table for MmapTable {
    fn meta(&self) -> &TableMeta {
        &self.meta
    }

    #[inline]
    fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Lookup>> {
        // The key range costs two comparisons and spares the filter's cache misses for
        // keys outside the table (common for L0 tables and for the levels' edges).
        if !self.meta.may_hold(key) || !self.filter.may_contain(key) {
            return Ok(None);
        }
        self.lookup(key, snapshot)
    }

    fn range(self: Arc<Self>, range: KeyRange, snapshot: SeqNo) -> TableIter {
        Box::new(RangeIter::new(self, range, snapshot))
    }

    fn verify(&self) -> Vec<Error> {
        let len = match self.file.len() {
            Ok(len) => len,
            Err(e) => return vec![e],
        };
        if len != self.data.len() as u64 {
            // A mapped file that shrank would fault on access; report, do not touch.
            return vec![Error::corruption(
                &self.path,
                len.min(self.data.len() as u64),
                format!("file is now {len} bytes long but was {} when opened", self.data.len()),
            )];
        }
        if self.mapped {
            return verify_table(&self.path, &self.data);
        }
        // Not mapped: read the file again so damage since open is found too.
        match read_all(&*self.file) {
            Ok(bytes) => verify_table(&self.path, &Bytes::from(bytes)),
            Err(e) => vec![e],
        }
    }
}
