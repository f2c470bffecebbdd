//! The `sstable_mutate` target: valid tables, damaged.

use strata_core::Entry;

use super::sstable::{
    build_table, exercise_table, open_table, table_entries, table_options, table_path,
};
use super::{Cursor, expect_corruption};

/// Target `sstable_mutate`: a valid table built from fuzzer-chosen entries and options,
/// then damaged in a fuzzer-chosen way.
///
/// Input: options byte, entries, then a mutation: `0` none, `1` one burst of up to four
/// flipped bytes, `2` truncation, `3` bytes appended, `4` up to eight scattered flips.
///
/// Contract: the intact table opens, verifies clean and returns exactly its entries.
/// After a burst (which every CRC32 detects), a truncation or an extension the table
/// either fails to open with `Error::Corruption`, or `verify` reports the damage and
/// every answer is an error or the right data. After scattered flips nothing panics and
/// every error is `Error::Corruption`.
pub fn sstable_mutate(data: &[u8]) {
    let mut c = Cursor::new(data);
    let opts = table_options(&mut c);
    let entries = table_entries(&mut c);
    let mut file = build_table(&entries, opts);
    let mode = c.u8() % 5;
    let len = file.len();
    let damaged = match mode {
        1 => {
            let at = c.u32() as usize % len;
            let n = 1 + usize::from(c.u8() % 4);
            let mut changed = false;
            for b in file.iter_mut().skip(at).take(n) {
                let x = c.u8();
                changed |= x != 0;
                *b ^= x;
            }
            changed
        }
        2 => {
            file.truncate(c.u32() as usize % len);
            true
        }
        3 => {
            let n = 1 + usize::from(c.u8());
            file.extend_from_slice(c.bytes(n));
            if file.len() == len {
                file.push(0);
            }
            true
        }
        4 => {
            for _ in 0..1 + c.u8() % 8 {
                let at = c.u32() as usize % len;
                file[at] ^= c.u8();
            }
            // Several flips can in principle cancel out in a CRC: no claim on detection.
            return check_damaged_table(&file, None, len);
        }
        _ => {
            let table = match open_table(&file) {
                Ok(t) => t,
                Err(e) => panic!("a freshly built table does not open: {e}"),
            };
            assert!(exercise_table(&table, Some(&entries)), "a fresh table does not verify");
            return;
        }
    };
    if damaged {
        check_damaged_table(&file, Some(&entries), len);
    }
}

/// Opens a damaged table (of originally `len` bytes). With `truth`, the damage is one
/// every check must catch: open fails, or verify reports it and reads serve only errors
/// or the right data.
pub(crate) fn check_damaged_table(file: &[u8], truth: Option<&[Entry]>, len: usize) {
    match open_table(file) {
        Ok(table) => {
            let intact = exercise_table(&table, truth);
            if truth.is_some() {
                assert_eq!(file.len(), len, "a table opened after being cut or extended");
                assert!(!intact, "verify found nothing wrong in a damaged table");
            }
        }
        Err(e) => {
            expect_corruption(&e, &table_path(), "open after damage");
        }
    }
}
