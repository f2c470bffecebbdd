//! Finding registrations by kind and name: the ones linked into the binary
//! ([`inventory`](crate::registry::inventory)) first, then those of loaded libraries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use strata_core::{CompactionPolicy, FailoverFactory, MemTableFactory, TableFormat, WalFactory};

use crate::PluginError;
use crate::registry::{
    self, BuildError, CompactionPlugin, FailoverPlugin, MemTablePlugin, PluginDeclaration,
    PluginKind, PluginOptions, TablePlugin, WalPlugin,
};

/// Where a registration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into this binary.
    Linked,
    /// From a library loaded at run time.
    Library(std::path::PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Linked => f.write_str("linked"),
            PluginSource::Library(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One registered plugin, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Its kind.
    pub kind: PluginKind,
    /// Its name within the kind.
    pub name: &'static str,
    /// Its one-line description.
    pub description: &'static str,
    /// Where it comes from.
    pub source: PluginSource,
}

/// IMPORTANT: the default plugins are registered by [`crate::builtin`]. A linker only
/// keeps the code that something references, and a registration nobody calls is not a
/// reference: without this, a binary could lose the `wal = "file"` registration. Every
/// public entry point of this crate calls it.
pub(crate) fn link_defaults() {
    crate::builtin::link();
}

/// A registration struct of one kind, seen generically.
pub(crate) trait Registration: Copy + 'static {
    type Factory: ?Sized;
    const KIND: PluginKind;
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn build(&self, options: &PluginOptions) -> Result<Arc<Self::Factory>, BuildError>;
    fn linked() -> Vec<&'static Self>;
    fn declared(decl: &'static PluginDeclaration) -> &'static [Self];
}

macro_rules! registration {
    ($reg:ty, $factory:ty, $linked:path, $field:ident) => {
        impl Registration for $reg {
            type Factory = $factory;
            const KIND: PluginKind = <$reg>::KIND;
            fn name(&self) -> &'static str {
                self.name
            }
            fn description(&self) -> &'static str {
                self.description
            }
            fn build(&self, options: &PluginOptions) -> Result<Arc<$factory>, BuildError> {
                (self.build)(options)
            }
            fn linked() -> Vec<&'static Self> {
                $linked().collect()
            }
            fn declared(decl: &'static PluginDeclaration) -> &'static [Self] {
                decl.$field
            }
        }
    };
}

registration!(WalPlugin, dyn WalFactory, registry::wal_plugins, wal);
registration!(MemTablePlugin, dyn MemTableFactory, registry::memtable_plugins, memtable);
registration!(TablePlugin, dyn TableFormat, registry::table_plugins, table);
registration!(CompactionPlugin, dyn CompactionPolicy, registry::compaction_plugins, compaction);
registration!(FailoverPlugin, dyn FailoverFactory, registry::failover_plugins, failover);

/// Libraries loaded so far (canonical path, declaration), added by
/// [`load_library`](crate::load_library) once their declaration was checked.
static LOADED: RwLock<Vec<(PathBuf, &'static PluginDeclaration)>> = RwLock::new(Vec::new());

/// The declaration of the library loaded from `path` (canonical), if it was.
pub(crate) fn loaded_library(path: &Path) -> Option<&'static PluginDeclaration> {
    LOADED.read().iter().find(|(p, _)| p == path).map(|(_, d)| *d)
}

/// Registers a loaded library's plugins (checked with [`check_new_declaration`]).
pub(crate) fn add_library(path: PathBuf, decl: &'static PluginDeclaration) {
    LOADED.write().push((path, decl));
}

/// Every registration of kind `R` with its source, linked ones first.
pub(crate) fn all<R: Registration>() -> Vec<(&'static R, PluginSource)> {
    link_defaults();
    let mut out: Vec<(&'static R, PluginSource)> =
        R::linked().into_iter().map(|r| (r, PluginSource::Linked)).collect();
    for (path, decl) in LOADED.read().iter() {
        out.extend(R::declared(decl).iter().map(|r| (r, PluginSource::Library(path.clone()))));
    }
    out
}

/// The registration named `name`; an error lists the known names.
pub(crate) fn find<R: Registration>(name: &str) -> Result<&'static R, PluginError> {
    let all = all::<R>();
    let mut matches = all.iter().filter(|(r, _)| r.name() == name);
    let Some((found, source)) = matches.next() else {
        let mut known: Vec<String> = all.iter().map(|(r, _)| r.name().to_owned()).collect();
        known.sort();
        known.dedup();
        return Err(PluginError::UnknownPlugin { kind: R::KIND, name: name.to_owned(), known });
    };
    if let Some((_, second)) = matches.next() {
        return Err(PluginError::Duplicate {
            kind: R::KIND,
            name: name.to_owned(),
            first: source.to_string(),
            second: second.to_string(),
        });
    }
    Ok(found)
}

/// Builds the factory of plugin `name` from `options`, mapping its errors to the
/// configuration section.
pub(crate) fn build<R: Registration>(
    name: &str,
    options: &PluginOptions,
) -> Result<Arc<R::Factory>, PluginError> {
    let reg = find::<R>(name)?;
    reg.build(options).map_err(|e| match e {
        BuildError::Option { key, message } => {
            PluginError::Option { section: R::KIND.section().to_owned(), key, message }
        }
        BuildError::Component(source) => {
            PluginError::Build { kind: R::KIND, name: name.to_owned(), source }
        }
    })
}

fn infos<R: Registration>() -> impl Iterator<Item = PluginInfo> {
    all::<R>().into_iter().map(|(r, source)| PluginInfo {
        kind: R::KIND,
        name: r.name(),
        description: r.description(),
        source,
    })
}

/// Every registered plugin — linked into this binary or from a loaded library — by
/// kind, then name.
pub fn plugins() -> Vec<PluginInfo> {
    let mut out: Vec<PluginInfo> = infos::<WalPlugin>()
        .chain(infos::<MemTablePlugin>())
        .chain(infos::<TablePlugin>())
        .chain(infos::<CompactionPlugin>())
        .chain(infos::<FailoverPlugin>())
        .collect();
    out.sort_by(|a, b| (a.kind, a.name).cmp(&(b.kind, b.name)));
    out
}

/// The names registered for `kind`, sorted.
pub fn plugin_names(kind: PluginKind) -> Vec<&'static str> {
    plugins().into_iter().filter(|p| p.kind == kind).map(|p| p.name).collect()
}

/// Checks that the loaded `decl` adds no name that is already registered.
pub(crate) fn check_new_declaration(
    path: &std::path::Path,
    decl: &'static PluginDeclaration,
) -> Result<(), PluginError> {
    fn check<R: Registration>(
        path: &std::path::Path,
        decl: &'static PluginDeclaration,
    ) -> Result<(), PluginError> {
        let existing = all::<R>();
        let mut seen: Vec<&str> = Vec::new();
        for new in R::declared(decl) {
            if let Some((_, source)) = existing.iter().find(|(r, _)| r.name() == new.name()) {
                return Err(PluginError::Duplicate {
                    kind: R::KIND,
                    name: new.name().to_owned(),
                    first: source.to_string(),
                    second: path.display().to_string(),
                });
            }
            if seen.contains(&new.name()) {
                return Err(PluginError::Duplicate {
                    kind: R::KIND,
                    name: new.name().to_owned(),
                    first: path.display().to_string(),
                    second: path.display().to_string(),
                });
            }
            seen.push(new.name());
        }
        Ok(())
    }
    check::<WalPlugin>(path, decl)?;
    check::<MemTablePlugin>(path, decl)?;
    check::<TablePlugin>(path, decl)?;
    check::<CompactionPlugin>(path, decl)?;
    check::<FailoverPlugin>(path, decl)
}
