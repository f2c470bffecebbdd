//! Versions: immutable snapshots of the table set, shared by reference count.
//!
//! A reader or iterator that holds a [`Version`] keeps every table in it open and on
//! disk. A table replaced by compaction is marked obsolete; its file is deleted when
//! the last version that holds it goes away.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::compaction::LevelsView;
use crate::error::Result;
use crate::fs::FileSystem;
use crate::memtable::{KeyRange, Lookup};
use crate::table::{FileNo, Table, TableIter, TableMeta};
use crate::types::SeqNo;

/// One table of the store, open, with its metadata.
pub(crate) struct TableHandle {
    pub(crate) meta: TableMeta,
    pub(crate) table: Arc<dyn Table>,
    obsolete: AtomicBool,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHandle").field("file_no", &self.meta.file_no).finish_non_exhaustive()
    }
}

impl TableHandle {
    pub(crate) fn new(
        meta: TableMeta,
        table: Arc<dyn Table>,
        fs: Arc<dyn FileSystem>,
        path: PathBuf,
    ) -> Self {
        Self { meta, table, obsolete: AtomicBool::new(false), fs, path }
    }

    /// The table left the current version: delete its file once nobody holds it.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// Whether the table left the current version.
    pub(crate) fn is_obsolete(&self) -> bool {
        self.obsolete.load(Ordering::Acquire)
    }
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            match self.fs.remove_file(&self.path) {
                Ok(()) => tracing::debug!(file = %self.path.display(), "obsolete table deleted"),
                // The next open deletes files the manifest does not list.
                Err(e) => tracing::warn!(error = %e, "could not delete an obsolete table"),
            }
        }
    }
}

/// The tables of the store at one moment.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// L0 newest first; deeper levels sorted by smallest key, disjoint.
    pub(crate) levels: Vec<Vec<Arc<TableHandle>>>,
}

impl Version {
    pub(crate) fn empty(levels: usize) -> Self {
        Self { levels: vec![Vec::new(); levels] }
    }

    /// The newest version of `key` at `snapshot` held by any table.
    ///
    /// Versions in a shallower level (and in a newer L0 table) are always newer than
    /// those below, so the first table that holds the key answers.
    pub(crate) fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Lookup>> {
        let mut levels = self.levels.iter();
        if let Some(l0) = levels.next() {
            for t in l0 {
                if t.meta.min_seq <= snapshot
                    && t.meta.may_hold(key)
                    && let Some(found) = t.table.get(key, snapshot)?
                {
                    return Ok(Some(found));
                }
            }
        }
        for level in levels {
            let i = level.partition_point(|t| &*t.meta.largest_key < key);
            if let Some(t) = level.get(i)
                && t.meta.min_seq <= snapshot
                && t.meta.may_hold(key)
                && let Some(found) = t.table.get(key, snapshot)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// One ordered source per L0 table and per deeper level, for a merged scan.
    pub(crate) fn iters(&self, range: &KeyRange, snapshot: SeqNo) -> Vec<TableIter> {
        let mut out = Vec::new();
        for (n, level) in self.levels.iter().enumerate() {
            let tables: Vec<Arc<dyn Table>> = level
                .iter()
                .filter(|t| t.meta.min_seq <= snapshot && overlaps_range(&t.meta, range))
                .map(|t| Arc::clone(&t.table))
                .collect();
            if n == 0 {
                for t in tables {
                    out.push(t.range(range.clone(), snapshot));
                }
            } else if !tables.is_empty() {
                let r = range.clone();
                out.push(Box::new(FuseOnError::new(
                    tables.into_iter().flat_map(move |t| t.range(r.clone(), snapshot)),
                )));
            }
        }
        out
    }

    /// The shape of the tree, for a compaction policy.
    pub(crate) fn view(&self) -> LevelsView {
        LevelsView {
            levels: self
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta.clone()).collect())
                .collect(),
        }
    }

    /// Every table handle.
    pub(crate) fn all(&self) -> impl Iterator<Item = (usize, &Arc<TableHandle>)> {
        self.levels.iter().enumerate().flat_map(|(n, l)| l.iter().map(move |t| (n, t)))
    }

    pub(crate) fn find(&self, file_no: FileNo) -> Option<(usize, &Arc<TableHandle>)> {
        self.all().find(|(_, t)| t.meta.file_no == file_no)
    }

    /// Checks the shape reads rely on: in every level below L0 the tables holding
    /// entries are sorted by smallest key and their key ranges are disjoint. Returns
    /// which two tables break it.
    pub(crate) fn check_levels(&self) -> std::result::Result<(), String> {
        for (n, level) in self.levels.iter().enumerate().skip(1) {
            let mut prev: Option<&TableMeta> = None;
            for t in level.iter().map(|h| &h.meta).filter(|m| m.entries > 0) {
                if let Some(p) = prev
                    && p.largest_key >= t.smallest_key
                {
                    return Err(format!(
                        "level order: L{n} tables {} [{}..{}] and {} [{}..{}] would overlap",
                        p.file_no,
                        p.smallest_key.escape_ascii(),
                        p.largest_key.escape_ascii(),
                        t.file_no,
                        t.smallest_key.escape_ascii(),
                        t.largest_key.escape_ascii()
                    ));
                }
                prev = Some(t);
            }
        }
        Ok(())
    }

    /// A new version with `removed` taken out and `added` put in at their levels.
    pub(crate) fn apply(
        &self,
        removed: &[FileNo],
        added: Vec<(usize, Arc<TableHandle>)>,
    ) -> Version {
        let mut levels: Vec<Vec<Arc<TableHandle>>> = self
            .levels
            .iter()
            .map(|l| l.iter().filter(|t| !removed.contains(&t.meta.file_no)).cloned().collect())
            .collect();
        for (level, t) in added {
            if levels.len() <= level {
                levels.resize(level + 1, Vec::new());
            }
            levels[level].push(t);
        }
        for (n, l) in levels.iter_mut().enumerate() {
            if n == 0 {
                l.sort_by_key(|t| std::cmp::Reverse(t.meta.max_seq));
            } else {
                l.sort_by(|a, b| a.meta.smallest_key.cmp(&b.meta.smallest_key));
            }
        }
        Version { levels }
    }
}

fn overlaps_range(meta: &TableMeta, range: &KeyRange) -> bool {
    use std::ops::Bound;
    if meta.entries == 0 {
        return false;
    }
    let after_start = match &range.0 {
        Bound::Included(s) => meta.largest_key >= *s,
        Bound::Excluded(s) => meta.largest_key > *s,
        Bound::Unbounded => true,
    };
    let before_end = match &range.1 {
        Bound::Included(e) => meta.smallest_key <= *e,
        Bound::Excluded(e) => meta.smallest_key < *e,
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// Ends an iteration of results at its first error.
pub(crate) struct FuseOnError<I> {
    inner: I,
    done: bool,
}

impl<I> FuseOnError<I> {
    pub(crate) fn new(inner: I) -> Self {
        Self { inner, done: false }
    }
}

impl<T, I: Iterator<Item = Result<T>>> Iterator for FuseOnError<I> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.inner.next();
        if matches!(item, Some(Err(_)) | None) {
            self.done = true;
        }
        item
    }
}
