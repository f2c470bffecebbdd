//! The failover contract: who is primary, who is in sync, and the fences that keep a
//! deposed primary from acknowledging writes (DESIGN.md §7).
//!
//! A [`FailoverPolicy`] is two things behind one object:
//!
//! - **A decision**, [`FailoverPolicy::decide`]: a pure function from the current
//!   [`AuthorityRecord`] and what the nodes last reported ([`ClusterView`]) to a
//!   [`Decision`] as data — do nothing, drop a silent member from the in-sync set,
//!   promote a member, or say that nobody may be promoted. The caller commits it.
//! - **An authority**: the one small record every node agrees on (cluster, version,
//!   epoch, primary, in-sync set, lease settings), changed only by compare-and-set on
//!   its version ([`FailoverPolicy::compare_and_set`], rules in
//!   [`AuthorityRecord::apply`]), and the primary's lease
//!   ([`FailoverPolicy::renew_lease`]). A consensus-backed compare-and-set register
//!   implements it by storing the record and applying `apply` at the expected
//!   version; the `manual` policy keeps it in one durable file.
//!
//! The types are plain data (serde), so a record crosses the network and sits on disk
//! as it is. Policy-independent rules are functions here —
//! [`promotion_candidate`], [`automatic_decision`], [`plan_forced_promotion`] — so
//! every policy, the operator tooling and the conformance suite apply the same ones.

mod decide;
mod lease;
mod node;
mod record;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use decide::{Decision, automatic_decision, plan_forced_promotion, promotion_candidate};
pub use lease::{Lease, LeaseSettings};
pub use node::{ClusterView, NodeId, NodeReport};
pub use record::{AuthorityRecord, Change, PossibleLoss};

use crate::error::Result;
use crate::fs::FileSystem;
use crate::types::Epoch;

/// Decides whether and to whom leadership moves, holds the authority record every
/// change goes through, and grants the primary the lease it acknowledges under.
///
/// # What it observes
///
/// Heartbeats: every node reports its newest epoch, its last and durable sequence
/// ([`NodeReport`]); a node not heard from within the record's `grace` is unreachable.
/// And the committed [`AuthorityRecord`]: the epoch, the primary, the in-sync set.
///
/// # What it decides ([`decide`](Self::decide))
///
/// - While the primary is reachable, only whether an in-sync member that went silent
///   leaves the in-sync set ([`Decision::ShrinkInSync`]), never a member that reports.
/// - Once the primary is unreachable, whom to promote: only a reachable member of the
///   in-sync set, the one with the highest (epoch, last sequence) among them; at the
///   record's epoch + 1; starting at that node's last sequence + 1
///   ([`Decision::Promote`]). With no such member it says so
///   ([`Decision::Unavailable`]) and the cluster waits for one to return or for an
///   operator.
/// - A policy may decide less than this (the `manual` policy never decides on its own;
///   an operator commits changes), never something else.
///
/// # Fencing duties
///
/// Of the policy (checked by the conformance suite):
///
/// - Every change is a compare-and-set on the record's version, committed durably (or
///   by a quorum) before `compare_and_set` returns; a refused change changes nothing.
/// - A promotion is at exactly the record's epoch + 1, of an in-sync member (or of the
///   primary itself, taking a new epoch); an out-of-sync node becomes primary only by an
///   operator's [`Change::ForcePromote`], which carries the [`PossibleLoss`] the
///   operator was shown ([`plan_forced_promotion`]).
/// - A request carrying an epoch lower than the record's — a lease renewal, an in-sync
///   change — comes from a deposed primary and is refused (`Error::Fenced`): the
///   authority never accepts a lower epoch.
/// - A lease goes only to the record's primary in the record's epoch, lasts at most the
///   settings' `lease` from the moment the request started, and the settings keep
///   `lease < grace`; it names the committed record's in-sync set, never one with a
///   pending (uncommitted) removal.
///
/// Of the nodes (the replication layer's side of the contract):
///
/// - The primary acknowledges a write only while it holds an unexpired [`Lease`]
///   ([`Lease::check`]), and in synchronous mode only once every member of the lease's
///   in-sync set has it durable. When its lease lapses it stops acknowledging.
/// - A replica leaves the in-sync set only by a committed [`Change::ShrinkInSync`]; the
///   primary acknowledges no further write without that replica before the change is
///   committed (and its next lease names the smaller set).
/// - A node never accepts a batch, a promotion or a primary from an epoch lower than the
///   newest it has seen, also across restarts; replicas whose log diverged truncate to
///   the record's `epoch_first_seq`.
///
/// # For implementers
///
/// The trait is object-safe (`Arc<dyn FailoverPolicy>`); the async methods may cross
/// the network. Implementations commit exactly what [`AuthorityRecord::apply`] returns
/// and measure a lease from the start of the renewal request, before any I/O.
#[async_trait::async_trait]
pub trait FailoverPolicy: Send + Sync + fmt::Debug {
    /// A short name for reports and stack configurations (`"manual"`, `"raft"`).
    fn name(&self) -> &'static str;

    /// The next step, as a pure function of the committed `record` and the `view`:
    /// the same inputs give the same decision, and no I/O happens. Callers commit
    /// [`Decision::change`] through [`compare_and_set`](Self::compare_and_set) at
    /// `record.version`, which re-checks it.
    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision;

    /// The committed record (for a consensus-backed authority, one at least as new as
    /// any change this node saw committed).
    async fn record(&self) -> Result<AuthorityRecord>;

    /// Commits `change` if the record is still at `expected_version`, and returns the
    /// new record (at `expected_version + 1`, as [`AuthorityRecord::apply`] makes it)
    /// once it is durable. A record at another version is `Error::StaleAuthority`
    /// (re-read it and decide again); a change the rules refuse is the error `apply`
    /// returns. Either way nothing changes. Of two concurrent calls at the same
    /// version at most one succeeds.
    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord>;

    /// Grants `node`, which writes in `epoch`, a lease: only if it is the record's
    /// primary and `epoch` the record's epoch. A lower epoch is `Error::Fenced` (the
    /// node was deposed: it must stop acknowledging), another node is
    /// `Error::NotEligible`, a higher epoch `Error::WrongEpoch`. The lease expires at
    /// most the settings' `lease` after this call started, and names the committed
    /// record's version and in-sync set.
    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease>;
}

/// Makes the authorities of one policy: what a stack configuration names
/// (`[failover] kind = "manual"`) and what the conformance suite is handed.
///
/// An authority keeps whatever it stores locally (the `manual` policy's record file, a
/// consensus group's log and vote) in `dir`, through `fs`.
#[async_trait::async_trait]
pub trait FailoverFactory: Send + Sync + fmt::Debug {
    /// The policy's name (`"manual"`), as [`FailoverPolicy::name`] gives it.
    fn name(&self) -> &'static str;

    /// Starts a new authority in `dir` holding `initial` (checked with
    /// [`AuthorityRecord::validate`]); refuses a `dir` that already holds one.
    async fn create(
        &self,
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>>;

    /// Opens the authority kept in `dir` again (after a restart): its record is the
    /// last one committed. A policy that keeps nothing returns `Error::Unsupported`.
    async fn open(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Arc<dyn FailoverPolicy>>;
}
