//! Distribution benchmarks: one-way latency of Strata's iceoryx transport next to raw
//! iceoryx2 in the same run, and batched small-message throughput.
//!
//! Latency: a publisher thread and a busy-polling subscriber thread, pinned to separate
//! cores when the machine has two, exchange `messages` frames one at a time (the
//! publisher sends the next frame only after the subscriber has taken the previous one,
//! so no queueing is measured). The publisher takes a monotonic timestamp right before
//! the publish call (Strata: `publish_with`; raw: the loan) and writes it into the
//! payload; the subscriber busy-polls (Strata: `poll`, which checks both policy ports;
//! raw: `receive` on its one port) and records `now - timestamp` into an HdrHistogram.
//! The raw variant uses iceoryx2's own single-threaded `ipc::Service` ports (Strata
//! needs `ipc_threadsafe` ports, whose every call takes a mutex, because endpoints must
//! be `Send`) and no Strata code in between. [`latency_comparison`] alternates the two
//! variants in rounds so that load drifting during the run weighs on both alike.
//!
//! Throughput: the publisher packs `batch` small messages into one frame (span =
//! `batch`) written in place with `publish_with`; the subscriber polls, walks every
//! message of every frame (checking its sequence number) and the rate is messages
//! received per second at the subscriber.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use iceoryx2::prelude::*;
use strata_core::{
    Delivery, Error, PublisherOptions, Result, SlowSubscriberPolicy, StreamId, SubscriberOptions,
    TopicPublisher, TopicSubscriber,
};

use crate::{IceoryxConfig, IceoryxTransport, WireHeader};

/// Settings of the latency runs.
#[derive(Clone, Debug)]
pub struct LatencyConfig {
    /// Measured messages per variant.
    pub messages: u64,
    /// Messages sent before measuring (not recorded).
    pub warmup: u64,
    /// Payload bytes per message (at least 8: the timestamp).
    pub payload: usize,
    /// Pin publisher and subscriber threads to separate cores.
    pub pin: bool,
    /// [`latency_comparison`] alternates the two variants this many times (each run
    /// measuring `messages / rounds`, after its own warm-up), so that load changing
    /// during the run weighs on both alike.
    pub rounds: u32,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self { messages: 200_000, warmup: 20_000, payload: 64, pin: true, rounds: 5 }
    }
}

/// Settings of the batched throughput run.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    /// Messages to send in total.
    pub messages: u64,
    /// Messages packed into one frame.
    pub batch: u32,
    /// Bytes per message (at least 8: its sequence number).
    pub message_size: usize,
    /// Pin publisher and subscriber threads to separate cores.
    pub pin: bool,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        Self { messages: 50_000_000, batch: 256, message_size: 32, pin: true }
    }
}

/// One-way latency percentiles of one variant, in nanoseconds (any transport: the TCP
/// loopback figures of `strata bench distribution` use it too).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyResult {
    /// Which variant (`"strata iceoryx"`, `"raw iceoryx2"`).
    pub label: String,
    /// Recorded messages.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Maximum.
    pub max_ns: u64,
    /// Whether the threads were pinned to separate cores.
    pub pinned: bool,
}

impl LatencyResult {
    /// Summarises a histogram of nanosecond latencies.
    pub fn from_histogram(label: &str, h: &Histogram<u64>, pinned: bool) -> Self {
        Self {
            label: label.to_owned(),
            count: h.len(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            pinned,
        }
    }
}

/// Result of the batched throughput run.
#[derive(Clone, Debug)]
pub struct ThroughputResult {
    /// Messages received.
    pub messages: u64,
    /// Messages per frame.
    pub batch: u32,
    /// Bytes per message.
    pub message_size: usize,
    /// From the first frame sent to the last message received.
    pub elapsed: Duration,
    /// Whether the threads were pinned to separate cores.
    pub pinned: bool,
}

impl ThroughputResult {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Strata's transport and raw iceoryx2 measured in one run.
#[derive(Clone, Debug)]
pub struct LatencyComparison {
    /// Strata's iceoryx transport.
    pub strata: LatencyResult,
    /// iceoryx2 used directly, with its single-threaded `ipc::Service` ports.
    pub raw: LatencyResult,
    /// iceoryx2 used directly, with the `ipc_threadsafe::Service` ports Strata's
    /// transport is built on (a mutex around every port call, so endpoints are `Send`).
    pub raw_threadsafe: LatencyResult,
}

impl LatencyComparison {
    /// Mean latency of Strata's transport divided by raw iceoryx2's (`ipc::Service`).
    pub fn mean_ratio(&self) -> f64 {
        self.strata.mean_ns / self.raw.mean_ns.max(f64::MIN_POSITIVE)
    }

    /// Mean latency of Strata's transport divided by raw iceoryx2's on the same
    /// thread-safe service flavour.
    pub fn mean_ratio_threadsafe(&self) -> f64 {
        self.strata.mean_ns / self.raw_threadsafe.mean_ns.max(f64::MIN_POSITIVE)
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

fn unique_topic(what: &str) -> String {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    format!("bench-{what}-{}-{n}", std::process::id())
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| Error::Config(format!("latency histogram: {e}")))
}

/// The two cores the threads are pinned to, if the machine has two and pinning is on.
fn cores(pin: bool) -> Option<(core_affinity::CoreId, core_affinity::CoreId)> {
    if !pin {
        return None;
    }
    let ids = core_affinity::get_core_ids()?;
    match ids.as_slice() {
        [a, b, ..] => Some((*a, *b)),
        _ => None,
    }
}

fn pin(core: Option<core_affinity::CoreId>) -> bool {
    core.is_some_and(core_affinity::set_for_current)
}

fn bench_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::transport("iceoryx", "bench", format!("{what}: {e:?}"))
}

fn join<T>(h: std::thread::JoinHandle<Result<T>>, who: &str) -> Result<T> {
    h.join().map_err(|_| bench_err(who, "thread panicked"))?
}

/// Runs the latency measurement for Strata's transport and raw iceoryx2 in this
/// process, alternating them [`LatencyConfig::rounds`] times and merging each side's
/// histograms.
pub fn latency_comparison(cfg: &LatencyConfig) -> Result<LatencyComparison> {
    let rounds = u64::from(cfg.rounds.max(1)).min(cfg.messages.max(1));
    let (mut raw, mut strata, mut safe) = (histogram()?, histogram()?, histogram()?);
    let (mut raw_pinned, mut strata_pinned, mut safe_pinned) = (true, true, true);
    for r in 0..rounds {
        // The first rounds take the remainder.
        let n = cfg.messages / rounds + u64::from(r < cfg.messages % rounds);
        let round = LatencyConfig { messages: n, ..cfg.clone() };
        let (h, p) = raw_histogram::<ipc::Service>(&round)?;
        raw.add(&h).map_err(|e| bench_err("merging histograms", e))?;
        raw_pinned &= p;
        let (h, p) = raw_histogram::<ipc_threadsafe::Service>(&round)?;
        safe.add(&h).map_err(|e| bench_err("merging histograms", e))?;
        safe_pinned &= p;
        let (h, p) = strata_histogram(&round)?;
        strata.add(&h).map_err(|e| bench_err("merging histograms", e))?;
        strata_pinned &= p;
    }
    Ok(LatencyComparison {
        strata: LatencyResult::from_histogram("strata iceoryx", &strata, strata_pinned),
        raw: LatencyResult::from_histogram("raw iceoryx2", &raw, raw_pinned),
        raw_threadsafe: LatencyResult::from_histogram(
            "raw iceoryx2 threadsafe",
            &safe,
            safe_pinned,
        ),
    })
}

fn timestamp(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(..8) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// Raises its flag when dropped: the subscriber thread holds one, so a publisher
/// waiting for a message to arrive gives up when the subscriber has stopped (failed)
/// instead of spinning forever.
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Spins until the subscriber has received more than `i` messages; an error if the
/// subscriber stopped first.
fn await_receipt(received: &AtomicU64, stopped: &AtomicBool, i: u64) -> Result<()> {
    while received.load(Ordering::Acquire) <= i {
        if stopped.load(Ordering::Acquire) && received.load(Ordering::Acquire) <= i {
            return Err(bench_err(
                "publisher",
                "the subscriber stopped before receiving all messages",
            ));
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// One-way latency through Strata's [`IceoryxTransport`] (`publish_with` + busy `poll`).
/// The send time is taken right before `publish_with`, as the raw variant takes it right
/// before its loan.
pub fn strata_latency(cfg: &LatencyConfig) -> Result<LatencyResult> {
    let (hist, pinned) = strata_histogram(cfg)?;
    Ok(LatencyResult::from_histogram("strata iceoryx", &hist, pinned))
}

fn strata_histogram(cfg: &LatencyConfig) -> Result<(Histogram<u64>, bool)> {
    let payload = cfg.payload.max(8);
    let transport = Arc::new(IceoryxTransport::with_config(IceoryxConfig::default())?);
    let topic = unique_topic("latency");
    let popts = PublisherOptions {
        stream: StreamId(1),
        max_payload: payload,
        queue_depth: 16,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let sopts = SubscriberOptions { queue_depth: 16, max_payload: payload, resume_from: None };
    let total = cfg.warmup + cfg.messages;
    let warmup = cfg.warmup;
    let received = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let created = Arc::new(Barrier::new(2));
    let base = Instant::now();
    let (pub_core, sub_core) = cores(cfg.pin).unzip();

    let sub = {
        let (transport, topic, received, ready, created) =
            (transport.clone(), topic.clone(), received.clone(), ready.clone(), created.clone());
        let stop = StopFlag(stopped.clone());
        std::thread::spawn(move || -> Result<(Histogram<u64>, bool)> {
            let _stop = stop;
            let pinned = pin(sub_core);
            let mut sub = transport.open_subscriber(&topic, &sopts);
            created.wait();
            ready.wait();
            let sub = sub.as_mut().map_err(|e| bench_err("subscriber", e.to_string()))?;
            let mut hist = histogram()?;
            let mut n = 0u64;
            while n < total {
                sub.poll(&mut |d| {
                    if let Delivery::Frame { payload, .. } = d {
                        let now = timestamp(base);
                        if n >= warmup {
                            let _ = hist.record(now.saturating_sub(read_u64(payload)).max(1));
                        }
                        n += 1;
                        received.store(n, Ordering::Release);
                    }
                })?;
            }
            Ok((hist, pinned))
        })
    };
    let publisher = {
        let (transport, topic, received, ready) =
            (transport.clone(), topic.clone(), received.clone(), ready.clone());
        let stopped = stopped.clone();
        std::thread::spawn(move || -> Result<()> {
            pin(pub_core);
            // The subscriber creates the topic first, as in the raw measurement.
            created.wait();
            let p = transport.open_publisher(&topic, &popts);
            ready.wait();
            let mut p = p?;
            for i in 0..total {
                let ts = timestamp(base);
                p.publish_with(i, 1, payload, &mut |buf| {
                    buf[..8].copy_from_slice(&ts.to_le_bytes());
                    buf[8..].fill(0);
                })?;
                await_receipt(&received, &stopped, i)?;
            }
            Ok(())
        })
    };
    join(publisher, "publisher")?;
    join(sub, "subscriber")
}

/// One-way latency through iceoryx2 directly (`ipc::Service`, same header, alignment
/// and queue settings as the transport, no Strata code).
pub fn raw_latency(cfg: &LatencyConfig) -> Result<LatencyResult> {
    let (hist, pinned) = raw_histogram::<ipc::Service>(cfg)?;
    Ok(LatencyResult::from_histogram("raw iceoryx2", &hist, pinned))
}

fn raw_histogram<Raw: iceoryx2::service::Service>(
    cfg: &LatencyConfig,
) -> Result<(Histogram<u64>, bool)> {
    let payload = cfg.payload.max(8);
    let name = format!("strata-raw/{}", unique_topic("latency"));
    let total = cfg.warmup + cfg.messages;
    let warmup = cfg.warmup;
    let received = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let created = Arc::new(Barrier::new(2));
    let base = Instant::now();
    let (pub_core, sub_core) = cores(cfg.pin).unzip();

    let service = move |node: &Node<Raw>| {
        let name = ServiceName::new(&name).map_err(|e| bench_err("service name", e))?;
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .user_header::<WireHeader>()
            .payload_alignment(crate::alignment()?)
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(16)
            .history_size(0)
            .max_subscribers(2)
            .open_or_create()
            .map_err(|e| bench_err("raw service", e))
    };
    let node = || {
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Raw>()
            .map_err(|e| bench_err("raw node", e))
    };

    let sub = {
        let (received, ready, created, service) =
            (received.clone(), ready.clone(), created.clone(), service.clone());
        let stop = StopFlag(stopped.clone());
        std::thread::spawn(move || -> Result<(Histogram<u64>, bool)> {
            let _stop = stop;
            let pinned = pin(sub_core);
            let made = node().and_then(|n| {
                let s = service(&n)?;
                let sub = s
                    .subscriber_builder()
                    .buffer_size(16)
                    .create()
                    .map_err(|e| bench_err("raw subscriber", e))?;
                Ok((n, s, sub))
            });
            created.wait();
            ready.wait();
            let (_node, _service, sub) = made?;
            let mut hist = histogram()?;
            let mut n = 0u64;
            while n < total {
                let sample = sub.receive().map_err(|e| bench_err("raw receive", e))?;
                if let Some(sample) = sample {
                    let now = timestamp(base);
                    if n >= warmup {
                        let _ = hist.record(now.saturating_sub(read_u64(sample.payload())).max(1));
                    }
                    n += 1;
                    received.store(n, Ordering::Release);
                }
            }
            Ok((hist, pinned))
        })
    };
    let publisher = {
        let (received, ready, created) = (received.clone(), ready.clone(), created.clone());
        let stopped = stopped.clone();
        std::thread::spawn(move || -> Result<()> {
            pin(pub_core);
            // The subscriber creates the service first, so both see the same settings.
            created.wait();
            let made = node().and_then(|n| {
                let s = service(&n)?;
                let p = s
                    .publisher_builder()
                    .initial_max_slice_len(payload)
                    .max_loaned_samples(2)
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create()
                    .map_err(|e| bench_err("raw publisher", e))?;
                Ok((n, s, p))
            });
            ready.wait();
            let (_node, _service, p) = made?;
            for i in 0..total {
                let ts = timestamp(base);
                let mut sample =
                    p.loan_slice_uninit(payload).map_err(|e| bench_err("raw loan", e))?;
                *sample.user_header_mut() =
                    WireHeader { stream: 1, seq: i, span: 1, ..WireHeader::default() };
                let sample = sample.write_from_fn(|k| if k < 8 { ts.to_le_bytes()[k] } else { 0 });
                sample.send().map_err(|e| bench_err("raw send", e))?;
                await_receipt(&received, &stopped, i)?;
            }
            Ok(())
        })
    };
    join(publisher, "raw publisher")?;
    join(sub, "raw subscriber")
}

/// Batched small-message throughput through Strata's [`IceoryxTransport`].
pub fn batched_throughput(cfg: &ThroughputConfig) -> Result<ThroughputResult> {
    let batch = cfg.batch.max(1);
    let size = cfg.message_size.max(8);
    let frame_len = batch as usize * size;
    let frames = cfg.messages.div_ceil(u64::from(batch));
    let total = frames * u64::from(batch);
    let transport = Arc::new(IceoryxTransport::with_config(IceoryxConfig::default())?);
    let topic = unique_topic("throughput");
    let popts = PublisherOptions {
        stream: StreamId(2),
        max_payload: frame_len,
        queue_depth: 64,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let sopts = SubscriberOptions { queue_depth: 64, max_payload: frame_len, resume_from: None };
    let ready = Arc::new(Barrier::new(2));
    let failed = Arc::new(AtomicBool::new(false));
    let (pub_core, sub_core) = cores(cfg.pin).unzip();
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());

    // iceoryx2 drops (rather than blocks on) frames for a subscriber whose side of the
    // connection is not set up yet once its queue is full; a subscriber sets it up when
    // it polls. So the subscriber polls once after the publisher exists, before the
    // publisher starts.
    let connected = Arc::new(Barrier::new(2));
    let sub = {
        let (transport, topic, ready, failed, connected) =
            (transport.clone(), topic.clone(), ready.clone(), failed.clone(), connected.clone());
        std::thread::spawn(move || -> Result<(u64, Instant, bool)> {
            let pinned = pin(sub_core);
            let mut sub = transport.open_subscriber(&topic, &sopts);
            ready.wait();
            let first = match &mut sub {
                Ok(s) => s.poll(&mut |_| {}).map(|_| ()),
                Err(_) => Ok(()),
            };
            connected.wait();
            let sub = sub.as_mut().map_err(|e| bench_err("subscriber", e.to_string()))?;
            first?;
            let mut expected = 0u64;
            let mut bad = None;
            while expected < total && !failed.load(Ordering::Relaxed) {
                sub.poll(&mut |d| match d {
                    Delivery::Frame { header, payload } => {
                        for (k, msg) in payload.chunks_exact(size).enumerate() {
                            if read_u64(msg) != header.seq + k as u64 {
                                bad.get_or_insert(header.seq + k as u64);
                            }
                        }
                        expected = header.next_seq();
                    }
                    Delivery::Gap { from, .. } => {
                        bad.get_or_insert(from);
                    }
                })?;
                if let Some(seq) = bad {
                    return Err(bench_err("throughput", format!("message {seq} lost or damaged")));
                }
            }
            Ok((expected, Instant::now(), pinned))
        })
    };
    let publisher = {
        let (transport, topic, ready, failed, start) =
            (transport.clone(), topic.clone(), ready.clone(), failed.clone(), start.clone());
        std::thread::spawn(move || -> Result<()> {
            pin(pub_core);
            let p = transport.open_publisher(&topic, &popts);
            ready.wait();
            connected.wait();
            let run = || -> Result<()> {
                let mut p = p?;
                let _ = start.set(Instant::now());
                for f in 0..frames {
                    let first = f * u64::from(batch);
                    p.publish_with(first, batch, frame_len, &mut |buf| {
                        for (k, msg) in buf.chunks_exact_mut(size).enumerate() {
                            msg[..8].copy_from_slice(&(first + k as u64).to_le_bytes());
                            msg[8..].fill(0x5a);
                        }
                    })?;
                }
                Ok(())
            };
            let r = run();
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            r
        })
    };
    join(publisher, "publisher")?;
    let (received, end, pinned) = join(sub, "subscriber")?;
    let begin = start.get().copied().unwrap_or(end);
    Ok(ThroughputResult {
        messages: received,
        batch,
        message_size: size,
        elapsed: end.saturating_duration_since(begin),
        pinned,
    })
}

/// The distribution bench's table: latency of both variants with their ratio, and the
/// batched throughput.
pub fn format_table(lat: &LatencyComparison, tput: &ThroughputResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}  pinned",
        "one-way latency", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "mean ns", "count"
    );
    for r in [&lat.strata, &lat.raw, &lat.raw_threadsafe] {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>10.1} {:>8}  {}",
            r.label, r.p50_ns, r.p99_ns, r.p999_ns, r.max_ns, r.mean_ns, r.count, r.pinned
        );
    }
    let _ = writeln!(
        out,
        "mean ratio strata/raw: {:.3} (ipc), {:.3} (ipc_threadsafe)",
        lat.mean_ratio(),
        lat.mean_ratio_threadsafe()
    );
    let _ = writeln!(
        out,
        "batched throughput: {:.2} M msg/s ({} messages of {} B, {} per frame, {:.3} s, pinned {})",
        tput.msgs_per_sec() / 1e6,
        tput.messages,
        tput.message_size,
        tput.batch,
        tput.elapsed.as_secs_f64(),
        tput.pinned
    );
    out
}
