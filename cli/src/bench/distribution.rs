//! `strata bench distribution`: the distribution layer's figures in one run.
//!
//! 1. iceoryx one-way latency — Strata's iceoryx transport, raw iceoryx2 (`ipc::Service`,
//!    no Strata code) and raw iceoryx2 on the thread-safe flavour Strata's transport is
//!    built on, alternated in 5 rounds, publisher and subscriber threads pinned to
//!    separate cores, one message in flight, every side busy-polling; HdrHistogram
//!    percentiles and the Strata/raw ratios (`strata_transport_iceoryx::bench`).
//! 2. iceoryx batched throughput — small messages packed into frames written in place,
//!    messages per second at the subscriber.
//! 3. TCP loopback — one-way latency (subscriber blocking in `wait`) and throughput
//!    (`strata_transport_tcp::bench::loopback`).
//! 4. Subscriber tiers over the iceoryx transport — the same pre-encoded message frames
//!    (`--tier-batch` trade messages per frame), queued 1024 frames at a time and then
//!    drained on the same thread (the drain is timed: the consumer's own cost, no idle
//!    time) by: a plain transport subscriber (the baseline: frames polled, payload
//!    touched), the real-time tier (every message validated and handed to a callback in
//!    place), the delayed tier (messages copied out into 10 ms wall-clock windows; timed
//!    to the last message's arrival, not to the window's close). The resumable tier consumes the store's commit stream: the
//!    batches are written to a store first, then the commit stream publishes them over
//!    the iceoryx transport while the resumable subscriber (live, durable checkpoint
//!    every 64 batches) takes them; its baseline is a plain subscriber on the same
//!    commit stream. Each figure is messages per second at the consumer and ns per
//!    message, with the difference to its baseline.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use strata_core::{
    BatchIter, Delivery, Durability, PublisherOptions, SeqNo, SlowSubscriberPolicy, StreamId,
    SubscriberOptions, TopicPublisher, TopicSubscriber, Transport, WriteBatch,
};
use strata_stream::{
    Checkpoint, CommitStream, DelayedSubscriber, Event, Message, RealtimeSubscriber,
    ResumableSubscriber, ResumeOptions, Side, TradeEvent, messages::encode_frame,
};
use strata_transport_iceoryx::bench as ice;
use strata_transport_iceoryx::{IceoryxConfig, IceoryxTransport};
use strata_transport_tcp::bench as tcp;

/// Options of `strata bench distribution`.
#[derive(Debug, Clone, clap::Args)]
pub struct DistributionArgs {
    /// Measured messages of each latency run (iceoryx Strata, iceoryx raw, TCP) and of
    /// each subscriber-tier run; the TCP throughput run sends as many, the batched
    /// iceoryx throughput run 100 times as many. A tenth as many again are sent first
    /// as warm-up of the latency runs.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Payload bytes of the latency and TCP throughput messages (at least 8: the send
    /// time), and value bytes of the resumable tier's writes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Bytes per message of the batched iceoryx throughput run (at least 8).
    #[arg(long, default_value_t = 32)]
    pub batch_message_size: usize,
    /// Messages per frame of the batched iceoryx throughput run.
    #[arg(long, default_value_t = 256)]
    pub batch: u32,
    /// Messages per frame (and per committed batch) of the subscriber-tier runs.
    #[arg(long, default_value_t = 16)]
    pub tier_batch: u32,
    /// Do not pin the iceoryx publisher and subscriber threads to separate cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles of one variant, in nanoseconds.
pub type Latency = ice::LatencyResult;

/// Phase 1.
#[derive(Debug, Clone, Serialize)]
pub struct IceoryxLatency {
    /// Strata's iceoryx transport.
    pub strata: Latency,
    /// iceoryx2 used directly (`ipc::Service`: single-threaded ports).
    pub raw: Latency,
    /// iceoryx2 used directly on `ipc_threadsafe::Service`, the flavour Strata's
    /// transport uses (its endpoints must be `Send`).
    pub raw_threadsafe: Latency,
    /// Mean latency Strata / raw.
    pub mean_ratio: f64,
    /// Mean latency Strata / raw threadsafe.
    pub mean_ratio_threadsafe: f64,
    /// Median latency Strata / raw threadsafe.
    pub p50_ratio_threadsafe: f64,
    /// Median latency Strata / raw.
    pub p50_ratio: f64,
    /// 99th percentile Strata / raw.
    pub p99_ratio: f64,
}

/// A throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Messages received.
    pub messages: u64,
    /// Bytes per message.
    pub message_bytes: usize,
    /// Messages per frame.
    pub per_frame: u32,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// Messages per second at the subscriber.
    pub msgs_per_sec: f64,
    /// Whether publisher and subscriber were pinned to separate cores.
    pub pinned: bool,
}

/// One subscriber tier's run.
#[derive(Debug, Clone, Serialize)]
pub struct TierResult {
    /// The tier.
    pub tier: String,
    /// What the run compares with (`None` for the baselines).
    pub baseline: Option<String>,
    /// Messages consumed.
    pub messages: u64,
    /// Frames (or committed batches) consumed.
    pub frames: u64,
    /// Seconds from the first publish to the last message consumed.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Nanoseconds per message (1e9 / msgs_per_sec).
    pub ns_per_msg: f64,
    /// ns per message above the baseline's.
    pub overhead_ns_per_msg: Option<f64>,
    /// What else the run observed (windows, checkpoints, sources).
    pub note: String,
}

/// Phase 4.
#[derive(Debug, Clone, Serialize)]
pub struct Tiers {
    /// The transport every tier ran over.
    pub transport: String,
    /// Messages per frame.
    pub per_frame: u32,
    /// The runs.
    pub results: Vec<TierResult>,
}

/// The machine during the run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `/proc/loadavg` at the start of the run.
    pub load_before: String,
    /// `/proc/loadavg` at the end of the run.
    pub load_after: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DistributionReport {
    /// The machine.
    pub machine: Machine,
    /// Measured messages per latency run.
    pub messages: u64,
    /// Payload bytes of the latency messages.
    pub payload: usize,
    /// Phase 1.
    pub iceoryx_latency: IceoryxLatency,
    /// Phase 2.
    pub iceoryx_throughput: Throughput,
    /// Phase 3: latency.
    pub tcp_latency: Latency,
    /// Phase 3: the same latency over a bare `std::net` socket pair (the reference).
    pub tcp_raw_latency: Latency,
    /// Phase 3: throughput.
    pub tcp_throughput: Throughput,
    /// Phase 4.
    pub tiers: Tiers,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A spinner for one phase (drawn on stderr when it is a terminal).
fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template("{spinner} {msg:<44} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn finish(bar: &ProgressBar, summary: String) {
    bar.finish_with_message(summary);
}

/// What to say when iceoryx2 itself cannot run here.
const ICEORYX_HINT: &str = "the iceoryx phases need POSIX shared memory (/dev/shm writable, \
     enough space) and iceoryx2's runtime directories under /tmp/iceoryx2";

/// Runs every phase and prints the report.
pub fn run(args: &DistributionArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages >= 1, "--messages must be at least 1");
    anyhow::ensure!(args.payload >= 8, "--payload must be at least 8 (the send time)");
    anyhow::ensure!(
        args.batch >= 1 && args.tier_batch >= 1,
        "--batch and --tier-batch must be at least 1"
    );
    anyhow::ensure!(args.batch_message_size >= 8, "--batch-message-size must be at least 8");
    let load_before = loadavg();
    let pin = !args.no_pin;
    let warmup = (args.messages / 10).max(1);

    // Fail early, with a clear message, when iceoryx2 cannot work here.
    IceoryxTransport::with_config(IceoryxConfig::default())
        .with_context(|| format!("cannot create an iceoryx2 node ({ICEORYX_HINT})"))?;

    let bar = spinner("iceoryx latency: strata vs raw iceoryx2");
    let lat = ice::latency_comparison(&ice::LatencyConfig {
        messages: args.messages,
        warmup,
        payload: args.payload,
        pin,
        rounds: 5,
    })
    .with_context(|| format!("iceoryx latency phase ({ICEORYX_HINT})"))?;
    let iceoryx_latency = IceoryxLatency {
        strata: lat.strata.clone(),
        raw: lat.raw.clone(),
        raw_threadsafe: lat.raw_threadsafe.clone(),
        mean_ratio: lat.mean_ratio(),
        mean_ratio_threadsafe: lat.mean_ratio_threadsafe(),
        p50_ratio_threadsafe: ratio(lat.strata.p50_ns as f64, lat.raw_threadsafe.p50_ns as f64),
        p50_ratio: ratio(lat.strata.p50_ns as f64, lat.raw.p50_ns as f64),
        p99_ratio: ratio(lat.strata.p99_ns as f64, lat.raw.p99_ns as f64),
    };
    finish(&bar, format!("iceoryx latency: mean ratio {:.2}", iceoryx_latency.mean_ratio));

    let bar = spinner("iceoryx batched throughput");
    let t = ice::batched_throughput(&ice::ThroughputConfig {
        messages: args.messages.saturating_mul(100),
        batch: args.batch,
        message_size: args.batch_message_size,
        pin,
    })
    .context("iceoryx batched throughput phase")?;
    let iceoryx_throughput = Throughput {
        messages: t.messages,
        message_bytes: t.message_size,
        per_frame: t.batch,
        seconds: t.elapsed.as_secs_f64(),
        msgs_per_sec: t.msgs_per_sec(),
        pinned: t.pinned,
    };
    finish(
        &bar,
        format!("iceoryx batched throughput: {:.2} M msg/s", iceoryx_throughput.msgs_per_sec / 1e6),
    );

    let bar = spinner("tcp loopback latency and throughput");
    let opts = tcp::LoopbackOptions::default()
        .with_messages(args.messages)
        .with_warmup(warmup)
        .with_payload(args.payload);
    let loopback = tcp::loopback(&opts).context("tcp loopback phase")?;
    let raw = tcp::raw_latency(&opts).context("raw tcp loopback reference")?;
    let tcp_raw_latency = Latency::from_histogram("raw std::net tcp", &raw.latency_ns, false);
    let tcp_latency = Latency::from_histogram("strata tcp", &loopback.latency.latency_ns, false);
    let tcp_throughput = Throughput {
        messages: loopback.throughput.messages,
        message_bytes: args.payload,
        per_frame: 1,
        seconds: loopback.throughput.elapsed.as_secs_f64(),
        msgs_per_sec: loopback.throughput.msgs_per_sec(),
        pinned: false,
    };
    finish(&bar, format!("tcp loopback: p50 {} ns", tcp_latency.p50_ns));

    let tiers = tiers(args)?;

    let report = DistributionReport {
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_before,
            load_after: loadavg(),
        },
        messages: args.messages,
        payload: args.payload,
        iceoryx_latency,
        iceoryx_throughput,
        tcp_latency,
        tcp_raw_latency,
        tcp_throughput,
        tiers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_report(&report));
    }
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// The report as text tables.
pub fn format_report(r: &DistributionReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "strata bench distribution: {} messages of {} B per latency run; {} cpus, load {} -> {}",
        r.messages, r.payload, r.machine.cpus, r.machine.load_before, r.machine.load_after
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}  pinned",
        "one-way latency", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "mean ns", "count"
    );
    let l = &r.iceoryx_latency;
    for x in [&l.strata, &l.raw, &l.raw_threadsafe, &r.tcp_latency, &r.tcp_raw_latency] {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>10} {:>10.1} {:>8}  {}",
            x.label, x.p50_ns, x.p99_ns, x.p999_ns, x.max_ns, x.mean_ns, x.count, x.pinned
        );
    }
    let _ = writeln!(
        out,
        "strata/raw iceoryx2: mean {:.3}  p50 {:.3}  p99 {:.3}",
        l.mean_ratio, l.p50_ratio, l.p99_ratio
    );
    let _ = writeln!(
        out,
        "strata/raw iceoryx2 threadsafe: mean {:.3}  p50 {:.3}",
        l.mean_ratio_threadsafe, l.p50_ratio_threadsafe
    );
    let (t, raw) = (&r.tcp_latency, &r.tcp_raw_latency);
    let _ = writeln!(
        out,
        "strata tcp/raw tcp: mean {:.3}  p50 {:.3}  p99 {:.3}",
        t.mean_ns / raw.mean_ns.max(1.0),
        t.p50_ns as f64 / raw.p50_ns.max(1) as f64,
        t.p99_ns as f64 / raw.p99_ns.max(1) as f64
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>10} {:>10} {:>9} {:>14}",
        "throughput", "messages", "bytes/msg", "msgs/frame", "seconds", "msg/s"
    );
    for (name, t) in
        [("iceoryx batched", &r.iceoryx_throughput), ("tcp loopback", &r.tcp_throughput)]
    {
        let _ = writeln!(
            out,
            "{:<24} {:>12} {:>10} {:>10} {:>9.3} {:>14.0}",
            name, t.messages, t.message_bytes, t.per_frame, t.seconds, t.msgs_per_sec
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "subscriber tiers over {} ({} messages per frame)",
        r.tiers.transport, r.tiers.per_frame
    );
    let _ = writeln!(
        out,
        "{:<30} {:>10} {:>9} {:>13} {:>9} {:>12}  notes",
        "tier", "messages", "seconds", "msg/s", "ns/msg", "+ns vs base"
    );
    for t in &r.tiers.results {
        let over =
            t.overhead_ns_per_msg.map_or_else(|| "(baseline)".to_owned(), |o| format!("{o:+.1}"));
        let _ = writeln!(
            out,
            "{:<30} {:>10} {:>9.3} {:>13.0} {:>9.1} {:>12}  {}",
            t.tier, t.messages, t.seconds, t.msgs_per_sec, t.ns_per_msg, over, t.note
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Subscriber tiers.

/// Give up when a consumer sees nothing for this long.
const STALL: Duration = Duration::from_secs(30);

/// Ends a receive loop with an error once nothing has arrived for [`STALL`].
struct StallGuard(Instant);

impl StallGuard {
    fn new() -> Self {
        Self(Instant::now())
    }

    /// Notes whether the last round delivered anything; `what` describes a stall.
    fn check(&mut self, progressed: bool, what: impl FnOnce() -> String) -> anyhow::Result<()> {
        if progressed {
            self.0 = Instant::now();
        } else {
            anyhow::ensure!(self.0.elapsed() < STALL, "{}", what());
        }
        Ok(())
    }
}

/// Walks every operation of an encoded batch in place; returns how many it holds.
fn walk_ops(payload: &[u8], keys: &mut usize) -> u64 {
    let mut n = 0;
    for op in BatchIter::new(payload).flatten() {
        *keys = keys.wrapping_add(op.key.len());
        n += 1;
    }
    n
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn ice_transport() -> anyhow::Result<Arc<IceoryxTransport>> {
    Ok(Arc::new(
        IceoryxTransport::with_config(IceoryxConfig::default().with_prefix("strata-bench"))
            .with_context(|| format!("cannot create an iceoryx2 node ({ICEORYX_HINT})"))?,
    ))
}

fn unique_topic(what: &str) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!("tiers-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn trade(i: u64) -> Message {
    Message::Trade(TradeEvent {
        trade_id: i,
        symbol: "BTC-USD".into(),
        price: 6_500_000 + (i % 100) as i64,
        qty: 1 + i % 7,
        side: if i.is_multiple_of(2) { Side::Buy } else { Side::Sell },
        buy_order_id: 2 * i,
        sell_order_id: 2 * i + 1,
        buy_account: (i % 1000) as u32,
        sell_account: (i % 997) as u32,
        ts_nanos: i,
        venue_ref: String::new(),
    })
}

/// Which consumer a frame-tier run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Consumer {
    Plain,
    Realtime,
    Delayed,
}

struct Run {
    messages: u64,
    frames: u64,
    seconds: f64,
    note: String,
}

const FRAME_BASE: &str = "transport poll (baseline)";
const COMMIT_BASE: &str = "commit stream poll (baseline)";

fn tiers(args: &DistributionArgs) -> anyhow::Result<Tiers> {
    let per_frame = args.tier_batch;
    let frames = args.messages.div_ceil(u64::from(per_frame)).max(1);
    let mut results = Vec::new();
    let mut base_ns = 0.0;
    for (name, consumer) in [
        (FRAME_BASE, Consumer::Plain),
        ("realtime (callback)", Consumer::Realtime),
        ("delayed (10 ms windows)", Consumer::Delayed),
    ] {
        let bar = spinner(&format!("tier: {name}"));
        let run = frame_tier(consumer, frames, per_frame)
            .with_context(|| format!("subscriber tier phase: {name}"))?;
        let base = (consumer != Consumer::Plain).then_some((FRAME_BASE, base_ns));
        let r = tier_result(name, base, &run);
        if consumer == Consumer::Plain {
            base_ns = r.ns_per_msg;
        }
        finish(&bar, format!("tier {name}: {:.1} ns/msg", r.ns_per_msg));
        results.push(r);
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-bench-distribution-")
        .tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
        .context("creating a temporary directory for the resumable tier's store")?;
    let mut commit_base = 0.0;
    for (name, resumable) in [(COMMIT_BASE, false), ("resumable (durable checkpoint)", true)] {
        let bar = spinner(&format!("tier: {name}"));
        let run = commit_tier(
            &dir.path().join(if resumable { "resumable" } else { "plain" }),
            frames,
            per_frame,
            args.payload,
            resumable,
        )
        .with_context(|| format!("subscriber tier phase: {name}"))?;
        let r = tier_result(name, resumable.then_some((COMMIT_BASE, commit_base)), &run);
        if !resumable {
            commit_base = r.ns_per_msg;
        }
        finish(&bar, format!("tier {name}: {:.1} ns/msg", r.ns_per_msg));
        results.push(r);
    }
    Ok(Tiers { transport: "iceoryx (strata transport)".into(), per_frame, results })
}

fn tier_result(name: &str, baseline: Option<(&str, f64)>, run: &Run) -> TierResult {
    let rate = run.messages as f64 / run.seconds.max(1e-9);
    let ns = 1e9 / rate.max(f64::MIN_POSITIVE);
    TierResult {
        tier: name.to_owned(),
        baseline: baseline.map(|(b, _)| b.to_owned()),
        messages: run.messages,
        frames: run.frames,
        seconds: run.seconds,
        msgs_per_sec: rate,
        ns_per_msg: ns,
        overhead_ns_per_msg: baseline.map(|(_, b)| ns - b),
        note: run.note.clone(),
    }
}

/// Frames queued per round of a frame-tier run.
const ROUND_FRAMES: u64 = 1024;

/// Pre-encoded message frames over the iceoryx transport, consumed by `consumer`. In
/// rounds: the publisher queues up to [`ROUND_FRAMES`] frames, then the consumer drains
/// them, timed from the start of the drain to its last message. Both run on this thread,
/// so the figure is the consumer's own cost per message (transport receive included),
/// with no idle time and no contention with a publisher thread.
fn frame_tier(consumer: Consumer, frames: u64, per_frame: u32) -> anyhow::Result<Run> {
    let messages: Vec<Message> = (0..u64::from(per_frame)).map(trade).collect();
    let frame = encode_frame(&messages)?;
    let transport = ice_transport()?;
    let topic = unique_topic("frames");
    let max_payload = frame.len();
    let depth = ROUND_FRAMES as usize;
    let sopts = SubscriberOptions { queue_depth: depth, max_payload, resume_from: None };
    let popts = PublisherOptions {
        stream: StreamId(7),
        max_payload,
        queue_depth: depth,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let sub = transport.open_subscriber(&topic, &sopts)?;
    let mut publisher = transport.open_publisher(&topic, &popts)?;
    let mut drain = Drain::new(consumer, sub);
    let mut busy = Duration::ZERO;
    let mut sent = 0u64;
    while sent < frames {
        let round = (frames - sent).min(ROUND_FRAMES);
        for f in sent..sent + round {
            publisher.publish(1 + f * u64::from(per_frame), per_frame, &frame)?;
        }
        sent += round;
        busy += drain.until(sent * u64::from(per_frame))?;
    }
    Ok(Run { messages: drain.got, frames, seconds: busy.as_secs_f64(), note: drain.note() })
}

/// A tier consumer draining what was queued.
struct Drain {
    got: u64,
    bad: u64,
    touched: u64,
    windows: u64,
    tier: DrainTier,
}

enum DrainTier {
    Plain(Box<dyn TopicSubscriber>),
    Realtime(RealtimeSubscriber),
    Delayed(DelayedSubscriber),
}

impl Drain {
    fn new(consumer: Consumer, sub: strata_transport_iceoryx::IceoryxSubscriber) -> Self {
        let tier = match consumer {
            Consumer::Plain => DrainTier::Plain(Box::new(sub)),
            Consumer::Realtime => DrainTier::Realtime(RealtimeSubscriber::new(Box::new(sub))),
            Consumer::Delayed => {
                DrainTier::Delayed(DelayedSubscriber::new(Box::new(sub), Duration::from_millis(10)))
            }
        };
        Self { got: 0, bad: 0, touched: 0, windows: 0, tier }
    }

    /// Consumes until `target` messages were taken in all; returns the time from the
    /// start to the last message taken.
    fn until(&mut self, target: u64) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let start_epoch = since_epoch();
        let mut end = start;
        let mut stall = StallGuard::new();
        let (got, bad, touched) = (&mut self.got, &mut self.bad, &mut self.touched);
        while *got < target {
            let before = *got;
            match &mut self.tier {
                DrainTier::Plain(sub) => {
                    sub.poll(&mut |d| {
                        if let Delivery::Frame { header, payload } = d {
                            *got += u64::from(header.span);
                            *touched = touched
                                .wrapping_add(u64::from(payload.first().copied().unwrap_or(0)));
                        } else {
                            *bad += 1;
                        }
                    })?;
                    end = Instant::now();
                }
                DrainTier::Realtime(tier) => {
                    tier.poll(|e| match e {
                        Event::Message { message, .. } => {
                            *got += 1;
                            if let strata_stream::ArchivedMessage::Trade(t) = message {
                                *touched = touched.wrapping_add(t.qty.to_native());
                            }
                        }
                        Event::Gap { .. } | Event::Invalid { .. } => *bad += 1,
                    })?;
                    end = Instant::now();
                }
                DrainTier::Delayed(tier) => {
                    let w = tier.next_window(|_| {})?;
                    *got += w.messages.len() as u64;
                    *bad += w.gaps.len() as u64 + w.invalid;
                    if let Some((_, _, at)) = w.messages.last() {
                        self.windows += 1;
                        // Up to the last message's arrival: waiting for the window to
                        // close is the tier's purpose, not its cost.
                        end = start + at.saturating_sub(start_epoch);
                    }
                }
            }
            stall.check(*got > before, || {
                format!("no message for {STALL:?} after {got} of {target}")
            })?;
        }
        std::hint::black_box(*touched);
        anyhow::ensure!(*bad == 0, "the tier reported {bad} gaps or invalid frames");
        Ok(end.saturating_duration_since(start))
    }

    fn note(&self) -> String {
        match &self.tier {
            DrainTier::Plain(_) => "frames polled, payload touched".into(),
            DrainTier::Realtime(t) => {
                let s = t.stats();
                format!("validated in place: {} zero-copy, {} copied", s.zero_copy, s.copied)
            }
            DrainTier::Delayed(t) => format!(
                "copied out into {} windows, delivered {} us (mean) after the boundary",
                self.windows,
                t.accuracy().mean.as_micros()
            ),
        }
    }
}

/// The store's commit stream over the iceoryx transport, consumed by the resumable tier
/// (or, for its baseline, a plain subscriber walking every operation).
fn commit_tier(
    dir: &Path,
    frames: u64,
    per_frame: u32,
    value_bytes: usize,
    resumable: bool,
) -> anyhow::Result<Run> {
    let db = Arc::new(super::Stack::default_stack().builder(&dir.join("store"))?.open()?);
    let transport = ice_transport()?;
    let topic = unique_topic("commits");
    // A batch of `per_frame` puts of 16-byte keys: the WAL encoding adds a few bytes each.
    let max_payload = (value_bytes + 64) * per_frame as usize + 256;
    let sopts = SubscriberOptions { queue_depth: 64, max_payload, resume_from: None };
    let popts = PublisherOptions {
        stream: StreamId(8),
        max_payload,
        queue_depth: 64,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let checkpoint = Checkpoint::new(dir.join("subscriber.ckpt"));
    // The publisher exists before the subscriber polls: iceoryx2 drops (rather than
    // blocks on) frames for a subscriber that has not polled since the publisher
    // appeared once its queue is full.
    let publisher: Box<dyn TopicPublisher> = transport.publisher(&topic, &popts)?;
    enum Sub {
        Plain(Box<dyn TopicSubscriber>),
        Resumable(Box<ResumableSubscriber>),
    }
    let mut sub = if resumable {
        let options = ResumeOptions::default().with_subscriber(sopts);
        let mut s = ResumableSubscriber::open(
            Arc::clone(&db) as _,
            Arc::clone(&transport) as Arc<dyn Transport>,
            &topic,
            checkpoint.clone(),
            options,
        )?;
        // An empty log: the first step switches to the live topic.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.is_live() {
            anyhow::ensure!(Instant::now() < deadline, "the resumable subscriber never went live");
            s.step(Duration::from_millis(10), |_| {})?;
        }
        Sub::Resumable(Box::new(s))
    } else {
        let mut s = transport.subscriber(&topic, &sopts)?;
        s.poll(&mut |_| {})?;
        Sub::Plain(s)
    };
    // The batches are in the store before the commit stream starts, so the run measures
    // the stream and its subscriber, not the store's write path.
    let value = vec![0x5a_u8; value_bytes];
    for f in 0..frames {
        let mut b = WriteBatch::new();
        for k in 0..u64::from(per_frame) {
            b.put(format!("key-{:012}", f * u64::from(per_frame) + k), &value);
        }
        // The last write is Sync: it pushes every buffered record into the log file,
        // where the commit stream's tailing reader finds it.
        let durability = if f + 1 == frames { Durability::Sync } else { Durability::Buffered };
        db.write(&b, durability)?;
    }
    let last = frames * u64::from(per_frame);
    let start = Instant::now();
    let stream = CommitStream::start(Arc::clone(&db), publisher, SeqNo(1))?;
    let mut got = 0u64;
    let mut batches = 0u64;
    let mut stall = StallGuard::new();
    let note = match &mut sub {
        Sub::Plain(s) => {
            let mut keys = 0usize;
            while got < last {
                let n = s.wait(Duration::from_millis(50), &mut |d| {
                    if let Delivery::Frame { payload, .. } = d {
                        got += walk_ops(payload, &mut keys);
                        batches += 1;
                    }
                })?;
                stall.check(n > 0, || {
                    format!(
                        "commit stream stalled: {got} of {last} received, {} published",
                        stream.published_seq()
                    )
                })?;
            }
            std::hint::black_box(keys);
            "every operation walked in place".to_owned()
        }
        Sub::Resumable(s) => {
            let mut keys = 0usize;
            while s.processed() < last {
                let n = s.step(Duration::from_millis(50), |f| {
                    got += walk_ops(f.payload, &mut keys);
                    batches += 1;
                })?;
                stall.check(n > 0, || {
                    format!(
                        "resumable subscriber stalled at {} of {last}, {} published",
                        s.processed(),
                        stream.published_seq()
                    )
                })?;
            }
            std::hint::black_box(keys);
            let st = s.stats();
            s.checkpoint()?;
            format!(
                "{} batches live, {} from the log; checkpoint (fsync) every 64 batches: {} written",
                st.from_live,
                st.from_log,
                batches / 64 + 1
            )
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    stream.stop()?;
    if resumable {
        anyhow::ensure!(
            checkpoint.load()? == last,
            "the checkpoint does not hold the last sequence"
        );
    }
    Ok(Run { messages: got, frames: batches, seconds, note })
}
