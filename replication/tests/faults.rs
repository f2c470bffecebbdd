//! Replication under faults: a connection cut mid-checkpoint, a replica too slow for
//! the primary's WAL retention, a primary that sends garbage, gaps and stale epochs, a
//! replica whose disk fills up.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{Epoch, SeqNo, WalBatch, WriteBatch};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::{builder_with, tiny_builder};
mod common;

use common::{any_port, contents, start_proxy, wait_for};
use strata_harness::proxy::Direction;
use strata_replication::wire::{self, Control, Msg, Plan};
use strata_replication::{Mode, Node, NodeConfig, OpenStore, RoleConfig};
use strata_wal_file::FileWalOptions;

fn opener_on(
    dir: &Path,
    fs: Arc<dyn FileSystem>,
    memtable: usize,
    wal: FileWalOptions,
) -> OpenStore {
    let dir = dir.to_path_buf();
    Arc::new(move |replica_of: Option<String>| {
        let mut b = tiny_builder(&dir, Arc::clone(&fs), memtable, 64 * 1024)
            .with_wal(Arc::new(strata_wal_file::FileWalFactory::new(wal.clone())));
        b.options_mut().replica_of = replica_of;
        b.open()
    })
}

fn small_wal() -> FileWalOptions {
    FileWalOptions::default().with_segment_size_bytes(16 * 1024)
}

fn start(name: &str, dir: &Path, role: RoleConfig, open: OpenStore) -> Node {
    let mut c = NodeConfig::new(name, any_port(), role);
    c.mode = Mode::Async;
    c.heartbeat = Duration::from_millis(20);
    c.reconnect = Duration::from_millis(50);
    Node::start(c, dir, open).expect("node starts")
}

fn put(node: &Node, i: u64) -> SeqNo {
    let mut b = WriteBatch::new();
    b.put(format!("key-{:06}", i % 900), format!("value-{i}-{}", "y".repeat(40)));
    node.write(&b).expect("write")
}

#[test]
fn a_bootstrap_cut_mid_transfer_resumes_where_it_stopped() {
    let root = tempfile::tempdir().expect("tempdir");
    let (pd, rd) = (root.path().join("p"), root.path().join("r"));
    let os = OsFileSystem::shared();
    let p = start(
        "p",
        &pd,
        RoleConfig::Primary,
        opener_on(&pd, Arc::clone(&os), 16 * 1024, small_wal()),
    );
    for i in 0..6000u64 {
        put(&p, i);
    }
    let pdb = p.db().expect("db");
    pdb.flush().expect("flush");
    pdb.wait_for_background().expect("background");
    let store_bytes = pdb.stats().table_bytes();
    assert!(store_bytes > 100_000, "the checkpoint should be big enough to cut: {store_bytes}");
    // The first connection dies after 60 KB of the checkpoint.
    let proxy = start_proxy(p.local_addr());
    proxy.sever_after(60_000);
    let r = start(
        "r",
        &rd,
        RoleConfig::Replica { primary: proxy.addr().to_string() },
        opener_on(&rd, os, 16 * 1024, small_wal()),
    );
    let last = put(&p, 7000);
    wait_for("the replica to catch up", || r.db().is_some_and(|db| db.visible_seq() >= last));
    let s = p.status();
    // The cut transfer counts as sent too (its bytes left the primary).
    assert_eq!(s.bootstraps_resumed, 1, "{s:?}");
    assert!(s.bootstraps >= 1, "{s:?}");
    assert_eq!(contents(&r.db().expect("db")), contents(&pdb));
}

#[test]
fn a_replica_slower_than_the_retention_is_cut_off_and_bootstraps() {
    let root = tempfile::tempdir().expect("tempdir");
    let (pd, rd) = (root.path().join("p"), root.path().join("r"));
    let os = OsFileSystem::shared();
    let retention = small_wal().with_reader_retention_bytes(64 * 1024);
    let p =
        start("p", &pd, RoleConfig::Primary, opener_on(&pd, Arc::clone(&os), 16 * 1024, retention));
    // A link that delivers 16 KiB per 200 ms towards the replica.
    let proxy = start_proxy(p.local_addr());
    proxy.delay(Direction::Down, Duration::from_millis(200));
    let r = start(
        "r",
        &rd,
        RoleConfig::Replica { primary: proxy.addr().to_string() },
        opener_on(&rd, os, 16 * 1024, small_wal()),
    );
    // 4 KiB values: far more than the socket buffers between the two can hold.
    let mut last = SeqNo::ZERO;
    for i in 0..4000u64 {
        let mut b = WriteBatch::new();
        b.put(format!("key-{:06}", i % 900), vec![b'z'; 4096]);
        last = p.write(&b).expect("write");
        if p.status().cut_off >= 1 {
            break;
        }
    }
    wait_for("the primary to cut the slow replica off", || p.status().cut_off >= 1);
    // The link recovers: the checkpoint of the bootstrap would crawl through it.
    proxy.heal();
    for i in 0..100u64 {
        last = put(&p, i);
    }
    // The primary's disk did not fill up: its WAL stayed near the retention limit.
    let wal_bytes: u64 = std::fs::read_dir(&pd)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wal_"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(wal_bytes < 4 << 20, "the primary kept {wal_bytes} bytes of WAL for a lagging replica");
    wait_for("the cut-off replica to bootstrap and catch up", || {
        r.db().is_some_and(|db| db.visible_seq() >= last)
    });
    assert!(p.status().bootstraps >= 1);
    assert_eq!(contents(&r.db().expect("db")), contents(&p.db().expect("db")));
}

/// A fake primary: answers a replica's Hello with `Follow{from: 1}` and then sends
/// `frames`, then keeps the connection open until the replica drops it.
fn fake_primary(frames: Vec<Vec<u8>>) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicU64::new(0));
    let c2 = Arc::clone(&connections);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let n = c2.fetch_add(1, Ordering::AcqRel);
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let Ok(Some(Msg::Control(Control::Hello(hello)))) = wire::read_msg(&mut r, "replica")
            else {
                continue;
            };
            let from = hello.last_seq + 1;
            let welcome = Control::Welcome { cluster: 77, epoch: 3, plan: Plan::Follow { from } };
            if wire::send(&mut s, "replica", welcome).is_err() {
                continue;
            }
            if n == 0 {
                for f in &frames {
                    let _ = s.write_all(f);
                }
                let _ = s.flush();
            }
            // Drain acknowledgements; later connections get heartbeats, so the error of
            // the first one stays the replica's last.
            std::thread::spawn(
                move || while let Ok(Some(_)) = wire::read_msg(&mut r, "replica") {},
            );
            std::thread::spawn(move || {
                loop {
                    let hb = Control::Heartbeat { last_seq: from - 1, unix_micros: 0 };
                    if wire::send(&mut s, "replica", hb).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    (addr, connections)
}

fn batch_frame(first: u64, epoch: u64, key: &str) -> Vec<u8> {
    let mut b = WriteBatch::new();
    b.put(key, "v");
    let batch = WalBatch {
        first_seq: SeqNo(first),
        count: 1,
        payload: Bytes::copy_from_slice(b.as_bytes()),
        epoch: Epoch(epoch),
    };
    let mut out = Vec::new();
    wire::write_msg(&mut out, &Msg::Batch(batch)).expect("encode");
    out
}

#[test]
fn a_primary_sending_gaps_stale_epochs_or_garbage_loses_the_connection_not_the_data() {
    let cases: Vec<(&str, Vec<Vec<u8>>, &str, u64)> = vec![
        ("gap", vec![batch_frame(1, 3, "a"), batch_frame(3, 3, "c")], "a gap", 1),
        (
            "stale epoch",
            vec![batch_frame(1, 3, "a"), batch_frame(2, 2, "b")],
            "older than epoch",
            1,
        ),
        (
            "garbage",
            vec![batch_frame(1, 3, "a"), b"\x09\x00\x00\x00garbage!!".to_vec()],
            "checksum",
            1,
        ),
        (
            "oversized",
            vec![batch_frame(1, 3, "a"), u32::MAX.to_le_bytes().to_vec()],
            "exceeds the maximum",
            1,
        ),
        ("truncated", vec![batch_frame(1, 3, "a"), batch_frame(2, 3, "b")[..20].to_vec()], "", 1),
    ];
    for (what, frames, reason, want_last) in cases {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("r");
        let (addr, connections) = fake_primary(frames);
        let r = start(
            "r",
            &dir,
            RoleConfig::Replica { primary: addr.to_string() },
            opener_on(&dir, OsFileSystem::shared(), 1 << 20, small_wal()),
        );
        wait_for(&format!("{what}: the replica to drop the connection and reconnect"), || {
            connections.load(Ordering::Acquire) >= 2
        });
        let s = r.status();
        if !reason.is_empty() {
            assert!(
                s.last_error.as_deref().is_some_and(|e| e.contains(reason)),
                "{what}: expected an error mentioning {reason:?}, got {:?}",
                s.last_error
            );
        }
        let db = r.db().expect("db");
        assert_eq!(db.visible_seq(), SeqNo(want_last), "{what}: only the valid batch is applied");
        assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"v"[..]), "{what}");
        drop(r);
    }
}

#[test]
fn a_replica_whose_disk_fills_up_stops_with_a_clear_error_and_the_others_carry_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let (pd, r1d, r2d) = (root.path().join("p"), root.path().join("r1"), root.path().join("r2"));
    let os = OsFileSystem::shared();
    let p =
        start("p", &pd, RoleConfig::Primary, opener_on(&pd, Arc::clone(&os), 1 << 20, small_wal()));
    let good = start(
        "good",
        &r1d,
        RoleConfig::Replica { primary: p.local_addr().to_string() },
        opener_on(&r1d, Arc::clone(&os), 1 << 20, small_wal()),
    );
    // The full replica's store lives on a fault-injecting file system; its small
    // replication files (cluster id) on the real directory.
    std::fs::create_dir_all(&r2d).expect("mkdir");
    let sim = SimFileSystem::new();
    let full = {
        let dir = r2d.clone();
        let fs = sim.shared();
        let open: OpenStore = Arc::new(move |replica_of: Option<String>| {
            let mut b = builder_with(&dir, Arc::clone(&fs), small_wal());
            b.options_mut().replica_of = replica_of;
            b.open()
        });
        start("full", &r2d, RoleConfig::Replica { primary: p.local_addr().to_string() }, open)
    };
    let mut last = SeqNo::ZERO;
    for i in 0..50u64 {
        last = put(&p, i);
    }
    wait_for("both replicas", || {
        [&good, &full].iter().all(|r| r.db().is_some_and(|db| db.visible_seq() >= last))
    });
    sim.fail_writes_after(5);
    for i in 50..400u64 {
        last = put(&p, i);
    }
    wait_for("the full replica to report its disk", || {
        full.status().last_error.is_some_and(|e| {
            e.contains("No space left")
                || e.contains("ENOSPC")
                || e.contains("poisoned")
                || e.contains("refusing writes")
        })
    });
    wait_for("the good replica", || good.db().is_some_and(|db| db.visible_seq() >= last));
    assert_eq!(contents(&good.db().expect("db")), contents(&p.db().expect("db")));
    // What the full replica acknowledged as durable is a prefix it still holds.
    let full_db = full.db().expect("db");
    let durable = full_db.durable_seq();
    assert!(durable < last, "the full replica cannot have everything");
    let acked = p.status().replicas.iter().find(|r| r.name == "full").map_or(0, |r| r.acked);
    assert!(acked <= durable.0, "acknowledged {acked} beyond its durable {durable}");
}
