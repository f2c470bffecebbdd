//! The primary's lease and the timing that makes it a fence.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::node::NodeId;
use crate::error::{Error, Result};
use crate::types::Epoch;

/// The three durations failover runs on, kept in the authority record so every node
/// uses the same ones.
///
/// - `heartbeat`: how often every node reports (its epoch and positions) and the
///   primary renews its lease.
/// - `lease`: how long a renewed lease lets the primary acknowledge writes, counted
///   from *before* the renewal request was sent.
/// - `grace`: how long replicas (and the policy) wait without hearing from a node
///   before they treat it as gone: the primary is replaced, a replica is removed from
///   the in-sync set.
///
/// Valid settings have `heartbeat < lease < grace` ([`LeaseSettings::validate`]): a
/// primary renews several times per lease, and its lease runs out before anyone may act
/// on its silence, so a cut-off primary has stopped acknowledging by the time another
/// node is promoted (as long as clocks run at about the same rate; an in-sync replica
/// that was promoted also refuses the old epoch, which fences without clocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseSettings {
    /// Report and renewal interval.
    pub heartbeat: Duration,
    /// How long a renewed lease lasts.
    pub lease: Duration,
    /// Silence after which a node is treated as gone.
    pub grace: Duration,
}

impl Default for LeaseSettings {
    /// Heartbeats every 100 ms, a 500 ms lease, 800 ms of grace: a dead primary is
    /// replaced in under a second.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            lease: Duration::from_millis(500),
            grace: Duration::from_millis(800),
        }
    }
}

impl LeaseSettings {
    /// Settings from the three durations, validated.
    pub fn new(heartbeat: Duration, lease: Duration, grace: Duration) -> Result<Self> {
        let s = Self { heartbeat, lease, grace };
        s.validate()?;
        Ok(s)
    }

    /// Checks `0 < heartbeat < lease < grace`; the error (`Error::Config`) says which
    /// inequality fails and why it matters.
    pub fn validate(&self) -> Result<()> {
        let Self { heartbeat, lease, grace } = *self;
        if heartbeat.is_zero() {
            return Err(Error::Config("failover heartbeat must be longer than zero".into()));
        }
        if heartbeat >= lease {
            return Err(Error::Config(format!(
                "failover heartbeat ({heartbeat:?}) must be shorter than the lease ({lease:?}): \
                 the primary renews its lease on every heartbeat and would lose it between two"
            )));
        }
        if lease >= grace {
            return Err(Error::Config(format!(
                "failover lease ({lease:?}) must be shorter than the replicas' grace \
                 ({grace:?}): otherwise a cut-off primary may still acknowledge writes after \
                 a replica was promoted"
            )));
        }
        Ok(())
    }
}

/// Permission for the primary to acknowledge writes until `expires_at`, granted by
/// [`FailoverPolicy::renew_lease`](super::FailoverPolicy::renew_lease).
///
/// The primary checks it ([`Lease::check`]) before every acknowledgement and stops
/// acknowledging once it expired. In synchronous mode it acknowledges a write only once
/// it is durable on every member of `in_sync`: the in-sync set of the committed record
/// the lease was granted against, never a smaller one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The primary holding it.
    pub holder: NodeId,
    /// The epoch it was granted in.
    pub epoch: Epoch,
    /// The version of the authority record it was granted against.
    pub version: u64,
    /// That record's in-sync set.
    pub in_sync: BTreeSet<NodeId>,
    /// When it ends: at most the settings' `lease` after the renewal request started.
    pub expires_at: Instant,
}

impl Lease {
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// `Ok` while the lease holds at `now`; `Error::LeaseExpired` from `expires_at` on.
    pub fn check(&self, now: Instant) -> Result<()> {
        if now < self.expires_at {
            return Ok(());
        }
        Err(Error::LeaseExpired {
            node: self.holder.clone(),
            epoch: self.epoch,
            expired_for: now.saturating_duration_since(self.expires_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn settings_need_heartbeat_below_lease_below_grace() {
        assert!(LeaseSettings::default().validate().is_ok());
        assert!(LeaseSettings::new(ms(10), ms(50), ms(80)).is_ok());
        let err = LeaseSettings::new(ms(10), ms(80), ms(80)).expect_err("lease = grace");
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("shorter than the replicas' grace"))
        );
        let err = LeaseSettings::new(ms(50), ms(50), ms(80)).expect_err("heartbeat = lease");
        assert!(matches!(err, Error::Config(ref m) if m.contains("heartbeat")));
        assert!(LeaseSettings::new(ms(0), ms(50), ms(80)).is_err());
    }

    #[test]
    fn lease_expires_at_its_deadline() {
        let now = Instant::now();
        let lease = Lease {
            holder: NodeId::new("n1"),
            epoch: Epoch(3),
            version: 7,
            in_sync: BTreeSet::new(),
            expires_at: now + ms(100),
        };
        assert!(lease.check(now).is_ok());
        assert_eq!(lease.remaining(now), ms(100));
        let err = lease.check(now + ms(150)).expect_err("expired");
        assert!(matches!(err, Error::LeaseExpired { expired_for, .. } if expired_for == ms(50)));
        assert_eq!(lease.remaining(now + ms(150)), Duration::ZERO);
    }
}
