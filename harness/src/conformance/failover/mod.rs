//! The [`FailoverPolicy`] conformance suite: `decide` on random records and views held
//! against a model of the rules, and the authority — compare-and-set, fencing, leases —
//! on fixed scenarios and on random operation sequences against a model record.
//!
//! | check | clause |
//! |---|---|
//! | `failover::decide_is_deterministic` | the same record and view give the same decision |
//! | `failover::decide_never_replaces_a_reachable_primary` | while the primary reports, no promotion |
//! | `failover::decide_shrinks_only_silent_members` | a shrink names an in-sync member that went silent, under a live primary, in the record's epoch |
//! | `failover::decide_promotes_only_the_best_in_sync_member` | a promotion names a reachable in-sync member with a granted epoch and the highest (epoch, last sequence) among them, starting at its last sequence + 1 |
//! | `failover::decide_promotes_at_the_next_epoch` | a promotion is at the record's epoch + 1 |
//! | `failover::decide_fails_over_when_it_should` | (automatic policies) a lost primary with an eligible member is replaced; a silent member under a live primary is dropped |
//! | `failover::record_starts_as_created` | `record()` of a new authority is the initial record |
//! | `failover::compare_and_set_commits_the_next_version` | a change commits at version + 1, and `record()` then returns what it returned |
//! | `failover::compare_and_set_refuses_other_versions` | a change at another version is `StaleAuthority{expected, found}` and changes nothing |
//! | `failover::concurrent_changes_commit_once` | of concurrent changes at one version exactly one commits |
//! | `failover::promotion_takes_exactly_the_next_epoch` | a promotion at the same epoch (a skipped bump) or beyond the next is refused; at epoch + 1 it commits |
//! | `failover::only_in_sync_members_are_promoted` | promoting an out-of-sync node is `NotEligible`; only `ForcePromote` does it, emptying the in-sync set |
//! | `failover::lower_epochs_are_fenced` | after a promotion, the deposed primary's lease renewal and in-sync changes in its old epoch are `Fenced` |
//! | `failover::leases_go_to_the_primary_in_its_epoch` | a replica gets no lease; the primary gets none for an epoch it was not granted |
//! | `failover::lease_ends_before_the_grace_period` | a lease ends at most `lease` after it was granted (the call returned), so before the replicas' grace runs out, and the record keeps `lease < grace` |
//! | `failover::lease_names_the_committed_in_sync_set` | a lease names the committed record's version and in-sync set: a refused shrink leaves the member in it, a committed one removes it |
//! | `failover::sequences_match_the_model` | random changes (right and stale versions and epochs) and renewals: every answer and record as the model says |
//! | `failover::changes_survive_a_restart` | (durable policies) committed changes and the fence of the old epoch hold after the authority is reopened |
//!
//! The suite runs the policy's async methods on a tokio runtime of its own (two
//! worker threads); factories are called inside it, so an implementation may spawn
//! tasks (a consensus group's network, say).

mod decide;
pub mod memory;
mod model;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{
    AuthorityRecord, Change, Epoch, Error, FailoverFactory, FailoverPolicy, LeaseSettings, NodeId,
    PossibleLoss, Result, SeqNo,
};

use super::report::Report;
use super::runner::{Check, CheckResult, Ctx, ensure, run_checks};

/// What the policy under test does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FailoverCaps {
    /// Random situations each `decide` property checks.
    pub cases: u32,
    /// Random operation sequences the model check runs.
    pub model_cases: u32,
    /// `decide` fails over and drops silent members on its own (off for a policy
    /// where an operator decides, like `manual`): switches the liveness check on.
    pub automatic: bool,
    /// The authority keeps its record across [`FailoverFactory::open`]: switches the
    /// restart check on.
    pub restart: bool,
}

impl Default for FailoverCaps {
    fn default() -> Self {
        Self { cases: 256, model_cases: 48, automatic: true, restart: true }
    }
}

impl FailoverCaps {
    /// Sets [`FailoverCaps::automatic`].
    #[must_use]
    pub fn with_automatic(mut self, on: bool) -> Self {
        self.automatic = on;
        self
    }
    /// Sets [`FailoverCaps::restart`].
    #[must_use]
    pub fn with_restart(mut self, on: bool) -> Self {
        self.restart = on;
        self
    }
    /// Sets [`FailoverCaps::cases`] and [`FailoverCaps::model_cases`].
    #[must_use]
    pub fn with_cases(mut self, cases: u32, model_cases: u32) -> Self {
        self.cases = cases;
        self.model_cases = model_cases;
        self
    }
}

pub(crate) struct Subject {
    factory: Arc<dyn FailoverFactory>,
    fs: Arc<dyn FileSystem>,
    caps: FailoverCaps,
    rt: tokio::runtime::Runtime,
    /// One authority whose `decide` the decision checks call (decide takes its record
    /// as an argument, so which record this one holds does not matter).
    decider: Arc<dyn FailoverPolicy>,
    _decider_dir: tempfile::TempDir,
}

/// Runs the failover suite against the authorities `factory` makes, each in a
/// temporary directory of its own on the OS file system. A factory that cannot even
/// create one fails the suite's `failover::setup` check with that error.
pub fn run(factory: Arc<dyn FailoverFactory>, caps: FailoverCaps) -> Report {
    let name = format!("failover={}", factory.name());
    let fs: Arc<dyn FileSystem> = Arc::new(OsFileSystem);
    let setup = || -> std::result::Result<Subject, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .ctx("tokio runtime")?;
        let dir = tempfile::tempdir().ctx("tempdir")?;
        let decider =
            rt.block_on(factory.create(Arc::clone(&fs), dir.path(), initial())).ctx("create")?;
        Ok(Subject {
            factory: Arc::clone(&factory),
            fs: Arc::clone(&fs),
            caps: caps.clone(),
            rt,
            decider,
            _decider_dir: dir,
        })
    };
    let subject = match setup() {
        Ok(s) => s,
        Err(e) => {
            let setup = Check::new("failover::setup", |e: &String| Err(e.clone()));
            return run_checks("failover", name, &e, vec![setup]);
        }
    };
    let (auto, restart) = (caps.automatic, caps.restart);
    let checks = vec![
        Check::new("failover::decide_is_deterministic", decide::deterministic),
        Check::new(
            "failover::decide_never_replaces_a_reachable_primary",
            decide::never_replaces_a_reachable_primary,
        ),
        Check::new(
            "failover::decide_shrinks_only_silent_members",
            decide::shrinks_only_silent_members,
        ),
        Check::new(
            "failover::decide_promotes_only_the_best_in_sync_member",
            decide::promotes_only_the_best_in_sync_member,
        ),
        Check::new(
            "failover::decide_promotes_at_the_next_epoch",
            decide::promotes_at_the_next_epoch,
        ),
        Check::when(
            auto,
            "automatic decisions",
            "failover::decide_fails_over_when_it_should",
            decide::fails_over_when_it_should,
        ),
        Check::new("failover::record_starts_as_created", record_starts_as_created),
        Check::new("failover::compare_and_set_commits_the_next_version", cas_commits),
        Check::new("failover::compare_and_set_refuses_other_versions", cas_refuses_versions),
        Check::new("failover::concurrent_changes_commit_once", concurrent_changes),
        Check::new("failover::promotion_takes_exactly_the_next_epoch", promotion_epoch),
        Check::new("failover::only_in_sync_members_are_promoted", only_in_sync_promoted),
        Check::new("failover::lower_epochs_are_fenced", lower_epochs_fenced),
        Check::new("failover::leases_go_to_the_primary_in_its_epoch", leases_primary_only),
        Check::new("failover::lease_ends_before_the_grace_period", lease_before_grace),
        Check::new("failover::lease_names_the_committed_in_sync_set", lease_names_committed_set),
        Check::new("failover::sequences_match_the_model", model::sequences_match_the_model),
        Check::when(restart, "restart", "failover::changes_survive_a_restart", survives_restart),
    ];
    run_checks("failover", name, &subject, checks)
}

/// Runs the suite with `caps` and panics with the report when a check fails: the one
/// line a policy crate's conformance test needs.
#[track_caller]
pub fn assert_conforms(factory: Arc<dyn FailoverFactory>, caps: FailoverCaps) {
    run(factory, caps).assert_ok();
}

/// Primary `p` in epoch 4 (from sequence 100), in-sync `a` and `b`, default leases.
fn initial() -> AuthorityRecord {
    let mut r = AuthorityRecord::initial(42, "p", Epoch(4), SeqNo(100), LeaseSettings::default());
    r.in_sync = ["a".into(), "b".into()].into();
    r
}

/// A new authority in `dir` holding `initial`.
fn fresh(
    s: &Subject,
    dir: &Path,
    initial: AuthorityRecord,
) -> std::result::Result<Arc<dyn FailoverPolicy>, String> {
    s.rt.block_on(s.factory.create(Arc::clone(&s.fs), dir, initial)).ctx("creating an authority")
}

/// Runs `f` on a fresh authority holding [`initial`].
fn with_fresh(s: &Subject, f: impl FnOnce(&Arc<dyn FailoverPolicy>) -> CheckResult) -> CheckResult {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let policy = fresh(s, dir.path(), initial())?;
    f(&policy)
}

fn record(
    s: &Subject,
    p: &Arc<dyn FailoverPolicy>,
) -> std::result::Result<AuthorityRecord, String> {
    s.rt.block_on(p.record()).ctx("record()")
}

fn cas(s: &Subject, p: &Arc<dyn FailoverPolicy>, v: u64, c: Change) -> Result<AuthorityRecord> {
    s.rt.block_on(p.compare_and_set(v, c))
}

fn n(name: &str) -> NodeId {
    NodeId::from(name)
}

fn record_starts_as_created(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let r = record(s, p)?;
        ensure!(
            r == initial(),
            "record() of a new authority is {r:?}, created with {:?}",
            initial()
        );
        Ok(())
    })
}

fn cas_commits(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let mut expected = initial();
        let changes = [
            Change::JoinInSync { node: n("c"), epoch: Epoch(4) },
            Change::ShrinkInSync { node: n("a"), epoch: Epoch(4) },
        ];
        for change in changes {
            let got = cas(s, p, expected.version, change.clone()).ctx("a valid change")?;
            expected = expected.apply(&change).ctx("the rules")?;
            ensure!(got == expected, "{change:?} returned {got:?}, expected {expected:?}");
            let now = record(s, p)?;
            ensure!(now == got, "record() after a commit is {now:?}, the commit returned {got:?}");
        }
        Ok(())
    })
}

fn cas_refuses_versions(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        for v in [0, 2, 9] {
            let got = cas(s, p, v, Change::JoinInSync { node: n("c"), epoch: Epoch(4) });
            ensure!(
                matches!(got, Err(Error::StaleAuthority { expected, found: 1 }) if expected == v),
                "a change at version {v} of a record at 1 returned {got:?}, expected \
                 StaleAuthority {{ expected: {v}, found: 1 }}"
            );
        }
        let now = record(s, p)?;
        ensure!(now == initial(), "refused changes changed the record to {now:?}");
        Ok(())
    })
}

fn concurrent_changes(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let results = s.rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let p = Arc::clone(p);
                    tokio::spawn(async move {
                        let node = NodeId::new(format!("c{i}"));
                        p.compare_and_set(1, Change::JoinInSync { node, epoch: Epoch(4) }).await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        let mut wins = 0;
        for r in results {
            match r.ctx("a change task")? {
                Ok(_) => wins += 1,
                Err(Error::StaleAuthority { .. }) => {}
                Err(other) => return Err(format!("a losing change failed with {other}")),
            }
        }
        ensure!(wins == 1, "{wins} of 8 concurrent changes at version 1 committed, expected 1");
        let now = record(s, p)?;
        ensure!(now.version == 2 && now.in_sync.len() == 3, "after the race the record is {now:?}");
        Ok(())
    })
}

fn promotion_epoch(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        for epoch in [Epoch(4), Epoch(6)] {
            let got = cas(s, p, 1, Change::Promote { node: n("a"), epoch, first_seq: SeqNo(150) });
            ensure!(
                matches!(got, Err(Error::WrongEpoch { expected: Epoch(5), .. })),
                "a promotion at {epoch} from e4 returned {got:?}, expected WrongEpoch (e5 only)"
            );
        }
        ensure!(record(s, p)? == initial(), "a refused promotion changed the record");
        let promote = Change::Promote { node: n("a"), epoch: Epoch(5), first_seq: SeqNo(150) };
        let got = cas(s, p, 1, promote).ctx("promotion at e5")?;
        ensure!(
            got.epoch == Epoch(5) && got.epoch_first_seq == SeqNo(150) && got.primary == n("a"),
            "promotion of a at e5 from #150 committed {got:?}"
        );
        Ok(())
    })
}

fn only_in_sync_promoted(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let out = Change::Promote { node: n("x"), epoch: Epoch(5), first_seq: SeqNo(150) };
        let got = cas(s, p, 1, out);
        ensure!(
            matches!(got, Err(Error::NotEligible { ref node, .. }) if *node == n("x")),
            "promoting x, outside the in-sync set {{a, b}}, returned {got:?}, expected NotEligible"
        );
        ensure!(record(s, p)? == initial(), "a refused promotion changed the record");
        let force = Change::ForcePromote {
            node: n("x"),
            epoch: Epoch(5),
            first_seq: SeqNo(120),
            possible_loss: PossibleLoss { kept_up_to: SeqNo(119), ..PossibleLoss::default() },
        };
        let got = cas(s, p, 1, force).ctx("an operator's forced promotion")?;
        ensure!(
            got.primary == n("x") && got.epoch == Epoch(5) && got.in_sync.is_empty(),
            "a forced promotion of x committed {got:?}; expected x at e5 with nobody in sync"
        );
        Ok(())
    })
}

fn lower_epochs_fenced(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let promote = Change::Promote { node: n("a"), epoch: Epoch(5), first_seq: SeqNo(150) };
        cas(s, p, 1, promote).ctx("promotion")?;
        let lease = s.rt.block_on(p.renew_lease(&n("p"), Epoch(4)));
        ensure!(
            matches!(lease, Err(Error::Fenced { epoch: Epoch(4), current: Epoch(5), .. })),
            "the deposed primary p renewing in e4 after a promotion to e5 got {lease:?}, \
             expected Fenced"
        );
        for change in [
            Change::ShrinkInSync { node: n("b"), epoch: Epoch(4) },
            Change::JoinInSync { node: n("p"), epoch: Epoch(4) },
        ] {
            let got = cas(s, p, 2, change.clone());
            ensure!(
                matches!(got, Err(Error::Fenced { .. })),
                "{change:?} from the deposed epoch e4 returned {got:?}, expected Fenced"
            );
        }
        let now = record(s, p)?;
        ensure!(
            now.version == 2 && now.in_sync == [n("b")].into(),
            "fenced requests changed {now:?}"
        );
        Ok(())
    })
}

fn leases_primary_only(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        s.rt.block_on(p.renew_lease(&n("p"), Epoch(4))).ctx("the primary's lease")?;
        let replica = s.rt.block_on(p.renew_lease(&n("a"), Epoch(4)));
        ensure!(
            matches!(replica, Err(Error::NotEligible { .. })),
            "replica a asking for a lease got {replica:?}, expected NotEligible"
        );
        let ahead = s.rt.block_on(p.renew_lease(&n("p"), Epoch(5)));
        ensure!(
            matches!(ahead, Err(Error::WrongEpoch { .. })),
            "the primary asking in e5, never granted, got {ahead:?}, expected WrongEpoch"
        );
        Ok(())
    })
}

fn lease_before_grace(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let settings = record(s, p)?.lease;
        ensure!(
            settings.lease < settings.grace,
            "the record's lease settings {settings:?} break lease < grace"
        );
        let before = Instant::now();
        let lease = s.rt.block_on(p.renew_lease(&n("p"), Epoch(4))).ctx("lease")?;
        // The suite cannot see when the implementation started measuring; it checks
        // that the lease ends no later than `lease` after the call returned, and that
        // it is over once the grace period after the call began ran out.
        let returned = Instant::now();
        let length = lease.expires_at.saturating_duration_since(returned);
        ensure!(
            lease.expires_at <= returned + settings.lease,
            "the lease runs {length:?} from its grant, the settings allow {:?} (grace {:?})",
            settings.lease,
            settings.grace
        );
        ensure!(
            lease.check(before + settings.grace).is_err(),
            "the lease still holds when the replicas' grace ({:?}) ran out",
            settings.grace
        );
        Ok(())
    })
}

fn lease_names_committed_set(s: &Subject) -> CheckResult {
    with_fresh(s, |p| {
        let renew = || s.rt.block_on(p.renew_lease(&n("p"), Epoch(4))).ctx("lease");
        let expect = |when: &str, lease: &strata_core::Lease, r: &AuthorityRecord| {
            if lease.version == r.version && lease.in_sync == r.in_sync {
                return Ok(());
            }
            Err(format!(
                "{when}: the lease names version {} and in-sync {:?}, the committed record \
                 version {} and {:?}",
                lease.version, lease.in_sync, r.version, r.in_sync
            ))
        };
        expect("at start", &renew()?, &initial())?;
        // A shrink that does not commit (stale version) must not let the primary count
        // without the member.
        let refused = cas(s, p, 7, Change::ShrinkInSync { node: n("a"), epoch: Epoch(4) });
        ensure!(refused.is_err(), "a shrink at a stale version returned {refused:?}");
        let lease = renew()?;
        let members: BTreeSet<NodeId> = [n("a"), n("b")].into();
        ensure!(
            lease.in_sync == members,
            "after a refused shrink of a, the lease names {:?}: the primary would acknowledge \
             without a before the shrink is committed",
            lease.in_sync
        );
        expect("after a refused shrink", &lease, &record(s, p)?)?;
        let committed =
            cas(s, p, 1, Change::ShrinkInSync { node: n("a"), epoch: Epoch(4) }).ctx("shrink")?;
        expect("after a committed shrink", &renew()?, &committed)?;
        Ok(())
    })
}

fn survives_restart(s: &Subject) -> CheckResult {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let p = fresh(s, dir.path(), initial())?;
    cas(s, &p, 1, Change::JoinInSync { node: n("c"), epoch: Epoch(4) }).ctx("join")?;
    let promote = Change::Promote { node: n("b"), epoch: Epoch(5), first_seq: SeqNo(130) };
    let committed = cas(s, &p, 2, promote).ctx("promotion")?;
    drop(p);
    let p = s.rt.block_on(s.factory.open(Arc::clone(&s.fs), dir.path())).ctx("reopen")?;
    let now = record(s, &p)?;
    ensure!(now == committed, "after a restart the record is {now:?}, {committed:?} was committed");
    let lease = s.rt.block_on(p.renew_lease(&n("p"), Epoch(4)));
    ensure!(
        matches!(lease, Err(Error::Fenced { .. })),
        "after a restart the deposed primary in e4 got {lease:?}: the epoch went back"
    );
    s.rt.block_on(p.renew_lease(&n("b"), Epoch(5))).ctx("the new primary's lease after restart")?;
    Ok(())
}
