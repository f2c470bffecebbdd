//! What a suite run found.

use std::fmt;
use std::time::Duration;

/// How one check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// The clause held.
    Passed,
    /// The clause broke; the message says which clause and how (expected vs found).
    Failed(String),
    /// A capability switched the check off; the text names the capability.
    Skipped(&'static str),
}

/// One check of a suite run.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// Full check name, `suite::clause` (`wal::sync_append_survives_power_loss`).
    pub name: &'static str,
    /// How it ended.
    pub status: CheckStatus,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The result of running one conformance suite against one implementation.
#[derive(Clone, Debug)]
pub struct Report {
    /// The suite (`"wal"`, `"memtable"`, `"table"`, `"compaction"`, `"engine"`).
    pub suite: &'static str,
    /// The implementation under test, as it names itself.
    pub subject: String,
    /// Every check, in the order they ran.
    pub outcomes: Vec<CheckOutcome>,
}

impl Report {
    /// Names of the checks that passed.
    pub fn passed(&self) -> Vec<&'static str> {
        self.names_where(|s| matches!(s, CheckStatus::Passed))
    }

    /// Names of the checks that failed, sorted.
    pub fn failed_names(&self) -> Vec<&'static str> {
        let mut names = self.names_where(|s| matches!(s, CheckStatus::Failed(_)));
        names.sort_unstable();
        names
    }

    /// The failed checks with their messages.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.outcomes
            .iter()
            .filter_map(|o| match &o.status {
                CheckStatus::Failed(msg) => Some((o.name, msg.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Names of the checks a capability switched off.
    pub fn skipped(&self) -> Vec<&'static str> {
        self.names_where(|s| matches!(s, CheckStatus::Skipped(_)))
    }

    /// True when no check failed.
    pub fn is_ok(&self) -> bool {
        self.outcomes.iter().all(|o| !matches!(o.status, CheckStatus::Failed(_)))
    }

    /// Total time the suite ran.
    pub fn elapsed(&self) -> Duration {
        self.outcomes.iter().map(|o| o.elapsed).sum()
    }

    /// Panics, listing every failed check and its message, unless all checks passed.
    /// On success it prints the summary to stderr (shown with `--nocapture`).
    #[track_caller]
    pub fn assert_ok(&self) {
        if self.is_ok() {
            eprintln!("{self}");
            return;
        }
        panic!("{self}");
    }

    fn names_where(&self, f: impl Fn(&CheckStatus) -> bool) -> Vec<&'static str> {
        self.outcomes.iter().filter(|o| f(&o.status)).map(|o| o.name).collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures();
        writeln!(
            f,
            "conformance suite `{}` on `{}`: {} passed, {} failed, {} skipped in {:.2?}",
            self.suite,
            self.subject,
            self.passed().len(),
            failed.len(),
            self.skipped().len(),
            self.elapsed()
        )?;
        for o in &self.outcomes {
            match &o.status {
                CheckStatus::Passed => writeln!(f, "  ok      {} ({:.2?})", o.name, o.elapsed)?,
                CheckStatus::Skipped(why) => writeln!(f, "  skipped {} ({why})", o.name)?,
                CheckStatus::Failed(msg) => writeln!(f, "  FAILED  {}: {msg}", o.name)?,
            }
        }
        Ok(())
    }
}
