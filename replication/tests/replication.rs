//! Primary → replica shipping on loopback TCP with real stores on disk.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_core::fs::OsFileSystem;
use strata_core::{DbOptions, SeqNo, WalBatch, WriteBatch};
use strata_harness::stack::tiny_builder;
mod common;

use common::{any_port, contents, log_of, start_proxy, wait_for};
use strata_harness::proxy::Direction;
use strata_replication::{Error, Mode, Node, NodeConfig, OpenStore, RoleConfig};

fn opener(dir: &Path, memtable: usize) -> OpenStore {
    let dir = dir.to_path_buf();
    Arc::new(move |replica_of: Option<String>| {
        let mut b = tiny_builder(&dir, OsFileSystem::shared(), memtable, 64 * 1024);
        let o: &mut DbOptions = b.options_mut();
        o.replica_of = replica_of;
        b.open()
    })
}

fn primary(dir: &Path, mode: Mode, memtable: usize, tweak: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut c = NodeConfig::new("p", any_port(), RoleConfig::Primary);
    c.mode = mode;
    c.heartbeat = Duration::from_millis(20);
    tweak(&mut c);
    Node::start(c, dir, opener(dir, memtable)).expect("primary starts")
}

fn replica(name: &str, dir: &Path, primary: SocketAddr, memtable: usize) -> Node {
    let mut c =
        NodeConfig::new(name, any_port(), RoleConfig::Replica { primary: primary.to_string() });
    c.reconnect = Duration::from_millis(50);
    Node::start(c, dir, opener(dir, memtable)).expect("replica starts")
}

fn put(node: &Node, i: u64) -> Result<SeqNo, Error> {
    let mut b = WriteBatch::new();
    b.put(format!("key-{:06}", i % 700), format!("value-{i}-{}", "x".repeat((i % 50) as usize)));
    if i.is_multiple_of(3) {
        b.delete(format!("key-{:06}", (i * 7) % 700));
    }
    node.write(&b)
}

fn caught_up(node: &Node, seq: SeqNo) -> bool {
    node.db().is_some_and(|db| db.visible_seq() >= seq)
}

fn dirs(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let root = tempfile::tempdir().expect("tempdir");
    let v = (0..n).map(|i| root.path().join(format!("node{i}"))).collect();
    (root, v)
}

#[test]
fn replicas_hold_the_primary_log_byte_for_byte_across_restarts() {
    let (_root, d) = dirs(3);
    let big = 64 << 20;
    let p = primary(&d[0], Mode::Async, big, |_| {});
    let r1 = replica("r1", &d[1], p.local_addr(), big);
    let mut r2 = replica("r2", &d[2], p.local_addr(), big);
    let mut last = SeqNo::ZERO;
    for i in 0..900u64 {
        last = put(&p, i).expect("write");
        if i == 300 {
            // A replica restarts mid-stream and resumes from what it holds.
            drop(r2);
            r2 = replica("r2", &d[2], p.local_addr(), big);
        }
    }
    wait_for("both replicas to catch up", || caught_up(&r1, last) && caught_up(&r2, last));
    let (pdb, db1, db2) = (p.db().expect("db"), r1.db().expect("db"), r2.db().expect("db"));
    let want = log_of(&pdb);
    assert_eq!(want.last().map(WalBatch::last_seq), Some(last));
    assert_eq!(log_of(&db1), want, "replica 1's log differs from the primary's");
    assert_eq!(log_of(&db2), want, "replica 2's log differs from the primary's");
    assert_eq!(contents(&db1), contents(&pdb));
    assert_eq!(db2.epoch_history(), pdb.epoch_history());
    // Client writes to a replica name the primary.
    match db1.put(b"k", b"v", strata_core::Durability::Sync) {
        Err(strata_core::Error::NotPrimary { primary }) => {
            assert_eq!(primary, p.local_addr().to_string());
        }
        other => panic!("a write to a replica must be NotPrimary, got {other:?}"),
    }
    let status = p.status();
    assert_eq!(status.role, "primary");
    assert_eq!(status.replicas.len(), 2, "{status:?}");
    let rs = r1.status();
    assert_eq!((rs.role.as_str(), rs.last_seq, rs.lag_seqs), ("replica", last.0, 0), "{rs:?}");
}

#[test]
fn sync_mode_acknowledges_only_what_the_in_sync_set_holds() {
    let (_root, d) = dirs(2);
    let big = 64 << 20;
    let p = primary(&d[0], Mode::Sync, big, |c| {
        c.sync_timeout = Some(Duration::from_millis(300));
    });
    // No replica yet: min_in_sync 1 cannot hold, the write is durable but not acknowledged.
    match put(&p, 0) {
        Err(Error::NotReplicated { .. }) => {}
        other => panic!("expected NotReplicated without replicas, got {other:?}"),
    }
    let r = replica("r1", &d[1], p.local_addr(), big);
    wait_for("the replica to join the in-sync set", || p.status().in_sync == ["r1"]);
    for i in 1..200u64 {
        let seq = put(&p, i).expect("a sync write with an in-sync replica");
        // Acknowledged means durable on the replica.
        let rdb = r.db().expect("db");
        assert!(
            rdb.durable_seq() >= seq,
            "acknowledged {seq}, replica durable {}",
            rdb.durable_seq()
        );
    }
    // The in-sync replica goes away: the primary stops acknowledging...
    drop(r);
    match put(&p, 500) {
        Err(Error::NotReplicated { reason, .. }) => assert!(reason.contains("r1"), "{reason}"),
        other => panic!("expected NotReplicated with the in-sync replica gone, got {other:?}"),
    }
    // ...until an operator removes it; with min_in_sync 1 and nobody left it still
    // refuses, saying why.
    p.remove_replica("r1").expect("remove");
    match put(&p, 501) {
        Err(Error::NotReplicated { reason, .. }) => {
            assert!(reason.contains("min_in_sync"), "{reason}")
        }
        other => panic!("expected NotReplicated below min_in_sync, got {other:?}"),
    }
}

#[test]
fn a_replica_the_log_no_longer_covers_bootstraps_from_a_checkpoint() {
    let (_root, d) = dirs(2);
    // Small memtables: the primary flushes and deletes old WAL segments.
    let p = primary(&d[0], Mode::Async, 16 * 1024, |_| {});
    for i in 0..3000u64 {
        put(&p, i).expect("write");
    }
    let pdb = p.db().expect("db");
    pdb.flush().expect("flush");
    pdb.wait_for_background().expect("background");
    assert!(pdb.read_log_from(SeqNo(1)).is_err(), "the primary should have dropped early WAL");
    let r = replica("r1", &d[1], p.local_addr(), 16 * 1024);
    // Writes continue while the replica bootstraps.
    let mut last = SeqNo::ZERO;
    for i in 3000..3500u64 {
        last = put(&p, i).expect("write");
    }
    wait_for("the bootstrapped replica to catch up", || caught_up(&r, last));
    assert_eq!(p.status().bootstraps, 1);
    let rdb = r.db().expect("db");
    assert_eq!(contents(&rdb), contents(&pdb), "the replica's data differs after bootstrap");
    for i in 3500..3600u64 {
        last = put(&p, i).expect("write");
    }
    wait_for("the replica to follow after bootstrap", || caught_up(&r, last));
    assert_eq!(contents(&r.db().expect("db")), contents(&pdb));
}

/// An async primary writes a batch its replica never gets, goes away, and the replica
/// is promoted and writes a new epoch; then the old primary rejoins as a replica of it.
/// `flush_lost` flushes the diverged batch to a table first. Returns the new primary,
/// the rejoined node, the diverged batch's sequence and the new primary's last one.
fn old_primary_rejoins(d: &[PathBuf], flush_lost: bool) -> (Node, Node, SeqNo, SeqNo) {
    let big = 64 << 20;
    let p = primary(&d[0], Mode::Async, big, |_| {});
    let r = replica("r1", &d[1], p.local_addr(), big);
    let mut last = SeqNo::ZERO;
    for i in 0..10u64 {
        last = put(&p, i).expect("write");
    }
    wait_for("the replica", || caught_up(&r, last));
    r.stop();
    drop(r);
    // Batches only the old primary has: async, never shipped.
    let mut b = WriteBatch::new();
    b.put("lost-key", "lost");
    let lost = p.write(&b).expect("write");
    assert!(lost > last);
    if flush_lost {
        // The diverged write reaches a table: no truncation can take it back now.
        p.db().expect("db").flush().expect("flush");
    }
    p.stop();
    drop(p);
    // The replica becomes primary (its old primary is gone) and writes a new epoch.
    let mut c =
        NodeConfig::new("r1", any_port(), RoleConfig::Replica { primary: "127.0.0.1:9".into() });
    c.reconnect = Duration::from_secs(60);
    let newp = Node::start(c, &d[1], opener(&d[1], big)).expect("start");
    newp.promote().expect("promote");
    let mut b = WriteBatch::new();
    b.put("new-key", "new");
    let new_last = newp.write(&b).expect("write on the new primary");
    assert_eq!(new_last, last.next(), "the new epoch starts right after the replica's last");
    let old = replica("p", &d[0], newp.local_addr(), big);
    (newp, old, lost, new_last)
}

#[test]
fn a_diverged_tail_is_truncated_when_the_old_primary_rejoins() {
    let (_root, d) = dirs(2);
    let (newp, old, _, new_last) = old_primary_rejoins(&d, false);
    let epoch = newp.db().expect("db").epoch();
    // Its tail is truncated, then it follows.
    wait_for("the old primary to follow", || {
        old.db().is_some_and(|db| {
            db.visible_seq() == new_last
                && db.epoch_history().last().map(|e| e.epoch) == Some(epoch)
        })
    });
    let odb = old.db().expect("db");
    assert_eq!(odb.get(b"lost-key").expect("get"), None, "the diverged write must be gone");
    assert_eq!(odb.get(b"new-key").expect("get").as_deref(), Some(&b"new"[..]));
    assert_eq!(log_of(&odb), log_of(&newp.db().expect("db")));
    assert_eq!(newp.status().bootstraps, 0, "a truncation, not a checkpoint");
}

/// The same, but the old primary flushed its diverged tail to a table before it went
/// away: a truncation cannot take it back, so the rejoining node asks for a checkpoint
/// and ends with exactly the new primary's data.
#[test]
fn a_flushed_diverged_tail_is_replaced_by_a_checkpoint_when_the_old_primary_rejoins() {
    let (_root, d) = dirs(2);
    let (newp, old, lost, new_last) = old_primary_rejoins(&d, true);
    // Its diverged write sits at the same sequence as the new primary's first one.
    assert_eq!(lost, new_last);
    wait_for("the old primary to be re-bootstrapped and follow", || {
        old.db().is_some_and(|db| db.get(b"new-key").ok().flatten().is_some())
    });
    assert_eq!(newp.status().bootstraps, 1, "one checkpoint replaced the old primary's store");
    let odb = old.db().expect("db");
    assert_eq!(odb.get(b"lost-key").expect("get"), None, "the diverged write must be gone");
    let npdb = newp.db().expect("db");
    assert_eq!(contents(&odb), contents(&npdb));
    // And it follows on from there.
    let mut b = WriteBatch::new();
    b.put("after", "x");
    let after = newp.write(&b).expect("write");
    wait_for("the old primary to follow", || caught_up(&old, after));
    assert_eq!(contents(&old.db().expect("db")), contents(&npdb));
}

#[test]
fn garbage_and_foreign_clusters_drop_the_connection_not_the_primary() {
    let (_root, d) = dirs(3);
    let big = 64 << 20;
    let p = primary(&d[0], Mode::Async, big, |_| {});
    let r = replica("r1", &d[1], p.local_addr(), big);
    // Garbage, an oversized length and a truncated frame from other clients.
    for junk in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        u32::MAX.to_le_bytes().to_vec(),
        vec![50, 0, 0, 0, 1, b'{'],
    ] {
        let mut s = TcpStream::connect(p.local_addr()).expect("connect");
        s.write_all(&junk).expect("write junk");
        drop(s);
    }
    // A store of another cluster asks to follow: refused, with the reason.
    let foreign = primary(&d[2], Mode::Async, big, |_| {});
    put(&foreign, 1).expect("write");
    foreign.stop();
    drop(foreign);
    let f = replica("f", &d[2], p.local_addr(), big);
    wait_for("the foreign replica to be refused", || {
        f.status().last_error.is_some_and(|e| e.contains("cluster id mismatch"))
    });
    // The real replica is unaffected.
    let mut last = SeqNo::ZERO;
    for i in 0..50u64 {
        last = put(&p, i).expect("write");
    }
    wait_for("the replica", || caught_up(&r, last));
    assert_eq!(f.db().expect("db").visible_seq(), SeqNo(1), "the foreign store must not change");
}

#[test]
fn random_workload_with_restarts_slow_and_flapping_links_keeps_identical_logs() {
    let (_root, d) = dirs(4);
    let big = 64 << 20;
    let p = primary(&d[0], Mode::Async, big, |_| {});
    // r1 direct; r2 over a link cut every 2-48 KiB; r3 over a slow link, restarted
    // every few hundred writes.
    let flapping = start_proxy(p.local_addr());
    flapping.flapping(2048, 48 * 1024, 7);
    let slow = start_proxy(p.local_addr());
    slow.delay(Direction::Down, std::time::Duration::from_millis(3));
    let r1 = replica("r1", &d[1], p.local_addr(), big);
    let r2 = replica("r2", &d[2], flapping.addr(), big);
    let mut r3 = replica("r3", &d[3], slow.addr(), big);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut last = SeqNo::ZERO;
    for i in 0..1500u64 {
        let mut b = WriteBatch::new();
        for _ in 0..1 + next() % 4 {
            let k = next() % 500;
            if next().is_multiple_of(5) {
                b.delete(format!("k{k:04}"));
            } else {
                b.put(
                    format!("k{k:04}"),
                    vec![b'a' + (next() % 26) as u8; (next() % 300) as usize],
                );
            }
        }
        last = p.write(&b).expect("write");
        if i % 400 == 399 {
            drop(r3);
            r3 = replica("r3", &d[3], slow.addr(), big);
        }
    }
    wait_for("every replica to converge", || [&r1, &r2, &r3].iter().all(|r| caught_up(r, last)));
    assert!(r2.status().last_error.is_some(), "the flapping link never cut r2's connection");
    let want = log_of(&p.db().expect("db"));
    for (name, r) in [("r1", &r1), ("r2", &r2), ("r3", &r3)] {
        let db = r.db().expect("db");
        assert_eq!(log_of(&db), want, "{name}'s log differs from the primary's");
        assert_eq!(contents(&db), contents(&p.db().expect("db")), "{name}'s data differs");
    }
    drop(flapping);
}

/// An async primary's write becomes visible to its own readers only once durable, but
/// its replicas get the batch as soon as it is in the log: the shipping overlaps the
/// primary's fdatasync instead of waiting for it (the replication lag of an async
/// primary used to include that fdatasync).
#[test]
fn an_async_primary_ships_a_batch_while_its_fdatasync_is_in_flight() {
    use strata_harness::sim_fs::CountingFileSystem;
    let (_root, d) = dirs(2);
    let big = 64 << 20;
    let fs = CountingFileSystem::os();
    let open_primary: OpenStore = {
        let (dir, shared) = (d[0].clone(), fs.shared());
        Arc::new(move |replica_of: Option<String>| {
            let mut b = tiny_builder(&dir, Arc::clone(&shared), big, 64 * 1024);
            b.options_mut().replica_of = replica_of;
            b.open()
        })
    };
    let mut c = NodeConfig::new("p", any_port(), RoleConfig::Primary);
    c.mode = Mode::Async;
    c.heartbeat = Duration::from_millis(20);
    let p = Node::start(c, &d[0], open_primary).expect("primary starts");
    let r = replica("r1", &d[1], p.local_addr(), big);
    let first = put(&p, 0).expect("write");
    wait_for("the replica to follow", || caught_up(&r, first));
    let pdb = p.db().expect("db");
    /// Lets held fdatasyncs through however the test ends, so a failed assertion does
    /// not leave the writer thread (and the scope joining it) blocked forever.
    struct Release<'a>(&'a CountingFileSystem);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.release_syncs();
        }
    }
    fs.hold_syncs();
    std::thread::scope(|s| {
        let _release = Release(&fs);
        let writer = s.spawn(|| put(&p, 1));
        wait_for("the primary's write to reach its fdatasync", || fs.held_syncs() > 0);
        let next = first.next();
        wait_for("the replica to apply the batch the primary is still syncing", || {
            caught_up(&r, next)
        });
        assert_eq!(
            pdb.visible_seq(),
            first,
            "the primary's readers must not see a write before its fdatasync"
        );
        assert!(!writer.is_finished(), "the write returned before its fdatasync");
        fs.release_syncs();
        let seq = writer.join().expect("writer thread").expect("write");
        assert_eq!(seq, next);
        assert_eq!(pdb.visible_seq(), next);
    });
    let rdb = r.db().expect("db");
    wait_for("the replica to acknowledge", || {
        p.status().replicas.iter().any(|x| x.acked >= first.next().0)
    });
    assert_eq!(log_of(&rdb), log_of(&pdb));
}
