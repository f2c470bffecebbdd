//! The `raft` policy on a real group of three voters on loopback: changes through one
//! voter are seen by the others, a deposed primary is fenced, one lost voter of three
//! changes nothing, a group below quorum fails renewals in bounded time, and the policy
//! is usable from plain threads and from tokio runtimes alike; voters given routes reach
//! each other by them, not by the membership's addresses.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use common::group::{Group, REQUEST_TIMEOUT, block_on, free_addrs, initial, settings, voter_dir};
use strata_core::fs::OsFileSystem;
use strata_core::{Change, Epoch, Error, FailoverFactory, FailoverPolicy, NodeId, SeqNo};
use strata_failover_raft::{Member, RaftFactory, RaftPolicy, RaftSettings, Role};

fn n(name: &str) -> NodeId {
    NodeId::from(name)
}

fn promote_a() -> Change {
    Change::Promote { node: n("a"), epoch: Epoch(5), first_seq: SeqNo(150) }
}

#[test]
fn a_promotion_committed_through_one_voter_is_seen_by_the_others() {
    let g = Group::start();
    for id in 1..=3 {
        assert_eq!(block_on(g.voter(id).record()).expect("record"), initial(), "voter {id}");
    }
    let committed = block_on(g.voter(3).compare_and_set(1, promote_a())).expect("promotion");
    assert_eq!(
        (committed.version, committed.epoch, committed.primary.as_str()),
        (2, Epoch(5), "a")
    );
    for id in 1..=3 {
        assert_eq!(block_on(g.voter(id).record()).expect("record"), committed, "voter {id}");
    }
    // The same change again, at the old version, through another voter: refused, and
    // nothing changes.
    let again = block_on(g.voter(1).compare_and_set(1, promote_a()));
    assert!(matches!(again, Err(Error::StaleAuthority { expected: 1, found: 2 })), "{again:?}");
    assert_eq!(block_on(g.voter(2).record()).expect("record"), committed);
}

#[test]
fn voters_reach_each_other_by_their_routes_not_by_the_membership_addresses() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let listen = free_addrs(3);
    // Released when `free_addrs` returns: nothing listens where the membership says.
    let nowhere = loop {
        let n = free_addrs(3);
        if n.iter().all(|a| !listen.contains(a)) {
            break n;
        }
    };
    let members: BTreeMap<u64, Member> =
        (1..=3).map(|id: u64| (id, Member::data(nowhere[id as usize - 1]))).collect();
    let settings: Vec<RaftSettings> = (1..=3u64)
        .map(|id| {
            let mut s = RaftSettings::new(id, listen[id as usize - 1], members.clone())
                .with_heartbeat_interval(Duration::from_millis(50))
                .with_election_timeout(Duration::from_millis(300), Duration::from_millis(600))
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_bootstrap_timeout(Duration::from_secs(30));
            for peer in (1..=3).filter(|p| *p != id) {
                s = s.with_route(peer, listen[peer as usize - 1].to_string());
            }
            s
        })
        .collect();
    let voters = block_on(common::group::create_three(&settings, tmp.path(), &initial()))
        .expect("the group forms through the routes");
    let leader = voters.iter().find_map(|v| v.raft_status().ok().and_then(|s| s.leader));
    let follower = voters.iter().find(|v| Some(v.node_id()) != leader).expect("a follower");
    // A follower forwards the change to the leader, by its route.
    let committed =
        block_on(follower.compare_and_set(1, promote_a())).expect("a change through a follower");
    assert_eq!(committed.version, 2);
    for v in &voters {
        assert_eq!(block_on(v.record()).expect("record"), committed, "voter {}", v.node_id());
    }
}

#[test]
fn the_old_primary_renewing_after_a_promotion_is_fenced() {
    let g = Group::start();
    let before = Instant::now();
    let lease = block_on(g.voter(1).renew_lease(&n("p"), Epoch(4))).expect("the primary's lease");
    assert!(lease.expires_at <= Instant::now() + initial().lease.lease);
    assert!(
        lease.expires_at >= before + initial().lease.lease,
        "measured from the request's start"
    );
    assert_eq!((lease.version, &lease.in_sync), (1, &initial().in_sync));

    block_on(g.voter(2).compare_and_set(1, promote_a())).expect("promotion through voter 2");
    // The old primary asks through voter 1 (as if it were its local voter): the
    // linearizable read sees the promotion committed through voter 2.
    let fenced = block_on(g.voter(1).renew_lease(&n("p"), Epoch(4)));
    assert!(
        matches!(
            fenced,
            Err(Error::Fenced { epoch: Epoch(4), current: Epoch(5), ref primary }) if *primary == n("a")
        ),
        "{fenced:?}"
    );
    let shrink = block_on(
        g.voter(3).compare_and_set(2, Change::ShrinkInSync { node: n("b"), epoch: Epoch(4) }),
    );
    assert!(matches!(shrink, Err(Error::Fenced { .. })), "{shrink:?}");
    block_on(g.voter(3).renew_lease(&n("a"), Epoch(5))).expect("the new primary's lease");
}

#[test]
fn losing_one_of_three_voters_still_allows_changes() {
    let mut g = Group::start();
    let leader = g.leader().expect("a leader after create");
    g.stop(leader);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // The first call may wait for a new election: it retries within the request timeout.
    let committed = block_on(g.voter(survivors[0]).compare_and_set(1, promote_a()))
        .expect("a change with two of three voters");
    assert_eq!(committed.version, 2);
    assert_eq!(block_on(g.voter(survivors[1]).record()).expect("record"), committed);
    block_on(g.voter(survivors[1]).renew_lease(&n("a"), Epoch(5)))
        .expect("a lease with two of three");
}

#[test]
fn below_quorum_renewals_and_changes_fail_within_the_request_timeout() {
    let mut g = Group::start();
    g.stop(1);
    g.stop(2);
    let started = Instant::now();
    let lease = block_on(g.voter(3).renew_lease(&n("p"), Epoch(4)));
    let took = started.elapsed();
    match &lease {
        Err(Error::Transport { reason, .. }) => {
            assert!(reason.contains("stop acknowledging"), "{reason}")
        }
        other => panic!("a renewal without quorum returned {other:?}"),
    }
    assert!(took <= REQUEST_TIMEOUT + Duration::from_secs(1), "the renewal took {took:?}");

    let started = Instant::now();
    let change = block_on(g.voter(3).compare_and_set(1, promote_a()));
    assert!(matches!(change, Err(Error::Transport { .. })), "{change:?}");
    assert!(started.elapsed() <= REQUEST_TIMEOUT + Duration::from_secs(1));
}

#[test]
fn the_policy_works_from_tokio_runtimes_and_is_dropped_safely_inside_them() {
    let g = Group::start();
    // From a current-thread runtime (its only thread is never blocked by the policy).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let record = rt.block_on(g.voter(1).record()).expect("record in a current-thread runtime");
    assert_eq!(record, initial());
    // From a multi-thread runtime, concurrently through all three voters.
    let rt2 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt2.block_on(async {
        let (a, b, c) = tokio::join!(
            g.voter(1).compare_and_set(1, Change::JoinInSync { node: n("c1"), epoch: Epoch(4) }),
            g.voter(2).compare_and_set(1, Change::JoinInSync { node: n("c2"), epoch: Epoch(4) }),
            g.voter(3).compare_and_set(1, Change::JoinInSync { node: n("c3"), epoch: Epoch(4) }),
        );
        [a, b, c]
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(Error::StaleAuthority { .. }))));

    // A whole group created and dropped inside a runtime: the drop must neither panic
    // nor block the runtime's thread.
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = settings(&free_addrs(3), &[Role::Data, Role::Data, Role::Witness]);
    rt.block_on(async {
        let voters = common::group::create_three(&s, tmp.path(), &initial()).await.expect("create");
        assert_eq!(voters[2].record().await.expect("record"), initial());
        drop(voters);
    });
}

#[test]
fn create_refuses_raft_state_open_needs_it_and_a_restarted_voter_rejoins() {
    let mut g = Group::start();
    g.stop(3);
    let fs = OsFileSystem::shared();
    let dir3 = voter_dir(g.tmp.path(), 3);
    let factory = RaftFactory::new(g.settings[2].clone());
    let again = block_on(factory.create(fs.clone(), &dir3, initial()));
    assert!(
        matches!(again, Err(Error::InvalidArgument(ref m)) if m.contains("open it")),
        "{again:?}"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let nothing = block_on(factory.open(fs.clone(), empty.path()));
    assert!(
        matches!(nothing, Err(Error::InvalidArgument(ref m)) if m.contains("create it")),
        "{nothing:?}"
    );

    let committed =
        block_on(g.voter(1).compare_and_set(1, promote_a())).expect("change while 3 is down");
    let reopened = block_on(factory.open(fs, &dir3)).expect("voter 3 restarts");
    assert_eq!(reopened.name(), "raft");
    assert_eq!(block_on(reopened.record()).expect("record after the restart"), committed);
}

#[test]
fn a_register_that_was_never_written_is_a_clear_error() {
    // A raft group formed by the bare register, never given a record.
    let mut c = Cluster::start(&[Role::Data; 3]);
    let addrs: Vec<_> = c.nodes.iter().map(|n| n.addr).collect();
    let dirs: Vec<_> = c.nodes.iter().map(|n| n.dir.clone()).collect();
    for id in 1..=3 {
        c.node_mut(id).stop();
    }
    let s = settings(&addrs, &[Role::Data; 3]);
    let voters: Vec<RaftPolicy> = s
        .iter()
        .zip(&dirs)
        .map(|(s, d)| {
            block_on(RaftPolicy::open(s.clone(), OsFileSystem::shared(), d)).expect("open")
        })
        .collect();
    let got = block_on(voters[0].record());
    assert!(
        matches!(got, Err(Error::InvalidArgument(ref m)) if m.contains("holds no authority record")),
        "{got:?}"
    );
    assert!(voters[0].local_record().expect("local").is_none());
}
