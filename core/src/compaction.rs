//! The compaction decision contract.
//!
//! A [`CompactionPolicy`] looks at the shape of the tree and says what to do next: merge
//! tables, move a table one level down without rewriting it, or drop tables that can no
//! longer change a read ([`TaskKind`]). The engine checks the task with
//! [`validate_task`], does the work, the manifest edit and the file deletion. A policy
//! therefore holds no I/O and no state that the version does not give it.

use std::collections::HashSet;
use std::fmt;

use crate::table::{FileNo, TableMeta};

/// The tables of one version, level by level, as a policy sees them.
///
/// `levels[0]` (L0) holds tables flushed from memtables, newest first (by `max_seq`);
/// their key ranges may overlap. Every deeper level holds tables sorted by
/// `smallest_key` with disjoint key ranges, and for any key its versions in a shallower
/// level are newer than those in a deeper one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelsView {
    /// Tables per level.
    pub levels: Vec<Vec<TableMeta>>,
}

impl LevelsView {
    /// Total bytes of the tables in `level` (0 for a level that does not exist).
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels.get(level).map_or(0, |l| l.iter().map(|t| t.size_bytes).sum())
    }

    /// Number of tables in `level`.
    pub fn level_len(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }
}

/// The tables of one level that a task reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionInput {
    /// The level they are in.
    pub level: usize,
    /// Their file numbers.
    pub tables: Vec<FileNo>,
}

/// What the engine does with a task's input tables.
///
/// A merge reads and rewrites its inputs; a move and a drop change only the manifest:
/// one edit, the commit point, names the tables' new place (a move) or their removal
/// (a drop), and nothing is read or written besides it — a crash before the edit is
/// durable leaves the tree as it was, one after leaves it changed, never half of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Merge every input into new tables in `output_level`, keeping the versions a
    /// reader may still need, then delete the inputs (the classic compaction).
    #[default]
    Merge,
    /// A *trivial move*: the input tables, all from one level `n`, are filed in
    /// `output_level = n + 1` as they are, by a manifest edit. Legal when the moved
    /// tables overlap neither each other nor any table of level `n + 1` (and, from L0,
    /// when every L0 table older than a moved one is moved too), so the level stays
    /// disjoint and newer versions stay above older ones. Writes no byte: on sequential
    /// keys most tables of a leveled tree can go down this way.
    Move,
    /// The input tables, all from one level (`output_level` is that level), are removed
    /// by a manifest edit without being read into anything. See [`LevelsView::is_droppable`]
    /// for exactly when that is safe.
    Drop,
}

/// One task for the engine to run: a merge, a move or a drop ([`TaskKind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionTask {
    /// Inputs, shallowest level first, each level once. A merge merges them all into
    /// `output_level`; a move and a drop name tables of a single level.
    pub inputs: Vec<CompactionInput>,
    /// Level that receives the output tables (for a move, the level the tables move
    /// to; for a drop, the level they are dropped from).
    pub output_level: usize,
    /// Output files are cut once they reach about this many bytes (merges only; moves
    /// and drops write no table).
    pub target_file_size: u64,
    /// Why the task was picked, for logs (`"L0 has 4 files (trigger 4)"`).
    pub reason: String,
    /// Merge, move or drop.
    pub kind: TaskKind,
}

impl CompactionTask {
    /// A merge of `inputs` into `output_level`, cut at `target_file_size`.
    pub fn merge(
        inputs: Vec<CompactionInput>,
        output_level: usize,
        target_file_size: u64,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            inputs,
            output_level,
            target_file_size,
            reason: reason.into(),
            kind: TaskKind::Merge,
        }
    }

    /// A move of `tables` from `level` to `level + 1` without rewriting them.
    pub fn moving(level: usize, tables: Vec<FileNo>, reason: impl Into<String>) -> Self {
        Self {
            inputs: vec![CompactionInput { level, tables }],
            output_level: level + 1,
            target_file_size: 0,
            reason: reason.into(),
            kind: TaskKind::Move,
        }
    }

    /// A drop of `tables` from `level`.
    pub fn dropping(level: usize, tables: Vec<FileNo>, reason: impl Into<String>) -> Self {
        Self {
            inputs: vec![CompactionInput { level, tables }],
            output_level: level,
            target_file_size: 0,
            reason: reason.into(),
            kind: TaskKind::Drop,
        }
    }

    /// Every table the task names, in task order.
    pub fn tables(&self) -> impl Iterator<Item = FileNo> + '_ {
        self.inputs.iter().flat_map(|i| i.tables.iter().copied())
    }
}

/// Picks the next compaction, as a pure function of the version.
///
/// Contract (what the engine validates with [`validate_task`] and the conformance
/// suite checks):
/// - `pick` never names a table that is not in `view`, nor one in `busy` (being
///   compacted by another task), and names each table at most once.
/// - A merge's `output_level` is the deepest input level or the level right below it,
///   and lies below `levels()`.
/// - A merge keeps the level invariants: when it reads L0 tables it reads every L0
///   table older than the newest one it reads (so newer versions never sink below
///   older ones); and every level the data enters or passes (below the shallowest
///   input, down to `output_level`) gives up to the task every table whose key range
///   overlaps the inputs' key range (so that level stays disjoint and in order).
/// - A move ([`TaskKind::Move`]) names tables of one level `n`, goes to `n + 1`, and
///   its tables overlap neither each other nor a table of `n + 1`; from L0 it moves
///   every L0 table older than the newest one it moves.
/// - A drop ([`TaskKind::Drop`]) names tables of one level, `output_level` being that
///   level, each of them [`LevelsView::is_droppable`].
/// - Tasks breaking this are rejected by the engine, logged, and counted.
/// - Given the same view and busy set it returns the same answer, and it returns
///   `None` when the tree is within its targets (a drop of a droppable table may be
///   returned even then: it costs nothing).
pub trait CompactionPolicy: Send + Sync + fmt::Debug {
    /// A short name for reports (`"leveled"`).
    fn name(&self) -> &'static str;
    /// Number of levels the tree may have (L0 included).
    fn levels(&self) -> usize;
    /// The next task, or `None`.
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask>;
}

impl LevelsView {
    /// The tables of `level` (none for a level the view does not have).
    pub fn level(&self, level: usize) -> &[TableMeta] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// Whether the table `table` of `level` can be dropped by a manifest edit alone
    /// ([`TaskKind::Drop`]) without changing any read, now or later.
    ///
    /// True when both hold:
    ///
    /// 1. **Every entry is a tombstone** (`tombstones == entries`; an empty table
    ///    qualifies).
    /// 2. **Nothing a read visits after it holds a key in its range**: no table of a
    ///    deeper level overlaps `[smallest_key, largest_key]`, and, for an L0 table, no
    ///    other L0 table whose `max_seq` is at most its own does either.
    ///
    /// Why that is safe at every snapshot, without knowing which snapshots exist: a
    /// read of key `k` at snapshot `s` visits the memtables, then L0 newest first, then
    /// one table per level, and stops at the first version `≤ s` it meets. Tables it
    /// visits before this one are not changed by dropping it. If the read reaches this
    /// table and finds a version of `k` there, that version is a tombstone: `k` is
    /// absent. Without the table the read goes on, but nothing after it holds `k` (2),
    /// so `k` is absent again. If it finds no version `≤ s` there, the table did not
    /// matter. Later writes only add newer tables above it, and no compaction can put a
    /// key of its range below it while it exists: a merge or move into its level over
    /// its range would have to take it as an input (it would be busy, or gone), and
    /// whatever moves further down comes from tables that do not hold its keys (2). A
    /// table of puts is never droppable by this rule, however shadowed its versions
    /// are: deciding that would need every key's versions and the oldest live snapshot,
    /// which a policy (a pure function of table metadata) does not have.
    ///
    /// The engine does not take `tombstones` on trust: before it commits a drop it reads
    /// the table and refuses the drop if any entry is not a tombstone.
    pub fn is_droppable(&self, level: usize, table: &TableMeta) -> bool {
        if table.tombstones != table.entries {
            return false;
        }
        if table.entries == 0 {
            return true;
        }
        self.drop_blocker(level, table, |_| false).is_none()
    }

    /// The first table a read visits after `table` (of `level`) that overlaps it, other
    /// than those `ignore` names.
    fn drop_blocker(
        &self,
        level: usize,
        table: &TableMeta,
        ignore: impl Fn(FileNo) -> bool,
    ) -> Option<(usize, &TableMeta)> {
        let (lo, hi) = (&*table.smallest_key, &*table.largest_key);
        let blocks =
            |t: &TableMeta| t.file_no != table.file_no && !ignore(t.file_no) && t.overlaps(lo, hi);
        if level == 0
            && let Some(t) = self.level(0).iter().find(|t| t.max_seq <= table.max_seq && blocks(t))
        {
            return Some((0, t));
        }
        self.levels
            .iter()
            .enumerate()
            .skip(level + 1)
            .find_map(|(l, ts)| ts.iter().find(|t| blocks(t)).map(|t| (l, t)))
    }
}

/// Checks `task`, picked from `view` with `busy` tables, against the
/// [`CompactionPolicy`] contract of a policy whose `levels()` is `levels`.
///
/// This is the one validator: the engine runs it on every task before it starts it and
/// again, against the version of that moment, right before it commits the task's
/// manifest edit; the conformance suite runs it on every answer. On failure the message
/// starts with the name of the broken clause, so callers can count by clause:
///
/// Every kind:
/// - `"empty task"` — the task reads no table.
/// - `"malformed inputs"` — an input names no table, or the inputs are not listed
///   shallowest level first with each level once (the field's documented shape).
/// - `"duplicate table"` — a table is named more than once.
/// - `"unknown table"` — a table is not in the level of `view` its input names.
/// - `"busy table"` — a table is in `busy`.
/// - `"bad output level"` — for a merge, `output_level` is neither the deepest input
///   level nor the one right below it; for a move it is not the input level + 1; for a
///   drop it is not the input level; or it is not below `levels`.
///
/// Merges ([`TaskKind::Merge`]):
/// - `"bad target file size"` — `target_file_size` is 0 (outputs could not be cut).
/// - `"L0 order"` — the task reads an L0 table but not every L0 table older than it
///   (smaller `max_seq`), so newer versions could sink below older ones.
/// - `"passed-over overlap"` — a table of a level strictly between the shallowest input
///   level and `output_level` (L0 excluded) overlaps the inputs' key range but is not
///   an input: the merged data would land below it although it may hold older versions.
/// - `"output overlap"` — a table of `output_level` overlaps the key range of the
///   inputs (the range from their smallest to their largest key; empty tables cover no
///   keys) but is not an input, so the output level would stop being disjoint.
///
/// Moves ([`TaskKind::Move`]):
/// - `"malformed move"` — the tables come from more than one level.
/// - `"L0 order"` — as for merges.
/// - `"move overlap"` — a moved table overlaps another moved table or a table of the
///   output level (each table keeps its own range, so ranges are compared one by one).
///
/// Drops ([`TaskKind::Drop`]):
/// - `"malformed drop"` — the tables come from more than one level.
/// - `"live data"` — a table holds an entry that is not a tombstone.
/// - `"drop overlap"` — a table a read would visit after a dropped table (one not
///   dropped by the same task) overlaps it; see [`LevelsView::is_droppable`].
///
/// Whether a policy returned `None` at the right time, and whether it answers
/// deterministically, cannot be judged from one task; callers check those separately.
pub fn validate_task(
    view: &LevelsView,
    busy: &HashSet<FileNo>,
    levels: usize,
    task: &CompactionTask,
) -> std::result::Result<(), String> {
    let named = check_inputs(view, busy, task)?;
    let inputs: Vec<(usize, &TableMeta)> = task
        .inputs
        .iter()
        .flat_map(|i| {
            i.tables.iter().filter_map(move |no| find(view, i.level, *no).map(|t| (i.level, t)))
        })
        .collect();
    let out = task.output_level;
    if out >= levels {
        return Err(format!(
            "bad output level: L{out} does not exist in a tree of {levels} levels"
        ));
    }
    match task.kind {
        TaskKind::Merge => validate_merge(view, task, &named, &inputs),
        TaskKind::Move => validate_move(view, task, &named, &inputs),
        TaskKind::Drop => validate_drop(view, task, &named, &inputs),
    }
}

fn find(view: &LevelsView, level: usize, no: FileNo) -> Option<&TableMeta> {
    view.level(level).iter().find(|t| t.file_no == no)
}

/// The clauses every kind shares; returns the set of named tables.
fn check_inputs(
    view: &LevelsView,
    busy: &HashSet<FileNo>,
    task: &CompactionTask,
) -> std::result::Result<HashSet<FileNo>, String> {
    if task.inputs.iter().all(|i| i.tables.is_empty()) {
        return Err("empty task: it names no input table".to_owned());
    }
    let mut named: HashSet<FileNo> = HashSet::new();
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
        for &no in &input.tables {
            if !named.insert(no) {
                return Err(format!("duplicate table: table {no} is named more than once"));
            }
            if find(view, input.level, no).is_none() {
                let elsewhere = view
                    .levels
                    .iter()
                    .position(|l| l.iter().any(|t| t.file_no == no))
                    .map_or_else(|| "it is in no level".to_owned(), |l| format!("it is in L{l}"));
                return Err(format!(
                    "unknown table: table {no} is not in L{} of the view ({elsewhere})",
                    input.level
                ));
            }
            if busy.contains(&no) {
                return Err(format!(
                    "busy table: table {no} (L{}) is being compacted by another task",
                    input.level
                ));
            }
        }
    }
    Ok(named)
}

/// Every L0 table older than the newest L0 input is an input.
fn check_l0_order(
    view: &LevelsView,
    task: &CompactionTask,
    named: &HashSet<FileNo>,
) -> std::result::Result<(), String> {
    let l0 = view.level(0);
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
    Ok(())
}

fn validate_merge(
    view: &LevelsView,
    task: &CompactionTask,
    named: &HashSet<FileNo>,
    inputs: &[(usize, &TableMeta)],
) -> std::result::Result<(), String> {
    // Inputs are non-empty and strictly ascending (checked), so first/last are the
    // shallowest/deepest.
    let shallowest = task.inputs.first().map_or(0, |i| i.level);
    let deepest = task.inputs.last().map_or(0, |i| i.level);
    let out = task.output_level;
    if out != deepest && out != deepest + 1 {
        return Err(format!(
            "bad output level: L{out} is neither the deepest input level L{deepest} nor L{}",
            deepest + 1
        ));
    }
    if task.target_file_size == 0 {
        return Err("bad target file size: target_file_size is 0".to_owned());
    }
    check_l0_order(view, task, named)?;
    // Level closure: every level the data enters or passes gives up its overlap.
    if let Some((lo, hi)) = hull(inputs.iter().map(|(_, t)| *t)) {
        for level in (shallowest + 1).max(1)..=out {
            if let Some(left) =
                view.level(level).iter().find(|t| t.overlaps(lo, hi) && !named.contains(&t.file_no))
            {
                let clause = if level == out { "output overlap" } else { "passed-over overlap" };
                return Err(format!(
                    "{clause}: L{level} table {} [{}..{}] overlaps the inputs' key range [{}..{}] but is not an input",
                    left.file_no,
                    show(&left.smallest_key),
                    show(&left.largest_key),
                    show(lo),
                    show(hi)
                ));
            }
        }
    }
    Ok(())
}

/// The one input of a move or a drop (`what`), or the `"malformed …"` clause.
fn single_level<'a>(
    task: &'a CompactionTask,
    what: &str,
) -> std::result::Result<&'a CompactionInput, String> {
    match task.inputs.as_slice() {
        [input] => Ok(input),
        more => Err(format!(
            "malformed {what}: a {what} names tables of one level, this one of {} levels",
            more.len()
        )),
    }
}

fn validate_move(
    view: &LevelsView,
    task: &CompactionTask,
    named: &HashSet<FileNo>,
    inputs: &[(usize, &TableMeta)],
) -> std::result::Result<(), String> {
    let input = single_level(task, "move")?;
    let out = task.output_level;
    if out != input.level + 1 {
        return Err(format!(
            "bad output level: a move from L{} goes to L{}, not L{out}",
            input.level,
            input.level + 1
        ));
    }
    check_l0_order(view, task, named)?;
    for (i, (_, t)) in inputs.iter().enumerate() {
        let (lo, hi) = (&*t.smallest_key, &*t.largest_key);
        if let Some((_, other)) = inputs.iter().skip(i + 1).find(|(_, o)| o.overlaps(lo, hi)) {
            return Err(format!(
                "move overlap: moved tables {} [{}..{}] and {} [{}..{}] overlap each other",
                t.file_no,
                show(lo),
                show(hi),
                other.file_no,
                show(&other.smallest_key),
                show(&other.largest_key)
            ));
        }
        if let Some(below) = view.level(out).iter().find(|o| o.overlaps(lo, hi)) {
            return Err(format!(
                "move overlap: table {} [{}..{}] would move onto L{out} table {} [{}..{}]",
                t.file_no,
                show(lo),
                show(hi),
                below.file_no,
                show(&below.smallest_key),
                show(&below.largest_key)
            ));
        }
    }
    Ok(())
}

fn validate_drop(
    view: &LevelsView,
    task: &CompactionTask,
    named: &HashSet<FileNo>,
    inputs: &[(usize, &TableMeta)],
) -> std::result::Result<(), String> {
    let input = single_level(task, "drop")?;
    if task.output_level != input.level {
        return Err(format!(
            "bad output level: a drop from L{} names L{} as its level",
            input.level, task.output_level
        ));
    }
    for (level, t) in inputs {
        if t.tombstones != t.entries {
            return Err(format!(
                "live data: table {} holds {} entries of which only {} are tombstones",
                t.file_no, t.entries, t.tombstones
            ));
        }
        if t.entries == 0 {
            continue;
        }
        if let Some((l, below)) = view.drop_blocker(*level, t, |no| named.contains(&no)) {
            return Err(format!(
                "drop overlap: L{l} table {} [{}..{}] is read after dropped table {} [{}..{}] and overlaps it",
                below.file_no,
                show(&below.smallest_key),
                show(&below.largest_key),
                t.file_no,
                show(&t.smallest_key),
                show(&t.largest_key)
            ));
        }
    }
    Ok(())
}

/// The smallest range `[lo, hi]` covering every non-empty table of `tables`, or `None`
/// when there is none. Empty tables (`entries == 0`) hold no key and cover nothing,
/// exactly as [`TableMeta::overlaps`] treats them.
pub fn hull<'a>(tables: impl IntoIterator<Item = &'a TableMeta>) -> Option<(&'a [u8], &'a [u8])> {
    tables.into_iter().filter(|t| t.entries > 0).fold(None, |acc, t| {
        let (lo, hi) = (&*t.smallest_key, &*t.largest_key);
        Some(match acc {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        })
    })
}

/// A key for messages: printable ASCII as is, other bytes escaped.
fn show(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
