//! Breaks split votes that openraft 0.9 can repeat for many seconds.
//!
//! openraft 0.9 draws a node's election timeout once, when the node starts
//! (`EngineConfig::new`), and keeps it for the node's life. Two voters whose draws lie
//! close together time out in the same phase after every failed election: both become
//! candidates in the same term, each votes for itself, neither wins, and the phase gap
//! closes only by the difference of their draws per round. With two data nodes and a
//! witness, losing one voter left the other two splitting votes for up to ~20 s.
//!
//! The nudger watches the node's metrics. Once the node has seen no leader for twice the
//! maximum election timeout, it triggers an election itself after a delay drawn afresh
//! each time from `[min, max]`, so two leaderless voters stop moving in step. A leader,
//! a learner or a node outside the voters never triggers one; openraft's own timer keeps
//! running as before.

use std::time::Duration;

use openraft::ServerState;
use rand::Rng;
use tokio::time::Instant;

use crate::types::{NodeId, Raft};

/// Runs until the raft task stops. Cancel it (abort its task) to let a dropped node's
/// raft end: it holds a handle.
pub(crate) async fn nudge_elections(
    raft: Raft,
    node: NodeId,
    poll: Duration,
    min: Duration,
    max: Duration,
) {
    let mut last_leader = Instant::now();
    let mut next_nudge: Option<Instant> = None;
    loop {
        tokio::time::sleep(poll).await;
        let (leader, state, voter) = {
            let m = raft.metrics();
            let m = m.borrow();
            let voter = m.membership_config.membership().voter_ids().any(|v| v == node);
            (m.current_leader, m.state, voter)
        };
        let now = Instant::now();
        if leader.is_some()
            || !voter
            || !matches!(state, ServerState::Follower | ServerState::Candidate)
        {
            if state == ServerState::Shutdown {
                return;
            }
            last_leader = now;
            next_nudge = None;
            continue;
        }
        if now.duration_since(last_leader) < max * 2 {
            continue;
        }
        let due = *next_nudge.get_or_insert_with(|| now + draw(min, max));
        if now < due {
            continue;
        }
        tracing::debug!(
            node,
            "no leader for a while: triggering an election after a fresh random delay"
        );
        if raft.trigger().elect().await.is_err() {
            return;
        }
        next_nudge = Some(now + draw(min, max));
    }
}

fn draw(min: Duration, max: Duration) -> Duration {
    let (lo, hi) = (min.as_millis() as u64, max.as_millis().max(min.as_millis() + 1) as u64);
    Duration::from_millis(rand::thread_rng().gen_range(lo..hi))
}
