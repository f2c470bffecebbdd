//! libFuzzer target `plugin_config`: any text given to `StackConfig::from_toml_str`, and
//! to `builder()` when it parses, gives a `PluginError` or a configuration — never a
//! panic. (Dynamic `[[load]]` entries are dropped: loading arbitrary paths is not a
//! decoder's job.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains("[[load]]") {
        return;
    }
    if let Ok(config) = strata_plugins::StackConfig::from_toml_str(text) {
        let dir = std::env::temp_dir().join("strata-fuzz-plugin-config-unused");
        let _ = config.builder(&dir);
    }
});
