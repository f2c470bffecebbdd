//! The errors of registry look-ups, stack assembly and library loading.

use std::path::PathBuf;

use crate::registry::{AbiMismatch, PluginKind};

/// Why a stack could not be assembled or a plugin library not loaded.
///
/// Every variant names what a person needs to fix it: the file, the section and key,
/// the plugins that do exist. It converts into [`strata_core::Error::Config`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The configuration file could not be read.
    #[error("cannot read stack configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid TOML, or a section or key has the wrong shape.
    #[error("invalid stack configuration {origin}: {message}")]
    Syntax {
        /// Where the configuration came from (a path, or `<string>`).
        origin: String,
        /// What is wrong, with the TOML parser's line and column where it has them.
        message: String,
    },
    /// No plugin of this kind has this name.
    #[error(
        "unknown {kind} plugin `{name}`; known {kind} plugins: {}",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )]
    UnknownPlugin {
        /// The kind asked for.
        kind: PluginKind,
        /// The name asked for.
        name: String,
        /// Every registered name of that kind.
        known: Vec<String>,
    },
    /// An option is unknown, missing or ill-typed.
    #[error("{}: {message}", option_path(section, key))]
    Option {
        /// The configuration section (`wal`, `engine`, ...).
        section: String,
        /// The key's path inside the section (empty for the section as a whole).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The plugin parsed its options but refused them or failed to start.
    #[error("{kind} plugin `{name}`: {source}")]
    Build {
        /// The plugin's kind.
        kind: PluginKind,
        /// The plugin's name.
        name: String,
        /// The plugin's error.
        #[source]
        source: strata_core::Error,
    },
    /// The `[engine]` options are inconsistent.
    #[error("[engine]: {0}")]
    Engine(#[source] strata_core::Error),
    /// Two registrations of one kind carry the same name.
    #[error("{kind} plugin `{name}` is registered twice: by {first} and by {second}")]
    Duplicate {
        /// The kind.
        kind: PluginKind,
        /// The name both use.
        name: String,
        /// Where the first came from (`linked` or a library path).
        first: String,
        /// Where the second came from.
        second: String,
    },
    /// The library could not be opened or does not export a Strata plugin.
    #[error("cannot load plugin library {path}: {reason}")]
    Load {
        /// The library.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The library was built against another strata-core, another rustc or other
    /// shared types; nothing in it was called.
    #[error(
        "refusing plugin library {path}: {mismatch}; rebuild the plugin against this strata-core with the same rustc"
    )]
    AbiMismatch {
        /// The library.
        path: PathBuf,
        /// Which part of the stamp differs, with both values.
        mismatch: AbiMismatch,
    },
}

fn option_path(section: &str, key: &str) -> String {
    if key.is_empty() { format!("[{section}]") } else { format!("{section}.{key}") }
}

impl From<PluginError> for strata_core::Error {
    fn from(e: PluginError) -> Self {
        strata_core::Error::Config(e.to_string())
    }
}
