//! The two images of one simulated file (what reads see, what survives a crash) and
//! how a crash chooses between them ([`CrashMode`]).

use std::sync::Arc;

use parking_lot::Mutex;

pub(super) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
}

/// How [`SimFileSystem::crash_with`](super::SimFileSystem::crash_with) treats bytes that were written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced byte is lost: each surviving file holds exactly what its last
    /// successful `sync_data` made durable.
    DropUnsynced,
    /// A torn write: for every surviving file whose live image differs from its durable
    /// one, the unsynced changes persist in file-offset order up to a random cut point.
    ///
    /// For the common case of a file whose live image *extends* its durable image (same
    /// prefix, appended bytes), the file keeps its durable image plus a random-length
    /// prefix (possibly empty, possibly all) of the appended bytes. For a file rewritten
    /// in place (for example a preallocated log), the bytes before the cut come from the
    /// live image and the rest from the durable image. An unsynced truncation is never
    /// persisted. The cut is a pure function of `seed` and the file's path, so a seed
    /// reproduces a run.
    TornTail {
        /// Seed for the cut points.
        seed: u64,
    },
}

/// The two images of one file.
pub(super) struct FileData {
    /// What reads see.
    pub(super) live: Vec<u8>,
    /// What survives a crash.
    pub(super) durable: Vec<u8>,
    /// Byte range `[lo, hi)` of `live` that may differ from `durable` (or lies beyond
    /// it); everything outside it below `live.len()` equals `durable`. Lets `sync_data`
    /// copy only what changed, so syncing a large preallocated file stays cheap.
    pub(super) dirty: Option<(usize, usize)>,
}

impl FileData {
    pub(super) fn with_image(image: Vec<u8>) -> Self {
        Self { durable: image.clone(), live: image, dirty: None }
    }

    pub(super) fn mark_dirty(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        self.dirty = Some(match self.dirty {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// Truncates or zero-extends the live image.
    pub(super) fn resize_live(&mut self, len: usize) {
        let old = self.live.len();
        self.live.resize(len, 0);
        self.mark_dirty(old, len);
    }

    /// Copies the live image to the durable image.
    pub(super) fn sync(&mut self) {
        let len = self.live.len();
        self.durable.resize(len, 0);
        if let Some((lo, hi)) = self.dirty.take() {
            let hi = hi.min(len);
            if let (Some(dst), Some(src)) = (self.durable.get_mut(lo..hi), self.live.get(lo..hi)) {
                dst.copy_from_slice(src);
            }
        }
    }

    /// The image a [`CrashMode::TornTail`] crash leaves, with `random` choosing the cut.
    pub(super) fn torn_image(&self, random: u64) -> Vec<u8> {
        let (live, durable) = (&self.live, &self.durable);
        let common = live.iter().zip(durable.iter()).take_while(|(a, b)| a == b).count();
        if common >= live.len() {
            // Live is a prefix of (or equal to) durable: only a truncation is pending.
            return durable.clone();
        }
        let span = (live.len() - common) as u64 + 1;
        // `random % span` is below `span`, which came from a usize.
        let cut = common + usize::try_from(random % span).unwrap_or(0);
        let mut image = live.get(..cut).unwrap_or_default().to_vec();
        image.extend_from_slice(durable.get(cut..).unwrap_or_default());
        image
    }
}

/// One file (an inode): shared by every namespace entry and open handle that names it,
/// so a renamed or removed file stays usable through handles opened before.
pub(super) struct Node {
    pub(super) data: Mutex<FileData>,
}

impl Node {
    pub(super) fn new(image: Vec<u8>) -> Arc<Self> {
        Arc::new(Self { data: Mutex::new(FileData::with_image(image)) })
    }
}
