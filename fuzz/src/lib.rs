//! Fuzz-target bodies for Strata's on-disk decoders.
//!
//! The bodies live in `checks.rs`, which `harness/tests/fuzz_regressions.rs` includes
//! too, so plain `cargo test` on stable replays every saved regression input and a few
//! thousand seeded inputs through exactly the code libFuzzer runs. Each target's
//! contract is written on its function.

include!("checks.rs");
