//! Child process of the SIGKILL crash test: writes `Sync` batches to the default stack
//! from several threads forever, appending each acknowledged write to an
//! expected-state file. The parent kills it at a random moment and checks the store.
//!
//! Usage: `crash_writer STORE_DIR EXPECTED_FILE SEED WRITERS`

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_core::{Durability, WriteBatch};
use strata_harness::crash::{item_key, item_value, latest_key};

fn main() {
    if let Err(e) = run() {
        eprintln!("crash_writer: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, expected, seed, writers] = args.as_slice() else {
        return Err("usage: crash_writer STORE_DIR EXPECTED_FILE SEED WRITERS".into());
    };
    let seed: u64 = seed.parse()?;
    let writers: u32 = writers.parse()?;
    // Small memtables and leveled sizes: kills land in flushes, compactions and
    // manifest writes as well as in WAL appends.
    let db = strata_harness::crash::crash_stack(dir).open()?;
    let log =
        Arc::new(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(expected)?));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let db = db.clone();
            let log = Arc::clone(&log);
            std::thread::spawn(move || -> Result<(), String> {
                // Continue after the last write this writer made in an earlier life.
                let mut next = match db.get(&latest_key(w)).map_err(|e| e.to_string())? {
                    Some(v) => parse_index(&v)? + 1,
                    None => 0,
                };
                // What this life found after recovery is durable: record it as
                // acknowledged, so the checker's "at most one unacknowledged write per
                // writer" stays true when a write made in an earlier life was durable
                // but never acknowledged.
                if next > 0 {
                    let line = format!("{w} {}\n", next - 1);
                    log.lock().write_all(line.as_bytes()).map_err(|e| e.to_string())?;
                }
                loop {
                    let mut b = WriteBatch::new();
                    b.put(item_key(w, next), item_value(seed, w, next));
                    b.put(latest_key(w), next.to_string());
                    if next % 7 == 3 {
                        // Deletes are part of the contract too: drop an older item.
                        b.delete(item_key(w, next - 3));
                    }
                    db.write(&b, Durability::Sync).map_err(|e| e.to_string())?;
                    let line = format!("{w} {next}\n");
                    log.lock().write_all(line.as_bytes()).map_err(|e| e.to_string())?;
                    next += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "writer thread panicked")??;
    }
    Ok(())
}

fn parse_index(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("latest key holds {v:?}, not an index"))
}
