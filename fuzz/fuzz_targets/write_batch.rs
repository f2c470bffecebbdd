//! libFuzzer target `write_batch`; the body and its contract: [`strata_fuzz::write_batch`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::write_batch(data));
