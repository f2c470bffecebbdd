//! Losing a voter: when the leader's runtime is dropped (a crash-stop of all its tasks) the
//! survivors elect a new leader that serves the same value and version and takes the next
//! compare-and-set; a group of two data nodes and a witness survives losing any one of
//! the three.

mod common;

use common::{Cluster, cas, read};
use strata_failover_raft::{NodeState, Role, Versioned};

#[test]
fn a_new_leader_is_elected_and_keeps_the_value_and_version() {
    let mut c = Cluster::start(&[Role::Data; 3]);
    let old = c.leader();
    for v in 0..3 {
        cas(c.node(old), v, format!("v{}", v + 1).as_bytes()).expect("cas before the failure");
    }

    c.node_mut(old).kill();
    let new = c.leader();
    assert_ne!(new, old, "a killed node cannot be the leader");
    let survivor = c.other_than(new);

    let after = read(c.node(survivor)).expect("read after failover");
    assert_eq!(after, Versioned { version: 3, value: b"v3".to_vec() });
    let next = cas(c.node(survivor), 3, b"v4").expect("cas after failover");
    assert_eq!(next.version, 4);
    assert_eq!(read(c.node(new)).expect("read at the new leader"), next);
}

#[test]
fn two_data_nodes_and_a_witness_survive_losing_any_one() {
    for victim in 1..=3 {
        let mut c = Cluster::start(&[Role::Data, Role::Data, Role::Witness]);
        let status = c.node(1).reg().status();
        assert_eq!(status.voters.get(&3).map(|m| m.role), Some(Role::Witness));
        assert_eq!(status.voters.get(&1).map(|m| m.role), Some(Role::Data));

        let leader = c.leader();
        cas(c.node(leader), 0, b"before").expect("cas with all three");

        c.node_mut(victim).kill();
        let leader = c.leader();
        assert_ne!(leader, victim);
        assert_eq!(c.node(leader).reg().status().state, NodeState::Leader);
        for n in c.nodes.iter().filter(|n| n.is_up()) {
            assert_eq!(
                read(n).expect("read with one voter lost").version,
                1,
                "victim {victim}, node {}",
                n.id
            );
        }
        let survivor = c.other_than(leader);
        let after = cas(c.node(survivor), 1, b"after").expect("cas with one voter lost");
        assert_eq!(after, Versioned { version: 2, value: b"after".to_vec() }, "victim {victim}");
    }
}
