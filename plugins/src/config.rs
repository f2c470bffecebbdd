//! Stacks described in TOML.
//!
//! ```toml
//! [wal]
//! kind = "file"                  # the plugin; the other keys are its options
//! segment_size_bytes = 67108864
//!
//! [memtable]
//! kind = "example-btree"         # from the library loaded below
//!
//! [engine]                       # DbOptions
//! memtable_size_bytes = 134217728
//!
//! [[load]]
//! path = "libstrata_plugin_example.so"   # relative to the file's directory
//! ```
//!
//! A missing section (or a section without `kind`) selects the default plugin of its
//! kind: `wal = "file"`, `memtable = "skiplist"`, `table = "mmap"`,
//! `compaction = "leveled"`. `[failover]` is the exception: without it the stack has
//! no failover policy (a single node); with it but without `kind` it is `"manual"`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_core::{DbBuilder, DbOptions, FailoverFactory, MemTableFactory};

use crate::PluginError;
use crate::default_stack::default_plugin;
use crate::dynamic::load_library;
use crate::lookup;
use crate::registry::{
    BuildError, CompactionPlugin, FailoverPlugin, MemTablePlugin, OptionValue, PluginKind,
    PluginOptions, TablePlugin, WalPlugin,
};

/// The sections a stack configuration may hold.
const SECTIONS: &str = "wal, memtable, table, compaction, failover, engine, load";

/// The default stack, as a configuration file with every option spelled out at its
/// default value. [`StackConfig::from_toml_str`] of it equals [`StackConfig::default`]
/// (a test keeps the two in step).
pub fn default_stack_toml() -> &'static str {
    DEFAULT_STACK_TOML
}

const DEFAULT_STACK_TOML: &str = r#"# The default Strata stack, every option at its default value.

[wal]
kind = "file"
segment_size_bytes = 67108864    # 64 MiB
preallocate = true
zero_ahead_bytes = 1048576       # 1 MiB of zeros kept ahead of the writer
writeback_bytes = 1048576        # start writeback every 1 MiB appended
spare_segment = true             # next segment's zeros written ahead, off the write path
retention_bytes = 0
reader_retention_bytes = 1073741824  # 1 GiB a lagging reader may pin before it is cut off

[memtable]
kind = "skiplist"                # takes no options

[table]
kind = "mmap"
block_size = 4096
bloom_bits_per_key = 10
compression = "none"             # or "lz4"
writeback_bytes = 1048576        # start writeback every 1 MiB of table written

[compaction]
kind = "leveled"
levels = 7
l0_trigger_files = 4
l0_max_bytes = 41943040          # 40 MiB
l1_max_bytes = 419430400         # 400 MiB
level_size_multiplier = 10
dynamic_level_bytes = true
target_file_size = 33554432      # 32 MiB
max_compaction_bytes = 838860800 # 800 MiB

[engine]
memtable_size_bytes = 134217728  # 128 MiB
max_immutable_memtables = 4
l0_slowdown_tables = 8
l0_stop_tables = 12
slowdown_delay_micros = 1000
# compaction_threads defaults to the machine's cores - 1, between 1 and 4
max_manifest_bytes = 16777216    # 16 MiB
"#;

/// One component of a stack: which plugin, with which options.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentConfig {
    /// The component's kind.
    pub kind: PluginKind,
    /// The plugin's registered name.
    pub plugin: String,
    /// Its options (the section's keys other than `kind`).
    pub options: PluginOptions,
}

impl ComponentConfig {
    /// The default plugin of `kind` with default options.
    pub fn default_for(kind: PluginKind) -> Self {
        Self { kind, plugin: default_plugin(kind).to_owned(), options: PluginOptions::new() }
    }
}

/// A stack: the four components, the engine options and the plugin libraries to load.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// `[wal]`.
    pub wal: ComponentConfig,
    /// `[memtable]`.
    pub memtable: ComponentConfig,
    /// `[table]`.
    pub table: ComponentConfig,
    /// `[compaction]`.
    pub compaction: ComponentConfig,
    /// `[failover]`: the failover policy of a replicated deployment; `None` (no
    /// section) for a single node.
    pub failover: Option<ComponentConfig>,
    /// `[engine]`.
    pub engine: DbOptions,
    /// `[[load]]` libraries, resolved against the configuration file's directory.
    pub load: Vec<PathBuf>,
}

impl Default for StackConfig {
    /// The default stack ([`DefaultStack`](crate::DefaultStack)) by its plugin names:
    /// `file`, `skiplist`, `mmap`, `leveled`, default options.
    fn default() -> Self {
        Self {
            wal: ComponentConfig::default_for(PluginKind::Wal),
            memtable: ComponentConfig::default_for(PluginKind::MemTable),
            table: ComponentConfig::default_for(PluginKind::Table),
            compaction: ComponentConfig::default_for(PluginKind::Compaction),
            failover: None,
            engine: DbOptions::default(),
            load: Vec::new(),
        }
    }
}

/// The `[engine]` section: [`DbOptions`] minus the periodic checkpoint.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EngineSection {
    memtable_size_bytes: usize,
    max_immutable_memtables: usize,
    l0_slowdown_tables: usize,
    l0_stop_tables: usize,
    slowdown_delay_micros: u64,
    compaction_threads: usize,
    max_manifest_bytes: u64,
    background_nice: i32,
}

impl Default for EngineSection {
    fn default() -> Self {
        let d = DbOptions::default();
        Self {
            memtable_size_bytes: d.memtable_size_bytes,
            max_immutable_memtables: d.max_immutable_memtables,
            l0_slowdown_tables: d.l0_slowdown_tables,
            l0_stop_tables: d.l0_stop_tables,
            slowdown_delay_micros: u64::try_from(d.slowdown_delay.as_micros()).unwrap_or(u64::MAX),
            compaction_threads: d.compaction_threads,
            max_manifest_bytes: d.max_manifest_bytes,
            background_nice: d.background_nice,
        }
    }
}

/// `[[load]]` entries.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadEntry {
    path: PathBuf,
}

fn to_option_value(value: toml::Value) -> OptionValue {
    match value {
        toml::Value::String(s) => OptionValue::String(s),
        toml::Value::Integer(i) => OptionValue::Integer(i),
        toml::Value::Float(f) => OptionValue::Float(f),
        toml::Value::Boolean(b) => OptionValue::Bool(b),
        toml::Value::Datetime(d) => OptionValue::String(d.to_string()),
        toml::Value::Array(a) => OptionValue::Array(a.into_iter().map(to_option_value).collect()),
        toml::Value::Table(t) => OptionValue::Table(
            t.into_iter().map(|(k, v)| (k, to_option_value(v))).collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn options_of(table: toml::Table) -> PluginOptions {
    PluginOptions::from_map(table.into_iter().map(|(k, v)| (k, to_option_value(v))).collect())
}

fn parse_section<T: serde::de::DeserializeOwned>(
    section: &str,
    options: &PluginOptions,
) -> Result<T, PluginError> {
    options.parse().map_err(|e| match e {
        BuildError::Option { key, message } => {
            PluginError::Option { section: section.to_owned(), key, message }
        }
        other => PluginError::Option {
            section: section.to_owned(),
            key: String::new(),
            message: other.to_string(),
        },
    })
}

impl StackConfig {
    /// Parses a configuration; relative `[[load]]` paths are taken from the current
    /// directory. Checks the syntax, the sections and the `[engine]` options; plugin
    /// names and options are checked by [`StackConfig::builder`] (a plugin may come
    /// from a library that is only loaded then).
    pub fn from_toml_str(text: &str) -> Result<Self, PluginError> {
        Self::parse(text, "<string>", Path::new(""))
    }

    /// Reads and parses the configuration file at `path`; relative `[[load]]` paths
    /// are taken from the file's directory.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PluginError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PluginError::Read { path: path.to_path_buf(), source })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &path.display().to_string(), base)
    }

    fn parse(text: &str, origin: &str, base: &Path) -> Result<Self, PluginError> {
        let syntax = |message: String| PluginError::Syntax { origin: origin.to_owned(), message };
        let doc: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut config = StackConfig::default();
        for (section, value) in doc {
            match section.as_str() {
                "wal" | "memtable" | "table" | "compaction" | "failover" => {
                    let kind = match section.as_str() {
                        "wal" => PluginKind::Wal,
                        "memtable" => PluginKind::MemTable,
                        "table" => PluginKind::Table,
                        "failover" => PluginKind::Failover,
                        _ => PluginKind::Compaction,
                    };
                    let toml::Value::Table(mut table) = value else {
                        return Err(syntax(format!(
                            "`{section}` must be a table (`[{section}]`), found {}",
                            value.type_str()
                        )));
                    };
                    let plugin = match table.remove("kind") {
                        None => default_plugin(kind).to_owned(),
                        Some(toml::Value::String(name)) => name,
                        Some(other) => {
                            return Err(PluginError::Option {
                                section,
                                key: "kind".to_owned(),
                                message: format!(
                                    "expected a plugin name (a string), found {}",
                                    other.type_str()
                                ),
                            });
                        }
                    };
                    let component = ComponentConfig { kind, plugin, options: options_of(table) };
                    match kind {
                        PluginKind::Wal => config.wal = component,
                        PluginKind::MemTable => config.memtable = component,
                        PluginKind::Table => config.table = component,
                        PluginKind::Compaction => config.compaction = component,
                        PluginKind::Failover => config.failover = Some(component),
                    }
                }
                "engine" => {
                    let toml::Value::Table(table) = value else {
                        return Err(syntax(format!(
                            "`engine` must be a table (`[engine]`), found {}",
                            value.type_str()
                        )));
                    };
                    let e: EngineSection = parse_section("engine", &options_of(table))?;
                    let engine = DbOptions {
                        memtable_size_bytes: e.memtable_size_bytes,
                        max_immutable_memtables: e.max_immutable_memtables,
                        l0_slowdown_tables: e.l0_slowdown_tables,
                        l0_stop_tables: e.l0_stop_tables,
                        slowdown_delay: Duration::from_micros(e.slowdown_delay_micros),
                        compaction_threads: e.compaction_threads,
                        max_manifest_bytes: e.max_manifest_bytes,
                        background_nice: e.background_nice,
                        periodic_checkpoint: None,
                        replica_of: None,
                    };
                    engine.validate().map_err(PluginError::Engine)?;
                    config.engine = engine;
                }
                "load" => {
                    let toml::Value::Array(entries) = value else {
                        return Err(syntax(format!(
                            "`load` must be an array of tables (`[[load]]`), found {}",
                            value.type_str()
                        )));
                    };
                    for (i, entry) in entries.into_iter().enumerate() {
                        let toml::Value::Table(table) = entry else {
                            return Err(syntax(format!(
                                "each `[[load]]` entry must be a table with a `path`, found {}",
                                entry.type_str()
                            )));
                        };
                        let entry: LoadEntry =
                            parse_section(&format!("load[{i}]"), &options_of(table))?;
                        config.load.push(base.join(entry.path));
                    }
                }
                other => {
                    return Err(syntax(format!(
                        "unknown section `{other}`; expected one of {SECTIONS}"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// Loads the `[[load]]` libraries, builds each component from its plugin and
    /// options, and returns a builder for the store in `dir` with the `[engine]`
    /// options. Nothing is opened yet: call [`DbBuilder::open`].
    pub fn builder(&self, dir: impl AsRef<Path>) -> Result<DbBuilder, PluginError> {
        for lib in &self.load {
            load_library(lib)?;
        }
        let wal = lookup::build::<WalPlugin>(&self.wal.plugin, &self.wal.options)?;
        let memtable =
            lookup::build::<MemTablePlugin>(&self.memtable.plugin, &self.memtable.options)?;
        let table = lookup::build::<TablePlugin>(&self.table.plugin, &self.table.options)?;
        let compaction =
            lookup::build::<CompactionPlugin>(&self.compaction.plugin, &self.compaction.options)?;
        Ok(DbBuilder::new(dir.as_ref())
            .with_wal(wal)
            .with_memtable(memtable)
            .with_table_format(table)
            .with_compaction_policy(compaction)
            .with_options(self.engine.clone()))
    }

    /// Loads the `[[load]]` libraries and builds the `[failover]` policy's factory;
    /// `None` when the configuration has no `[failover]` section.
    pub fn failover_factory(&self) -> Result<Option<Arc<dyn FailoverFactory>>, PluginError> {
        let Some(failover) = &self.failover else { return Ok(None) };
        for lib in &self.load {
            load_library(lib)?;
        }
        lookup::build::<FailoverPlugin>(&failover.plugin, &failover.options).map(Some)
    }

    /// Loads the `[[load]]` libraries and builds the memtable factory alone (for
    /// benchmarks that drive a memtable directly).
    pub fn memtable_factory(&self) -> Result<Arc<dyn MemTableFactory>, PluginError> {
        for lib in &self.load {
            load_library(lib)?;
        }
        lookup::build::<MemTablePlugin>(&self.memtable.plugin, &self.memtable.options)
    }

    /// The component choice in one line: `wal=file memtable=skiplist table=mmap
    /// compaction=leveled` (and ` failover=manual` when a policy is configured).
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for StackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wal={} memtable={} table={} compaction={}",
            self.wal.plugin, self.memtable.plugin, self.table.plugin, self.compaction.plugin
        )?;
        match &self.failover {
            Some(failover) => write!(f, " failover={}", failover.plugin),
            None => Ok(()),
        }
    }
}
