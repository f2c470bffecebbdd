//! libFuzzer target `bloom_filter`; the body and its contract: [`strata_fuzz::bloom_filter`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::bloom_filter(data));
