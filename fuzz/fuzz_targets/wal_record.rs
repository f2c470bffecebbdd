//! libFuzzer target `wal_record`; the body and its contract: [`strata_fuzz::wal_record`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::wal_record(data));
