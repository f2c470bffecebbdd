//! The `compaction = "tiered"` plugin registration: found by name, builds with empty
//! options (the defaults), applies options by field name, and rejects unknown keys and
//! invalid values.

use strata_compaction_tiered as _; // linked for its registration
use strata_core::registry::{OptionValue, PluginOptions, compaction_plugins};

fn tiered() -> &'static strata_core::registry::CompactionPlugin {
    compaction_plugins().find(|p| p.name == "tiered").expect("linking the crate registers `tiered`")
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
