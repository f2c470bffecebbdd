//! Loopback measurements (used by the criterion bench and by `strata bench
//! distribution`): one-way latency with the send time in the payload, and throughput
//! of small frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use strata_core::{
    Delivery, Error, PublisherOptions, Result, SlowSubscriberPolicy, StreamId, SubscriberOptions,
    TopicPublisher, TopicSubscriber,
};

use crate::{NAME, TcpConfig, TcpTransport};

/// What to measure.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoopbackOptions {
    /// Messages measured (after the warm-up).
    pub messages: u64,
    /// Messages sent first and not measured.
    pub warmup: u64,
    /// Payload size in bytes (at least 8: the send time is stored in the payload).
    pub payload: usize,
    /// The server's [`TcpConfig::direct_write`].
    pub direct_write: bool,
    /// The client's [`TcpConfig::inline_read`].
    pub inline_read: bool,
}

impl Default for LoopbackOptions {
    fn default() -> Self {
        Self { messages: 20_000, warmup: 2_000, payload: 64, direct_write: true, inline_read: true }
    }
}

impl LoopbackOptions {
    /// Sets the measured message count.
    #[must_use]
    pub fn with_messages(mut self, n: u64) -> Self {
        self.messages = n;
        self
    }
    /// Sets the warm-up message count.
    #[must_use]
    pub fn with_warmup(mut self, n: u64) -> Self {
        self.warmup = n;
        self
    }
    /// Sets [`LoopbackOptions::direct_write`].
    #[must_use]
    pub fn with_direct_write(mut self, on: bool) -> Self {
        self.direct_write = on;
        self
    }
    /// Sets [`LoopbackOptions::inline_read`].
    #[must_use]
    pub fn with_inline_read(mut self, on: bool) -> Self {
        self.inline_read = on;
        self
    }
    /// Sets the payload size (raised to 8).
    #[must_use]
    pub fn with_payload(mut self, n: usize) -> Self {
        self.payload = n.max(8);
        self
    }
}

/// One-way latencies, in nanoseconds.
#[derive(Debug)]
pub struct LatencyResults {
    /// Latency of each measured message, publish call to subscriber callback.
    pub latency_ns: Histogram<u64>,
}

/// A throughput run.
#[derive(Clone, Copy, Debug)]
pub struct ThroughputResults {
    /// Messages delivered.
    pub messages: u64,
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
}

impl ThroughputResults {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A server with one publisher, and a client with one subscriber, on a topic.
type Endpoints = ((TcpTransport, TcpTransport), Box<dyn TopicPublisher>, Box<dyn TopicSubscriber>);

fn setup(
    topic: &str,
    policy: SlowSubscriberPolicy,
    depth: usize,
    direct_write: bool,
    inline_read: bool,
) -> Result<Endpoints> {
    let config = TcpConfig::default().with_direct_write(direct_write).with_inline_read(inline_read);
    let server = TcpTransport::server_with("127.0.0.1:0", config.clone())?;
    let client = TcpTransport::client_with(server.remote_addr(), config)?;
    let popts = PublisherOptions {
        stream: StreamId(1),
        policy,
        queue_depth: depth,
        ..PublisherOptions::default()
    };
    let publisher: Box<dyn TopicPublisher> = Box::new(server.tcp_publisher(topic, &popts)?);
    let sopts = SubscriberOptions { queue_depth: depth, ..SubscriberOptions::default() };
    let subscriber: Box<dyn TopicSubscriber> = Box::new(client.tcp_subscriber(topic, &sopts)?);
    Ok(((server, client), publisher, subscriber))
}

fn bench_err(reason: impl Into<String>) -> Error {
    Error::transport(NAME, "bench", reason)
}

/// One message in flight: waits (spinning briefly, then yielding) until the reader
/// counted message `i`, or stopped.
fn await_delivery<T>(received: &AtomicU64, reader: &std::thread::JoinHandle<T>, i: u64) {
    let mut spins = 0u32;
    while received.load(Ordering::Acquire) <= i {
        if reader.is_finished() {
            break;
        }
        spins += 1;
        if spins < 200 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// One-way latency over loopback: one message in flight at a time, the publisher on
/// the calling thread, the subscriber blocking in [`TopicSubscriber::wait`] on another.
pub fn latency(opts: &LoopbackOptions) -> Result<LatencyResults> {
    let payload = opts.payload.max(8);
    let (_server, mut publisher, mut subscriber) = setup(
        "bench/latency",
        SlowSubscriberPolicy::Block,
        1024,
        opts.direct_write,
        opts.inline_read,
    )?;
    let epoch = Instant::now();
    let total = opts.warmup + opts.messages;
    let received = Arc::new(AtomicU64::new(0));
    let recv2 = received.clone();
    let warmup = opts.warmup;
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| bench_err(format!("histogram: {e}")))?;
        let mut n = 0u64;
        let idle_deadline = Duration::from_secs(10);
        let mut last = Instant::now();
        while n < total {
            let got = subscriber.wait(Duration::from_millis(100), &mut |d| {
                if let Delivery::Frame { payload, .. } = d {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&payload[..8]);
                    let sent = u64::from_le_bytes(ts);
                    if n >= warmup {
                        let _ = hist.record(now.saturating_sub(sent).max(1));
                    }
                    n += 1;
                    recv2.store(n, Ordering::Release);
                }
            })?;
            if got > 0 {
                last = Instant::now();
            } else if last.elapsed() > idle_deadline {
                return Err(bench_err(format!(
                    "no delivery for {idle_deadline:?} after {n} of {total}"
                )));
            }
        }
        Ok(hist)
    });
    let mut buf = vec![0u8; payload];
    for i in 0..total {
        let ts = epoch.elapsed().as_nanos() as u64;
        buf[..8].copy_from_slice(&ts.to_le_bytes());
        publisher.publish(i, 1, &buf)?;
        await_delivery(&received, &reader, i);
    }
    let hist = reader.join().map_err(|_| bench_err("the subscriber thread panicked"))??;
    Ok(LatencyResults { latency_ns: hist })
}

/// The reference for [`latency`]: the same measurement over a bare `std::net` socket
/// pair on loopback (TCP_NODELAY, blocking reads of fixed-size messages, no framing,
/// checksum, queue or runtime). Strata's figures divided by these are its overhead.
pub fn raw_latency(opts: &LoopbackOptions) -> Result<LatencyResults> {
    use std::io::{Read, Write};
    let payload = opts.payload.max(8);
    let io = |what: &str, e: std::io::Error| bench_err(format!("raw tcp {what}: {e}"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind", e))?;
    let addr = listener.local_addr().map_err(|e| io("local_addr", e))?;
    let mut tx = std::net::TcpStream::connect(addr).map_err(|e| io("connect", e))?;
    let (mut rx, _) = listener.accept().map_err(|e| io("accept", e))?;
    tx.set_nodelay(true).map_err(|e| io("nodelay", e))?;
    rx.set_nodelay(true).map_err(|e| io("nodelay", e))?;
    rx.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| io("read timeout", e))?;
    let epoch = Instant::now();
    let total = opts.warmup + opts.messages;
    let warmup = opts.warmup;
    let received = Arc::new(AtomicU64::new(0));
    let recv2 = received.clone();
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| bench_err(format!("histogram: {e}")))?;
        let mut buf = vec![0u8; payload];
        for n in 0..total {
            rx.read_exact(&mut buf).map_err(|e| io("read", e))?;
            let now = epoch.elapsed().as_nanos() as u64;
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&buf[..8]);
            if n >= warmup {
                let _ = hist.record(now.saturating_sub(u64::from_le_bytes(ts)).max(1));
            }
            recv2.store(n + 1, Ordering::Release);
        }
        Ok(hist)
    });
    let mut buf = vec![0u8; payload];
    for i in 0..total {
        let ts = epoch.elapsed().as_nanos() as u64;
        buf[..8].copy_from_slice(&ts.to_le_bytes());
        tx.write_all(&buf).map_err(|e| io("write", e))?;
        await_delivery(&received, &reader, i);
    }
    let hist = reader.join().map_err(|_| bench_err("the raw reader thread panicked"))??;
    Ok(LatencyResults { latency_ns: hist })
}

/// Throughput over loopback: `messages` frames of `payload` bytes published as fast
/// as the block policy allows, counted by a subscriber thread, with the write and read
/// modes of `opts` (its message count and payload are not used).
pub fn throughput(
    messages: u64,
    payload: usize,
    opts: &LoopbackOptions,
) -> Result<ThroughputResults> {
    let (_server, mut publisher, mut subscriber) = setup(
        "bench/throughput",
        SlowSubscriberPolicy::Block,
        8192,
        opts.direct_write,
        opts.inline_read,
    )?;
    let reader = std::thread::spawn(move || -> Result<Instant> {
        let mut n = 0u64;
        let mut last = Instant::now();
        while n < messages {
            let got = subscriber.wait(Duration::from_millis(100), &mut |d| {
                if let Delivery::Frame { .. } = d {
                    n += 1;
                }
            })?;
            if got > 0 {
                last = Instant::now();
            } else if last.elapsed() > Duration::from_secs(10) {
                return Err(bench_err(format!("stalled after {n} of {messages} messages")));
            }
        }
        Ok(Instant::now())
    });
    let buf = vec![0x5a_u8; payload];
    let start = Instant::now();
    for i in 0..messages {
        publisher.publish(i, 1, &buf)?;
    }
    publisher.flush()?;
    let end = reader.join().map_err(|_| bench_err("the subscriber thread panicked"))??;
    Ok(ThroughputResults { messages, elapsed: end.duration_since(start) })
}

/// Both loopback measurements of one run.
#[derive(Debug)]
pub struct LoopbackResults {
    /// One-way latency, as [`latency`] measures it.
    pub latency: LatencyResults,
    /// Throughput of `opts.messages` frames of `opts.payload` bytes, as [`throughput`]
    /// measures it (same write mode).
    pub throughput: ThroughputResults,
}

/// Runs [`latency`] and then [`throughput`] with the same options.
pub fn loopback(opts: &LoopbackOptions) -> Result<LoopbackResults> {
    let latency = latency(opts)?;
    let throughput = throughput(opts.messages.max(1), opts.payload, opts)?;
    Ok(LoopbackResults { latency, throughput })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_measures_every_message() {
        let opts = LoopbackOptions::default().with_messages(300).with_warmup(20);
        let r = loopback(&opts).expect("loopback");
        assert_eq!(r.latency.latency_ns.len(), 300);
        assert_eq!(r.throughput.messages, 300);
        assert!(r.throughput.msgs_per_sec() > 0.0);
    }

    #[test]
    fn raw_reference_measures_every_message() {
        let opts = LoopbackOptions::default().with_messages(300).with_warmup(20);
        let r = raw_latency(&opts).expect("raw loopback");
        assert_eq!(r.latency_ns.len(), 300);
    }
}
