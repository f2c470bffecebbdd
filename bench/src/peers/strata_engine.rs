//! Strata's default stack as a peer engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::{Db, DbOptions, Durability, WriteBatch};
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};

use super::{Engine, EngineKind, PeerConfig, PeerError, Result};

/// Strata: file WAL, skiplist memtable, mmap'd tables, leveled compaction.
pub struct StrataEngine {
    db: Db,
    dir: PathBuf,
}

impl StrataEngine {
    /// Opens (or creates) a store in `dir` with `config`.
    pub fn open(dir: &Path, config: &PeerConfig) -> Result<Self> {
        let memtable_size_bytes = usize::try_from(config.memtable_bytes)
            .map_err(|_| PeerError::Config("memtable size does not fit in memory".into()))?;
        let table = MmapTableOptions::default()
            .with_block_size(config.block_size)
            .with_bloom_bits_per_key(config.bloom_bits_per_key);
        let leveled = LeveledPolicy::new(LeveledOptions::default())?;
        let db = strata_plugins::default_builder(dir)
            .with_table_format(Arc::new(MmapTableFormat::new(table)))
            .with_compaction_policy(Arc::new(leveled))
            .with_options(DbOptions {
                memtable_size_bytes,
                compaction_threads: config.background_threads.max(1),
                ..DbOptions::default()
            })
            .open()?;
        Ok(Self { db, dir: dir.to_path_buf() })
    }

    /// The open store.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn durability(sync: bool) -> Durability {
    if sync { Durability::Sync } else { Durability::Buffered }
}

impl Engine for StrataEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Strata
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db.put(key, value, durability(sync))?;
        Ok(())
    }

    fn write_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
        let mut batch = WriteBatch::with_capacity(bytes);
        for (k, v) in entries {
            batch.put(k, v);
        }
        self.db.write(&batch, durability(sync))?;
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.db.get(key)? {
            Some(v) => {
                out.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let mut n = 0;
        for entry in self.db.scan(start..).take(limit) {
            let (k, v) = entry?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn settle(&self) -> Result<()> {
        self.db.flush()?;
        self.db.wait_for_background()?;
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn engine_stats(&self) -> Vec<(String, u64)> {
        let s = self.db.stats();
        let mut out = vec![
            ("flushes".to_string(), s.flushes),
            ("compactions".to_string(), s.compactions),
            ("compaction_read_bytes".to_string(), s.compaction_read_bytes),
            ("compaction_written_bytes".to_string(), s.compaction_written_bytes),
            ("stall_slowdowns".to_string(), s.stall_slowdowns),
            ("stall_stops".to_string(), s.stall_stops),
            ("stall_micros".to_string(), s.stall_micros),
            ("live_table_bytes".to_string(), s.table_bytes()),
        ];
        for (i, level) in s.levels.iter().enumerate() {
            out.push((format!("L{i}_tables"), level.tables as u64));
        }
        out
    }
}
