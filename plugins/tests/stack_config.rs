//! Assembling stacks from TOML: the default plugins are registered and the default
//! stack file matches the code's defaults; unknown plugins, unknown or ill-typed
//! options and bad sections are errors that name the section and key.

use strata_compaction_leveled::LeveledOptions;
use strata_core::{DbOptions, Durability};
use strata_plugins::registry::PluginOptions;
use strata_plugins::{PluginError, PluginKind, PluginSource, StackConfig, default_stack_toml};
use strata_sstable_mmap::{Compression, MmapTableOptions};
use strata_wal_file::FileWalOptions;

fn err(toml: &str) -> PluginError {
    let dir = tempfile::tempdir().expect("tempdir");
    match StackConfig::from_toml_str(toml).and_then(|c| c.builder(dir.path()).map(|_| ())) {
        Ok(()) => panic!("expected an error for:\n{toml}"),
        Err(e) => e,
    }
}

#[test]
fn the_default_plugins_are_registered_and_linked() {
    for (kind, name) in [
        (PluginKind::Wal, "file"),
        (PluginKind::MemTable, "skiplist"),
        (PluginKind::Table, "mmap"),
        (PluginKind::Compaction, "leveled"),
        (PluginKind::Failover, "manual"),
    ] {
        let found = strata_plugins::plugins()
            .into_iter()
            .find(|p| p.kind == kind && p.name == name)
            .unwrap_or_else(|| panic!("{kind} plugin {name} is not registered"));
        assert_eq!(found.source, PluginSource::Linked);
        assert!(!found.description.is_empty());
        assert_eq!(strata_plugins::default_plugin(kind), name);
        assert_eq!(kind.default_plugin(), name);
    }
}

#[test]
fn the_default_stack_file_spells_out_the_defaults() {
    let config = StackConfig::from_toml_str(default_stack_toml()).expect("default stack parses");
    assert_eq!(config.to_string(), "wal=file memtable=skiplist table=mmap compaction=leveled");
    assert_eq!(config.to_string(), StackConfig::default().to_string());
    let wal: FileWalOptions = config.wal.options.parse().expect("wal options");
    assert_eq!(wal, FileWalOptions::default());
    let table: MmapTableOptions = config.table.options.parse().expect("table options");
    assert_eq!(table, MmapTableOptions::default());
    let leveled: LeveledOptions = config.compaction.options.parse().expect("leveled options");
    assert_eq!(leveled, LeveledOptions::default());
    assert!(config.memtable.options.is_empty());
    let defaults = DbOptions::default();
    // Everything the file sets equals the code's default (compaction_threads is left
    // to the machine in both).
    assert_eq!(format!("{:?}", config.engine), format!("{defaults:?}"));
    assert!(config.load.is_empty());
}

#[test]
fn the_default_stack_file_is_the_default_stack() {
    // `DefaultStack` is the one definition; the file, `StackConfig::default` and
    // `default_builder` must all assemble exactly it.
    let stack = strata_plugins::DefaultStack::new();
    let config = StackConfig::from_toml_str(default_stack_toml()).expect("default stack parses");
    let wal: FileWalOptions = config.wal.options.parse().expect("wal options");
    assert_eq!(wal, stack.wal);
    let table: MmapTableOptions = config.table.options.parse().expect("table options");
    assert_eq!(table, stack.table);
    let leveled: LeveledOptions = config.compaction.options.parse().expect("leveled options");
    assert_eq!(leveled, stack.compaction);
    assert_eq!(format!("{:?}", config.engine), format!("{:?}", stack.engine));
    let dir = tempfile::tempdir().expect("tempdir");
    let typed = format!("{:?}", stack.builder(dir.path()).expect("builder"));
    assert_eq!(typed, format!("{:?}", strata_plugins::default_builder(dir.path())));
    let named = StackConfig::default().builder(dir.path()).expect("builder");
    assert_eq!(typed, format!("{named:?}"));
    let from_file = config.builder(dir.path()).expect("builder");
    assert_eq!(typed, format!("{from_file:?}"));
}

#[test]
fn a_stack_from_toml_opens_and_serves_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StackConfig::from_toml_str(
        r#"
        [wal]
        segment_size_bytes = 65536
        preallocate = false

        [table]
        kind = "mmap"
        block_size = 512
        compression = "lz4"

        [compaction]
        levels = 4
        l1_max_bytes = 1048576

        [engine]
        memtable_size_bytes = 65536
        compaction_threads = 1
        background_nice = 5
        "#,
    )
    .expect("config parses");
    assert_eq!(config.wal.plugin, "file", "a section without kind selects the default");
    assert_eq!(config.engine.memtable_size_bytes, 65536);
    assert_eq!(config.engine.background_nice, 5);
    let table: MmapTableOptions = config.table.options.parse().expect("table options");
    assert_eq!(table.compression, Compression::Lz4);
    let db = config.builder(dir.path()).expect("builder").open().expect("open");
    for i in 0..2000u32 {
        db.put(format!("key{i:05}").as_bytes(), &[7u8; 100], Durability::Buffered).expect("put");
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("background");
    assert!(db.stats().flushes >= 1);
    assert_eq!(db.get(b"key01234").expect("get").as_deref(), Some(&[7u8; 100][..]));
    assert_eq!(db.memtable_kind(), "skiplist");
    assert_eq!(db.table_format(), "mmap");
    assert_eq!(db.compaction_policy(), "leveled");
}

#[test]
fn an_unknown_plugin_lists_the_known_ones() {
    let e = err("[memtable]\nkind = \"art\"\n");
    let PluginError::UnknownPlugin { kind, name, known } = &e else { panic!("{e:?}") };
    assert_eq!((*kind, name.as_str()), (PluginKind::MemTable, "art"));
    assert!(known.iter().any(|k| k == "skiplist"), "{known:?}");
    let text = e.to_string();
    assert!(text.contains("unknown memtable plugin `art`") && text.contains("skiplist"), "{text}");
}

#[test]
fn an_ill_typed_option_names_its_path() {
    let e = err("[wal]\nkind = \"file\"\nsegment_size_bytes = \"big\"\n");
    let PluginError::Option { section, key, .. } = &e else { panic!("{e:?}") };
    assert_eq!((section.as_str(), key.as_str()), ("wal", "segment_size_bytes"));
    let text = e.to_string();
    assert!(text.starts_with("wal.segment_size_bytes: invalid type: string \"big\""), "{text}");

    let e = err("[table]\ncompression = \"zstd\"\n");
    assert!(e.to_string().starts_with("table.compression: unknown variant `zstd`"), "{e}");

    let e = err("[engine]\nmemtable_size_bytes = -5\n");
    assert!(e.to_string().starts_with("engine.memtable_size_bytes: invalid value"), "{e}");

    let e = err("[wal]\nkind = 3\n");
    assert!(e.to_string().starts_with("wal.kind: expected a plugin name"), "{e}");
}

#[test]
fn an_unknown_option_is_refused_with_its_section() {
    let e = err("[compaction]\nlevel = 3\n");
    let PluginError::Option { section, message, .. } = &e else { panic!("{e:?}") };
    assert_eq!(section, "compaction");
    assert!(message.contains("unknown field `level`"), "{message}");
    assert!(e.to_string().contains("compaction"), "{e}");

    let e = err("[memtable]\nkind = \"skiplist\"\nsize = 3\n");
    assert!(e.to_string().starts_with("memtable.size: unknown option"), "{e}");

    let e = err("[engine]\nmemtable_bytes = 3\n");
    assert!(e.to_string().contains("unknown field `memtable_bytes`"), "{e}");
}

#[test]
fn refused_values_bad_sections_and_bad_syntax_are_errors() {
    let e = err("[compaction]\nlevels = 1\n");
    assert!(matches!(e, PluginError::Build { kind: PluginKind::Compaction, .. }), "{e:?}");
    assert!(e.to_string().contains("levels"), "{e}");

    let e = err("[engine]\nl0_slowdown_tables = 10\nl0_stop_tables = 5\n");
    assert!(matches!(e, PluginError::Engine(_)), "{e:?}");
    let e = err("[engine]\nbackground_nice = 20\n");
    assert!(e.to_string().contains("background_nice must be between 0 and 19"), "{e}");
    let e = err("[engine]\nbackground_nice = -1\n");
    assert!(e.to_string().contains("background_nice"), "{e}");

    let e = err("[walz]\nkind = \"file\"\n");
    assert!(e.to_string().contains("unknown section `walz`"), "{e}");

    let e = err("wal = \"file\"\n");
    assert!(e.to_string().contains("`wal` must be a table"), "{e}");

    let e = err("[wal\n");
    assert!(matches!(e, PluginError::Syntax { .. }), "{e:?}");

    let e = err("[[load]]\nfile = \"x.so\"\n");
    assert!(e.to_string().starts_with("load[0]"), "{e}");

    let e = err("[[load]]\npath = \"/nonexistent/libnothing.so\"\n");
    assert!(matches!(e, PluginError::Load { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/libnothing.so"), "{e}");

    let core: strata_core::Error = err("[memtable]\nkind = \"art\"\n").into();
    assert!(matches!(core, strata_core::Error::Config(ref m) if m.contains("`art`")), "{core}");
}

#[test]
fn relative_load_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stack.toml");
    std::fs::write(&path, "[[load]]\npath = \"plugins/libx.so\"\n").expect("write");
    let config = StackConfig::from_path(&path).expect("parses");
    assert_eq!(config.load, vec![dir.path().join("plugins/libx.so")]);
    let missing = StackConfig::from_path(dir.path().join("nope.toml")).expect_err("missing");
    assert!(matches!(missing, PluginError::Read { .. }), "{missing:?}");
    let _ = PluginOptions::new();
}

#[test]
fn the_second_implementations_are_chosen_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StackConfig::from_toml_str(
        r#"
        [memtable]
        kind = "vector"

        [compaction]
        kind = "tiered"
        min_merge_width = 3

        [engine]
        memtable_size_bytes = 16384
        compaction_threads = 1
        "#,
    )
    .expect("config parses");
    let db = config.builder(dir.path()).expect("builder").open().expect("open");
    assert_eq!((db.memtable_kind(), db.compaction_policy()), ("vector", "tiered"));
    for i in 0..3000u32 {
        db.put(format!("order{i:08}").as_bytes(), &[3u8; 64], Durability::Buffered).expect("put");
    }
    db.flush().expect("flush");
    db.wait_for_background().expect("background");
    assert!(db.stats().compactions >= 1, "{:?}", db.stats());
    assert_eq!(db.get(b"order00001234").expect("get").as_deref(), Some(&[3u8; 64][..]));
    let e = err("[compaction]\nkind = \"tiered\"\nmin_merge_width = 1\n");
    assert!(e.to_string().contains("min_merge_width"), "{e}");
}

#[test]
fn a_failover_section_selects_the_manual_policy_by_name() {
    let none = StackConfig::from_toml_str("").expect("empty config");
    assert!(none.failover_factory().expect("no failover").is_none());

    let config = StackConfig::from_toml_str("[failover]\nkind = \"manual\"\n").expect("parses");
    assert_eq!(
        config.to_string(),
        "wal=file memtable=skiplist table=mmap compaction=leveled failover=manual"
    );
    let factory = config.failover_factory().expect("builds").expect("configured");
    assert_eq!(factory.name(), "manual");
    let default = StackConfig::from_toml_str("[failover]\n").expect("parses");
    assert_eq!(default.failover.expect("section").plugin, "manual");

    let unknown = StackConfig::from_toml_str("[failover]\nkind = \"paxos\"\n")
        .expect("parses")
        .failover_factory()
        .expect_err("no paxos plugin");
    assert!(
        matches!(unknown, PluginError::UnknownPlugin { kind: PluginKind::Failover, .. }),
        "{unknown}"
    );
    let option = StackConfig::from_toml_str("[failover]\nkind = \"manual\"\nlease_ms = 5\n")
        .expect("parses")
        .failover_factory()
        .expect_err("manual takes no options");
    assert!(
        matches!(option, PluginError::Option { ref section, ref key, .. } if section == "failover" && key == "lease_ms"),
        "{option}"
    );
}

const RAFT: &str = r#"
[failover]
kind = "raft"
node_id = 2
listen = "127.0.0.1:7302"
voters = [
    { id = 1, addr = "127.0.0.1:7301" },
    { id = 2, addr = "127.0.0.1:7302" },
    { id = 3, addr = "127.0.0.1:7303", role = "witness" },
]
request_timeout_ms = 2000
"#;

#[test]
fn a_failover_section_selects_the_raft_policy_with_its_group_settings() {
    let config = StackConfig::from_toml_str(RAFT).expect("parses");
    assert!(config.to_string().ends_with(" failover=raft"), "{config}");
    let factory = config.failover_factory().expect("builds").expect("configured");
    assert_eq!(factory.name(), "raft");
    assert!(
        strata_plugins::plugins()
            .into_iter()
            .any(|p| p.kind == PluginKind::Failover && p.name == "raft"),
        "raft is listed"
    );
    // The default stays `manual`: raft's settings have no defaults.
    assert_eq!(strata_plugins::default_plugin(PluginKind::Failover), "manual");

    let build = |toml: &str| {
        StackConfig::from_toml_str(toml)
            .expect("parses")
            .failover_factory()
            .expect_err("a bad raft section")
    };
    let missing = build("[failover]\nkind = \"raft\"\n");
    assert!(
        matches!(missing, PluginError::Option { ref section, ref message, .. } if section == "failover" && message.contains("node_id")),
        "{missing}"
    );
    let stranger = build(&RAFT.replace("node_id = 2", "node_id = 9"));
    assert!(
        matches!(stranger, PluginError::Build { kind: PluginKind::Failover, .. })
            && stranger.to_string().contains("not among the voters"),
        "{stranger}"
    );
    let role = build(&RAFT.replace("\"witness\"", "\"observer\""));
    assert!(
        matches!(role, PluginError::Option { ref key, .. } if key.starts_with("voters")),
        "{role}"
    );
    let typo = build(&RAFT.replace("request_timeout_ms", "request_timeout"));
    assert!(
        matches!(typo, PluginError::Option { ref key, .. } if key == "request_timeout"),
        "{typo}"
    );
}
