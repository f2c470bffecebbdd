//! The meta section: the table's properties (the [`strata_core::TableMeta`] fields and
//! the builder's settings; layout in [`crate::format`]).

use std::path::Path;

use bytes::Bytes;
use strata_core::{Error, Result};

use crate::block::Compression;
use crate::format::{
    MAX_KEY_LEN, META_FIXED_LEN, META_TAG, SectionHandle, read_u32, read_u64, section_body,
};

/// The table properties stored in the meta section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// Entries (versions), tombstones included.
    pub entries: u64,
    /// Tombstones among the entries.
    pub tombstones: u64,
    /// Smallest sequence (0 for an empty table).
    pub min_seq: u64,
    /// Greatest sequence (0 for an empty table).
    pub max_seq: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Number of distinct user keys (what the filter was sized for).
    pub distinct_keys: u64,
    /// The file number the builder was given.
    pub file_no: u64,
    /// The builder's `block_size` option.
    pub block_size: u32,
    /// The builder's compression option.
    pub compression: Compression,
    /// Smallest user key (empty for an empty table).
    pub smallest_key: Vec<u8>,
    /// Largest user key (empty for an empty table).
    pub largest_key: Vec<u8>,
}

impl Properties {
    /// Appends the meta body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.entries,
            self.tombstones,
            self.min_seq,
            self.max_seq,
            self.data_blocks,
            self.distinct_keys,
            self.file_no,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&[self.compression.tag(), 0, 0, 0]);
        for key in [&self.smallest_key, &self.largest_key] {
            out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(key);
        }
    }

    /// Decodes a meta body; `at` is the body's file offset, for errors.
    pub fn decode(path: &Path, body: &[u8], at: u64) -> Result<Properties> {
        let bad = |reason: String| Error::corruption(path, at, reason);
        let Some(fixed) = body.get(..META_FIXED_LEN) else {
            return Err(bad(format!(
                "meta section body of {} bytes is shorter than its {META_FIXED_LEN} fixed bytes",
                body.len()
            )));
        };
        let u = |i: usize| read_u64(fixed, i * 8);
        let compression_tag = fixed[60];
        let Some(compression) = Compression::from_tag(compression_tag) else {
            return Err(bad(format!("unknown compression tag {compression_tag} in meta section")));
        };
        let mut pos = META_FIXED_LEN;
        let mut keys = [Vec::new(), Vec::new()];
        for (name, key) in ["smallest", "largest"].into_iter().zip(&mut keys) {
            let len = body.get(pos..pos + 4).map(|b| read_u32(b, 0) as usize);
            let bytes =
                len.filter(|l| *l <= MAX_KEY_LEN).and_then(|l| body.get(pos + 4..pos + 4 + l));
            let Some(bytes) = bytes else {
                return Err(bad(format!(
                    "{name} key (length {len:?}) at body byte {pos} does not fit the meta section \
                     of {} bytes",
                    body.len()
                )));
            };
            *key = bytes.to_vec();
            pos += 4 + bytes.len();
        }
        if pos != body.len() {
            return Err(bad(format!(
                "meta section has {} unexpected trailing bytes",
                body.len().saturating_sub(pos)
            )));
        }
        let [smallest_key, largest_key] = keys;
        let props = Properties {
            entries: u(0),
            tombstones: u(1),
            min_seq: u(2),
            max_seq: u(3),
            data_blocks: u(4),
            distinct_keys: u(5),
            file_no: u(6),
            block_size: read_u32(fixed, 56),
            compression,
            smallest_key,
            largest_key,
        };
        let consistent = props.tombstones <= props.entries
            && props.min_seq <= props.max_seq
            && props.data_blocks <= props.entries
            && props.distinct_keys <= props.entries
            && (props.entries == 0) == (props.data_blocks == 0)
            && props.smallest_key <= props.largest_key;
        if !consistent {
            return Err(bad(format!("meta section holds inconsistent properties: {props:?}")));
        }
        Ok(props)
    }
}

/// Checks and decodes the meta section.
pub(crate) fn parse_meta(path: &Path, data: &Bytes, handle: SectionHandle) -> Result<Properties> {
    let body = section_body(path, data, handle, META_TAG)?;
    let at = body.start as u64;
    Properties::decode(path, data.get(body).unwrap_or_default(), at)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn properties_round_trip() {
        let props = Properties {
            entries: 10,
            tombstones: 2,
            min_seq: 3,
            max_seq: 90,
            data_blocks: 2,
            distinct_keys: 5,
            file_no: 42,
            block_size: 4096,
            compression: Compression::Lz4,
            smallest_key: b"a".to_vec(),
            largest_key: b"zz".to_vec(),
        };
        let mut body = Vec::new();
        props.encode(&mut body);
        let p = PathBuf::from("t.sst");
        assert_eq!(Properties::decode(&p, &body, 0).expect("valid"), props);
        assert!(Properties::decode(&p, &body[..body.len() - 1], 0).is_err());
    }
}
