//! The registrations of the components that come with Strata (made by this crate, see
//! `src/builtin.rs`): found by name, built with empty options (the defaults), options
//! applied by field name, unknown keys and invalid values rejected.

use strata_plugins::registry::{
    CompactionPlugin, OptionValue, PluginOptions, compaction_plugins, memtable_plugins,
};

#[test]
fn vector_plugin_is_registered_and_takes_no_options() {
    let plugin =
        memtable_plugins().find(|p| p.name == "vector").expect("strata-plugins registers `vector`");
    let factory = (plugin.build)(&PluginOptions::new()).expect("no options builds");
    assert_eq!(factory.name(), "vector");
    assert!(factory.create().is_empty());
    assert!((plugin.build)(&PluginOptions::new().with("size", OptionValue::Integer(1))).is_err());
}

fn tiered() -> &'static CompactionPlugin {
    compaction_plugins().find(|p| p.name == "tiered").expect("strata-plugins registers `tiered`")
}

#[test]
fn tiered_plugin_builds_from_options_and_rejects_bad_ones() {
    let plugin = tiered();
    let policy = (plugin.build)(&PluginOptions::new()).expect("defaults build");
    assert_eq!((policy.name(), policy.levels()), ("tiered", 7));
    let policy = (plugin.build)(&PluginOptions::new().with("levels", OptionValue::Integer(3)))
        .expect("levels = 3 builds");
    assert_eq!(policy.levels(), 3);
    assert!(
        (plugin.build)(&PluginOptions::new().with("no_such_option", OptionValue::Integer(1)))
            .is_err()
    );
    assert!(
        (plugin.build)(&PluginOptions::new().with("min_merge_width", OptionValue::Integer(1)))
            .is_err()
    );
}
