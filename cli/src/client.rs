//! A small line protocol for writing and reading single keys (`[client] listen` of
//! `strata serve`), and `strata put` / `strata get` that speak it.
//!
//! One request per line, one answer per line:
//!
//! | request              | answers                                          |
//! | -------------------- | ------------------------------------------------ |
//! | `PUT <key> <value>`  | `OK <seq> [<epoch>]` once the write is acknowledged |
//! | `GET <key>`          | `VALUE <value>` or `NONE`                        |
//!
//! or `ERR <message>` (a write to a replica names the primary). A replication node
//! adds the epoch the write was made in, so a fault test can tell which primary
//! acknowledged it (left out in the rare case that the node changed epochs while the
//! write was in progress, when it cannot say which of the two). Keys contain no
//! whitespace; a value is the rest of the line. A write goes through the replication
//! node when there is one, so it is acknowledged by the mode's rule (and, with a
//! failover authority, only under the primary's lease); a read is served from this
//! node's store (on a replica: at its applied sequence).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use strata_core::{Db, Durability, WriteBatch};
use strata_replication::Node;

/// Where client writes go.
#[derive(Clone)]
pub enum Target {
    /// A store without replication.
    Local(Db),
    /// A replication node.
    Node(Arc<Node>),
}

/// The client listener; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` and answers every connection on a thread of its own.
    pub fn start(addr: &str, target: Target) -> anyhow::Result<Server> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("[client] cannot listen on {addr}"))?;
        let local = listener.local_addr().context("[client] listener address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("strata-client-accept".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        let Ok(stream) = conn else { continue };
                        let target = target.clone();
                        let spawned = std::thread::Builder::new()
                            .name("strata-client".into())
                            .spawn(move || {
                                if let Err(e) = serve_connection(stream, &target) {
                                    tracing::debug!(error = %e, "client connection ended");
                                }
                            });
                        if let Err(e) = spawned {
                            tracing::error!(error = %e, "cannot start a client thread");
                        }
                    }
                })
                .context("cannot start the client listener")?
        };
        Ok(Server { addr: local, stop, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(stream: TcpStream, target: &Target) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    // An answer goes out as soon as it is written, not when the client acknowledges
    // the previous segment.
    stream.set_nodelay(true)?;
    let writer = stream.try_clone()?;
    serve_lines(BufReader::new(stream), writer, target)
}

/// Answers each request line of `reader` on `writer`, each answer in one `write`: an
/// answer written in pieces (`writeln!` writes the text, then the line break) on a
/// socket with Nagle's algorithm held its last piece until the client's delayed ACK
/// (about 40 ms on Linux), once per request on a persistent connection.
fn serve_lines(
    reader: impl BufRead,
    mut writer: impl Write,
    target: &Target,
) -> std::io::Result<()> {
    for line in reader.lines() {
        let line = line?;
        // One line per answer: a message's own line breaks become spaces.
        let mut answer = answer(line.trim_end_matches('\r'), target).replace('\n', " ");
        answer.push('\n');
        writer.write_all(answer.as_bytes())?;
    }
    Ok(())
}

fn answer(line: &str, target: &Target) -> String {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd.to_ascii_uppercase().as_str() {
        "PUT" => {
            let Some((key, value)) = rest.split_once(' ').filter(|(k, _)| !k.is_empty()) else {
                return "ERR usage: PUT <key> <value>".into();
            };
            let mut batch = WriteBatch::new();
            batch.put(key, value);
            let written = match target {
                Target::Local(db) => db
                    .write(&batch, Durability::Sync)
                    .map(|seq| (seq, None))
                    .map_err(|e| e.to_string()),
                Target::Node(node) => {
                    // The epoch is only known for sure when it did not change while the
                    // write was in progress (an epoch never goes down).
                    let epoch = || node.db().map(|db| db.epoch());
                    let before = epoch();
                    node.write(&batch)
                        .map(|seq| (seq, before.filter(|b| Some(*b) == epoch())))
                        .map_err(|e| e.to_string())
                }
            };
            match written {
                Ok((seq, Some(epoch))) => format!("OK {} {}", seq.0, epoch.0),
                Ok((seq, None)) => format!("OK {}", seq.0),
                Err(e) => format!("ERR {e}"),
            }
        }
        "GET" => {
            let key = rest.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return "ERR usage: GET <key>".into();
            }
            let db = match target {
                Target::Local(db) => Some(db.clone()),
                Target::Node(node) => node.db(),
            };
            let Some(db) = db else {
                return "ERR the store is being replaced by a checkpoint; retry".into();
            };
            match db.get(key.as_bytes()) {
                Ok(Some(v)) => format!("VALUE {}", String::from_utf8_lossy(&v)),
                Ok(None) => "NONE".into(),
                Err(e) => format!("ERR {e}"),
            }
        }
        _ => "ERR unknown request: expected PUT <key> <value> or GET <key>".into(),
    }
}

/// Sends one request line to `addr` and returns the answer line.
pub fn request(addr: &str, line: &str, timeout: Duration) -> anyhow::Result<String> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&sock, timeout)
        .with_context(|| format!("cannot connect to the client address {addr}"))?;
    stream.set_read_timeout(Some(timeout)).context("configure the connection")?;
    let mut writer = stream.try_clone().context("configure the connection")?;
    writeln!(writer, "{line}").with_context(|| format!("send to {addr}"))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))?;
    if answer.is_empty() {
        bail!("{addr} closed the connection without an answer");
    }
    Ok(answer.trim_end().to_owned())
}

/// Options of `strata put`.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The node's client address (`[client] listen` of `strata serve`).
    pub addr: String,
    /// The key (no whitespace).
    pub key: String,
    /// The value.
    pub value: String,
    /// How long to wait for the acknowledgement, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// Options of `strata get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The node's client address (`[client] listen` of `strata serve`).
    pub addr: String,
    /// The key.
    pub key: String,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
}

/// Runs `strata put`: prints the write's sequence once acknowledged.
pub fn put(args: &PutArgs) -> anyhow::Result<()> {
    if args.key.is_empty() || args.key.contains(char::is_whitespace) {
        bail!("the key must be non-empty and contain no whitespace");
    }
    if args.value.contains('\n') {
        bail!("the value must be one line");
    }
    let line = format!("PUT {} {}", args.key, args.value);
    let answer = request(&args.addr, &line, Duration::from_millis(args.timeout_ms.max(1)))?;
    match answer.strip_prefix("OK ") {
        Some(rest) => {
            match rest.split_once(' ') {
                Some((seq, epoch)) => println!("acknowledged at seq {seq} (epoch {epoch})"),
                None => println!("acknowledged at seq {rest}"),
            }
            Ok(())
        }
        None => bail!("{}: {}", args.addr, answer.strip_prefix("ERR ").unwrap_or(&answer)),
    }
}

/// Runs `strata get`: prints the value; exits 1 when the key is absent.
pub fn get(args: &GetArgs) -> anyhow::Result<()> {
    let line = format!("GET {}", args.key);
    let answer = request(&args.addr, &line, Duration::from_millis(args.timeout_ms.max(1)))?;
    if let Some(v) = answer.strip_prefix("VALUE ") {
        println!("{v}");
        return Ok(());
    }
    if answer == "VALUE" {
        println!();
        return Ok(());
    }
    if answer == "NONE" {
        bail!("{}: no value for {:?}", args.addr, args.key);
    }
    bail!("{}: {}", args.addr, answer.strip_prefix("ERR ").unwrap_or(&answer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Records every `write` call.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_answer_is_one_write_of_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            strata_plugins::StackConfig::default().builder(dir.path()).unwrap().open().unwrap();
        let target = Target::Local(db);
        let requests = "PUT k hello world\nGET k\nGET missing\nPUT\nNOPE\r\n";
        let mut out = Writes::default();
        serve_lines(requests.as_bytes(), &mut out, &target).unwrap();
        let answers: Vec<String> =
            out.0.iter().map(|w| String::from_utf8(w.clone()).unwrap()).collect();
        assert_eq!(answers.len(), 5, "{answers:?}");
        for a in &answers {
            assert!(a.ends_with('\n') && a.matches('\n').count() == 1, "{a:?}");
        }
        assert!(answers[0].starts_with("OK "), "{answers:?}");
        assert_eq!(answers[1], "VALUE hello world\n");
        assert_eq!(answers[2], "NONE\n");
        assert!(answers[3].starts_with("ERR usage: PUT"), "{answers:?}");
        assert!(answers[4].starts_with("ERR unknown request"), "{answers:?}");
    }
}
