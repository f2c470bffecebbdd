//! Test kit for the `raft` policy: three voters of [`RaftPolicy`] on loopback, with short
//! timings, and a `block_on` for plain threads (no tokio runtime on the caller's side).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{AuthorityRecord, Epoch, LeaseSettings, Result, SeqNo};
use strata_failover_raft::{Member, NodeId, RaftPolicy, RaftSettings, Role};

/// The request timeout of the kit's voters.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Polls `fut` to completion on this thread, parking between wake-ups: how a
/// thread-based caller without any async runtime awaits the policy.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// `n` loopback addresses with free ports (bound together, then released).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port"))
        .collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound address")).collect()
}

/// The settings of voters 1..=n at `addrs`, with short timings.
pub fn settings(addrs: &[SocketAddr], roles: &[Role]) -> Vec<RaftSettings> {
    let voters: BTreeMap<NodeId, Member> = addrs
        .iter()
        .zip(roles)
        .zip(1..)
        .map(|((addr, role), id)| (id, Member { addr: addr.to_string(), role: *role }))
        .collect();
    addrs
        .iter()
        .zip(1..)
        .map(|(addr, id)| {
            RaftSettings::new(id, *addr, voters.clone())
                .with_heartbeat_interval(Duration::from_millis(50))
                .with_election_timeout(Duration::from_millis(300), Duration::from_millis(600))
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_bootstrap_timeout(Duration::from_secs(30))
        })
        .collect()
}

/// Voter `id`'s raft directory under `root`.
pub fn voter_dir(root: &Path, id: NodeId) -> PathBuf {
    root.join(format!("voter-{id}"))
}

fn fs() -> Arc<dyn FileSystem> {
    Arc::new(OsFileSystem)
}

/// Creates three voters concurrently (as three processes would), each in
/// `voter_dir(root, id)`, all with `initial`.
pub async fn create_three(
    settings: &[RaftSettings],
    root: &Path,
    initial: &AuthorityRecord,
) -> Result<Vec<RaftPolicy>> {
    let create = |i: usize| {
        let s = settings[i].clone();
        let dir = voter_dir(root, s.node_id());
        let initial = initial.clone();
        async move { RaftPolicy::create(s, fs(), &dir, initial).await }
    };
    let (a, b, c) = tokio::join!(create(0), create(1), create(2));
    Ok(vec![a?, b?, c?])
}

/// Opens three voters again from their directories, concurrently.
pub async fn open_three(settings: &[RaftSettings], root: &Path) -> Result<Vec<RaftPolicy>> {
    let open = |i: usize| {
        let s = settings[i].clone();
        let dir = voter_dir(root, s.node_id());
        async move { RaftPolicy::open(s, fs(), &dir).await }
    };
    let (a, b, c) = tokio::join!(open(0), open(1), open(2));
    Ok(vec![a?, b?, c?])
}

/// Primary `p` in epoch 4 from sequence 100, in sync `a` and `b`, default leases.
pub fn initial() -> AuthorityRecord {
    let mut r = AuthorityRecord::initial(42, "p", Epoch(4), SeqNo(100), LeaseSettings::default());
    r.in_sync = ["a".into(), "b".into()].into();
    r
}

/// A running group of three data voters in a temporary directory.
pub struct Group {
    pub voters: Vec<Option<RaftPolicy>>,
    pub settings: Vec<RaftSettings>,
    pub tmp: tempfile::TempDir,
}

impl Group {
    /// Three data voters created from a plain thread, holding [`initial`].
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let settings = settings(&free_addrs(3), &[Role::Data; 3]);
        let voters = block_on(create_three(&settings, tmp.path(), &initial()))
            .expect("a group of three voters must form");
        Self { voters: voters.into_iter().map(Some).collect(), settings, tmp }
    }

    /// Voter `id` (1-based), which must be running.
    pub fn voter(&self, id: NodeId) -> &RaftPolicy {
        self.voters[id as usize - 1].as_ref().expect("the voter must be running")
    }

    /// Stops voter `id` (dropping its policy stops its raft node and runtime).
    pub fn stop(&mut self, id: NodeId) {
        self.voters[id as usize - 1].take();
    }

    /// The raft leader some running voter knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.voters.iter().flatten().find_map(|v| v.raft_status().ok().and_then(|s| s.leader))
    }
}
