//! fjall (pure-Rust LSM) as a peer engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjall::config::{BlockSizePolicy, BloomConstructionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, EngineKind, PeerConfig, PeerError, Result};

/// fjall with one keyspace, settings matched to [`PeerConfig`].
pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
    dir: PathBuf,
}

impl FjallEngine {
    /// Opens (or creates) a database in `dir` with `config`.
    pub fn open(dir: &Path, config: &PeerConfig) -> Result<Self> {
        let block_size = u32::try_from(config.block_size)
            .ok()
            .filter(|b| (1024..=1 << 20).contains(b))
            .ok_or_else(|| {
                PeerError::Config(format!(
                    "fjall needs a block size between 1 KiB and 1 MiB, not {}",
                    config.block_size
                ))
            })?;
        let db = Database::builder(dir)
            .cache_size(config.cache_bytes)
            .worker_threads(config.background_threads.max(1) + 1)
            .open()?;
        let bits = config.bloom_bits_per_key as f32;
        let memtable = config.memtable_bytes;
        let keyspace = db.keyspace("bench", || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(memtable)
                .data_block_size_policy(BlockSizePolicy::all(block_size))
                .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                    BloomConstructionPolicy::BitsPerKey(bits),
                )))
        })?;
        Ok(Self { db, keyspace, dir: dir.to_path_buf() })
    }
}

impl Engine for FjallEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Fjall
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        if sync {
            // One-entry batch: the journal write and its fdatasync happen under the
            // journal lock, atomically with the write.
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
            batch.insert(&self.keyspace, key, value);
            batch.commit()?;
        } else {
            self.keyspace.insert(key, value)?;
        }
        Ok(())
    }

    fn write_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        let mode = if sync { PersistMode::SyncData } else { PersistMode::Buffer };
        let mut batch = self.db.batch().durability(Some(mode));
        for (k, v) in entries {
            batch.insert(&self.keyspace, *k, *v);
        }
        batch.commit()?;
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.keyspace.get(key)? {
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
        for guard in self.keyspace.range(start..).take(limit) {
            let (k, v) = guard.into_inner()?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn settle(&self) -> Result<()> {
        self.keyspace.rotate_memtable_and_wait()?;
        let mut idle = 0;
        while idle < 3 {
            if self.db.outstanding_flushes() == 0 && self.db.active_compactions() == 0 {
                idle += 1;
            } else {
                idle = 0;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
