//! Writing a table: entries into blocks, then index, filter, meta and footer.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::fs::{File, WritebackPacer};
use strata_core::{
    Error, FileNo, Result, SeqNo, TableBuilder, TableMeta, ValueKind, compare_internal,
};

use crate::block::{BlockBuilder, entry_len};
use crate::bloom::{BloomFilter, key_hash};
use crate::format::{
    FILTER_TAG, FOOTER_LEN, Footer, INDEX_ENTRY_FIXED_LEN, INDEX_TAG, MAX_KEY_LEN, MAX_VALUE_LEN,
    META_FIXED_LEN, META_TAG, SECTION_OVERHEAD, encode_section,
};
use crate::index::encode_index_entry;
use crate::meta::Properties;
use crate::options::MmapTableOptions;

/// Pending output is written once it reaches this size: few large writes, bounded
/// memory.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Why the builder stopped accepting calls.
#[derive(Debug)]
enum Failure {
    /// A caller error (out of order, oversized).
    Usage(String),
    /// A write failed: what reached the file is unknown.
    Io(String),
}

/// Builds one table file; see [`strata_core::TableBuilder`] for the contract.
pub struct MmapTableBuilder {
    file: Arc<dyn File>,
    file_no: FileNo,
    opts: MmapTableOptions,
    /// Bytes already handed to the file.
    written: u64,
    /// Starts writeback every `MmapTableOptions::writeback_bytes`.
    writeback: WritebackPacer,
    /// Sealed blocks not yet written.
    pending: Vec<u8>,
    block: BlockBuilder,
    compress_scratch: Vec<u8>,
    index: Vec<u8>,
    blocks: u64,
    key_hashes: Vec<u64>,
    /// The last entry added (the current block's last entry while it is open).
    last_key: Vec<u8>,
    last_seq: SeqNo,
    props: Properties,
    failed: Option<Failure>,
}

impl fmt::Debug for MmapTableBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapTableBuilder")
            .field("path", &self.file.path())
            .field("file_no", &self.file_no)
            .field("entries", &self.props.entries)
            .field("blocks", &self.blocks)
            .field("written", &self.written)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Shows a key in an error message: printable ASCII as is, the rest escaped, long keys
/// cut.
fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 48;
    let mut s: String = key
        .iter()
        .take(SHOWN)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if key.len() > SHOWN {
        s.push_str(&format!("... ({} bytes)", key.len()));
    }
    format!("\"{s}\"")
}

impl MmapTableBuilder {
    /// A builder writing table `file_no` into `file`, which must be empty.
    pub fn new(file: Arc<dyn File>, file_no: FileNo, opts: MmapTableOptions) -> Result<Self> {
        opts.validate()?;
        let len = file.len()?;
        if len != 0 {
            return Err(Error::InvalidArgument(format!(
                "table file {} must be new and empty, but holds {len} bytes",
                file.path().display()
            )));
        }
        Ok(Self {
            file,
            file_no,
            opts,
            written: 0,
            writeback: WritebackPacer::new(opts.writeback_bytes, 0),
            pending: Vec::with_capacity(WRITE_BUFFER_BYTES + opts.block_size.min(1 << 20) * 2),
            block: BlockBuilder::default(),
            compress_scratch: Vec::new(),
            index: Vec::new(),
            blocks: 0,
            key_hashes: Vec::new(),
            last_key: Vec::new(),
            last_seq: SeqNo::ZERO,
            props: Properties {
                file_no: file_no.get(),
                block_size: u32::try_from(opts.block_size).unwrap_or(u32::MAX),
                compression: opts.compression,
                ..Properties::default()
            },
            failed: None,
        })
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(Failure::Usage(reason)) => Err(Error::InvalidArgument(format!(
                "table builder for {} is unusable after an earlier error: {reason}",
                self.file.path().display()
            ))),
            Some(Failure::Io(reason)) => Err(Error::Poisoned {
                reason: format!(
                    "writing table {} failed earlier: {reason}",
                    self.file.path().display()
                ),
            }),
        }
    }

    fn usage_error(&mut self, reason: String) -> Error {
        self.failed = Some(Failure::Usage(reason.clone()));
        Error::InvalidArgument(reason)
    }

    fn io_result<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(Failure::Io(e.to_string()));
        }
        r
    }

    /// Seals the open block into `pending` and records its index entry.
    fn seal_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let offset = self.written + self.pending.len() as u64;
        let len = self.block.seal_into(
            &mut self.pending,
            self.opts.compression,
            &mut self.compress_scratch,
        );
        // Stored blocks are bounded by MAX_STORED_BLOCK_LEN < 4 GiB.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        encode_index_entry(&mut self.index, offset, len, &self.last_key, self.last_seq.0);
        self.blocks += 1;
        if self.pending.len() >= WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all_at(&self.pending, self.written);
        self.io_result(r)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        let r = self.writeback.after_write(&*self.file, self.written);
        self.io_result(r)
    }

    fn add_entry(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()> {
        if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Err(self.usage_error(format!(
                "entry (key {}, seq {seq}) has a {}-byte key and a {}-byte value; the table \
                 accepts keys up to {MAX_KEY_LEN} and values up to {MAX_VALUE_LEN} bytes",
                show_key(key),
                key.len(),
                value.len()
            )));
        }
        let first = self.props.entries == 0;
        let new_key = first || key != self.last_key.as_slice();
        if !first && compare_internal(key, seq, &self.last_key, self.last_seq) != Ordering::Greater
        {
            return Err(self.usage_error(format!(
                "entry (key {}, seq {seq}) is not after the previous entry (key {}, seq {}) in \
                 internal-key order (key ascending, then sequence descending; each (key, seq) once)",
                show_key(key),
                show_key(&self.last_key),
                self.last_seq
            )));
        }
        let len = entry_len(key.len(), value.len());
        if !self.block.is_empty() && self.block.size_after(len) > self.opts.block_size {
            self.seal_block()?;
        }
        self.block.add(key, seq, kind, value);
        if first {
            self.props.smallest_key = key.to_vec();
            self.props.min_seq = seq.0;
            self.props.max_seq = seq.0;
        }
        if new_key {
            self.key_hashes.push(key_hash(key));
            self.last_key.clear();
            self.last_key.extend_from_slice(key);
        }
        self.last_seq = seq;
        self.props.entries += 1;
        self.props.tombstones += u64::from(kind == ValueKind::Delete);
        self.props.min_seq = self.props.min_seq.min(seq.0);
        self.props.max_seq = self.props.max_seq.max(seq.0);
        if self.block.size() >= self.opts.block_size {
            self.seal_block()?;
        }
        Ok(())
    }

    fn finish_table(&mut self) -> Result<TableMeta> {
        self.seal_block()?;
        let filter = BloomFilter::from_hashes(&self.key_hashes, self.opts.bloom_bits_per_key);
        self.props.data_blocks = self.blocks;
        self.props.distinct_keys = self.key_hashes.len() as u64;
        self.props.largest_key =
            if self.props.entries == 0 { Vec::new() } else { self.last_key.clone() };
        let base = self.written;
        let out = &mut self.pending;
        let blocks = u32::try_from(self.blocks).unwrap_or(u32::MAX);
        let index_body = &self.index;
        let index = encode_section(out, base, INDEX_TAG, |b| {
            b.extend_from_slice(&blocks.to_le_bytes());
            b.extend_from_slice(index_body);
        });
        let filter = encode_section(out, base, FILTER_TAG, |b| filter.encode(b));
        let props = &self.props;
        let meta = encode_section(out, base, META_TAG, |b| props.encode(b));
        out.extend_from_slice(&Footer { index, filter, meta }.encode());
        self.flush()?;
        let r = self.file.sync_data();
        self.io_result(r)?;
        Ok(TableMeta {
            file_no: self.file_no,
            size_bytes: self.written,
            smallest_key: Bytes::from(std::mem::take(&mut self.props.smallest_key)),
            largest_key: Bytes::from(std::mem::take(&mut self.props.largest_key)),
            min_seq: SeqNo(self.props.min_seq),
            max_seq: SeqNo(self.props.max_seq),
            entries: self.props.entries,
            tombstones: self.props.tombstones,
        })
    }
}

impl TableBuilder for MmapTableBuilder {
    fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.add_entry(key, seq, kind, value)
    }

    fn estimated_size(&self) -> u64 {
        let filter =
            (self.key_hashes.len() as u64 * u64::from(self.opts.bloom_bits_per_key)).div_ceil(8);
        let index = self.index.len() + INDEX_ENTRY_FIXED_LEN + self.last_key.len() + 4;
        let meta = META_FIXED_LEN + 8 + self.props.smallest_key.len() + self.last_key.len();
        self.written
            + (self.pending.len()
                + self.block.size()
                + index
                + meta
                + 3 * SECTION_OVERHEAD
                + 4
                + FOOTER_LEN) as u64
            + filter
    }

    fn entries(&self) -> u64 {
        self.props.entries
    }

    fn finish(mut self: Box<Self>) -> Result<TableMeta> {
        self.check_usable()?;
        self.finish_table()
    }
}
