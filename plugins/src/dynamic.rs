//! Plugin libraries loaded at run time.
//!
//! A loaded library is never unloaded: the factories it built hand out trait objects
//! whose vtables and code live in the library, its registrations' names are
//! `&'static str` pointing into it, and Rust code may have registered thread-local
//! destructors there. Unloading while any of these exists is undefined behaviour, and
//! nothing can prove none does, so the `Library` handle is leaked on purpose and the
//! library stays mapped for the life of the process.

use std::path::Path;

use parking_lot::Mutex;

use crate::PluginError;
use crate::ffi;
use crate::lookup::{self, PluginInfo, PluginSource};
use crate::registry::AbiStamp;

/// Serialises loads, so a library is checked and registered at most once.
static LOADING: Mutex<()> = Mutex::new(());

/// Loads the plugin library at `path` and registers its plugins; returns them.
///
/// Before anything in the library is called, its ABI stamp is compared with this
/// binary's ([`AbiStamp::CURRENT`]): a library built against another strata-core
/// version, by another rustc or with other shared types is refused with
/// [`PluginError::AbiMismatch`] naming the part that differs. A name already registered
/// for the same kind is [`PluginError::Duplicate`]. Loading the same file again is a
/// no-op that returns its plugins.
///
/// Requirements on the library beyond the stamp: it must use the same global allocator
/// as the host (the default system allocator on both sides), since boxes and `Arc`s
/// cross the boundary in both directions; and its statics (a `tracing` subscriber, for
/// instance) are its own copies, not the host's.
pub fn load_library(path: impl AsRef<Path>) -> Result<Vec<PluginInfo>, PluginError> {
    lookup::link_defaults();
    let path = path.as_ref();
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| PluginError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
    let _serial = LOADING.lock();
    let decl = match lookup::loaded_library(&canonical) {
        Some(decl) => decl,
        None => {
            let load_err = |reason: String| PluginError::Load { path: canonical.clone(), reason };
            // Leaked on purpose, even when refused below (its initializers have run):
            // see the module documentation.
            let library: &'static libloading::Library =
                Box::leak(Box::new(ffi::open(&canonical).map_err(load_err)?));
            let stamp = ffi::stamp(library).map_err(load_err)?;
            AbiStamp::CURRENT.check(&stamp).map_err(|mismatch| PluginError::AbiMismatch {
                path: canonical.clone(),
                mismatch,
            })?;
            ffi::lend_allocator(library).map_err(load_err)?;
            let decl = ffi::declaration(library).map_err(load_err)?;
            lookup::check_new_declaration(&canonical, decl)?;
            lookup::add_library(canonical.clone(), decl);
            decl
        }
    };
    let source = PluginSource::Library(canonical);
    let info =
        |kind, name, description| PluginInfo { kind, name, description, source: source.clone() };
    use crate::registry::PluginKind as K;
    let mut out = Vec::new();
    out.extend(decl.wal.iter().map(|p| info(K::Wal, p.name, p.description)));
    out.extend(decl.memtable.iter().map(|p| info(K::MemTable, p.name, p.description)));
    out.extend(decl.table.iter().map(|p| info(K::Table, p.name, p.description)));
    out.extend(decl.compaction.iter().map(|p| info(K::Compaction, p.name, p.description)));
    Ok(out)
}
