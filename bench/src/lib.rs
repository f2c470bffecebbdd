//! # strata-bench
//!
//! What `strata bench` and the criterion benches measure with, kept out of every crate
//! a library user links: the seeded exchange [`workload`] (its records are the one
//! exchange schema, [`strata_stream::messages`]), and the [`peers`] — Strata's default stack,
//! [fjall](https://docs.rs/fjall) and (with the `rocksdb` feature) RocksDB behind one
//! small trait with matched settings, and the workloads that drive them.
//!
//! The criterion benches live here too: `cargo bench -p strata-bench --bench peers`
//! and `--bench compaction`.

pub mod peers;
pub mod workload;
