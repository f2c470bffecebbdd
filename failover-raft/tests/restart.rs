//! A node restarted from its directory comes back with its vote, log and state: the
//! version it serves never goes back, it catches up (by log or by snapshot) with what it
//! missed, and a whole group stopped and restarted keeps its register.

mod common;

use common::{Cluster, cas, read, wait_applied};
use strata_failover_raft::{Role, Versioned};

#[test]
fn a_restarted_follower_keeps_its_state_and_catches_up_by_snapshot() {
    // Snapshots every 4 entries, so the leader purges what the stopped follower misses and
    // must send it a snapshot.
    let mut c = Cluster::start_with(&[Role::Data; 3], 4);
    let leader = c.leader();
    let follower = c.other_than(leader);
    for v in 0..5 {
        cas(c.node(leader), v, format!("v{}", v + 1).as_bytes()).expect("cas");
    }
    wait_applied(c.node(follower), 5);
    let before = c.node(follower).reg().status();

    c.node_mut(follower).stop();
    for v in 5..20 {
        cas(c.node(leader), v, format!("v{}", v + 1).as_bytes())
            .expect("cas while a follower is down");
    }

    c.node_mut(follower).restart().expect("the follower restarts from its directory");
    let n = c.node(follower);
    // Straight after the restart, before hearing from anyone, it is where it was.
    let local = n.reg().local();
    assert!(local.value.version >= 5, "version went back to {}", local.value.version);
    assert!(n.reg().status().term >= before.term);

    wait_applied(n, 20);
    assert_eq!(n.reg().local().value, Versioned { version: 20, value: b"v20".to_vec() });
    assert_eq!(read(n).expect("read through the restarted follower").version, 20);

    // What it received after the snapshot (log entries following the purged range)
    // reopens as a log without gaps.
    cas(c.node(leader), 20, b"v21").expect("cas after the catch-up");
    wait_applied(c.node(follower), 21);
    c.node_mut(follower).stop();
    c.node_mut(follower).restart().expect("the follower restarts again");
    assert!(c.node(follower).reg().local().value.version >= 21);
}

#[test]
fn a_whole_group_restarted_keeps_its_register_and_elects_again() {
    let mut c = Cluster::start_with(&[Role::Data, Role::Data, Role::Witness], 3);
    let leader = c.leader();
    for v in 0..7 {
        cas(c.node(leader), v, format!("v{}", v + 1).as_bytes()).expect("cas");
    }
    for n in &c.nodes {
        wait_applied(n, 7);
    }
    let terms: Vec<u64> = c.nodes.iter().map(|n| n.reg().status().term).collect();

    for n in &mut c.nodes {
        n.kill();
    }
    for n in &mut c.nodes {
        n.restart().expect("restart from the directory");
    }
    for (n, term) in c.nodes.iter().zip(terms) {
        assert!(
            n.reg().local().value.version == 7,
            "node {} restarted at version {}",
            n.id,
            n.reg().local().value.version
        );
        assert!(n.reg().status().term >= term, "node {} forgot its term", n.id);
    }
    let leader = c.leader();
    assert_eq!(
        read(c.node(leader)).expect("read after a full restart"),
        Versioned { version: 7, value: b"v7".to_vec() }
    );
    assert_eq!(cas(c.node(leader), 7, b"v8").expect("cas after a full restart").version, 8);
}
