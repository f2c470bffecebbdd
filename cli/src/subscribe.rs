//! `strata subscribe`: tails a topic over TCP, iceoryx2 shared memory or through the
//! WebSocket gateway and prints each frame as a JSON line, or live statistics every second (`--stats`).
//!
//! Latency is measured per message from its own timestamp (`ts_nanos` of a trade,
//! heartbeat, account update or L2 message) to its arrival, so it includes everything
//! in between — for a commit topic fed by `strata serve`, the commit and its fsync too.
//! Publisher and subscriber must share a clock (same machine, or synchronised clocks).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::Value;
use strata_core::{
    BatchIter, Delivery, FrameHeader, SubscriberOptions, TopicSubscriber, Transport, ValueKind,
};
use strata_gateway_ws::{GatewayFrame, PayloadFormat};
use strata_stream::Message;
use strata_stream::messages::{FRAME_MAGIC, MessageFrame};
use strata_transport_iceoryx::{IceoryxConfig, IceoryxTransport};
use strata_transport_tcp::TcpTransport;
use tokio_tungstenite::tungstenite::Message as Ws;

/// The media `strata subscribe` can read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Medium {
    /// A TCP transport server (`strata serve`'s `[tcp]`, or any TcpTransport::server).
    Tcp,
    /// The WebSocket gateway (`strata serve`'s `[gateway]`).
    Ws,
    /// iceoryx2 shared memory on this host (`strata serve`'s `[iceoryx]`); no `--addr`,
    /// `--prefix` instead.
    Iceoryx,
}

/// Options of `strata subscribe`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubscribeArgs {
    /// The medium.
    #[arg(long, value_enum)]
    pub transport: Medium,
    /// The server: `host:port` (ws also accepts `ws://host:port`); tcp and ws only.
    /// A comma-separated list of a cluster's nodes (their gateways for ws, their `[tcp]`
    /// addresses for tcp) follows the cluster: when the node goes away the subscription
    /// resumes on the next with no gap and no duplicate, told of anything the new
    /// primary rewrote.
    #[arg(long, default_value = "")]
    pub addr: String,
    /// With several ws addresses: give up when no node served a frame for this long
    /// (tcp keeps trying the nodes in turn until `--duration`).
    #[arg(long, default_value_t = 30.0)]
    pub follow_secs: f64,
    /// iceoryx2 service-name prefix (`[iceoryx] prefix` of `strata serve`).
    #[arg(long, default_value = "strata")]
    pub prefix: String,
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// Resume at this sequence (ws and tcp: from the server's ring and the store's log;
    /// over tcp more than 64 MiB behind the ring, the rest is reported as a gap).
    #[arg(long)]
    pub from: Option<u64>,
    /// With `--from` over ws or tcp: the epoch of the last frame you hold (a run prints
    /// it as `last epoch E`), so the node tells you about a range the store rewrote
    /// since (`{"rewritten":..}`, then those sequences again) instead of skipping it.
    #[arg(long, requires = "from")]
    pub epoch: Option<u64>,
    /// How TCP and iceoryx payloads are decoded: messages, commits or commits-raw (the
    /// gateway decodes for ws).
    #[arg(long, default_value = "commits")]
    pub payload: String,
    /// Print statistics every second instead of the frames.
    #[arg(long)]
    pub stats: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Live counters, printed every second with `--stats`.
struct Stats {
    enabled: bool,
    start: Instant,
    last_report: Instant,
    frames: u64,
    messages: u64,
    window_messages: u64,
    gaps: u64,
    invalid: u64,
    last_seq: u64,
    /// Epoch of the newest frame received, when the frames carry one.
    last_epoch: Option<u64>,
    latency_us: Histogram<u64>,
}

impl Stats {
    fn new(enabled: bool) -> anyhow::Result<Self> {
        let now = Instant::now();
        Ok(Self {
            enabled,
            start: now,
            last_report: now,
            frames: 0,
            messages: 0,
            window_messages: 0,
            gaps: 0,
            invalid: 0,
            last_seq: 0,
            last_epoch: None,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .context("latency histogram")?,
        })
    }

    /// Where to resume: `last seq N` (and `last epoch E` when known), on stderr.
    fn print_last(&self) {
        eprintln!("last seq {}", self.last_seq);
        if let Some(epoch) = self.last_epoch {
            eprintln!("last epoch {epoch}");
        }
    }

    /// A rewind (see `TopicPublisher`): `header` starts at or below the last sequence
    /// received, from a newer epoch — the store truncated what followed `seq - 1` and
    /// that epoch wrote there. Moves back and returns the notice to print, as the
    /// gateway words it.
    fn rewind(&mut self, header: &FrameHeader) -> Option<String> {
        let newer = self.last_epoch.is_some_and(|e| e != 0 && header.epoch > e);
        if !newer || header.seq == 0 || header.seq > self.last_seq {
            return None;
        }
        let line = format!(
            "{{\"rewritten\":{{\"from\":{},\"to\":{},\"epoch\":{}}}}}",
            header.seq,
            self.last_seq + 1,
            header.epoch
        );
        self.last_seq = header.seq - 1;
        Some(line)
    }

    /// A gap starting at or below the last sequence received (a TCP node whose history
    /// rewrote that range, see `TcpTransport::set_history_check`, but which no longer
    /// holds it): what was received from `from` on is withdrawn. The notice's epoch is
    /// 0 (unknown: no frame of the new history arrived).
    fn rewind_gap(&mut self, from: u64) -> Option<String> {
        if from == 0 || from > self.last_seq {
            return None;
        }
        let line = format!(
            "{{\"rewritten\":{{\"from\":{from},\"to\":{},\"epoch\":0}}}}",
            self.last_seq + 1
        );
        self.last_seq = from - 1;
        Some(line)
    }

    fn frame(&mut self, next_seq: u64, timestamps: &[u64]) {
        self.frames += 1;
        self.last_seq = self.last_seq.max(next_seq.saturating_sub(1));
        let now = now_nanos();
        for ts in timestamps {
            self.messages += 1;
            self.window_messages += 1;
            let us = now.saturating_sub(*ts) / 1000;
            let _ = self.latency_us.record(us.clamp(1, 60_000_000));
        }
    }

    fn tick(&mut self) {
        if !self.enabled || self.last_report.elapsed() < Duration::from_secs(1) {
            return;
        }
        let secs = self.last_report.elapsed().as_secs_f64();
        let h = &self.latency_us;
        println!(
            "t={:>5.1}s rate={:>9.0} msg/s frames={} msgs={} gaps={} invalid={} last_seq={} latency µs p50={} p99={} p99.9={} max={}",
            self.start.elapsed().as_secs_f64(),
            self.window_messages as f64 / secs,
            self.frames,
            self.messages,
            self.gaps,
            self.invalid,
            self.last_seq,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        );
        let _ = std::io::stdout().flush();
        self.latency_us.reset();
        self.window_messages = 0;
        self.last_report = Instant::now();
    }
}

fn message_ts(m: &Message) -> u64 {
    match m {
        Message::Order(o) => o.ts_nanos,
        Message::Trade(t) => t.ts_nanos,
        Message::Account(a) => a.ts_nanos,
        Message::L2(l) => l.ts_nanos,
        Message::Heartbeat(h) => h.ts_nanos,
    }
}

/// The timestamps of the messages in a TCP payload (empty when it holds none).
fn payload_timestamps(format: PayloadFormat, payload: &[u8]) -> Vec<u64> {
    match format {
        PayloadFormat::Messages => {
            if payload.starts_with(&FRAME_MAGIC) {
                MessageFrame::parse(payload)
                    .and_then(|f| f.decode_all())
                    .map(|v| v.iter().map(message_ts).collect())
                    .unwrap_or_default()
            } else {
                Message::decode(payload).map(|m| vec![message_ts(&m)]).unwrap_or_default()
            }
        }
        _ => BatchIter::new(payload)
            .filter_map(|op| op.ok())
            .filter(|op| op.kind == ValueKind::Put)
            .filter_map(|op| Message::decode(op.value).ok())
            .map(|m| message_ts(&m))
            .collect(),
    }
}

/// The timestamps of the messages in a gateway JSON frame.
fn json_timestamps(v: &Value) -> Vec<u64> {
    let of = |m: &Value| m.get("ts_nanos").and_then(Value::as_u64);
    if let Some(msgs) = v.get("messages").and_then(Value::as_array) {
        return msgs.iter().filter_map(of).collect();
    }
    if let Some(ops) = v.get("ops").and_then(Value::as_array) {
        return ops.iter().filter_map(|op| op.get("message")).filter_map(of).collect();
    }
    Vec::new()
}

/// Runs `strata subscribe`.
pub fn run(args: &SubscribeArgs) -> anyhow::Result<()> {
    if args.topic.is_empty()
        || !args.topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        bail!("topic {:?}: use letters, digits and . _ - /", args.topic);
    }
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    match args.transport {
        Medium::Tcp => {
            if args.addr.is_empty() {
                bail!("--transport tcp needs --addr HOST:PORT");
            }
            let addrs = ws_addrs(&args.addr);
            let transport = TcpTransport::cluster_client(addrs.iter().map(String::as_str))
                .with_context(|| format!("--addr {:?}", args.addr))?;
            let options = subscriber_options(args);
            let sub = match args.epoch {
                Some(epoch) => transport.tcp_subscriber_after(&args.topic, &options, epoch),
                None => transport.tcp_subscriber(&args.topic, &options),
            }
            .with_context(|| format!("cannot subscribe to {:?} at {}", args.topic, args.addr))?;
            run_subscriber(args, deadline, Box::new(sub), args.epoch)
        }
        Medium::Ws => run_ws(args, deadline),
        Medium::Iceoryx => {
            if args.from.is_some() {
                bail!(
                    "--from: shared memory keeps no history to resume from; use --transport \
                     tcp or ws (served from the store's log) to resume"
                );
            }
            let transport =
                IceoryxTransport::with_config(IceoryxConfig::default().with_prefix(&args.prefix))
                    .context("cannot open the iceoryx2 transport")?;
            let source = format!("iceoryx prefix {}", args.prefix);
            let sub = transport
                .subscriber(&args.topic, &subscriber_options(args))
                .with_context(|| format!("cannot subscribe to {:?} at {source}", args.topic))?;
            run_subscriber(args, deadline, sub, None)
        }
    }
}

fn done(args: &SubscribeArgs, stats: &Stats, deadline: Option<Instant>) -> bool {
    args.count.is_some_and(|n| stats.frames >= n) || deadline.is_some_and(|d| Instant::now() >= d)
}

fn subscriber_options(args: &SubscribeArgs) -> SubscriberOptions {
    SubscriberOptions { queue_depth: 4096, max_payload: 16 << 20, resume_from: args.from }
}

/// Tails a topic through a core transport's subscriber (TCP or iceoryx), rendering
/// frames locally; `epoch` is that of the frame before `--from`, when given.
fn run_subscriber(
    args: &SubscribeArgs,
    deadline: Option<Instant>,
    mut sub: Box<dyn TopicSubscriber>,
    epoch: Option<u64>,
) -> anyhow::Result<()> {
    let format = PayloadFormat::from_name(&args.payload).with_context(|| {
        format!("--payload {:?}: expected messages, commits or commits-raw", args.payload)
    })?;
    let mut stats = Stats::new(args.stats)?;
    if let Some(from) = args.from {
        // A rewind below `--from` (the node rewrote what the caller holds) is told too.
        stats.last_seq = from.saturating_sub(1);
        stats.last_epoch = epoch;
    }
    let mut out = std::io::stdout().lock();
    let mut failed: Option<std::io::Error> = None;
    while !done(args, &stats, deadline) {
        let limit = args.count.unwrap_or(u64::MAX);
        sub.wait(Duration::from_millis(100), &mut |d| match d {
            // One wait may deliver many frames: stop exactly at --count.
            _ if stats.frames >= limit => {}
            Delivery::Frame { header, payload } => {
                if let Some(line) = stats.rewind(&header)
                    && !args.stats
                    && let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
                {
                    failed.get_or_insert(e);
                }
                stats.last_epoch = Some(header.epoch);
                if args.stats {
                    stats.frame(header.next_seq(), &payload_timestamps(format, payload));
                    return;
                }
                let f = GatewayFrame::new(header, bytes::Bytes::copy_from_slice(payload), format);
                let line = match &f.rendered {
                    Ok(json) => json.clone(),
                    Err(reason) => {
                        stats.invalid += 1;
                        f.invalid_notice(reason)
                    }
                };
                stats.frame(header.next_seq(), &[]);
                if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                    failed.get_or_insert(e);
                }
            }
            Delivery::Gap { stream, from, to } => {
                stats.gaps += 1;
                // A gap from at or below what was printed: the node moved the resume back
                // to a range its history rewrote, and no longer holds those frames.
                if let Some(line) = stats.rewind_gap(from)
                    && !args.stats
                    && let Err(e) = writeln!(out, "{line}")
                {
                    failed.get_or_insert(e);
                }
                if !args.stats {
                    let line = format!(
                        "{{\"gap\":{{\"stream\":{},\"from\":{from},\"to\":{to}}}}}",
                        stream.0
                    );
                    if let Err(e) = writeln!(out, "{line}") {
                        failed.get_or_insert(e);
                    }
                }
            }
        })?;
        if let Some(e) = failed.take() {
            // A closed pipe (`| head`) ends the subscription quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("write to stdout");
        }
        stats.tick();
    }
    stats.print_last();
    Ok(())
}

/// The gateway addresses of `--addr` (comma-separated for ws: a cluster's nodes).
fn ws_addrs(addr: &str) -> Vec<String> {
    addr.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
}

fn ws_url(addr: &str, topic: &str, from: Option<u64>, epoch: Option<u64>) -> String {
    let base = addr.trim_end_matches('/');
    let base = base.strip_suffix("/ws").unwrap_or(base);
    let base = if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        format!("ws://{base}")
    };
    let mut url = format!("{base}/ws?topic={topic}");
    if let Some(from) = from {
        url.push_str(&format!("&from={from}"));
        if let Some(epoch) = epoch {
            url.push_str(&format!("&epoch={epoch}"));
        }
    }
    url
}

/// Where a ws subscription stands: the next sequence it expects, so that a frame it
/// already printed (a resume's overlap on another node) is skipped and a hole nobody
/// announced is reported.
#[derive(Debug, Default)]
struct Position {
    next: Option<u64>,
    duplicates: u64,
    unannounced_holes: u64,
}

/// What one line from the gateway means for the subscription.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Print it.
    Print,
    /// A frame already printed (sequences at or below the position): skip it.
    Duplicate,
}

impl Position {
    /// Moves the position by one gateway message; `stats` counts frames and gaps.
    fn take(&mut self, v: &Value, stats: &mut Stats, timestamps: bool) -> Line {
        let field = |outer: &str, inner: &str| {
            v.get(outer).and_then(|o| o.get(inner)).and_then(Value::as_u64)
        };
        if v.get("gap").is_some() {
            stats.gaps += 1;
            if let Some(to) = field("gap", "to") {
                self.next = Some(self.next.map_or(to, |n| n.max(to)));
            }
            return Line::Print;
        }
        if v.get("rewritten").is_some() {
            // The node holds other batches than those printed from `from` on: they
            // follow again, and are printed again.
            if let Some(from) = field("rewritten", "from") {
                self.next = Some(from);
                stats.last_seq = from.saturating_sub(1);
                if let Some(epoch) = field("rewritten", "epoch") {
                    stats.last_epoch = Some(epoch);
                }
            }
            return Line::Print;
        }
        if v.get("invalid").is_some() {
            stats.invalid += 1;
            if let (Some(seq), Some(span)) = (field("invalid", "seq"), field("invalid", "span")) {
                self.next = Some(self.next.map_or(seq + span, |n| n.max(seq + span)));
            }
            return Line::Print;
        }
        let (Some(seq), Some(span)) =
            (v.get("seq").and_then(Value::as_u64), v.get("span").and_then(Value::as_u64))
        else {
            return Line::Print;
        };
        let end = seq + span;
        match self.next {
            Some(next) if end <= next => {
                self.duplicates += 1;
                return Line::Duplicate;
            }
            Some(next) if seq > next => {
                self.unannounced_holes += 1;
                stats.gaps += 1;
                eprintln!("subscribe: sequences {next}..{seq} were skipped without a gap notice");
            }
            _ => {}
        }
        self.next = Some(end);
        if let Some(epoch) = v.get("epoch").and_then(Value::as_u64) {
            stats.last_epoch = Some(epoch);
        }
        stats.last_seq = end - 1;
        stats.frame(end, &if timestamps { json_timestamps(v) } else { Vec::new() });
        Line::Print
    }
}

/// How one connection to a gateway ended.
enum Ended {
    /// `--count` or `--duration` reached, or stdout closed.
    Done,
    /// The gateway closed or failed; the reason.
    Lost(anyhow::Error),
}

/// Tails the topic through the WebSocket gateway. With several addresses (a cluster's
/// nodes) it follows the cluster: when its node goes away (killed, stepped down,
/// unreachable) it resumes on the next one from the sequence after the last frame it
/// printed, with that frame's epoch, so the node tells it of anything rewritten since
/// (`{"rewritten":..}`); overlap is skipped, holes are announced.
fn run_ws(args: &SubscribeArgs, deadline: Option<Instant>) -> anyhow::Result<()> {
    let addrs = ws_addrs(&args.addr);
    if addrs.is_empty() {
        bail!("--transport ws needs --addr HOST:PORT[,HOST:PORT...]");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let follow_limit = Duration::from_secs_f64(args.follow_secs.max(0.0));
    runtime.block_on(async {
        let mut stats = Stats::new(args.stats)?;
        let mut position = Position { next: args.from, ..Position::default() };
        let mut out = std::io::stdout().lock();
        let (mut from, mut epoch) = (args.from, args.epoch);
        let mut attempt = 0usize;
        let mut progress_at = Instant::now();
        let result = loop {
            let addr = &addrs[attempt % addrs.len()];
            let url = ws_url(addr, &args.topic, from, epoch);
            let frames_before = stats.frames;
            let ended = session(&url, args, deadline, &mut stats, &mut position, &mut out).await;
            if stats.frames > frames_before {
                progress_at = Instant::now();
            }
            match ended {
                Ended::Done => break Ok(()),
                Ended::Lost(e) if addrs.len() == 1 => break Err(e),
                Ended::Lost(e) => {
                    if done(args, &stats, deadline) {
                        break Ok(());
                    }
                    if progress_at.elapsed() >= follow_limit {
                        break Err(e.context(format!(
                            "no node of {addrs:?} served topic {:?} for {:.0} s \
                             (--follow-secs)",
                            args.topic,
                            follow_limit.as_secs_f64()
                        )));
                    }
                    attempt += 1;
                    let next = &addrs[attempt % addrs.len()];
                    if let Some(n) = position.next {
                        from = Some(n);
                        epoch = stats.last_epoch.or(epoch);
                    }
                    eprintln!(
                        "subscribe: {addr}: {e:#}; resuming on {next} from {}",
                        from.map_or_else(|| "the live edge".to_owned(), |f| f.to_string())
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        if position.duplicates > 0 {
            eprintln!("skipped {} frames already printed (resume overlap)", position.duplicates);
        }
        stats.print_last();
        result
    })
}

/// One connection: prints what the gateway sends until `--count`/`--duration` or until
/// the connection ends.
async fn session(
    url: &str,
    args: &SubscribeArgs,
    deadline: Option<Instant>,
    stats: &mut Stats,
    position: &mut Position,
    out: &mut std::io::StdoutLock<'_>,
) -> Ended {
    let mut ws = match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            return Ended::Lost(anyhow::Error::new(e).context(format!("cannot connect to {url}")));
        }
    };
    while !done(args, stats, deadline) {
        let msg = match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Err(_) => {
                stats.tick();
                continue;
            }
            Ok(None) => return Ended::Lost(anyhow::anyhow!("the gateway closed the connection")),
            Ok(Some(Err(e))) => {
                return Ended::Lost(anyhow::Error::new(e).context("receive from the gateway"));
            }
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Ws::Text(t) => t,
            Ws::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return Ended::Lost(anyhow::anyhow!(
                    "the gateway closed the connection: {code} {reason}"
                ));
            }
            Ws::Binary(_) | Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_) => continue,
        };
        let v: Value = match serde_json::from_str(text.as_str()) {
            Ok(v) => v,
            Err(_) => {
                return Ended::Lost(anyhow::anyhow!(
                    "the gateway sent something that is not JSON: {text}"
                ));
            }
        };
        let line = position.take(&v, stats, args.stats);
        if !args.stats && line == Line::Print {
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ended::Done,
                Err(e) => return Ended::Lost(anyhow::Error::new(e).context("write to stdout")),
            }
        }
        stats.tick();
    }
    Ended::Done
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(seq: u64, span: u64, epoch: u64) -> Value {
        serde_json::json!({"stream": 1, "seq": seq, "span": span, "epoch": epoch, "ops": []})
    }

    #[test]
    fn a_gap_below_what_was_received_withdraws_it() {
        let mut stats = Stats::new(false).unwrap();
        stats.frame(11, &[]);
        assert_eq!(stats.rewind_gap(11), None, "a gap after the last sequence withdraws nothing");
        assert_eq!(
            stats.rewind_gap(7).as_deref(),
            Some(r#"{"rewritten":{"from":7,"to":11,"epoch":0}}"#)
        );
        assert_eq!(stats.last_seq, 6);
    }

    #[test]
    fn a_rewinding_frame_over_tcp_is_announced_and_moves_back() {
        let h = |seq, epoch| FrameHeader { stream: strata_core::StreamId(1), seq, span: 1, epoch };
        let mut stats = Stats::new(false).unwrap();
        for seq in 1..=10 {
            assert_eq!(stats.rewind(&h(seq, 3)), None);
            stats.last_epoch = Some(3);
            stats.frame(seq + 1, &[]);
        }
        // Same epoch, or an older one: never a rewind.
        assert_eq!(stats.rewind(&h(7, 3)), None);
        assert_eq!(stats.rewind(&h(7, 2)), None);
        let line = stats.rewind(&h(7, 4)).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, serde_json::json!({"rewritten": {"from": 7, "to": 11, "epoch": 4}}));
        assert_eq!(stats.last_seq, 6);
        stats.last_epoch = Some(4);
        stats.frame(8, &[]);
        assert_eq!(stats.last_seq, 7);
        // Past the last sequence in a newer epoch: a new epoch, not a rewind.
        assert_eq!(stats.rewind(&h(8, 5)), None);
    }

    #[test]
    fn position_skips_overlap_reports_holes_and_rewinds_on_rewritten() {
        let mut stats = Stats::new(false).unwrap();
        let mut p = Position { next: Some(1), ..Position::default() };
        assert_eq!(p.take(&frame(1, 3, 1), &mut stats, false), Line::Print);
        assert_eq!(p.take(&frame(4, 1, 1), &mut stats, false), Line::Print);
        assert_eq!((stats.last_seq, p.next), (4, Some(5)));
        // A resume elsewhere that sends 3..=4 again: skipped, not printed twice.
        assert_eq!(p.take(&frame(3, 2, 1), &mut stats, false), Line::Duplicate);
        assert_eq!(p.duplicates, 1);
        // A jump nobody announced is counted.
        assert_eq!(p.take(&frame(7, 1, 1), &mut stats, false), Line::Print);
        assert_eq!((p.unannounced_holes, stats.gaps), (1, 1));
        // An announced gap moves the position without a hole.
        let gap = serde_json::json!({"gap": {"stream": 1, "from": 8, "to": 10}});
        assert_eq!(p.take(&gap, &mut stats, false), Line::Print);
        assert_eq!(p.take(&frame(10, 1, 1), &mut stats, false), Line::Print);
        assert_eq!(p.unannounced_holes, 1);
        // The new primary rewrote 9.. in epoch 2: those follow again and are printed.
        let rw = serde_json::json!({"rewritten": {"from": 9, "to": 11, "epoch": 2}});
        assert_eq!(p.take(&rw, &mut stats, false), Line::Print);
        assert_eq!((stats.last_seq, stats.last_epoch, p.next), (8, Some(2), Some(9)));
        assert_eq!(p.take(&frame(9, 2, 2), &mut stats, false), Line::Print);
        assert_eq!((stats.last_seq, p.next, p.unannounced_holes), (10, Some(11), 1));
    }

    #[test]
    fn ws_urls() {
        assert_eq!(
            ws_url("127.0.0.1:80", "commits", None, None),
            "ws://127.0.0.1:80/ws?topic=commits"
        );
        assert_eq!(
            ws_url("ws://h:1/ws/", "commits", Some(5), None),
            "ws://h:1/ws?topic=commits&from=5"
        );
        assert_eq!(
            ws_url("h:1", "commits", Some(5), Some(3)),
            "ws://h:1/ws?topic=commits&from=5&epoch=3"
        );
        assert_eq!(ws_addrs(" a:1, b:2,,"), vec!["a:1".to_owned(), "b:2".to_owned()]);
    }

    #[test]
    fn timestamps_from_json_frames() {
        let v: Value = serde_json::from_str(
            r#"{"seq":1,"span":2,"ops":[{"message":{"ts_nanos":5}},{"op":"delete"}]}"#,
        )
        .unwrap();
        assert_eq!(json_timestamps(&v), vec![5]);
        let v: Value =
            serde_json::from_str(r#"{"seq":1,"span":1,"messages":[{"ts_nanos":7}]}"#).unwrap();
        assert_eq!(json_timestamps(&v), vec![7]);
    }
}
