//! `strata serve --config FILE`: a store, its commit stream on a topic (in-process to
//! the WebSocket gateway, and over TCP when configured), the gateway, and optionally a
//! synthetic exchange feed writing trades into the store.
//!
//! The configuration is TOML; see `docs/gateway.md` for every key:
//!
//! ```toml
//! [store]
//! dir = "store"                  # relative to this file; created if missing
//! stack = "stack.toml"           # optional: a stack file, or an inline [store.stack] table
//!
//! [gateway]
//! addr = "127.0.0.1:8080"
//! policy = "drop-oldest"         # or "disconnect"
//!
//! [commits]
//! topic = "commits"
//!
//! [tcp]                          # optional: also publish the commit topic over TCP
//! addr = "127.0.0.1:7070"
//!
//! [iceoryx]                      # optional: and over iceoryx2 shared memory
//! prefix = "strata"
//!
//! [feed]                         # optional: synthetic trades written into the store
//! rate = 1000                    # trades per second
//!
//! [replication]                  # optional: run the store as a replication node
//! role = "primary"               # or "replica" (then `primary = "host:port"`)
//! name = "a"                     # default: <hostname>-<listen port>
//! listen = "127.0.0.1:7400"      # replicas and operator requests (`strata status`)
//! mode = "async"                 # or "sync"; a primary's acknowledgement rule
//! min_in_sync = 1
//!
//! [client]                       # optional: PUT/GET single keys (`strata put`/`get`)
//! listen = "127.0.0.1:7402"
//!
//! [failover]                     # optional, with [replication]: automatic failover
//! policy = "raft"                # (see `crate::failover` for every key)
//! ```
//!
//! With `[replication]`, the store is opened by a [`strata_replication::Node`]: a
//! primary's feed writes through [`Node::write`] (acknowledged by the mode's rule); a
//! replica follows its primary and serves reads and subscriptions at its applied
//! sequence, and has no feed (writes go to the primary).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Deserialize;
use strata_core::{
    Db, Durability, Epoch, HistoryCheck, LogBound, PublisherOptions, SeqNo, SlowSubscriberPolicy,
    StreamId, SubscriberOptions, Transport, WalBatch, WalReader, WriteBatch,
};
use strata_gateway_ws::{CommitLog, Gateway, GatewayConfig, PayloadFormat, TopicSpec};
use strata_plugins::StackConfig;
use strata_replication::{Mode, Node, NodeConfig, OpenStore, RoleConfig};

use crate::failover::{FailoverPlan, FailoverSection};
use strata_stream::{CommitStream, LocalTransport, Message, Side, TradeEvent};
use strata_transport_iceoryx::{IceoryxConfig, IceoryxTransport};
use strata_transport_tcp::{LoggedFrame, TcpTransport};

/// Options of `strata serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The serve configuration (TOML; see docs/gateway.md).
    #[arg(long)]
    pub config: PathBuf,
    /// Run the synthetic exchange feed at this many trades per second (overrides
    /// `[feed] rate`; 0 turns the feed off).
    #[arg(long)]
    pub feed_rate: Option<u64>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
}

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// `[store]`.
    pub store: StoreSection,
    /// `[gateway]`.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// `[commits]`.
    #[serde(default)]
    pub commits: CommitsSection,
    /// `[tcp]`.
    pub tcp: Option<TcpSection>,
    /// `[iceoryx]`.
    pub iceoryx: Option<IceoryxSection>,
    /// `[feed]`.
    pub feed: Option<FeedSection>,
    /// `[replication]`.
    pub replication: Option<ReplicationSection>,
    /// `[client]`.
    pub client: Option<ClientSection>,
    /// `[failover]`.
    pub failover: Option<FailoverSection>,
}

/// `[client]`: the key/value line protocol (`strata put`, `strata get`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Listen address (port 0 picks one; it is printed).
    pub listen: String,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store directory (relative to the configuration file).
    pub dir: PathBuf,
    /// The stack: a stack file path (relative to the configuration file) or an inline
    /// table with the stack file's sections. Default: the default stack.
    pub stack: Option<toml::Value>,
}

/// `[gateway]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Listen address of the WebSocket gateway (port 0 picks one; it is printed).
    pub addr: String,
    /// Slow-client policy: `drop-oldest` or `disconnect`.
    pub policy: String,
    /// Frames a client may have queued.
    pub client_queue_frames: usize,
    /// Frames each topic's ring holds for resuming clients.
    pub ring_frames: usize,
    /// Bytes each topic's ring holds.
    pub ring_bytes: usize,
    /// Largest client → server message.
    pub max_client_message_bytes: usize,
    /// Most clients at once.
    pub max_clients: usize,
}

impl Default for GatewaySection {
    fn default() -> Self {
        let d = GatewayConfig::default();
        Self {
            addr: "127.0.0.1:8080".into(),
            policy: d.policy.name().into(),
            client_queue_frames: d.client_queue_frames,
            ring_frames: d.ring_frames,
            ring_bytes: d.ring_bytes,
            max_client_message_bytes: d.max_client_message_bytes,
            max_clients: d.max_clients,
        }
    }
}

/// `[commits]`: the topic the commit stream publishes to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitsSection {
    /// The topic name.
    pub topic: String,
    /// The commit stream's stream id.
    pub stream: u64,
    /// How values are rendered to JSON: `message` (each value is an encoded exchange
    /// message) or `raw` (text or hex).
    pub values: String,
    /// Largest batch published as one frame (larger ones are read from the log).
    pub max_payload: usize,
    /// When a batch is published: `durable` (once visible and on stable storage, so no
    /// subscriber holds what a power loss takes back) or `visible` (before its
    /// fdatasync: lowest latency; resuming clients learn of rewritten ranges through
    /// the epoch).
    pub publish: String,
}

impl Default for CommitsSection {
    fn default() -> Self {
        Self {
            topic: "commits".into(),
            stream: 1,
            values: "message".into(),
            max_payload: 1 << 20,
            publish: "durable".into(),
        }
    }
}

/// `[tcp]`: the commit topic over TCP as well.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    /// Listen address (port 0 picks one; it is printed).
    pub addr: String,
    /// Frames kept for TCP subscribers that resume.
    #[serde(default = "default_history")]
    pub history: usize,
    /// Frames a TCP subscriber may have queued.
    #[serde(default = "default_queue")]
    pub queue_depth: usize,
    /// `block`, `drop-oldest` or `disconnect`.
    #[serde(default = "default_policy")]
    pub policy: String,
}

/// `[iceoryx]`: the commit topic over iceoryx2 shared memory as well (same host).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceoryxSection {
    /// Service-name prefix; subscribers must use the same (`strata subscribe --prefix`).
    #[serde(default = "default_iceoryx_prefix")]
    pub prefix: String,
    /// Frames a subscriber may have queued (the service's maximum).
    #[serde(default = "default_iceoryx_queue")]
    pub queue_depth: usize,
    /// Largest frame in bytes; shared memory is allocated for it up front, so it is
    /// smaller than `[commits] max_payload` by default. Larger batches are skipped on
    /// this transport (subscribers see a gap and can read them from the log).
    #[serde(default = "default_iceoryx_payload")]
    pub max_payload: usize,
    /// Subscribers the service admits.
    #[serde(default = "default_iceoryx_subscribers")]
    pub max_subscribers: usize,
    /// `block` or `drop-oldest` (iceoryx2 cannot disconnect one subscriber).
    #[serde(default = "default_policy")]
    pub policy: String,
}

fn default_iceoryx_prefix() -> String {
    "strata".into()
}
fn default_iceoryx_queue() -> usize {
    256
}
fn default_iceoryx_payload() -> usize {
    64 * 1024
}
fn default_iceoryx_subscribers() -> usize {
    8
}

fn default_history() -> usize {
    4096
}
fn default_queue() -> usize {
    1024
}
fn default_policy() -> String {
    "drop-oldest".into()
}

/// `[feed]`: synthetic trades written into the store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSection {
    /// Trades per second.
    pub rate: u64,
    /// Trades per committed batch.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Symbols traded (round robin).
    #[serde(default = "default_symbols")]
    pub symbols: Vec<String>,
    /// `sync` (each batch fsynced before the next) or `buffered`.
    #[serde(default = "default_durability")]
    pub durability: String,
}

/// `[replication]`: run the store as a replication node (see `strata_replication`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    /// `primary` or `replica` (required without `[failover]`; with it the authority
    /// record says who is primary).
    pub role: Option<String>,
    /// The node's name; replicas are known by it in the primary's in-sync set, so it
    /// must stay the same across restarts. Default: `<hostname>-<listen port>`.
    pub name: Option<String>,
    /// Where the node listens for replicas and operator requests.
    #[serde(default = "default_replication_listen")]
    pub listen: String,
    /// A replica's primary (`host:port`, its `listen`). Required for a replica.
    pub primary: Option<String>,
    /// `async` (acknowledge once durable here) or `sync` (and on the in-sync set).
    #[serde(default = "default_replication_mode")]
    pub mode: String,
    /// In sync mode, how many replicas the in-sync set must hold.
    #[serde(default = "default_min_in_sync")]
    pub min_in_sync: usize,
    /// How often an idle primary tells replicas where it is, in milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// In sync mode, how long a write waits for the in-sync set before it is reported
    /// unreplicated (default: as long as it takes).
    pub sync_timeout_ms: Option<u64>,
}

fn default_replication_listen() -> String {
    "127.0.0.1:7400".into()
}
fn default_replication_mode() -> String {
    "async".into()
}
fn default_min_in_sync() -> usize {
    1
}

fn default_batch() -> u32 {
    10
}
fn default_symbols() -> Vec<String> {
    vec!["BTC-USD".into(), "ETH-USD".into(), "SOL-USD".into()]
}
fn default_durability() -> String {
    "sync".into()
}

/// Everything resolved and checked, ready to run.
struct Plan {
    dir: PathBuf,
    stack: StackConfig,
    gateway: GatewayConfig,
    gateway_addr: String,
    topic: String,
    stream: StreamId,
    format: PayloadFormat,
    max_payload: usize,
    bound: LogBound,
    tcp: Option<(String, PublisherOptions)>,
    iceoryx: Option<(String, PublisherOptions)>,
    feed: Option<Feed>,
    replication: Option<NodeConfig>,
    failover: Option<FailoverPlan>,
    client: Option<String>,
    /// Why a configured feed does not run (a replica takes no writes).
    feed_disabled: Option<String>,
}

#[derive(Clone, Debug)]
struct Feed {
    rate: u64,
    batch: u32,
    symbols: Vec<String>,
    durability: Durability,
}

/// Reads and checks a serve configuration file.
pub fn load_config(path: &Path) -> anyhow::Result<ServeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the serve configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid serve configuration {}", path.display()))
}

fn policy(name: &str, what: &str) -> anyhow::Result<SlowSubscriberPolicy> {
    SlowSubscriberPolicy::from_name(name).with_context(|| {
        format!("{what}: unknown policy {name:?}; expected block, drop-oldest or disconnect")
    })
}

fn plan(path: &Path, config: ServeConfig, feed_rate: Option<u64>) -> anyhow::Result<Plan> {
    let base = path.parent().unwrap_or(Path::new(""));
    let stack = match &config.store.stack {
        None => StackConfig::default(),
        Some(toml::Value::String(file)) => StackConfig::from_path(base.join(file))?,
        Some(toml::Value::Table(table)) => StackConfig::from_toml_str(
            &toml::to_string(table).context("cannot re-encode [store.stack]")?,
        )
        .context("[store.stack]")?,
        Some(other) => {
            bail!("[store] stack must be a stack file path or a table, found {}", other.type_str())
        }
    };
    let g = &config.gateway;
    let mut gateway = GatewayConfig::default();
    gateway.policy = policy(&g.policy, "[gateway] policy")?;
    gateway.client_queue_frames = g.client_queue_frames;
    gateway.ring_frames = g.ring_frames;
    gateway.ring_bytes = g.ring_bytes;
    gateway.max_client_message_bytes = g.max_client_message_bytes;
    gateway.max_clients = g.max_clients;
    gateway.validate().context("[gateway]")?;
    let c = &config.commits;
    if c.topic.is_empty() {
        bail!("[commits] topic must not be empty");
    }
    let format = match c.values.as_str() {
        "message" => PayloadFormat::from_name("commits"),
        "raw" => PayloadFormat::from_name("commits-raw"),
        other => bail!("[commits] values = {other:?}: expected \"message\" or \"raw\""),
    }
    .context("commit payload formats")?;
    let bound = match c.publish.as_str() {
        "durable" => LogBound::Durable,
        "visible" => LogBound::Visible,
        other => bail!("[commits] publish = {other:?}: expected \"durable\" or \"visible\""),
    };
    let tcp = match &config.tcp {
        None => None,
        Some(t) => Some((
            t.addr.clone(),
            PublisherOptions {
                stream: StreamId(c.stream),
                max_payload: c.max_payload,
                queue_depth: t.queue_depth.max(1),
                history: t.history,
                policy: policy(&t.policy, "[tcp] policy")?,
                ..PublisherOptions::default()
            },
        )),
    };
    let iceoryx = match &config.iceoryx {
        None => None,
        Some(i) => {
            let policy = policy(&i.policy, "[iceoryx] policy")?;
            if policy == SlowSubscriberPolicy::Disconnect {
                bail!(
                    "[iceoryx] policy = \"disconnect\" is not supported by shared memory: \
                     use \"block\" or \"drop-oldest\""
                );
            }
            if i.prefix.is_empty() {
                bail!("[iceoryx] prefix must not be empty");
            }
            if i.max_payload == 0 || i.queue_depth == 0 || i.max_subscribers == 0 {
                bail!("[iceoryx] max_payload, queue_depth and max_subscribers must be at least 1");
            }
            Some((
                i.prefix.clone(),
                PublisherOptions {
                    stream: StreamId(c.stream),
                    max_payload: i.max_payload,
                    queue_depth: i.queue_depth,
                    max_subscribers: i.max_subscribers,
                    history: 0,
                    policy,
                },
            ))
        }
    };
    let mut feed = match &config.feed {
        None => None,
        Some(f) => {
            if f.batch == 0 {
                bail!("[feed] batch must be at least 1");
            }
            if f.symbols.is_empty() {
                bail!("[feed] symbols must not be empty");
            }
            let durability = match f.durability.as_str() {
                "sync" => Durability::Sync,
                "buffered" => Durability::Buffered,
                other => bail!("[feed] durability = {other:?}: expected \"sync\" or \"buffered\""),
            };
            Some(Feed { rate: f.rate, batch: f.batch, symbols: f.symbols.clone(), durability })
        }
    };
    if let Some(rate) = feed_rate {
        let f = feed.get_or_insert_with(|| Feed {
            rate,
            batch: default_batch(),
            symbols: default_symbols(),
            durability: Durability::Sync,
        });
        f.rate = rate;
    }
    feed.take_if(|f| f.rate == 0);
    let replication = match &config.replication {
        None => None,
        Some(r) => Some(replication(r, config.failover.is_some())?),
    };
    let dir = base.join(&config.store.dir);
    let failover = match (&config.failover, &replication) {
        (None, _) => None,
        (Some(_), None) => bail!(
            "[failover] needs [replication]: failover moves the primary role between \
             replication nodes"
        ),
        (Some(f), Some(r)) => Some(crate::failover::plan(f, Some(&r.name), &dir, base)?),
    };
    if failover.is_some() && feed.is_some() {
        bail!(
            "[feed] is not supported with [failover] (the feed would have to follow the \
             primary role): write through [client] (`strata put`) instead"
        );
    }
    if let Some(c) = &config.client
        && c.listen.trim().is_empty()
    {
        bail!("[client] listen must be an address, e.g. \"127.0.0.1:7402\"");
    }
    let mut feed_disabled = None;
    if let Some(NodeConfig { role: RoleConfig::Replica { primary }, .. }) = &replication
        && feed.take().is_some()
    {
        feed_disabled = Some(format!(
            "feed: not started: this node is a replica and takes no writes (they go to the \
             primary at {primary})"
        ));
    }
    Ok(Plan {
        dir,
        stack,
        gateway,
        gateway_addr: config.gateway.addr.clone(),
        topic: c.topic.clone(),
        stream: StreamId(c.stream),
        format,
        max_payload: c.max_payload,
        bound,
        tcp,
        iceoryx,
        feed,
        replication,
        failover,
        client: config.client.as_ref().map(|c| c.listen.clone()),
        feed_disabled,
    })
}

/// The machine's host name, or `node`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Checks `[replication]` and turns it into a node configuration.
fn replication(r: &ReplicationSection, failover: bool) -> anyhow::Result<NodeConfig> {
    let listen = std::net::ToSocketAddrs::to_socket_addrs(r.listen.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!(
                "[replication] listen = {:?}: not an address to listen on (expected \
                 \"host:port\", e.g. \"127.0.0.1:7400\")",
                r.listen
            )
        })?;
    let role = match (r.role.as_deref(), &r.primary) {
        // With an authority the role comes from its record; the configured one is unused.
        (None, None) if failover => RoleConfig::Primary,
        (Some(role), _) if failover => bail!(
            "[replication] role = {role:?} does not apply with [failover]: the authority \
             record says who is primary (set the initial one with [failover] primary)"
        ),
        (None, Some(_)) if failover => bail!(
            "[replication] primary does not apply with [failover]: the authority record says \
             who is primary"
        ),
        (None, _) => bail!(
            "[replication] role is required (\"primary\" or \"replica\"), unless [failover] \
             is configured"
        ),
        (Some("primary"), None) => RoleConfig::Primary,
        (Some("primary"), Some(p)) => bail!(
            "[replication] primary = {p:?} is only for role = \"replica\"; a primary has none"
        ),
        (Some("replica"), None) => bail!(
            "[replication] primary is required for role = \"replica\": the primary's \
             replication address, e.g. primary = \"127.0.0.1:7400\""
        ),
        (Some("replica"), Some(p)) => {
            let resolves = std::net::ToSocketAddrs::to_socket_addrs(p.as_str())
                .is_ok_and(|mut a| a.next().is_some());
            if !resolves {
                bail!("[replication] primary = {p:?}: not an address (expected \"host:port\")");
            }
            RoleConfig::Replica { primary: p.clone() }
        }
        (Some(other), _) => {
            bail!("[replication] role = {other:?}: expected \"primary\" or \"replica\"")
        }
    };
    let mode = match r.mode.as_str() {
        "async" => Mode::Async,
        "sync" => Mode::Sync,
        other => bail!("[replication] mode = {other:?}: expected \"async\" or \"sync\""),
    };
    let name = match &r.name {
        Some(n) if n.trim().is_empty() => bail!("[replication] name must not be empty"),
        Some(n) => n.clone(),
        None if listen.port() == 0 => bail!(
            "[replication] name is required when listen has port 0: replicas are known by \
             their name, which must stay the same across restarts"
        ),
        None => format!("{}-{}", host_name(), listen.port()),
    };
    let mut config = NodeConfig::new(name, listen, role);
    config.mode = mode;
    config.min_in_sync = r.min_in_sync;
    if let Some(ms) = r.heartbeat_ms {
        if ms == 0 {
            bail!("[replication] heartbeat_ms must be at least 1");
        }
        config.heartbeat = Duration::from_millis(ms);
    }
    if let Some(ms) = r.sync_timeout_ms {
        if ms == 0 {
            bail!(
                "[replication] sync_timeout_ms must be at least 1 (leave it out to wait as long as it takes)"
            );
        }
        config.sync_timeout = Some(Duration::from_millis(ms));
    }
    Ok(config)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How long a reader of a replica's store waits while the replica swaps in a
/// checkpoint it received (the store is closed for that moment).
const STORE_SWAP_WAIT: Duration = Duration::from_secs(5);

/// The store serve runs on: opened here, or opened (and, on a replica that receives a
/// checkpoint, replaced) by a replication node.
#[derive(Clone)]
enum Store {
    Local(Db),
    Replicated(Arc<Node>),
}

impl Store {
    /// The store now (waits out a replica's checkpoint swap; `None` if it lasts).
    fn db(&self) -> Option<Db> {
        match self {
            Store::Local(db) => Some(db.clone()),
            Store::Replicated(node) => node_db(node),
        }
    }
}

fn node_db(node: &Node) -> Option<Db> {
    let deadline = Instant::now() + STORE_SWAP_WAIT;
    loop {
        if let Some(db) = node.db() {
            return Some(db);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether two handles are the same open store (a replica that installed a checkpoint
/// reopened its directory as another one). The open report lives inside the store's
/// shared state, so its address identifies the store while a handle holds it.
fn same_store(a: &Db, b: &Db) -> bool {
    std::ptr::eq(a.open_report(), b.open_report())
}

/// The gateway's log of a node's store, which a replica may replace.
struct NodeLog(Arc<Node>);

/// The commit topic's frames `from .. to` as the commit stream published them, read
/// back from the store's log (at most about `max_bytes` of payload).
fn logged_frames(
    log: &dyn CommitLog,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> Result<Vec<LoggedFrame>, String> {
    let mut reader = log.read_from(SeqNo(from)).map_err(|e| e.to_string())?;
    let (mut frames, mut bytes) = (Vec::new(), 0);
    while bytes < max_bytes {
        let Some(batch) = reader.next_batch().map_err(|e| e.to_string())? else { break };
        if batch.first_seq.0 >= to {
            break;
        }
        bytes += batch.payload.len();
        frames.push(LoggedFrame {
            seq: batch.first_seq.0,
            span: batch.count.max(1),
            epoch: batch.epoch.0,
            payload: batch.payload,
        });
    }
    Ok(frames)
}

/// A log reader holding the store it reads (the gateway may hold the reader after the
/// node replaced the store).
#[derive(Debug)]
struct HeldReader {
    reader: Box<dyn WalReader>,
    _db: Db,
}

impl WalReader for HeldReader {
    fn next_batch(&mut self) -> strata_core::Result<Option<WalBatch>> {
        self.reader.next_batch()
    }

    fn wait_next(&mut self, timeout: Duration) -> strata_core::Result<Option<WalBatch>> {
        self.reader.wait_next(timeout)
    }
}

impl CommitLog for NodeLog {
    fn read_from(&self, from: SeqNo) -> strata_core::Result<Box<dyn WalReader>> {
        let db = node_db(&self.0).ok_or_else(|| {
            strata_core::Error::InvalidArgument(
                "the replica is installing a checkpoint from its primary; retry".into(),
            )
        })?;
        let reader = db.read_log_from(from)?;
        Ok(Box::new(HeldReader { reader, _db: db }))
    }

    fn check_history(&self, epoch: Epoch, last: SeqNo) -> HistoryCheck {
        match node_db(&self.0) {
            Some(db) => db.check_history(epoch, last),
            None => HistoryCheck::Consistent,
        }
    }
}

/// One transport the commit stream publishes to.
struct Outlet {
    what: &'static str,
    transport: Arc<dyn Transport>,
    options: PublisherOptions,
    /// The first sequence the next stream publishes.
    next: SeqNo,
    stream: Option<CommitStream>,
}

/// The commit streams of every outlet, all reading `db`.
struct Streams {
    topic: String,
    bound: LogBound,
    db: Db,
    outlets: Vec<Outlet>,
}

impl Streams {
    /// Starts a stream for every outlet that has none, or whose stream ended (an
    /// error stopped it: it is logged, and the new one continues after the last
    /// sequence the old one published).
    fn start_missing(&mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        for o in &mut self.outlets {
            if let Some(stream) = o.stream.take_if(|s| s.is_finished()) {
                // Below `next` after a rewind: the new stream publishes from the cut.
                let published = stream.published_seq();
                if published > 0 {
                    o.next = SeqNo(published + 1);
                }
                if let Err(e) = stream.stop() {
                    tracing::warn!(outlet = o.what, error = %e, from = %o.next,
                        "commit stream ended with an error; restarting it");
                }
            }
            if o.stream.is_some() {
                continue;
            }
            if let Err(strata_core::Error::SequenceUnavailable { oldest, .. }) =
                self.db.read_log_from_with(o.next, self.bound)
            {
                tracing::warn!(
                    outlet = o.what,
                    from = %o.next,
                    %oldest,
                    "the store's log no longer holds the next sequence to publish; \
                     subscribers see a gap"
                );
                o.next = oldest;
            }
            let started = o
                .transport
                .publisher(&self.topic, &o.options)
                .map_err(anyhow::Error::from)
                .and_then(|publisher| {
                    let db = Arc::new(self.db.clone());
                    Ok(CommitStream::start_with(db, publisher, o.next, self.bound)?)
                });
            match started {
                Ok(stream) => o.stream = Some(stream),
                Err(e) => {
                    outcome = outcome.and(Err(e.context(format!(
                        "cannot start the commit stream to {} from seq {}",
                        o.what, o.next
                    ))));
                }
            }
        }
        outcome
    }

    /// Moves every stream to `db` (a replica reopened its store on a checkpoint): each
    /// continues after the last sequence it published.
    fn switch_to(&mut self, db: Db) {
        for o in &mut self.outlets {
            if let Some(stream) = o.stream.take() {
                let published = stream.published_seq();
                if published >= o.next.0 {
                    o.next = SeqNo(published + 1);
                }
                if let Err(e) = stream.stop() {
                    tracing::warn!(outlet = o.what, error = %e, "commit stream ended with an error");
                }
            }
        }
        self.db = db;
    }

    /// Stops every stream; returns the first error one ended with.
    fn stop(&mut self) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        for o in &mut self.outlets {
            if let Some(stream) = o.stream.take()
                && let Err(e) = stream.stop()
            {
                outcome = outcome.and(Err(e.into()));
            }
        }
        outcome
    }
}

fn lock(streams: &std::sync::Mutex<Streams>) -> std::sync::MutexGuard<'_, Streams> {
    streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Follows a node's store: when a replica replaced it (a checkpoint from its primary),
/// the commit streams move to the new one; streams that could not start are retried.
fn supervise_streams(node: &Node, streams: &std::sync::Mutex<Streams>, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        let Some(current) = node.db() else { continue };
        let mut s = lock(streams);
        if !same_store(&s.db, &current) {
            tracing::warn!(
                last = %current.visible_seq(),
                "the replica installed a checkpoint from its primary; the commit streams \
                 continue on it"
            );
            s.switch_to(current);
        }
        match s.start_missing() {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %format!("{e:#}"), "commit stream not running; retrying");
            }
            Err(_) => {}
        }
    }
}

/// Opens the store through a replication node (as its primary or as a replica).
fn start_node(plan: &Plan, mut config: NodeConfig) -> anyhow::Result<Node> {
    // The stack's plugins are checked once here, so their errors read as they are.
    let _ = plan.stack.builder(&plan.dir)?;
    if let Some(f) = &plan.failover {
        // On first start this creates the authority with the initial record (a raft
        // voter waits here for the other voters to form the group).
        println!(
            "failover: policy {}, authority in {}, starting",
            f.policy_name(),
            f.dir.display()
        );
        let policy = crate::failover::open_authority(f)?;
        config.failover = Some(crate::failover::config(f, policy));
    }
    let (stack, dir) = (plan.stack.clone(), plan.dir.clone());
    let open: OpenStore = Arc::new(move |replica_of| {
        let mut builder =
            stack.builder(&dir).map_err(|e| strata_core::Error::Config(e.to_string()))?;
        builder.options_mut().replica_of = replica_of;
        builder.open()
    });
    let listen = config.listen;
    Node::start(config, &plan.dir, open).with_context(|| {
        format!(
            "cannot start the replication node on {listen} for the store in {}",
            plan.dir.display()
        )
    })
}

/// Writes batches of synthetic trades at the configured rate until `stop`. Through a
/// replication node, a batch the in-sync set did not confirm in time is logged and
/// counted (it is in the primary's log, not acknowledged) and the feed writes on.
fn run_feed(store: Store, feed: Feed, stop: Arc<AtomicBool>) -> anyhow::Result<u64> {
    let per_batch = Duration::from_secs_f64(f64::from(feed.batch) / feed.rate as f64);
    let mut trade_id = store.db().context("feed: the store is not open")?.snapshot().seq().0;
    let mut next = Instant::now();
    let mut written = 0u64;
    let mut unconfirmed = 0u64;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += per_batch;
        let mut batch = WriteBatch::new();
        for _ in 0..feed.batch {
            trade_id += 1;
            let symbol = &feed.symbols[(trade_id % feed.symbols.len() as u64) as usize];
            let trade = Message::Trade(TradeEvent {
                trade_id,
                symbol: symbol.clone(),
                price: 6_500_000 + (trade_id % 1000) as i64,
                qty: 1 + trade_id % 7,
                side: if trade_id.is_multiple_of(2) { Side::Buy } else { Side::Sell },
                buy_order_id: 2 * trade_id,
                sell_order_id: 2 * trade_id + 1,
                buy_account: (trade_id % 97) as u32,
                sell_account: (trade_id % 89) as u32,
                ts_nanos: now_nanos(),
                venue_ref: String::new(),
            });
            let value = trade.encode().context("encode a trade")?;
            batch.put(format!("trade/{trade_id:020}"), value.as_slice());
        }
        match &store {
            Store::Local(db) => {
                db.write(&batch, feed.durability).context("feed: write a batch of trades")?;
            }
            Store::Replicated(node) => match node.write(&batch) {
                Ok(_) => {}
                Err(e @ strata_replication::Error::NotReplicated { .. }) => {
                    unconfirmed += 1;
                    tracing::warn!(error = %e, "feed: batch not confirmed by the in-sync set");
                }
                Err(strata_replication::Error::Stopped) if stop.load(Ordering::Acquire) => break,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("feed: write a batch of trades"));
                }
            },
        }
        written += u64::from(feed.batch);
    }
    if unconfirmed > 0 {
        eprintln!("feed: {unconfirmed} batches were not confirmed by the in-sync set in time");
    }
    Ok(written)
}

/// Runs `strata serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let plan = plan(&args.config, config, args.feed_rate)
        .with_context(|| format!("invalid serve configuration {}", args.config.display()))?;
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create the store directory {}", plan.dir.display()))?;
    let store = match &plan.replication {
        None => Store::Local(
            plan.stack
                .builder(&plan.dir)?
                .open()
                .with_context(|| format!("cannot open the store in {}", plan.dir.display()))?,
        ),
        Some(config) => Store::Replicated(Arc::new(start_node(&plan, config.clone())?)),
    };
    let db = store.db().context("the replica's store did not reopen after a checkpoint")?;
    let last = db.snapshot().seq().0;
    println!("store: {} ({}), last seq {last}", plan.dir.display(), plan.stack);
    if let (Store::Replicated(node), Some(config)) = (&store, &plan.replication) {
        let role = match &config.role {
            RoleConfig::Primary => format!(
                "primary, mode {}",
                if config.mode == Mode::Sync { "sync" } else { "async" }
            ),
            RoleConfig::Replica { primary } => format!("replica of {primary}"),
        };
        let role = match &plan.failover {
            Some(f) => format!(
                "failover policy {}, mode {}, role from the authority (now: {})",
                f.policy_name(),
                if config.mode == Mode::Sync { "sync" } else { "async" },
                node.status().role
            ),
            None => role,
        };
        println!("replication: {} node {}, {role}", node.local_addr(), config.name);
    }
    let client = match &plan.client {
        None => None,
        Some(addr) => {
            let target = match &store {
                Store::Local(db) => crate::client::Target::Local(db.clone()),
                Store::Replicated(node) => crate::client::Target::Node(Arc::clone(node)),
            };
            let server = crate::client::Server::start(addr, target)?;
            println!("client: {} (strata put / strata get)", server.local_addr());
            Some(server)
        }
    };
    if let Some(why) = &plan.feed_disabled {
        println!("{why}");
    }

    // The gateway subscribes before the commit stream starts, so it sees every frame.
    let local = LocalTransport::new();
    let gateway = Gateway::new(plan.gateway.clone())?;
    let log: Arc<dyn CommitLog> = match &store {
        Store::Local(db) => Arc::new(db.clone()),
        Store::Replicated(node) => Arc::new(NodeLog(Arc::clone(node))),
    };
    gateway.add_topic(
        Arc::new(local.clone()),
        TopicSpec::new(plan.topic.clone(), plan.format).with_log(Arc::clone(&log), plan.stream),
        SubscriberOptions { queue_depth: 4096, max_payload: plan.max_payload, resume_from: None },
    )?;
    let from = SeqNo(last + 1);
    let mut outlets = vec![Outlet {
        what: "the gateway",
        transport: Arc::new(local.clone()),
        options: PublisherOptions {
            stream: plan.stream,
            max_payload: plan.max_payload,
            queue_depth: 4096,
            policy: SlowSubscriberPolicy::Block,
            ..PublisherOptions::default()
        },
        next: from,
        stream: None,
    }];
    if let Some((addr, options)) = &plan.tcp {
        let tcp = TcpTransport::server(addr.as_str())
            .with_context(|| format!("cannot listen for TCP subscribers on {addr}"))?;
        if let Some(a) = tcp.local_addr() {
            println!("tcp: {a} topic {}", plan.topic);
        }
        // A subscriber moving here from another node resumes with the epoch it saw
        // last: the store's epoch history tells whether that node's tail was rewritten.
        let history = Arc::clone(&log);
        tcp.set_history_check(
            &plan.topic,
            Arc::new(move |epoch, last| history.check_history(epoch, last)),
        )?;
        // A resume below the server's ring (a subscriber away for long, or moving here
        // after a failover into a range this history rewrote) is read from the log.
        let source = Arc::clone(&log);
        tcp.set_history_source(
            &plan.topic,
            Arc::new(move |from, to, max_bytes| logged_frames(&*source, from, to, max_bytes)),
        )?;
        outlets.push(Outlet {
            what: "TCP",
            transport: Arc::new(tcp),
            options: options.clone(),
            next: from,
            stream: None,
        });
    }
    if let Some((prefix, options)) = &plan.iceoryx {
        let transport = IceoryxTransport::with_config(IceoryxConfig::default().with_prefix(prefix))
            .context("cannot open the iceoryx2 transport")?;
        println!("iceoryx: prefix {prefix} topic {}", plan.topic);
        outlets.push(Outlet {
            what: "iceoryx",
            transport: Arc::new(transport),
            options: options.clone(),
            next: from,
            stream: None,
        });
    }
    let streams = Arc::new(std::sync::Mutex::new(Streams {
        topic: plan.topic.clone(),
        bound: plan.bound,
        // The streams hold the store they read; a replica's supervisor moves them when
        // the node replaces it.
        db,
        outlets,
    }));
    lock(&streams).start_missing()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-serve")
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(plan.gateway_addr.as_str()))
        .with_context(|| format!("cannot listen on {}", plan.gateway_addr))?;
    let addr = listener.local_addr().context("the gateway's address")?;
    // The signal handlers are installed before the address is printed: whoever starts
    // serve and waits for that line may interrupt it at once, and a SIGINT arriving
    // before the handler exists would kill the process instead of stopping it cleanly.
    let signals = {
        let _runtime = runtime.enter();
        StopSignals::install()?
    };
    println!("gateway: ws://{addr}/ws?topic={}", plan.topic);

    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = match &store {
        Store::Local(_) => None,
        Store::Replicated(node) => {
            let (node, streams, stop) = (Arc::clone(node), Arc::clone(&streams), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("strata-serve-streams".into())
                    .spawn(move || supervise_streams(&node, &streams, &stop))
                    .context("cannot start the commit stream supervisor")?,
            )
        }
    };
    // The feed says here when it failed (its store is poisoned: fsync failed, disk
    // full), so serving stops at once and exits with the error instead of running on
    // until --duration ends or Ctrl-C. Dropped without a send when the feed ends well.
    let (feed_failed_tx, feed_failed) = tokio::sync::oneshot::channel::<()>();
    let feed = match plan.feed.clone() {
        Some(f) => {
            match &plan.replication {
                Some(config) => println!(
                    "feed: {} trades/s in batches of {}, written through the replication \
                     node (mode {}; [feed] durability does not apply)",
                    f.rate,
                    f.batch,
                    if config.mode == Mode::Sync { "sync" } else { "async" }
                ),
                None => println!("feed: {} trades/s in batches of {}", f.rate, f.batch),
            }
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("strata-feed".into())
                    .spawn(move || {
                        let result = run_feed(store, f, stop);
                        if let Err(e) = &result {
                            tracing::error!(error = %format!("{e:#}"), "feed failed; stopping");
                            let _ = feed_failed_tx.send(());
                        }
                        result
                    })
                    .context("cannot start the feed thread")?,
            )
        }
        None => None,
    };
    use std::io::Write as _;
    std::io::stdout().flush().context("stdout")?;

    let duration = args.duration.map(Duration::from_secs_f64);
    let served = runtime.block_on(gateway.serve(listener, async move {
        // Whichever comes first: Ctrl-C or SIGTERM (with or without --duration), the
        // end of --duration, or a failed feed.
        let failed = async {
            // An error means the feed ended well or there is none: nothing to stop for.
            if feed_failed.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = signals.wait(duration) => {}
            () = failed => {}
        }
    }));
    stop.store(true, Ordering::Release);
    drop(client);
    gateway.shutdown();
    // The store as it ends (a stopped node lets go of its handle).
    let end = match &store {
        Store::Local(db) => Some(db.clone()),
        Store::Replicated(node) => node.db(),
    };
    // A sync primary's feed may be waiting for the in-sync set: stopping the node ends
    // that wait.
    if let Store::Replicated(node) = &store {
        node.stop();
    }
    let mut outcome = served.map_err(anyhow::Error::from);
    if let Some(feed) = feed {
        match feed.join() {
            Ok(Ok(n)) => eprintln!("feed: wrote {n} trades"),
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(_) => outcome = outcome.and(Err(anyhow::anyhow!("the feed thread panicked"))),
        }
    }
    if let Some(supervisor) = supervisor
        && supervisor.join().is_err()
    {
        outcome = outcome.and(Err(anyhow::anyhow!("the commit stream supervisor panicked")));
    }
    outcome = outcome.and(lock(&streams).stop());
    runtime.shutdown_timeout(Duration::from_secs(2));
    let end = end.map_or(last, |db| db.visible_seq().0);
    eprintln!("stopped at seq {end}");
    outcome
}

/// Ctrl-C and SIGTERM, listened for from the moment they are installed: install them
/// before telling anyone the process is up, so that a signal sent right after cannot
/// kill it instead of stopping it cleanly.
pub struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers; must run inside a tokio runtime (or with one entered).
    pub fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())
                .context("cannot install the Ctrl-C handler")?,
            terminate: signal(SignalKind::terminate())
                .context("cannot install the SIGTERM handler")?,
        })
    }

    /// Returns on Ctrl-C, on SIGTERM or once `duration` (if any) has passed.
    pub async fn wait(mut self, duration: Option<Duration>) {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        // `recv` returns `None` only if the driver stopped; then the other ways remain.
        let interrupt = async {
            if self.interrupt.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        };
        let terminate = async {
            if self.terminate.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = interrupt => eprintln!("Ctrl-C: stopping"),
            () = terminate => eprintln!("SIGTERM: stopping"),
            () = timer => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> anyhow::Result<Plan> {
        let config: ServeConfig = toml::from_str(text)?;
        plan(Path::new("/etc/strata/serve.toml"), config, None)
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let p = plan_of("[store]\ndir = \"data\"\n").unwrap();
        assert_eq!(p.dir, Path::new("/etc/strata/data"));
        assert_eq!(p.topic, "commits");
        assert_eq!(p.gateway.policy, SlowSubscriberPolicy::DropOldest);
        assert!(p.feed.is_none() && p.tcp.is_none());
    }

    #[test]
    fn inline_stack_and_sections() {
        let p = plan_of(
            "[store]\ndir = \"d\"\n[store.stack.memtable]\nkind = \"vector\"\n\
             [gateway]\naddr = \"127.0.0.1:0\"\npolicy = \"disconnect\"\n\
             [tcp]\naddr = \"127.0.0.1:0\"\n[feed]\nrate = 10\nbatch = 2\n",
        )
        .unwrap();
        assert_eq!(p.stack.memtable.plugin, "vector");
        assert_eq!(p.gateway.policy, SlowSubscriberPolicy::Disconnect);
        assert_eq!(p.feed.unwrap().batch, 2);
        assert!(p.tcp.is_some());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = |t: &str| format!("{:#}", plan_of(t).err().unwrap());
        assert!(err("").contains("store"));
        assert!(err("[store]\ndir = \"d\"\nport = 1\n").contains("unknown field"));
        assert!(err("[store]\ndir = \"d\"\n[gateway]\npolicy = \"block\"\n").contains("block"));
        assert!(err("[store]\ndir = \"d\"\n[gateway]\npolicy = \"maybe\"\n").contains("maybe"));
        assert!(err("[store]\ndir = \"d\"\n[commits]\nvalues = \"xml\"\n").contains("xml"));
        assert!(err("[store]\ndir = \"d\"\n[feed]\nrate = 1\nbatch = 0\n").contains("batch"));
        assert!(err("[store]\ndir = \"d\"\nstack = 3\n").contains("stack"));
        assert!(
            err("[store]\ndir = \"d\"\n[store.stack.nonsense]\nx = 1\n").contains("store.stack")
        );
    }

    #[test]
    fn replication_section() {
        let p = plan_of(
            "[store]\ndir = \"d\"\n[feed]\nrate = 10\n[replication]\nrole = \"primary\"\n\
             name = \"a\"\nlisten = \"127.0.0.1:7400\"\nmode = \"sync\"\nmin_in_sync = 2\n\
             heartbeat_ms = 50\nsync_timeout_ms = 1000\n",
        )
        .unwrap();
        let r = p.replication.unwrap();
        assert_eq!(r.name, "a");
        assert_eq!(r.role, RoleConfig::Primary);
        assert_eq!(r.mode, Mode::Sync);
        assert_eq!(r.min_in_sync, 2);
        assert_eq!(r.heartbeat, Duration::from_millis(50));
        assert_eq!(r.sync_timeout, Some(Duration::from_secs(1)));
        assert!(p.feed.is_some() && p.feed_disabled.is_none());

        // Defaults; a replica's feed is off, and says why.
        let p = plan_of(
            "[store]\ndir = \"d\"\n[feed]\nrate = 10\n[replication]\nrole = \"replica\"\n\
             primary = \"127.0.0.1:7400\"\nlisten = \"127.0.0.1:7401\"\n",
        )
        .unwrap();
        let r = p.replication.unwrap();
        assert_eq!(r.role, RoleConfig::Replica { primary: "127.0.0.1:7400".into() });
        assert_eq!(r.mode, Mode::Async);
        assert_eq!(r.min_in_sync, 1);
        assert!(r.name.ends_with("-7401"), "{}", r.name);
        assert!(p.feed.is_none());
        assert!(p.feed_disabled.unwrap().contains("replica"));
    }

    #[test]
    fn bad_replication_configs_name_the_key() {
        let err = |section: &str| {
            let text = format!("[store]\ndir = \"d\"\n[replication]\n{section}");
            format!("{:#}", plan_of(&text).err().unwrap())
        };
        let cases = [
            ("role = \"leader\"\n", "role = \"leader\""),
            ("listen = \"127.0.0.1:1\"\n", "role"),
            ("role = \"replica\"\n", "primary is required"),
            ("role = \"primary\"\nprimary = \"127.0.0.1:1\"\n", "only for role = \"replica\""),
            ("role = \"replica\"\nprimary = \"nowhere\"\n", "primary = \"nowhere\""),
            ("role = \"primary\"\nmode = \"semi\"\n", "mode = \"semi\""),
            ("role = \"primary\"\nlisten = \"here\"\n", "listen = \"here\""),
            ("role = \"primary\"\nlisten = \"127.0.0.1:0\"\n", "name is required"),
            ("role = \"primary\"\nname = \" \"\n", "name must not be empty"),
            ("role = \"primary\"\nheartbeat_ms = 0\n", "heartbeat_ms"),
            ("role = \"primary\"\nsync_timeout_ms = 0\n", "sync_timeout_ms"),
            ("role = \"primary\"\nmin_in_sync = -1\n", "min_in_sync"),
            ("role = \"primary\"\nport = 1\n", "unknown field `port`"),
        ];
        for (section, expect) in cases {
            let e = err(section);
            assert!(e.contains(expect), "{section:?}: {e}");
        }
    }
}
