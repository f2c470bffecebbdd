//! Committing a change of the table set, shared by flushes and compactions: open the
//! tables a change adds, write its manifest edit (the commit point: a crash before the
//! edit is durable leaves the old table set, one after it the new one), swap in the new
//! version, and roll the manifest over when it grew too big.
//!
//! This module sits below both [`super::background`] (the threads) and
//! [`super::compact`] (the tasks), which use it and never each other's internals.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::version::{TableHandle, Version};
use super::{ImmMem, Shared, State, VersionSet};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::manifest::{ManifestWriter, VersionEdit, manifest_file_name};
use crate::table::{FileNo, TableMeta};

/// Opens a freshly written table and checks it reads back as what the builder said.
pub(super) fn open_handle(s: &Shared, meta: TableMeta) -> Result<Arc<TableHandle>> {
    let path = s.table_path(meta.file_no);
    let table = s.format.open(s.fs.open(&path, OpenMode::ReadOnly)?, meta.file_no)?;
    if table.meta().entries != meta.entries || table.meta().size_bytes != meta.size_bytes {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "table reads back as {} entries / {} bytes but was written as {} / {}",
                table.meta().entries,
                table.meta().size_bytes,
                meta.entries,
                meta.size_bytes
            ),
        ));
    }
    Ok(Arc::new(TableHandle::new(meta, table, Arc::clone(&s.fs), path)))
}

/// Writes `edit` to the manifest and mirrors it in the manifest state, then publishes
/// `version` as the current one (dropping the memtable `flushed` from the state, if
/// any). The caller holds the version set (`vs`) and built `version` from the current
/// version under it, so no other change can slip in between.
pub(super) fn commit(
    s: &Shared,
    vs: &mut VersionSet,
    edit: &VersionEdit,
    version: Version,
    flushed: Option<&ImmMem>,
) -> Result<()> {
    vs.manifest.append(edit)?;
    vs.state.apply(edit, &s.dir, 0)?;
    let _g = s.state_lock.lock();
    let cur = s.state.load_full();
    let immutable = match flushed {
        None => cur.immutable.clone(),
        Some(imm) => cur
            .immutable
            .iter()
            .filter(|m| !std::ptr::addr_eq(Arc::as_ptr(&m.mem), Arc::as_ptr(&imm.mem)))
            .cloned()
            .collect(),
    };
    s.state.store(Arc::new(State {
        active: Arc::clone(&cur.active),
        immutable,
        version: Arc::new(version),
    }));
    Ok(())
}

/// An edit that records `added` and `removed` and the next file number.
pub(super) fn edit_for(
    s: &Shared,
    added: &[(usize, Arc<TableHandle>)],
    removed: &[(usize, Arc<TableHandle>)],
) -> VersionEdit {
    VersionEdit {
        added: added.iter().map(|(l, h)| (*l, h.meta.clone())).collect(),
        removed: removed.iter().map(|(l, h)| (*l, h.meta.file_no)).collect(),
        next_file_no: Some(FileNo(s.next_file_no.load(Ordering::SeqCst))),
        ..VersionEdit::default()
    }
}

/// Replaces a manifest that grew past its limit with one holding a single snapshot edit.
pub(super) fn roll_manifest_if_big(s: &Shared, vs: &mut VersionSet) -> Result<()> {
    if vs.manifest.len() < s.options.max_manifest_bytes {
        return Ok(());
    }
    let old = vs.manifest.number();
    let number = s.alloc_file_no();
    vs.state.next_file_no = FileNo(s.next_file_no.load(Ordering::SeqCst));
    vs.manifest = ManifestWriter::create(&*s.fs, &s.dir, number, &vs.state)?;
    let old_path = s.dir.join(manifest_file_name(old));
    if let Err(e) = s.fs.remove_file(&old_path) {
        tracing::warn!(error = %e, "could not delete the previous manifest");
    }
    tracing::info!(manifest = %number, "manifest rolled over");
    Ok(())
}
