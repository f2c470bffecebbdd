//! Checking a task against the [`strata_core::CompactionPolicy`] contract.

use std::collections::{HashMap, HashSet};

use strata_core::{CompactionTask, FileNo, LevelsView, TableMeta};

use crate::keys::{hull, show};

/// Checks `task`, picked from `view` with `busy` tables, against the
/// [`strata_core::CompactionPolicy`] contract of a policy whose `levels()` is `levels`.
///
/// Any policy's task can be checked, not only the leveled one's; the engine can use it
/// before running a task and a conformance suite after every `pick`. On failure the
/// message starts with the name of the broken clause, so callers can count by clause:
///
/// - `"empty task"` — the task reads no table.
/// - `"malformed inputs"` — an input names no table, or the inputs are not listed
///   shallowest level first with each level once (the field's documented shape).
/// - `"duplicate table"` — a table is named more than once.
/// - `"unknown table"` — a table is not in the level of `view` its input names.
/// - `"busy table"` — a table is in `busy`.
/// - `"bad output level"` — `output_level` is neither the deepest input level nor the
///   one right below it, or is not below `levels`.
/// - `"bad target file size"` — `target_file_size` is 0 (outputs could not be cut).
/// - `"L0 order"` — the task reads an L0 table but not every L0 table older than it
///   (smaller `max_seq`), so newer versions could sink below older ones.
/// - `"output overlap"` — a table of `output_level` overlaps the key range of the
///   inputs (the range from their smallest to their largest key; empty tables cover no
///   keys) but is not an input, so the output level would stop being disjoint.
///
/// Whether a policy returned `None` at the right time, and whether it answers
/// deterministically, cannot be judged from one task; callers check those separately.
pub fn validate_task(
    view: &LevelsView,
    busy: &HashSet<FileNo>,
    levels: usize,
    task: &CompactionTask,
) -> Result<(), String> {
    if task.inputs.iter().all(|i| i.tables.is_empty()) {
        return Err("empty task: it names no input table".to_owned());
    }
    let mut named: HashSet<FileNo> = HashSet::new();
    let mut inputs: Vec<&TableMeta> = Vec::new();
    let mut prev_level: Option<usize> = None;
    for input in &task.inputs {
        if input.tables.is_empty() {
            return Err(format!("malformed inputs: the input for L{} names no table", input.level));
        }
        if let Some(prev) = prev_level
            && input.level <= prev
        {
            return Err(format!(
                "malformed inputs: L{} is listed after L{prev}; inputs go shallowest level first, each level once",
                input.level
            ));
        }
        prev_level = Some(input.level);
        let tables: HashMap<FileNo, &TableMeta> = view
            .levels
            .get(input.level)
            .map_or_else(HashMap::new, |l| l.iter().map(|t| (t.file_no, t)).collect());
        for &no in &input.tables {
            if !named.insert(no) {
                return Err(format!("duplicate table: table {no} is named more than once"));
            }
            let Some(&t) = tables.get(&no) else {
                let elsewhere = view
                    .levels
                    .iter()
                    .position(|l| l.iter().any(|t| t.file_no == no))
                    .map_or_else(|| "it is in no level".to_owned(), |l| format!("it is in L{l}"));
                return Err(format!(
                    "unknown table: table {no} is not in L{} of the view ({elsewhere})",
                    input.level
                ));
            };
            if busy.contains(&no) {
                return Err(format!(
                    "busy table: table {no} (L{}) is being compacted by another task",
                    input.level
                ));
            }
            inputs.push(t);
        }
    }
    // Inputs are non-empty and strictly ascending, so the last one is the deepest.
    let deepest = prev_level.unwrap_or_default();
    let out = task.output_level;
    if out != deepest && out != deepest + 1 {
        return Err(format!(
            "bad output level: L{out} is neither the deepest input level L{deepest} nor L{}",
            deepest + 1
        ));
    }
    if out >= levels {
        return Err(format!(
            "bad output level: L{out} does not exist in a tree of {levels} levels"
        ));
    }
    if task.target_file_size == 0 {
        return Err("bad target file size: target_file_size is 0".to_owned());
    }

    // L0 closure: every L0 table older than the newest L0 input is an input.
    let l0 = view.levels.first().map_or(&[][..], Vec::as_slice);
    let l0_inputs = task.inputs.iter().filter(|i| i.level == 0).flat_map(|i| &i.tables);
    if let Some(newest) =
        l0_inputs.filter_map(|no| l0.iter().find(|t| t.file_no == *no)).max_by_key(|t| t.max_seq)
        && let Some(left) =
            l0.iter().find(|t| t.max_seq < newest.max_seq && !named.contains(&t.file_no))
    {
        return Err(format!(
            "L0 order: the task reads L0 table {} ({}) but not the older L0 table {} ({})",
            newest.file_no, newest.max_seq, left.file_no, left.max_seq
        ));
    }

    // Output-level closure: nothing left in the output level overlaps the inputs' range.
    if let Some((lo, hi)) = hull(inputs.iter().copied())
        && let Some(left) = view
            .levels
            .get(out)
            .and_then(|l| l.iter().find(|t| t.overlaps(lo, hi) && !named.contains(&t.file_no)))
    {
        return Err(format!(
            "output overlap: L{out} table {} [{}..{}] overlaps the inputs' key range [{}..{}] but is not an input",
            left.file_no,
            show(&left.smallest_key),
            show(&left.largest_key),
            show(lo),
            show(hi)
        ));
    }
    Ok(())
}
