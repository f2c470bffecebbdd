//! Running checks isolated from each other, and small helpers the suites share.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use super::report::{CheckOutcome, CheckStatus, Report};

/// What a check returns: `Err` carries the failure message.
pub(crate) type CheckResult = Result<(), String>;

/// One check of a suite over subject `S`.
pub(crate) struct Check<S> {
    /// Full name, `suite::clause`.
    pub name: &'static str,
    /// `Some(capability)` when a capability switched it off.
    pub skip: Option<&'static str>,
    /// The check.
    pub run: fn(&S) -> CheckResult,
}

impl<S> Check<S> {
    /// A check that always runs.
    pub fn new(name: &'static str, run: fn(&S) -> CheckResult) -> Self {
        Self { name, skip: None, run }
    }

    /// A check that runs only when `enabled`; otherwise it is reported as skipped
    /// because of `capability`.
    pub fn when(
        enabled: bool,
        capability: &'static str,
        name: &'static str,
        run: fn(&S) -> CheckResult,
    ) -> Self {
        Self { name, skip: (!enabled).then_some(capability), run }
    }
}

/// Runs every check, each under `catch_unwind`, and collects the report.
pub(crate) fn run_checks<S>(
    suite: &'static str,
    subject: String,
    s: &S,
    checks: Vec<Check<S>>,
) -> Report {
    let mut outcomes = Vec::with_capacity(checks.len());
    for check in checks {
        let started = Instant::now();
        let status = match check.skip {
            Some(cap) => CheckStatus::Skipped(cap),
            None => match catch_unwind(AssertUnwindSafe(|| (check.run)(s))) {
                Ok(Ok(())) => CheckStatus::Passed,
                Ok(Err(msg)) => CheckStatus::Failed(msg),
                Err(panic) => CheckStatus::Failed(format!("panicked: {}", panic_message(&*panic))),
            },
        };
        outcomes.push(CheckOutcome { name: check.name, status, elapsed: started.elapsed() });
    }
    Report { suite, subject, outcomes }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Runs a property with a fixed seed over `cases` inputs; the error names the clause
/// that broke and the (shrunk) input that broke it.
pub(crate) fn property<S>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> CheckResult,
) -> CheckResult
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        max_shrink_time: 5_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    match runner.run(&strategy, |v| test(v).map_err(TestCaseError::fail)) {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, input)) => {
            Err(format!("{why}\n    minimal failing input: {input:?}"))
        }
        Err(TestError::Abort(why)) => Err(format!("property aborted: {why}")),
    }
}

/// Adds context to an error that must not happen in a check's setup or operation.
pub(crate) trait Ctx<T> {
    /// Maps the error to a failure message starting with `what`.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: unexpected error: {e}"))
    }
}

/// Returns `Err(format!(...))` from the enclosing check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
pub(crate) use ensure;

/// A splitmix64 step, for cheap deterministic pseudo-random choices inside checks.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `n` deterministic pseudo-random bytes derived from `seed`.
pub(crate) fn bytes_from(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    let mut x = seed;
    while out.len() < n {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
