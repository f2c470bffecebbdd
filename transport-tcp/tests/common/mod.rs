//! Shared test support: log capture and receive helpers.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use strata_core::{
    Delivery, FrameHeader, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions,
    TopicSubscriber,
};
use strata_transport_tcp::TcpConfig;

/// A publisher on `stream` that keeps `history` frames and blocks on a full subscriber
/// queue (so no test frame is dropped).
pub fn blocking(stream: u64, history: usize) -> PublisherOptions {
    PublisherOptions {
        stream: StreamId(stream),
        history,
        policy: SlowSubscriberPolicy::Block,
        ..PublisherOptions::default()
    }
}

/// Subscriber options resuming at `from`.
pub fn resume(from: u64) -> SubscriberOptions {
    SubscriberOptions { resume_from: Some(from), ..SubscriberOptions::default() }
}

/// A client that reconnects within milliseconds.
pub fn fast_reconnect() -> TcpConfig {
    TcpConfig::default().with_backoff(Duration::from_millis(5), Duration::from_millis(50))
}

/// `(seq, epoch)` of the frames in `got`, asserting there is no gap and that each
/// payload is `"{seq}@{epoch}"` (what the follow and replay tests publish).
pub fn epoch_frames(got: &[Got]) -> Vec<(u64, u64)> {
    got.iter()
        .map(|g| match g {
            Got::Frame(h, payload) => {
                assert_eq!(payload, format!("{}@{}", h.seq, h.epoch).as_bytes());
                (h.seq, h.epoch)
            }
            Got::Gap(_, from, to) => panic!("unexpected gap {from}..{to} in {got:?}"),
        })
        .collect()
}

/// Asserts nothing more arrives within 100 ms.
pub fn nothing_more(sub: &mut dyn TopicSubscriber) {
    let mut extra = Vec::new();
    sub.wait(Duration::from_millis(100), &mut |d| extra.push(format!("{d:?}"))).expect("wait");
    assert!(extra.is_empty(), "nothing more was due: {extra:?}");
}

/// Everything logged by the process, captured once.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer_buf.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (up to 10 s) until a WARN line containing `needle` was logged.
pub fn wait_for_warning(needle: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&logs().lock().map_err(|_| "poisoned")?).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains("WARN") && l.contains(needle)) {
            return Ok(line.to_owned());
        }
        if Instant::now() > deadline {
            return Err(format!("no warning containing {needle:?} was logged; log:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An owned delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    /// A frame.
    Frame(FrameHeader, Vec<u8>),
    /// A gap.
    Gap(StreamId, u64, u64),
}

/// Receives until frame `seq` arrived (fails after 10 s without a delivery).
pub fn until_seq(sub: &mut dyn TopicSubscriber, seq: u64) -> Vec<Got> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    while !got.iter().any(|g| matches!(g, Got::Frame(h, _) if h.seq == seq)) {
        let n = sub
            .wait(Duration::from_millis(50), &mut |d| {
                got.push(match d {
                    Delivery::Frame { header, payload } => Got::Frame(header, payload.to_vec()),
                    Delivery::Gap { stream, from, to } => Got::Gap(stream, from, to),
                })
            })
            .expect("wait");
        if n > 0 {
            last = Instant::now();
        }
        assert!(last.elapsed() < Duration::from_secs(10), "stalled waiting for seq {seq}: {got:?}");
    }
    got
}

/// The sequence numbers of the frames in `got`, asserting there is no gap.
pub fn seqs_without_gap(got: &[Got]) -> Vec<u64> {
    got.iter()
        .map(|g| match g {
            Got::Frame(h, _) => h.seq,
            Got::Gap(_, f, t) => panic!("unexpected gap {f}..{t} in {got:?}"),
        })
        .collect()
}
