//! `strata serve` and `strata subscribe` as a user runs them: the real binary, a
//! temporary configuration, a WebSocket client over loopback, SIGKILL and restart.

#![allow(clippy::unwrap_used)]

mod common;

use common::OutputWithin;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message as Ws;

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const STEP: Duration = Duration::from_secs(30);

/// A running `strata serve`, killed (SIGKILL) when dropped.
struct Serve {
    child: Child,
    ws: String,
    tcp: Option<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path) -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut ws, mut tcp) = (None, None);
    while ws.is_none() {
        let line = lines.next().expect("serve exited before printing its address").unwrap();
        if let Some(rest) = line.strip_prefix("gateway: ws://") {
            ws = Some(rest.split('/').next().unwrap().to_owned());
        }
        if let Some(rest) = line.strip_prefix("tcp: ") {
            tcp = Some(rest.split(' ').next().unwrap().to_owned());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Serve { child, ws: ws.unwrap(), tcp }
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\ndir = \"store\"\n[gateway]\naddr = \"127.0.0.1:0\"\n\
             [feed]\nrate = 400\nbatch = 4\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// Receives commit frames from `from` until `until` is covered; asserts each starts
/// where the previous ended (no gap, no duplicate) and holds trades. Returns the next
/// sequence expected.
async fn receive(addr: &str, from: u64, until: u64) -> u64 {
    let url = format!("ws://{addr}/ws?topic=commits&from={from}");
    let (mut ws, _) = connect_async(url.as_str()).await.unwrap();
    let mut expect = from;
    while expect <= until {
        let msg = tokio::time::timeout(STEP, ws.next()).await.unwrap().unwrap().unwrap();
        let Ws::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v.get("subscribed").is_some() {
            continue;
        }
        assert!(v.get("gap").is_none() && v.get("invalid").is_none(), "{v}");
        assert_eq!(v["seq"].as_u64().unwrap(), expect, "{v}");
        let ops = v["ops"].as_array().unwrap();
        assert_eq!(ops.len() as u64, v["span"].as_u64().unwrap());
        for (k, op) in ops.iter().enumerate() {
            assert_eq!(op["seq"].as_u64().unwrap(), expect + k as u64);
            assert_eq!(op["message"]["type"], "trade", "{op}");
        }
        expect += ops.len() as u64;
    }
    expect
}

#[test]
fn serve_survives_sigkill_and_clients_resume_without_gap() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[tcp]\naddr = \"127.0.0.1:0\"\n");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let serve = start(&config);
    let next = rt.block_on(receive(&serve.ws, 1, 60));

    // `strata subscribe` over both media prints JSON frames.
    let out = Command::new(BIN)
        .args(["subscribe", "--transport", "ws", "--topic", "commits", "--from", "1"])
        .args(["--count", "5", "--addr", &serve.ws])
        .output_within(common::LIMIT)
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0].get("subscribed").is_some());
    assert_eq!(lines[1]["seq"], 1);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let out = Command::new(BIN)
        .args(["subscribe", "--transport", "tcp", "--topic", "commits", "--count", "3"])
        .args(["--addr", serve.tcp.as_deref().unwrap()])
        .output_within(common::LIMIT)
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["ops"][0]["message"]["type"], "trade", "{v}");
    }

    // SIGKILL, restart on the same store: the client resumes exactly where it was.
    drop(serve);
    let serve = start(&config);
    let after = rt.block_on(receive(&serve.ws, next, next + 60));
    assert!(after > next + 60);
    // And from the very beginning, across the restart, still gapless.
    rt.block_on(receive(&serve.ws, 1, after));
}

/// A TCP subscriber resuming below what the server's ring holds (here two frames, and a
/// restart emptied it) gets the rest from the store's log: every sequence from 1, across
/// the restart, with no gap.
#[test]
fn a_tcp_resume_below_the_ring_is_read_from_the_store_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[tcp]\naddr = \"127.0.0.1:0\"\nhistory = 2\n");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let serve = start(&config);
    let next = rt.block_on(receive(&serve.ws, 1, 60));
    drop(serve);
    let serve = start(&config);
    rt.block_on(receive(&serve.ws, next, next + 80));
    let out = Command::new(BIN)
        .args(["subscribe", "--transport", "tcp", "--topic", "commits", "--from", "1"])
        .args(["--count", "30", "--addr", serve.tcp.as_deref().unwrap()])
        .output_within(common::LIMIT)
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut expect = 1;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v.get("gap").is_none() && v.get("rewritten").is_none(), "{v}");
        assert_eq!(v["seq"].as_u64(), Some(expect), "{text}");
        expect += v["span"].as_u64().unwrap();
    }
    assert_eq!(text.lines().count(), 30, "{text}");
    assert!(expect > next, "the frames reach past the restart ({expect} <= {next})");
}

#[test]
fn bad_serve_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[store]\ndir = \"s\"\n[gateway]\npolicy = \"block\"\n", "block"),
        ("[store]\ndir = \"s\"\n[gatway]\naddr = \"x\"\n", "unknown field `gatway`"),
        ("[gateway]\naddr = \"127.0.0.1:0\"\n", "missing field `store`"),
        ("[store]\ndir = \"s\"\n[feed]\nrate = \"fast\"\n", "rate"),
        ("[store\n", "invalid serve configuration"),
        (
            "[store]\ndir = \"s\"\n[iceoryx]\npolicy = \"disconnect\"\n",
            "not supported by shared memory",
        ),
        ("[store]\ndir = \"s\"\n[iceoryx]\nqueue = 4\n", "unknown field `queue`"),
        ("[store]\ndir = \"s\"\n[commits]\npublish = \"asap\"\n", "expected \"durable\""),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .output_within(common::LIMIT)
            .unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{text}: {err}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output_within(common::LIMIT)
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the serve configuration"));
}

/// `strata serve` with `[iceoryx]` publishes its commits to shared memory and
/// `strata subscribe --transport iceoryx` on the same prefix prints them: consecutive
/// frames (each starts where the previous ended) holding the feed's trades.
#[test]
fn subscribe_over_iceoryx_shared_memory() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("strata-cli-test-{}", std::process::id());
    let config = write_config(dir.path(), &format!("[iceoryx]\nprefix = \"{prefix}\"\n"));
    let _serve = start(&config);
    let out = Command::new(BIN)
        .args(["subscribe", "--transport", "iceoryx", "--prefix", &prefix])
        .args(["--topic", "commits", "--count", "5", "--duration", "60"])
        .output_within(common::LIMIT)
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let frames: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 5, "{text}");
    for pair in frames.windows(2) {
        let end = pair[0]["seq"].as_u64().unwrap() + pair[0]["span"].as_u64().unwrap();
        assert_eq!(pair[1]["seq"].as_u64().unwrap(), end, "gap or duplicate: {text}");
    }
    for f in &frames {
        assert_eq!(f["ops"][0]["message"]["type"], "trade", "{f}");
    }
    let out = Command::new(BIN)
        .args(["subscribe", "--transport", "iceoryx", "--prefix", &prefix])
        .args(["--topic", "commits", "--from", "1", "--count", "1"])
        .output_within(common::LIMIT)
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no history to resume from"));
}
