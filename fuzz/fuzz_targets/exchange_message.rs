//! libFuzzer target `exchange_message`; the body and its contract: [`strata_fuzz::exchange_message`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::exchange_message(data));
