//! Fuzz-target bodies for Strata's on-disk decoders.
//!
//! The bodies live in the `checks` module tree (`src/checks/`, one file per target),
//! which `harness/tests/fuzz_regressions.rs` compiles too (through `#[path]`), so plain
//! `cargo test` on stable replays every saved regression input and a few thousand
//! seeded inputs through exactly the code libFuzzer runs. Each target's contract is
//! written on its function.

mod checks;

pub use checks::*;
