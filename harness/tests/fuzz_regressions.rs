//! The fuzz targets of `fuzz/` as plain tests, for CI on stable Rust.
//!
//! libFuzzer needs `cargo fuzz` and instrumentation that CI does not run, so the target
//! bodies live in `fuzz/src/checks/` (one file per target) and are compiled here as they are. This test feeds
//! them
//!
//! - every input saved under `fuzz/regressions/<target>/` (crashes libFuzzer found,
//!   minimised, each one a decoder bug that was fixed: see the commit that added it), and
//! - a few thousand seeded inputs per target: random bytes, and valid encodings from
//!   [`seeds`] with bytes flipped, overwritten, inserted, removed and truncated.
//!
//! A decoder that panics, overflows, or answers against its contract (see each target's
//! docs in `fuzz/src/checks/`) fails the test, which names the target and prints the input in
//! hex so it can be saved as a regression file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[path = "../../fuzz/src/checks/mod.rs"]
mod checks;

use checks::{Cursor, TARGETS, seeds};

/// Seeded inputs per target (each seed is also run unchanged).
const GENERATED_PER_TARGET: usize = 1500;

/// splitmix64: a tiny, seedable generator, so every run tries the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Values that tend to break length and sequence arithmetic.
const INTERESTING: [u64; 8] = [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// One mutation of `input`, in the spirit of libFuzzer's mutators.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                v[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                v[at] = rng.next() as u8;
            }
            2 if len > 0 => {
                // Overwrite an integer field with a boundary value.
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                for (b, x) in v.iter_mut().skip(at).zip(&value[..width]) {
                    *b = *x;
                }
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                v.splice(at..at, extra);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                v.drain(at..at + n);
            }
            5 => v.truncate(rng.below(len + 1)),
            _ if len > 1 => {
                // The flags byte of most targets decides which checksums get repaired.
                v[0] = rng.next() as u8;
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Longest one input may take; a decoder that loops forever fails instead of hanging CI.
const INPUT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `body` on `input` (in a thread, so a hang becomes a failure); on a panic or a
/// time-out returns a description naming the input.
fn run(target: &str, body: fn(&[u8]), input: &[u8], origin: &str) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    let owned = input.to_vec();
    let spawned = std::thread::Builder::new().spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&owned)));
        let _ = tx.send(outcome.err().map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        }));
    });
    let failure = match spawned {
        Err(e) => Some(format!("could not start a thread: {e}")),
        // The thread of a hung input is left behind; the process ends with the test run.
        Ok(_) => rx.recv_timeout(INPUT_TIMEOUT).unwrap_or_else(|_| {
            Some(format!("no answer within {INPUT_TIMEOUT:?} (an endless loop?)"))
        }),
    };
    failure.map(|msg| {
        format!(
            "{target} failed on {origin}: {msg}\n    input ({} bytes): {}",
            input.len(),
            hex(input)
        )
    })
}

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

#[test]
fn saved_regression_inputs_pass() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (target, body) in TARGETS {
        let dir = regressions_dir().join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let input = std::fs::read(file).expect("a regression input must be readable");
            ran += 1;
            failures.extend(run(target, *body, &input, &file.display().to_string()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} regression inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_has_seeds() {
    for (target, _) in TARGETS {
        assert!(!seeds(target).is_empty(), "{target} has no seeds");
    }
}

#[test]
fn seeded_random_and_mutated_inputs_pass() {
    let mut failures = Vec::new();
    for (i, (target, body)) in TARGETS.iter().enumerate() {
        let started = std::time::Instant::now();
        let mut rng = Rng(0x5EED_0000 + i as u64);
        let failed_before = failures.len();
        let seeds = seeds(target);
        for (n, seed) in seeds.iter().enumerate() {
            failures.extend(run(target, *body, seed, &format!("seed {n}")));
        }
        for n in 0..GENERATED_PER_TARGET {
            let input = if n % 5 == 0 || seeds.is_empty() {
                let len = rng.below(200);
                rng.bytes(len)
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed)
            };
            failures.extend(run(target, *body, &input, &format!("generated input {n}")));
            if failures.len() > failed_before + 5 {
                break;
            }
        }
        println!("{target}: {GENERATED_PER_TARGET} inputs in {:?}", started.elapsed());
    }
    assert!(
        failures.is_empty(),
        "{} generated inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The check logic must be able to fail: a decoder answer that breaks a contract is
/// reported, not swallowed.
#[test]
fn a_contract_violation_is_reported() {
    fn broken(data: &[u8]) {
        let mut c = Cursor::new(data);
        assert_ne!(c.u8(), 7, "pretend decoder bug");
        assert!(c.is_empty() || !c.rest().is_empty());
    }
    assert!(run("broken", broken, &[7], "probe").is_some());
    assert!(run("broken", broken, &[8, 1], "probe").is_none());
}

/// Writes every target's seeds to `fuzz/corpus/<target>/` as libFuzzer's starting
/// corpus: `cargo test -p strata-harness --test fuzz_regressions -- --ignored`.
#[test]
#[ignore = "writes the libFuzzer seed corpus; run by hand before `cargo fuzz run`"]
fn write_seed_corpus() {
    for (target, _) in TARGETS {
        let dir = regressions_dir().join("../corpus").join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        for (n, seed) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), seed).expect("writing a seed");
        }
    }
}
