//! libFuzzer target `sstable`; the body and its contract: [`strata_fuzz::sstable`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::sstable(data));
