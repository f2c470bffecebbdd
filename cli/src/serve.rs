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
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Deserialize;
use strata_core::{
    Db, Durability, LogBound, PublisherOptions, SeqNo, SlowSubscriberPolicy, StreamId,
    SubscriberOptions, Transport, WriteBatch,
};
use strata_gateway_ws::{Gateway, GatewayConfig, PayloadFormat, TopicSpec};
use strata_plugins::StackConfig;
use strata_stream::{CommitStream, LocalTransport, Message, Side, TradeEvent};
use strata_transport_iceoryx::{IceoryxConfig, IceoryxTransport};
use strata_transport_tcp::TcpTransport;

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
    Ok(Plan {
        dir: base.join(&config.store.dir),
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
    })
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Writes batches of synthetic trades at the configured rate until `stop`.
fn run_feed(db: Db, feed: Feed, stop: Arc<AtomicBool>) -> anyhow::Result<u64> {
    let per_batch = Duration::from_secs_f64(f64::from(feed.batch) / feed.rate as f64);
    let mut trade_id = db.snapshot().seq().0;
    let mut next = Instant::now();
    let mut written = 0u64;
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
                buy_account: (trade_id % 97) as u32,
                sell_account: (trade_id % 89) as u32,
                ts_nanos: now_nanos(),
            });
            let value = trade.encode().context("encode a trade")?;
            batch.put(format!("trade/{trade_id:020}"), value.as_slice());
        }
        db.write(&batch, feed.durability).context("feed: write a batch of trades")?;
        written += u64::from(feed.batch);
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
    let db = plan
        .stack
        .builder(&plan.dir)?
        .open()
        .with_context(|| format!("cannot open the store in {}", plan.dir.display()))?;
    let last = db.snapshot().seq().0;
    println!("store: {} ({}), last seq {last}", plan.dir.display(), plan.stack);

    // The gateway subscribes before the commit stream starts, so it sees every frame.
    let local = LocalTransport::new();
    let gateway = Gateway::new(plan.gateway.clone())?;
    gateway.add_topic(
        Arc::new(local.clone()),
        TopicSpec::new(plan.topic.clone(), plan.format).with_log(Arc::new(db.clone()), plan.stream),
        SubscriberOptions { queue_depth: 4096, max_payload: plan.max_payload, resume_from: None },
    )?;
    let local_publisher = local.publisher(
        &plan.topic,
        &PublisherOptions {
            stream: plan.stream,
            max_payload: plan.max_payload,
            queue_depth: 4096,
            policy: SlowSubscriberPolicy::Block,
            ..PublisherOptions::default()
        },
    )?;
    let shared_db = Arc::new(db.clone());
    let start = |publisher| {
        CommitStream::start_with(Arc::clone(&shared_db), publisher, SeqNo(last + 1), plan.bound)
    };
    let mut streams = vec![start(local_publisher)?];
    let mut _tcp = None;
    if let Some((addr, options)) = &plan.tcp {
        let tcp = TcpTransport::server(addr.as_str())
            .with_context(|| format!("cannot listen for TCP subscribers on {addr}"))?;
        let publisher = tcp.publisher(&plan.topic, options)?;
        streams.push(start(publisher)?);
        if let Some(a) = tcp.local_addr() {
            println!("tcp: {a} topic {}", plan.topic);
        }
        _tcp = Some(tcp);
    }
    let mut _iceoryx = None;
    if let Some((prefix, options)) = &plan.iceoryx {
        let transport = IceoryxTransport::with_config(IceoryxConfig::default().with_prefix(prefix))
            .context("cannot open the iceoryx2 transport")?;
        let publisher = transport.publisher(&plan.topic, options)?;
        streams.push(start(publisher)?);
        println!("iceoryx: prefix {prefix} topic {}", plan.topic);
        _iceoryx = Some(transport);
    }

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
    println!("gateway: ws://{addr}/ws?topic={}", plan.topic);

    let stop = Arc::new(AtomicBool::new(false));
    // The feed says here when it failed (its store is poisoned: fsync failed, disk
    // full), so serving stops at once and exits with the error instead of running on
    // until --duration ends or Ctrl-C. Dropped without a send when the feed ends well.
    let (feed_failed_tx, feed_failed) = tokio::sync::oneshot::channel::<()>();
    let feed = match plan.feed.clone() {
        Some(f) => {
            println!("feed: {} trades/s in batches of {}", f.rate, f.batch);
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("strata-feed".into())
                    .spawn(move || {
                        let result = run_feed(db, f, stop);
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
        // Whichever comes first: Ctrl-C (with or without --duration), the end of
        // --duration, or a failed feed.
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot wait for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        let failed = async {
            // An error means the feed ended well or there is none: nothing to stop for.
            if feed_failed.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = ctrl_c => eprintln!("Ctrl-C: stopping"),
            () = timer => {}
            () = failed => {}
        }
    }));
    stop.store(true, Ordering::Release);
    gateway.shutdown();
    let mut outcome = served.map_err(anyhow::Error::from);
    if let Some(feed) = feed {
        match feed.join() {
            Ok(Ok(n)) => eprintln!("feed: wrote {n} trades"),
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(_) => outcome = outcome.and(Err(anyhow::anyhow!("the feed thread panicked"))),
        }
    }
    for s in streams {
        if let Err(e) = s.stop() {
            outcome = outcome.and(Err(e.into()));
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    eprintln!("stopped at seq {}", db.snapshot().seq().0);
    outcome
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
}
