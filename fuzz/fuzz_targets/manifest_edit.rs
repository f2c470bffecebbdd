//! libFuzzer target `manifest_edit`; the body and its contract: [`strata_fuzz::manifest_edit`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::manifest_edit(data));
