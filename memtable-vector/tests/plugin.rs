//! The `memtable = "vector"` plugin registration: found by name, builds with no
//! options, rejects any option.

use strata_core::registry::{OptionValue, PluginOptions, memtable_plugins};
use strata_memtable_vector as _; // linked for its registration

#[test]
fn vector_plugin_is_registered_and_takes_no_options() {
    let plugin = memtable_plugins()
        .find(|p| p.name == "vector")
        .expect("linking the crate registers `vector`");
    let factory = (plugin.build)(&PluginOptions::new()).expect("no options builds");
    assert_eq!(factory.name(), "vector");
    assert!(factory.create().is_empty());
    assert!((plugin.build)(&PluginOptions::new().with("size", OptionValue::Integer(1))).is_err());
}
