//! Three voters on loopback elect a leader; compare-and-set through any node (followers
//! forward to the leader) advances the version by one; a stale expected version is refused
//! with the current version; of two racing compare-and-sets exactly one wins.

mod common;

use std::sync::{Arc, Barrier};

use common::{Cluster, cas, read};
use strata_failover_raft::{Error, NodeState, Role, Versioned};

#[test]
fn three_nodes_elect_a_leader_and_compare_and_set_works() {
    let c = Cluster::start(&[Role::Data; 3]);
    let leader = c.leader();
    let follower = c.other_than(leader);

    let fresh = read(c.node(follower)).expect("read through a follower");
    assert_eq!(fresh, Versioned { version: 0, value: Vec::new() });

    let v1 = cas(c.node(leader), 0, b"one").expect("cas at the leader");
    assert_eq!(v1, Versioned { version: 1, value: b"one".to_vec() });
    let v2 = cas(c.node(follower), 1, b"two").expect("cas through a follower");
    assert_eq!(v2, Versioned { version: 2, value: b"two".to_vec() });

    for n in &c.nodes {
        assert_eq!(read(n).expect("read"), v2, "node {} reads the latest value", n.id);
        common::wait_applied(n, 2);
        assert!(n.reg().local().changed_at.is_some());
    }
    let status = c.node(leader).reg().status();
    assert_eq!(status.state, NodeState::Leader);
    assert_eq!(status.leader, Some(leader));
    assert_eq!(status.voters.len(), 3);
    assert_eq!(c.node(follower).reg().leader(), Some(leader));
}

#[test]
fn a_stale_compare_and_set_is_refused_with_the_current_version() {
    let c = Cluster::start(&[Role::Data; 3]);
    let leader = c.leader();
    let follower = c.other_than(leader);
    cas(c.node(leader), 0, b"first").expect("first cas");

    for (node, expected) in [(leader, 0), (follower, 0), (leader, 7)] {
        let n = c.node(node);
        match n.run(n.reg().compare_and_set(expected, b"stale".to_vec())) {
            Err(Error::VersionMismatch { expected: e, current }) => {
                assert_eq!((e, current), (expected, 1));
            }
            other => panic!("expected a version mismatch, got {other:?}"),
        }
    }
    assert_eq!(
        read(c.node(follower)).expect("read"),
        Versioned { version: 1, value: b"first".to_vec() }
    );
}

#[test]
fn of_two_racing_compare_and_sets_exactly_one_wins_per_version() {
    let c = Arc::new(Cluster::start(&[Role::Data; 3]));
    let leader = c.leader();
    let follower = c.other_than(leader);
    const ROUNDS: u64 = 8;
    let barrier = Arc::new(Barrier::new(2));

    let clients: Vec<_> = [leader, follower]
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let c = c.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let n = c.node(node);
                (0..ROUNDS)
                    .map(|round| {
                        barrier.wait();
                        let value = format!("client {i} round {round}").into_bytes();
                        // Retried across elections (a busy 2-core machine can delay a
                        // heartbeat); a retry never turns a loss into a win.
                        cas(n, round, &value)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> =
        clients.into_iter().map(|h| h.join().expect("client thread")).collect();

    let mut last = None;
    for (round, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        let (won, lost) = match (a, b) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("round {round}: exactly one compare-and-set must win, got {other:?}"),
        };
        assert_eq!(won.version, round as u64 + 1, "round {round}");
        assert!(
            matches!(lost, Error::VersionMismatch { expected, current } if *expected == round as u64 && *current == round as u64 + 1),
            "round {round}: the loser must see the winner's version, got {lost:?}"
        );
        last = Some(won.clone());
    }
    assert_eq!(Some(read(c.node(leader)).expect("read")), last);
}
