//! RocksDB (through the `rocksdb` crate, 0.20: RocksDB 7.9's C API, which Debian 12's
//! `librocksdb-dev` 7.8.3 also provides) as a peer engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, DB, DBCompressionType, Options, ReadOptions, WriteBatch, WriteOptions,
};

use super::{Engine, EngineKind, PeerConfig, PeerError, Result};

/// RocksDB with the default column family, settings matched to [`PeerConfig`].
pub struct RocksDbEngine {
    db: DB,
    sync: WriteOptions,
    buffered: WriteOptions,
    // Reused by every point read: `DB::get_pinned` would create and destroy a C++
    // `ReadOptions` per call, work the other engines do not do.
    read: ReadOptions,
    dir: PathBuf,
    // Kept alive as long as the database uses it.
    _cache: Cache,
}

impl RocksDbEngine {
    /// Opens (or creates) a database in `dir` with `config`.
    pub fn open(dir: &Path, config: &PeerConfig) -> Result<Self> {
        let memtable = usize::try_from(config.memtable_bytes)
            .map_err(|_| PeerError::Config("memtable size does not fit in memory".into()))?;
        let cache_bytes = usize::try_from(config.cache_bytes)
            .map_err(|_| PeerError::Config("cache size does not fit in memory".into()))?;
        let jobs = i32::try_from(config.background_threads.max(1) + 1)
            .map_err(|_| PeerError::Config("too many background threads".into()))?;
        let cache = Cache::new_lru_cache(cache_bytes)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_block_size(config.block_size);
        table.set_bloom_filter(f64::from(config.bloom_bits_per_key), false);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(memtable);
        opts.set_compression_type(DBCompressionType::None);
        opts.set_max_background_jobs(jobs);
        // RocksDB 8.4+ turns this on by default, 7.x does not; Strata sizes levels
        // dynamically too.
        opts.set_level_compaction_dynamic_level_bytes(true);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, dir)?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let mut buffered = WriteOptions::default();
        buffered.set_sync(false);
        Ok(Self {
            db,
            sync,
            buffered,
            read: ReadOptions::default(),
            dir: dir.to_path_buf(),
            _cache: cache,
        })
    }

    fn write_options(&self, sync: bool) -> &WriteOptions {
        if sync { &self.sync } else { &self.buffered }
    }

    fn busy(&self) -> Result<bool> {
        for property in [
            "rocksdb.num-running-compactions",
            "rocksdb.num-running-flushes",
            "rocksdb.compaction-pending",
        ] {
            if self.db.property_int_value(property)?.unwrap_or(0) > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Engine for RocksDbEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::RocksDb
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db.put_opt(key, value, self.write_options(sync))?;
        Ok(())
    }

    fn write_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            batch.put(k, v);
        }
        self.db.write_opt(batch, self.write_options(sync))?;
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.db.get_pinned_opt(key, &self.read)? {
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
        let mut it = self.db.raw_iterator();
        it.seek(start);
        let mut n = 0;
        while n < limit {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) => visit(k, v),
                _ => break,
            }
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    fn settle(&self) -> Result<()> {
        self.db.flush()?;
        let mut idle = 0;
        while idle < 3 {
            if self.busy()? {
                idle = 0;
            } else {
                idle += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn engine_stats(&self) -> Vec<(String, u64)> {
        let int = |property: &str| self.db.property_int_value(property).ok().flatten();
        let mut out = Vec::new();
        if let Some(bytes) = int("rocksdb.live-sst-files-size") {
            out.push(("live_table_bytes".to_string(), bytes));
        }
        let levels: Vec<u64> =
            (0..7).map_while(|level| int(&format!("rocksdb.num-files-at-level{level}"))).collect();
        // Trailing empty levels say nothing.
        let used = levels.iter().rposition(|&n| n > 0).map_or(0, |last| last + 1);
        for (level, tables) in levels.iter().take(used).enumerate() {
            out.push((format!("L{level}_tables"), *tables));
        }
        out
    }
}
