//! The [`Transport`](strata_core::Transport) conformance suite, through a
//! [`TransportFactory`] that hands out a publisher-side and a subscriber-side transport
//! (the same object twice for in-process media, a server and a client for TCP).
//!
//! Every check uses fresh topic names (unique per process and run), so media whose
//! topics are global (shared memory) can run it next to other tests.
//!
//! | check | clause |
//! |---|---|
//! | `transport::frames_arrive_in_publish_order` | frames reach the subscriber in publish order with their header (stream, seq, span) and payload intact, each exactly once |
//! | `transport::seq_jump_is_reported_as_gap` | a publish that skips sequence numbers shows up as a `Gap` naming exactly the skipped range, before the frame |
//! | `transport::no_loss_under_block_with_slow_subscriber` | under `Block`, a subscriber that reads slowly loses nothing (small queues, many frames, publisher on its own thread) |
//! | `transport::gaps_reported_exactly_under_drop_oldest` | under `DropOldest`, a subscriber that does not read loses frames and every lost range is reported as a `Gap` exactly (frames + gaps tile the sequence) |
//! | `transport::large_messages_up_to_max_payload` | payloads up to `max_payload` arrive intact; `max_payload + 1` is refused with `FrameTooLarge`, sends nothing and consumes no sequence |
//! | `transport::many_subscribers_each_see_everything` | several subscribers on one topic each receive every frame in order |
//! | `transport::late_subscriber_sees_only_later_frames` | with history 0 a subscriber sees only frames published after it was created, starting without a gap |
//! | `transport::late_subscriber_gets_history` | with history `h` a late subscriber first receives the last `h` frames, then the live ones |
//! | `transport::publisher_restart_continuing_seq_has_no_gap` | a new publisher with the same stream id continuing the sequence is seen as one gapless stream |
//! | `transport::publisher_restart_with_seq_jump_reports_gap` | a new publisher that resumes past the old one's next sequence produces a `Gap` for the hole |
//! | `transport::publish_with_writes_in_place` | `publish_with` lends a buffer of exactly `len` bytes; what `fill` writes is what subscribers get |
//! | `transport::seq_going_backwards_is_refused` | a `seq` below the previous frame's `next_seq` is refused with `InvalidArgument` and sends nothing |
//! | `transport::topics_are_isolated` | endpoints of different topics never see each other's frames |
//! | `transport::frames_carry_the_publishers_epoch` | every frame carries the epoch last set with `set_epoch` (0 before) |
//! | `transport::newer_epoch_may_rewind` | a frame of a newer epoch may start below the previous frame's end (a rewind) and reaches subscribers after the frames it withdraws; going back within an epoch stays refused; a late subscriber with history never gets a withdrawn frame after the rewinding one |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_core::{
    Delivery, Error, FrameHeader, PublisherOptions, SlowSubscriberPolicy, StreamId,
    SubscriberOptions, TopicPublisher, TopicSubscriber, Transport,
};

use super::report::Report;
use super::runner::{Check, CheckResult, Ctx, bytes_from, ensure, run_checks};

/// The two sides of a medium the suite talks through.
pub struct TransportPair {
    /// Where publishers are created.
    pub publisher_side: Box<dyn Transport>,
    /// Where subscribers are created (may be the same medium seen from another endpoint).
    pub subscriber_side: Box<dyn Transport>,
}

/// Makes fresh transports for the suite.
pub trait TransportFactory: Send + Sync {
    /// The transport's name as reports show it (`"tcp"`, `"iceoryx"`).
    fn name(&self) -> String;

    /// A new pair of transports; each check opens its own.
    fn open(&self) -> strata_core::Result<TransportPair>;
}

/// What the transport under test supports, and sizes the checks use.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportCaps {
    /// `SlowSubscriberPolicy::Block` is implemented.
    pub block: bool,
    /// `SlowSubscriberPolicy::DropOldest` is implemented.
    pub drop_oldest: bool,
    /// `PublisherOptions::history` is honoured for late subscribers.
    pub history: bool,
    /// Largest payload the large-message check publishes (its `max_payload`).
    pub max_payload: usize,
    /// Frames published without reading in the drop-oldest check; must exceed what the
    /// medium can buffer (network media buffer megabytes in the kernel).
    pub flood_frames: u64,
    /// Payload size of the flood frames.
    pub flood_payload: usize,
    /// Subscribers in the many-subscribers check.
    pub subscribers: usize,
    /// How long a check waits without any delivery before it fails.
    pub idle_timeout: Duration,
}

impl Default for TransportCaps {
    fn default() -> Self {
        Self {
            block: true,
            drop_oldest: true,
            history: true,
            max_payload: 1 << 20,
            flood_frames: 4096,
            flood_payload: 16 * 1024,
            subscribers: 8,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

impl TransportCaps {
    /// Sets [`TransportCaps::block`].
    #[must_use]
    pub fn with_block(mut self, on: bool) -> Self {
        self.block = on;
        self
    }
    /// Sets [`TransportCaps::drop_oldest`].
    #[must_use]
    pub fn with_drop_oldest(mut self, on: bool) -> Self {
        self.drop_oldest = on;
        self
    }
    /// Sets [`TransportCaps::history`].
    #[must_use]
    pub fn with_history(mut self, on: bool) -> Self {
        self.history = on;
        self
    }
    /// Sets [`TransportCaps::max_payload`].
    #[must_use]
    pub fn with_max_payload(mut self, n: usize) -> Self {
        self.max_payload = n;
        self
    }
    /// Sets the drop-oldest flood size.
    #[must_use]
    pub fn with_flood(mut self, frames: u64, payload: usize) -> Self {
        self.flood_frames = frames;
        self.flood_payload = payload;
        self
    }
    /// Sets [`TransportCaps::subscribers`].
    #[must_use]
    pub fn with_subscribers(mut self, n: usize) -> Self {
        self.subscribers = n;
        self
    }
}

struct Subject {
    factory: Arc<dyn TransportFactory>,
    caps: TransportCaps,
}

/// Runs the transport suite against transports made by `factory`.
pub fn run(factory: Arc<dyn TransportFactory>, caps: TransportCaps) -> Report {
    let name = format!("transport={}", factory.name());
    let (block, drop, history) = (caps.block, caps.drop_oldest, caps.history);
    let subject = Subject { factory, caps };
    let checks = vec![
        Check::new("transport::frames_arrive_in_publish_order", ordering),
        Check::new("transport::seq_jump_is_reported_as_gap", seq_jump),
        Check::when(
            block,
            "block",
            "transport::no_loss_under_block_with_slow_subscriber",
            block_slow,
        ),
        Check::when(
            drop,
            "drop_oldest",
            "transport::gaps_reported_exactly_under_drop_oldest",
            drop_oldest,
        ),
        Check::new("transport::large_messages_up_to_max_payload", large),
        Check::new("transport::many_subscribers_each_see_everything", many),
        Check::new("transport::late_subscriber_sees_only_later_frames", late_no_history),
        Check::when(history, "history", "transport::late_subscriber_gets_history", late_history),
        Check::new("transport::publisher_restart_continuing_seq_has_no_gap", restart_continue),
        Check::new("transport::publisher_restart_with_seq_jump_reports_gap", restart_jump),
        Check::new("transport::publish_with_writes_in_place", publish_with),
        Check::new("transport::seq_going_backwards_is_refused", backwards),
        Check::new("transport::topics_are_isolated", isolated),
        Check::new("transport::frames_carry_the_publishers_epoch", epochs),
        Check::new("transport::newer_epoch_may_rewind", rewind),
    ];
    run_checks("transport", name, &subject, checks)
}

static TOPIC_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A topic name unique to this process and call.
fn topic(check: &str) -> String {
    let n = TOPIC_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("conf-{}-{nanos:x}-{n}-{check}", std::process::id())
}

/// The payload the checks publish for `seq`: derived from it, so any mix-up shows.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    bytes_from(seq ^ 0xA5A5_0000, len)
}

/// An owned delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Got {
    Frame(FrameHeader, Vec<u8>),
    Gap(StreamId, u64, u64),
}

impl Got {
    fn short(&self) -> String {
        match self {
            Got::Frame(h, p) => format!("frame(seq {}, span {}, {} bytes)", h.seq, h.span, p.len()),
            Got::Gap(_, f, t) => format!("gap({f}..{t})"),
        }
    }
}

fn pub_opts(stream: u64, caps: &TransportCaps) -> PublisherOptions {
    PublisherOptions {
        stream: StreamId(stream),
        max_payload: 4096,
        queue_depth: 1024,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: caps.subscribers.max(4) + 2,
    }
}

fn sub_opts() -> SubscriberOptions {
    SubscriberOptions { queue_depth: 1024, max_payload: 4096, resume_from: None }
}

/// Receives until `done` says so; fails after `idle` without any delivery.
fn collect(
    sub: &mut dyn TopicSubscriber,
    idle: Duration,
    done: impl Fn(&[Got]) -> bool,
) -> Result<Vec<Got>, String> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while !done(&got) {
        let n = sub
            .wait(Duration::from_millis(50), &mut |d| got.push(own(d)))
            .ctx("subscriber wait")?;
        if n > 0 {
            last = Instant::now();
        } else if last.elapsed() > idle {
            return Err(format!(
                "timed out after {idle:?} without a delivery; got {} deliveries, last {}",
                got.len(),
                got.last().map_or("none".to_owned(), Got::short)
            ));
        }
    }
    Ok(got)
}

fn own(d: Delivery<'_>) -> Got {
    match d {
        Delivery::Frame { header, payload } => Got::Frame(header, payload.to_vec()),
        Delivery::Gap { stream, from, to } => Got::Gap(stream, from, to),
    }
}

fn frames(got: &[Got]) -> usize {
    got.iter().filter(|g| matches!(g, Got::Frame(..))).count()
}

fn saw_seq(got: &[Got], seq: u64) -> bool {
    got.iter().any(|g| matches!(g, Got::Frame(h, _) if h.seq == seq))
}

/// Checks nothing more arrives for a short while (a frame delivered twice, a stray).
fn expect_quiet(sub: &mut dyn TopicSubscriber, what: &str) -> CheckResult {
    let mut extra = Vec::new();
    sub.wait(Duration::from_millis(30), &mut |d| extra.push(own(d))).ctx("subscriber wait")?;
    ensure!(
        extra.is_empty(),
        "{what}: expected nothing more, found {} extra deliveries starting with {}",
        extra.len(),
        extra[0].short()
    );
    Ok(())
}

/// Compares deliveries to the expected list of `(seq, span, payload_len)` frames on
/// `stream`, with no gap.
fn expect_frames(got: &[Got], stream: u64, want: &[(u64, u32, usize)], what: &str) -> CheckResult {
    ensure!(
        got.len() == want.len(),
        "{what}: expected {} frames, got {} deliveries (first: {}, last: {})",
        want.len(),
        got.len(),
        got.first().map_or("none".to_owned(), Got::short),
        got.last().map_or("none".to_owned(), Got::short)
    );
    for (i, (g, &(seq, span, len))) in got.iter().zip(want).enumerate() {
        match g {
            Got::Frame(h, p) => {
                let wh = FrameHeader { stream: StreamId(stream), seq, span, epoch: 0 };
                ensure!(*h == wh, "{what}: delivery {i}: expected header {wh:?}, got {h:?}");
                ensure!(
                    *p == payload(seq, len),
                    "{what}: delivery {i} (seq {seq}): payload of {} bytes differs from the {len} bytes published",
                    p.len()
                );
            }
            Got::Gap(_, f, t) => {
                return Err(format!(
                    "{what}: delivery {i}: unexpected gap {f}..{t} where frame seq {seq} was expected"
                ));
            }
        }
    }
    Ok(())
}

fn open(s: &Subject) -> Result<TransportPair, String> {
    s.factory.open().ctx("opening the transports")
}

fn publish_range(
    p: &mut dyn TopicPublisher,
    seqs: std::ops::Range<u64>,
    len: usize,
) -> CheckResult {
    for seq in seqs {
        p.publish(seq, 1, &payload(seq, len)).ctx(&format!("publish seq {seq}"))?;
    }
    p.flush().ctx("flush")
}

fn ordering(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("order");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(11, &s.caps)).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    let mut want = Vec::new();
    let mut seq = 100u64;
    for i in 0..500u64 {
        let span = (i % 4 + 1) as u32;
        let len = (super::runner::mix(i) % 300) as usize;
        p.publish(seq, span, &payload(seq, len)).ctx(&format!("publish seq {seq}"))?;
        want.push((seq, span, len));
        seq += u64::from(span);
    }
    p.flush().ctx("flush")?;
    let n = want.len();
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| g.len() >= n)?;
    expect_frames(&got, 11, &want, "in-order delivery")?;
    expect_quiet(&mut *sub, "after all frames")
}

fn epochs(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("epochs");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(12, &s.caps)).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    let plan = [(1u64, 0u64), (2, 7), (3, 7), (4, u64::MAX - 1), (5, 8)];
    for &(seq, epoch) in &plan {
        if epoch != 0 {
            p.set_epoch(epoch);
        }
        p.publish(seq, 1, &payload(seq, 16)).ctx(&format!("publish seq {seq}"))?;
    }
    p.flush().ctx("flush")?;
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| g.len() >= plan.len())?;
    let epochs: Vec<(u64, u64)> = got
        .iter()
        .filter_map(|g| match g {
            Got::Frame(h, _) => Some((h.seq, h.epoch)),
            Got::Gap(..) => None,
        })
        .collect();
    ensure!(
        epochs == plan,
        "clause `every frame carries the epoch last set with set_epoch`: published (seq, \
         epoch) {plan:?}, received {epochs:?}"
    );
    Ok(())
}

/// `(seq, epoch, payload)` of the frames in `got`; a gap is an error.
fn frames_with_epochs(got: &[Got], what: &str) -> Result<Vec<(u64, u64, Vec<u8>)>, String> {
    got.iter()
        .map(|g| match g {
            Got::Frame(h, p) => Ok((h.seq, h.epoch, p.clone())),
            Got::Gap(..) => Err(format!("{what}: unexpected {}", g.short())),
        })
        .collect()
}

fn rewind(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("rewind");
    let history = if s.caps.history { 16 } else { 0 };
    let opts = PublisherOptions { history, ..pub_opts(24, &s.caps) };
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    // The rewritten frames carry other bytes, so a withdrawn frame cannot pass for one.
    let rewritten = |seq: u64| payload(seq + 1_000_000, 8);
    let refuse_back = |p: &mut dyn TopicPublisher, seq: u64, when: &str| match p.publish(
        seq,
        1,
        &payload(seq, 8),
    ) {
        Err(Error::InvalidArgument(_)) => Ok(()),
        other => Err(format!(
            "clause `going back within an epoch is refused`: seq {seq} {when}: expected              InvalidArgument, got {other:?}"
        )),
    };
    p.set_epoch(1);
    publish_range(&mut *p, 10..15, 8)?;
    refuse_back(&mut *p, 12, "after 10..15 in epoch 1")?;
    p.set_epoch(2);
    p.publish(12, 1, &rewritten(12)).ctx("rewind to seq 12 in epoch 2")?;
    p.publish(13, 1, &rewritten(13)).ctx("publish seq 13 in epoch 2")?;
    refuse_back(&mut *p, 12, "after the rewind to 12..14 in epoch 2")?;
    p.flush().ctx("flush")?;
    let want: Vec<(u64, u64, Vec<u8>)> = (10..15)
        .map(|seq| (seq, 1, payload(seq, 8)))
        .chain((12..14).map(|seq| (seq, 2, rewritten(seq))))
        .collect();
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| g.len() >= want.len())?;
    let got = frames_with_epochs(&got, "connected subscriber")?;
    let shape = |v: &[(u64, u64, Vec<u8>)]| v.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>();
    ensure!(
        got == want,
        "clause `a rewind reaches subscribers after the frames it withdraws`: expected          (seq, epoch) {:?}, received {:?} (or other bytes)",
        shape(&want),
        shape(&got)
    );
    expect_quiet(&mut *sub, "after the rewind")?;
    if s.caps.history {
        let mut late = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("late subscriber")?;
        p.publish(14, 1, &rewritten(14)).ctx("publish seq 14 in epoch 2")?;
        p.flush().ctx("flush")?;
        let got = collect(&mut *late, s.caps.idle_timeout, |g| saw_seq(g, 14))?;
        let got = frames_with_epochs(&got, "late subscriber")?;
        let Some(at) = got.iter().position(|f| f.0 == 12 && f.1 == 2) else {
            return Err(format!(
                "late subscriber with history: no rewinding frame (12, epoch 2) in {:?}",
                shape(&got)
            ));
        };
        let after = &got[at..];
        let want_after: Vec<_> = (12..15).map(|seq| (seq, 2, rewritten(seq))).collect();
        ensure!(
            after == want_after.as_slice(),
            "clause `a late subscriber never gets a withdrawn frame after the rewinding one`:              from the rewind on expected (seq, epoch) {:?}, received {:?}",
            shape(&want_after),
            shape(after)
        );
        expect_quiet(&mut *late, "late subscriber after the rewind")?;
    }
    Ok(())
}

fn seq_jump(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("jump");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(12, &s.caps)).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    for (seq, span) in [(0u64, 1u32), (1, 2), (10, 1), (11, 1)] {
        p.publish(seq, span, &payload(seq, 8)).ctx(&format!("publish seq {seq}"))?;
    }
    p.flush().ctx("flush")?;
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| saw_seq(g, 11))?;
    let shape: Vec<String> = got.iter().map(Got::short).collect();
    let want = vec![
        "frame(seq 0, span 1, 8 bytes)",
        "frame(seq 1, span 2, 8 bytes)",
        "gap(3..10)",
        "frame(seq 10, span 1, 8 bytes)",
        "frame(seq 11, span 1, 8 bytes)",
    ];
    ensure!(shape == want, "expected {want:?}, got {shape:?}");
    ensure!(
        got[2] == Got::Gap(StreamId(12), 3, 10),
        "the gap names the wrong stream: {:?}",
        got[2]
    );
    Ok(())
}

fn block_slow(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("block");
    let n = 3000u64;
    let len = 2048;
    let opts = PublisherOptions { queue_depth: 8, ..pub_opts(13, &s.caps) };
    let p = t.publisher_side.publisher(&name, &opts).ctx("publisher")?;
    let sopts = SubscriberOptions { queue_depth: 8, ..sub_opts() };
    let mut sub = t.subscriber_side.subscriber(&name, &sopts).ctx("subscriber")?;
    let publisher = std::thread::spawn(move || {
        let mut p = p;
        publish_range(&mut *p, 0..n, len)
    });
    let mut got = Vec::new();
    let mut last = Instant::now();
    while frames(&got) < n as usize && last.elapsed() < s.caps.idle_timeout {
        let k = sub
            .wait(Duration::from_millis(50), &mut |d| got.push(own(d)))
            .ctx("subscriber wait")?;
        if k > 0 {
            last = Instant::now();
            if got.len() % 100 < k {
                // Read slowly so the publisher has to wait.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    let published = publisher.join().map_err(|_| "the publisher thread panicked".to_owned())?;
    published?;
    if let Some(g) = got.iter().find(|g| matches!(g, Got::Gap(..))) {
        return Err(format!("lost frames under the block policy: {}", g.short()));
    }
    let want: Vec<_> = (0..n).map(|seq| (seq, 1, len)).collect();
    expect_frames(&got, 13, &want, "block policy")
}

fn drop_oldest(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("drop");
    let n = s.caps.flood_frames;
    let len = s.caps.flood_payload;
    let opts = PublisherOptions {
        queue_depth: 4,
        max_payload: len.max(16),
        policy: SlowSubscriberPolicy::DropOldest,
        ..pub_opts(14, &s.caps)
    };
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("publisher")?;
    let sopts = SubscriberOptions { queue_depth: 4, max_payload: len.max(16), ..sub_opts() };
    let mut sub = t.subscriber_side.subscriber(&name, &sopts).ctx("subscriber")?;
    // Publish everything without reading: the publisher must not wait.
    publish_range(&mut *p, 0..n, len)?;
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| saw_seq(g, n - 1))?;
    let mut expected = 0u64;
    let mut gaps = 0;
    for (i, g) in got.iter().enumerate() {
        match g {
            Got::Frame(h, p) => {
                ensure!(
                    h.seq == expected,
                    "delivery {i}: frame seq {} arrived where seq {expected} was due and no gap was reported",
                    h.seq
                );
                ensure!(
                    *p == payload(h.seq, len),
                    "delivery {i}: payload of seq {} differs",
                    h.seq
                );
                expected = h.next_seq();
            }
            Got::Gap(stream, from, to) => {
                ensure!(*stream == StreamId(14), "gap on unexpected {stream}");
                ensure!(
                    *from == expected && to > from,
                    "delivery {i}: gap {from}..{to} does not start at the next due seq {expected}"
                );
                ensure!(
                    matches!(got.get(i + 1), Some(Got::Frame(h, _)) if h.seq == *to),
                    "delivery {i}: gap {from}..{to} is not followed by frame seq {to}"
                );
                gaps += 1;
                expected = *to;
            }
        }
    }
    ensure!(
        gaps > 0,
        "no frame was dropped: {n} frames of {len} bytes published without reading all arrived \
         (the flood must exceed what the medium buffers; raise TransportCaps::flood_frames)"
    );
    expect_quiet(&mut *sub, "after the flood")
}

fn large(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("large");
    let max = s.caps.max_payload;
    let opts = PublisherOptions { max_payload: max, queue_depth: 16, ..pub_opts(15, &s.caps) };
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("publisher")?;
    let sopts = SubscriberOptions { max_payload: max, queue_depth: 16, ..sub_opts() };
    let mut sub = t.subscriber_side.subscriber(&name, &sopts).ctx("subscriber")?;
    let sizes = [1, 1000, max / 2, max - 1, max];
    let mut want = Vec::new();
    for (seq, &len) in sizes.iter().enumerate() {
        let seq = seq as u64;
        p.publish(seq, 1, &payload(seq, len)).ctx(&format!("publish {len} bytes"))?;
        want.push((seq, 1, len));
    }
    let next = sizes.len() as u64;
    match p.publish(next, 1, &payload(next, max + 1)) {
        Err(Error::FrameTooLarge { len, max: m, .. }) => {
            ensure!(
                len == (max + 1) as u64 && m == max as u64,
                "FrameTooLarge reports len {len} max {m}, expected {} and {max}",
                max + 1
            );
        }
        Err(e) => return Err(format!("max_payload + 1 bytes: expected FrameTooLarge, got {e}")),
        Ok(()) => {
            return Err(format!("a payload of max_payload + 1 = {} bytes was accepted", max + 1));
        }
    }
    // The refused frame used no sequence number: `next` is still free.
    p.publish(next, 1, &payload(next, 10)).ctx("publish after the refused frame")?;
    want.push((next, 1, 10));
    p.flush().ctx("flush")?;
    let n = want.len();
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| g.len() >= n)?;
    expect_frames(&got, 15, &want, "large messages")?;
    expect_quiet(&mut *sub, "after the large messages")
}

fn many(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("many");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(16, &s.caps)).ctx("publisher")?;
    let mut subs = Vec::new();
    for i in 0..s.caps.subscribers {
        subs.push(
            t.subscriber_side.subscriber(&name, &sub_opts()).ctx(&format!("subscriber {i}"))?,
        );
    }
    let n = 300u64;
    publish_range(&mut *p, 0..n, 64)?;
    let want: Vec<_> = (0..n).map(|seq| (seq, 1, 64)).collect();
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = collect(&mut **sub, s.caps.idle_timeout, |g| g.len() >= n as usize)
            .map_err(|e| format!("subscriber {i}: {e}"))?;
        expect_frames(&got, 16, &want, &format!("subscriber {i}"))?;
    }
    Ok(())
}

fn late_no_history(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("late");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(17, &s.caps)).ctx("publisher")?;
    // An early subscriber makes sure the early frames really went out.
    let mut early = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("early subscriber")?;
    publish_range(&mut *p, 0..20, 32)?;
    collect(&mut *early, s.caps.idle_timeout, |g| g.len() >= 20)?;
    let mut late = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("late subscriber")?;
    publish_range(&mut *p, 20..30, 32)?;
    let got = collect(&mut *late, s.caps.idle_timeout, |g| saw_seq(g, 29))?;
    let want: Vec<_> = (20..30).map(|seq| (seq, 1, 32)).collect();
    expect_frames(&got, 17, &want, "late subscriber without history")?;
    expect_quiet(&mut *late, "late subscriber")
}

fn late_history(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("history");
    let opts = PublisherOptions { history: 5, ..pub_opts(18, &s.caps) };
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("publisher")?;
    publish_range(&mut *p, 0..20, 32)?;
    let mut late = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("late subscriber")?;
    publish_range(&mut *p, 20..25, 32)?;
    let got = collect(&mut *late, s.caps.idle_timeout, |g| saw_seq(g, 24))?;
    let want: Vec<_> = (15..25).map(|seq| (seq, 1, 32)).collect();
    expect_frames(&got, 18, &want, "late subscriber with history 5")?;
    expect_quiet(&mut *late, "late subscriber with history")
}

fn restart(s: &Subject, second_start: u64, check: &str) -> Result<Vec<Got>, String> {
    let t = open(s)?;
    let name = topic(check);
    let opts = pub_opts(19, &s.caps);
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("first publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    publish_range(&mut *p, 0..10, 16)?;
    let mut got = collect(&mut *sub, s.caps.idle_timeout, |g| saw_seq(g, 9))?;
    drop(p);
    let mut p = t.publisher_side.publisher(&name, &opts).ctx("restarted publisher")?;
    let end = second_start + 10;
    publish_range(&mut *p, second_start..end, 16)?;
    got.extend(collect(&mut *sub, s.caps.idle_timeout, |g| saw_seq(g, end - 1))?);
    expect_quiet(&mut *sub, "after the restart")?;
    Ok(got)
}

fn restart_continue(s: &Subject) -> CheckResult {
    let got = restart(s, 10, "restart")?;
    let want: Vec<_> = (0..20).map(|seq| (seq, 1, 16)).collect();
    expect_frames(&got, 19, &want, "publisher restart continuing the sequence")
}

fn restart_jump(s: &Subject) -> CheckResult {
    let got = restart(s, 15, "restart-jump")?;
    ensure!(
        got.len() == 21,
        "expected 10 frames, a gap and 10 frames; got {} deliveries",
        got.len()
    );
    let want: Vec<_> = (0..10).map(|seq| (seq, 1, 16)).collect();
    expect_frames(&got[..10], 19, &want, "before the restart")?;
    ensure!(
        got[10] == Got::Gap(StreamId(19), 10, 15),
        "expected gap 10..15 after the restart, got {}",
        got[10].short()
    );
    let want: Vec<_> = (15..25).map(|seq| (seq, 1, 16)).collect();
    expect_frames(&got[11..], 19, &want, "after the restart")
}

fn publish_with(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("loan");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(20, &s.caps)).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    let mut want = Vec::new();
    for (seq, len) in [(0u64, 1usize), (1, 100), (2, 4096)] {
        let data = payload(seq, len);
        let mut lent = None;
        p.publish_with(seq, 1, len, &mut |buf| {
            lent = Some(buf.len());
            buf.copy_from_slice(&data);
        })
        .ctx(&format!("publish_with {len} bytes"))?;
        ensure!(lent == Some(len), "publish_with lent {lent:?} bytes for a {len}-byte frame");
        want.push((seq, 1, len));
    }
    match p.publish_with(3, 1, 4097, &mut |_| {}) {
        Err(Error::FrameTooLarge { .. }) => {}
        other => {
            return Err(format!(
                "publish_with above max_payload: expected FrameTooLarge, got {other:?}"
            ));
        }
    }
    p.flush().ctx("flush")?;
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| g.len() >= 3)?;
    expect_frames(&got, 20, &want, "publish_with")?;
    expect_quiet(&mut *sub, "after publish_with")
}

fn backwards(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let name = topic("back");
    let mut p = t.publisher_side.publisher(&name, &pub_opts(21, &s.caps)).ctx("publisher")?;
    let mut sub = t.subscriber_side.subscriber(&name, &sub_opts()).ctx("subscriber")?;
    p.publish(10, 5, &payload(10, 8)).ctx("publish seq 10 span 5")?;
    for bad in [14u64, 10, 0] {
        match p.publish(bad, 1, &payload(bad, 8)) {
            Err(Error::InvalidArgument(_)) => {}
            other => {
                return Err(format!(
                    "seq {bad} after a frame covering 10..15: expected InvalidArgument, got {other:?}"
                ));
            }
        }
    }
    match p.publish_with(14, 1, 8, &mut |b| b.fill(0)) {
        Err(Error::InvalidArgument(_)) => {}
        other => {
            return Err(format!(
                "publish_with seq 14 after 10..15: expected InvalidArgument, got {other:?}"
            ));
        }
    }
    p.publish(15, 1, &payload(15, 8)).ctx("publish seq 15")?;
    p.flush().ctx("flush")?;
    let got = collect(&mut *sub, s.caps.idle_timeout, |g| saw_seq(g, 15))?;
    expect_frames(&got, 21, &[(10, 5, 8), (15, 1, 8)], "after refused publishes")?;
    expect_quiet(&mut *sub, "after refused publishes")
}

fn isolated(s: &Subject) -> CheckResult {
    let t = open(s)?;
    let (a, b) = (topic("iso-a"), topic("iso-b"));
    let mut pa = t.publisher_side.publisher(&a, &pub_opts(22, &s.caps)).ctx("publisher a")?;
    let mut pb = t.publisher_side.publisher(&b, &pub_opts(23, &s.caps)).ctx("publisher b")?;
    let mut sa = t.subscriber_side.subscriber(&a, &sub_opts()).ctx("subscriber a")?;
    let mut sb = t.subscriber_side.subscriber(&b, &sub_opts()).ctx("subscriber b")?;
    publish_range(&mut *pa, 0..10, 16)?;
    publish_range(&mut *pb, 100..105, 16)?;
    let got_a = collect(&mut *sa, s.caps.idle_timeout, |g| g.len() >= 10)?;
    let got_b = collect(&mut *sb, s.caps.idle_timeout, |g| g.len() >= 5)?;
    let want_a: Vec<_> = (0..10).map(|seq| (seq, 1, 16)).collect();
    let want_b: Vec<_> = (100..105).map(|seq| (seq, 1, 16)).collect();
    expect_frames(&got_a, 22, &want_a, "topic a")?;
    expect_frames(&got_b, 23, &want_b, "topic b")?;
    expect_quiet(&mut *sa, "topic a")?;
    expect_quiet(&mut *sb, "topic b")
}
