//! Options of the file WAL.

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1024 * 1024;

/// Default distance the WAL zeroes ahead of its write position: 1 MiB.
pub const DEFAULT_ZERO_AHEAD_BYTES: u64 = 1024 * 1024;

/// Default interval at which the WAL starts writeback of what it appended: 1 MiB.
pub const DEFAULT_WRITEBACK_BYTES: u64 = 1024 * 1024;

/// How the file WAL lays out and keeps its segments.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileWalOptions {
    /// A segment is closed and a new one started once a record would take it past this
    /// size. A single record larger than this gets a segment of its own. Default 64 MiB.
    pub segment_size_bytes: u64,
    /// Reserve each segment's full size up front (fallocate), so appends do not extend
    /// the file and fdatasync has no size change to flush. Default `true`.
    pub preallocate: bool,
    /// Overwrite the segment with zeros this far ahead of the write position (0: off).
    /// Preallocated extents are "unwritten" to the file system, and so is space past the
    /// end of a growing file: a write into either makes the next fdatasync commit file
    /// system metadata (on ext4 a journal commit, which waits behind every other
    /// process's metadata changes). Zeroing ahead pays that once per top-up (a sixteenth
    /// of this distance at a time, so no single fdatasync flushes a large run of fresh
    /// zeros), and a `Sync` append's fdatasync otherwise flushes data only. Default 1 MiB.
    pub zero_ahead_bytes: u64,
    /// Start the OS writing the segment back every this many appended bytes, without
    /// waiting (`sync_file_range`; 0: off). Without it, `Buffered` appends leave up to
    /// a whole segment dirty in the page cache, and the fdatasync that closes the
    /// segment at rotation (inside an append) flushes all of it at once: a stall of
    /// tens to hundreds of milliseconds. Like RocksDB's `wal_bytes_per_sync`, writeback
    /// stays this far behind the write position, so it never locks the page being
    /// appended to (see `strata_core::fs::WritebackPacer`). Default 1 MiB.
    pub writeback_bytes: u64,
    /// Prepare the next segment ahead, off the write path: a file of
    /// `segment_size_bytes` written zeros, fdatasynced, which the next rotation takes
    /// by writing its header and renaming it. Creating and extending a file are file
    /// system metadata operations, and a first write into fresh blocks (even into
    /// preallocated ones) makes the file system allocate or convert extents under the
    /// file's lock: on a disk busy with flushes and compactions either can stall the
    /// append that does it for tens of milliseconds. With a spare, appends only ever
    /// overwrite written zeros. Costs one segment of disk space; when no spare is
    /// ready (the first rotation after open, or a rotation sooner than the spare was
    /// written) the segment is created in line as without it. Default `true`.
    pub spare_segment: bool,
    /// Closed segments are deleted after `checkpoint` only while the segments newer
    /// than them still hold at least this many bytes, so subscribers and replicas can
    /// catch up from the log. Default 0 (delete as soon as checkpointed).
    pub retention_bytes: u64,
    /// A reader (subscriber, historical replay, replica) pins the segments it has yet
    /// to read: `checkpoint` keeps them while the log from the oldest pinned segment on
    /// holds at most this many bytes. A reader that lags further is cut off — its next
    /// read returns `Error::SequenceUnavailable`, the cut-off is logged and counted
    /// ([`crate::FileWal::readers_cut_off`]) — so a stalled reader never fills the
    /// disk. Default 1 GiB.
    pub reader_retention_bytes: u64,
}

impl Default for FileWalOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            preallocate: true,
            zero_ahead_bytes: DEFAULT_ZERO_AHEAD_BYTES,
            writeback_bytes: DEFAULT_WRITEBACK_BYTES,
            spare_segment: true,
            retention_bytes: 0,
            reader_retention_bytes: DEFAULT_READER_RETENTION_BYTES,
        }
    }
}

/// Default [`FileWalOptions::reader_retention_bytes`]: 1 GiB.
pub const DEFAULT_READER_RETENTION_BYTES: u64 = 1024 * 1024 * 1024;

impl FileWalOptions {
    /// Sets the segment size. Default 64 MiB.
    #[must_use]
    pub fn with_segment_size_bytes(mut self, bytes: u64) -> Self {
        self.segment_size_bytes = bytes;
        self
    }

    /// Turns preallocation on or off. Default on.
    #[must_use]
    pub fn with_preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }

    /// Sets how far ahead of the write position segments are zeroed (0: off). Default
    /// 1 MiB.
    #[must_use]
    pub fn with_zero_ahead_bytes(mut self, bytes: u64) -> Self {
        self.zero_ahead_bytes = bytes;
        self
    }

    /// Sets how many appended bytes trigger a writeback hint (0: off). Default 1 MiB.
    #[must_use]
    pub fn with_writeback_bytes(mut self, bytes: u64) -> Self {
        self.writeback_bytes = bytes;
        self
    }

    /// Turns the spare segment on or off. Default on.
    #[must_use]
    pub fn with_spare_segment(mut self, on: bool) -> Self {
        self.spare_segment = on;
        self
    }

    /// Sets the retention floor in bytes. Default 0.
    #[must_use]
    pub fn with_retention_bytes(mut self, bytes: u64) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets how much log readers may pin. Default 1 GiB.
    #[must_use]
    pub fn with_reader_retention_bytes(mut self, bytes: u64) -> Self {
        self.reader_retention_bytes = bytes;
        self
    }
}
