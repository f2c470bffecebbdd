//! The plugin configuration decoder on hostile text, without libFuzzer: seeded random
//! mutations of real stack files (byte flips, splices, truncations, duplicated and
//! dropped lines) must give a `PluginError` or a configuration, never a panic; and
//! every input that parses must also either build or be refused with an error. The
//! same check runs as the cargo-fuzz target `fuzz/fuzz_targets/plugin_config.rs`.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_plugins::{StackConfig, default_stack_toml};

const SEEDS: &[&str] = &[
    "[memtable]\nkind = \"vector\"\n[compaction]\nkind = \"tiered\"\nmin_merge_width = 3\n",
    "[wal]\nkind = \"file\"\nsegment_size_bytes = 65536\npreallocate = false\n[table]\ncompression = \"lz4\"\nblock_size = 512\n[engine]\nmemtable_size_bytes = 4096\n",
    "[compaction]\nkind = \"leveled\"\nlevels = 4\nmax_compaction_bytes = 1000\n",
];

fn mutate(rng: &mut SmallRng, base: &str) -> Vec<u8> {
    let mut b = base.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..6) {
        match rng.gen_range(0..5) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.r#gen();
            }
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b.truncate(i);
            }
            2 => {
                let other = SEEDS[rng.gen_range(0..SEEDS.len())].as_bytes();
                let i = rng.gen_range(0..=b.len());
                let j = rng.gen_range(0..=other.len());
                b.splice(i..i, other[..j].iter().copied());
            }
            3 => {
                let junk: &[&[u8]] = &[
                    b"= [",
                    b"\"",
                    b"]]",
                    b"kind = 9\n",
                    b"-1",
                    b"1e999",
                    b"{a=1}",
                    b"\n[engine]\n",
                ];
                let i = rng.gen_range(0..=b.len());
                let pick = junk[rng.gen_range(0..junk.len())];
                b.splice(i..i, pick.iter().copied());
            }
            _ => {
                let lines: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
                if lines.len() > 1 {
                    let keep = rng.gen_range(0..lines.len());
                    b = lines
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != keep)
                        .flat_map(|(_, l)| l.iter().copied().chain([b'\n']))
                        .collect();
                }
            }
        }
    }
    b
}

#[test]
fn mutated_stack_files_give_errors_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = SmallRng::seed_from_u64(0x706c_7567);
    let mut parsed = 0;
    let mut refused = 0;
    for n in 0..4000 {
        let base = if n % 4 == 0 { default_stack_toml() } else { SEEDS[n % SEEDS.len()] };
        let input = mutate(&mut rng, base);
        let Ok(text) = std::str::from_utf8(&input) else { continue };
        if text.contains("[[load]]") {
            continue;
        }
        match StackConfig::from_toml_str(text) {
            Ok(config) => {
                parsed += 1;
                if config.builder(dir.path()).is_err() {
                    refused += 1;
                }
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(
        parsed > 100 && refused > 100,
        "the mutations must reach both outcomes: {parsed} parsed, {refused} refused"
    );
}
