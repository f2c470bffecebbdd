//! libFuzzer target `sstable_mutate`; the body and its contract: [`strata_fuzz::sstable_mutate`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::sstable_mutate(data));
