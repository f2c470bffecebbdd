//! Strata's TCP transport: topics carried as length-delimited frames over TCP.
//!
//! A [`TcpTransport::server`] listens on one address and hosts the publishers of any
//! number of topics; a [`TcpTransport::client`] makes subscribers that connect to such
//! a server, say which topic they want (and from which sequence), and receive frames.
//! The byte layout is in [`format`](mod@format).
//!
//! tokio runs underneath (one small runtime per transport), but the endpoints are
//! synchronous: [`TcpPublisher::publish`] encodes the frame once and hands it to each
//! connection's bounded send queue, and [`TcpSubscriber::wait`] blocks on a condition
//! variable fed by the connection's reader task. Async code uses
//! [`TcpPublisher::publish_async`] and [`AsyncTopicSubscriber::recv`] instead.
//!
//! - Every connection has TCP_NODELAY set and a bounded send queue to which the
//!   publisher's [`SlowSubscriberPolicy`](strata_core::SlowSubscriberPolicy) applies.
//! - A malformed message (garbage, an oversized length, a truncated frame, a hello for
//!   a topic no publisher serves) closes *that* connection with a logged reason
//!   (`tracing::warn!`); the server keeps serving the others.
//! - The server keeps the last [`PublisherOptions::history`](strata_core::PublisherOptions)
//!   frames of each topic; a subscriber that (re)connects with a `resume_from` sequence
//!   gets the frames it missed that are still held (a frame spanning `resume_from` is
//!   replayed whole), and a [`Delivery::Gap`](strata_core::Delivery::Gap) only for the
//!   ones that are not. A `resume_from` beyond the topic's live edge (after the sequence
//!   its next frame starts at) is refused: creating the subscriber fails with the
//!   reason, and a reconnect is retried until the publisher reaches that point.
//! - Client subscribers reconnect by themselves after a lost connection (exponential
//!   backoff) and resume from the sequence after the last frame they received, telling
//!   the server that frame's epoch.
//! - A server given its topic's epoch history ([`TcpTransport::set_history_check`], as
//!   `strata serve` does with the store's) compares a resuming client's position with
//!   it: when the client saw sequences this history rewrote (it followed a primary
//!   whose diverged tail a failover replaced), the resume moves back to the first
//!   rewritten sequence, and the client receives frames of a newer epoch at or below
//!   its position — a rewind, by the transport contract; a position in an epoch the
//!   history does not know yet is refused with the reason.
//! - A [`TcpTransport::cluster_client`] knows several servers (a cluster's nodes, each
//!   publishing its store's commit stream): a subscriber whose server goes away, or
//!   refuses its resume, moves on to the next one and resumes there. With the epoch
//!   check above, what it receives stays one history with no gap and no duplicate,
//!   and whatever a failover rewrote is announced by the rewind.
//!
//! A topic becomes known to a server when a publisher is created for it and stays known
//! (with its history and its subscribers' connections) when that publisher is dropped,
//! so a restarted publisher continuing the stream reaches the same subscribers.

#![warn(missing_docs)]

#[cfg(feature = "bench")]
pub mod bench;
mod client;
pub mod format;
mod server;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_core::{
    Epoch, Error, HistoryCheck, PublisherOptions, Result, SeqNo, SubscriberOptions, TopicPublisher,
    TopicSubscriber, Transport,
};
use tokio::runtime::{Handle, Runtime};

pub use client::{AsyncTopicSubscriber, OwnedDelivery, TcpSubscriber};
pub use server::TcpPublisher;

/// The transport's name, as [`Transport::name`] returns it.
pub const NAME: &str = "tcp";

/// What a topic's log says about a client holding every sequence up to `last` as
/// written in `epoch` (for a store, [`strata_core::Db::check_history`]).
pub type HistoryCheckFn = Arc<dyn Fn(Epoch, SeqNo) -> HistoryCheck + Send + Sync>;

/// One frame of a topic read back from its log (see [`HistorySourceFn`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedFrame {
    /// The first sequence the frame covers.
    pub seq: u64,
    /// How many sequences it covers (at least 1).
    pub span: u32,
    /// The epoch that wrote it.
    pub epoch: u64,
    /// The frame's payload, as the topic's publisher published it.
    pub payload: bytes::Bytes,
}

/// Reads a topic's frames back from its log, for a resume its history ring no longer
/// holds: called with `(from, to, max_bytes)`, it returns the frames covering `from`
/// up to (not including) `to`, in order (the first may start before `from` when a frame
/// spans it), and may stop early: after about `max_bytes` of payload, or where its log
/// ends. It runs on a blocking thread, so it may read from disk. An error is logged and
/// the client gets a gap for what was not read, as without a source.
pub type HistorySourceFn =
    Arc<dyn Fn(u64, u64, usize) -> std::result::Result<Vec<LoggedFrame>, String> + Send + Sync>;

/// Payload a server reads from a [`HistorySourceFn`] for one resuming client, at most
/// (a client further behind gets the rest as a gap and reads it from the store).
pub const HISTORY_SOURCE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Tuning knobs of a [`TcpTransport`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TcpConfig {
    /// Worker threads of the transport's tokio runtime.
    pub worker_threads: usize,
    /// How long a subscriber waits for its connection and hello answer.
    pub connect_timeout: Duration,
    /// How long the server waits for a new connection's hello before closing it.
    pub hello_timeout: Duration,
    /// First delay before a client reconnects after losing its connection.
    pub min_backoff: Duration,
    /// Longest delay between reconnect attempts.
    pub max_backoff: Duration,
    /// Server: when a connection's queue is empty and its writer idle, the publishing
    /// thread writes the frame to the socket itself (one syscall per frame, no thread
    /// hop: lowest latency). Off: every frame goes through the connection's writer
    /// task, which coalesces queued frames into one write (highest throughput).
    /// Default on: on loopback it lowered p50 latency by ~25% but cut the throughput
    /// of 16-byte frames ~2.5x (see docs/transport-tcp.md); turn it off for bulk
    /// streams of small frames.
    pub direct_write: bool,
    /// Client: the thread that calls a subscriber's `poll`/`wait` reads its socket
    /// itself, through a small runtime of the subscriber's own (the kernel wakes that
    /// thread directly: no hand-off between threads). Off: the transport's runtime
    /// reads every connection in the background into the subscriber's queue, which
    /// keeps reading (and reconnecting) while the application does not poll.
    /// Subscribers created inside async code always use the transport's runtime.
    pub inline_read: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            worker_threads: 1,
            connect_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            direct_write: true,
            inline_read: true,
        }
    }
}

impl TcpConfig {
    /// Sets [`TcpConfig::worker_threads`] (at least 1).
    #[must_use]
    pub fn with_worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }
    /// Sets [`TcpConfig::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Sets [`TcpConfig::hello_timeout`].
    #[must_use]
    pub fn with_hello_timeout(mut self, d: Duration) -> Self {
        self.hello_timeout = d;
        self
    }
    /// Sets [`TcpConfig::direct_write`].
    #[must_use]
    pub fn with_direct_write(mut self, on: bool) -> Self {
        self.direct_write = on;
        self
    }
    /// Sets [`TcpConfig::inline_read`].
    #[must_use]
    pub fn with_inline_read(mut self, on: bool) -> Self {
        self.inline_read = on;
        self
    }
    /// Sets the reconnect backoff range.
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}

/// The transport's tokio runtime, shut down when the last holder lets go (or
/// explicitly when a server transport is dropped).
pub(crate) struct Rt {
    rt: Mutex<Option<Runtime>>,
    handle: Handle,
}

impl Rt {
    fn new(threads: usize, name: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(format!("strata-tcp-{name}"))
            .enable_all()
            .build()
            .map_err(|e| {
                Error::transport(NAME, "", format!("cannot start the tokio runtime: {e}"))
            })?;
        let handle = rt.handle().clone();
        Ok(Self { rt: Mutex::new(Some(rt)), handle })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The runtime was shut down (its server transport was dropped).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.rt.lock().is_none()
    }

    fn shutdown(&self) {
        let Some(rt) = self.rt.lock().take() else { return };
        if Handle::try_current().is_ok() {
            // Inside some async context blocking is not allowed: let the workers wind
            // down on their own.
            rt.shutdown_background();
        } else {
            // Wait (briefly) so sockets and the listener are closed when drop returns.
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.get_mut().take() {
            rt.shutdown_background();
        }
    }
}

/// A TCP transport endpoint: a server (hosts publishers, and can make subscribers to
/// itself) or a client (makes subscribers to a remote server).
pub struct TcpTransport {
    rt: Arc<Rt>,
    server: Option<Arc<server::ServerState>>,
    /// Where subscribers connect: never empty; the first is tried first.
    remotes: Vec<SocketAddr>,
    config: TcpConfig,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("role", &if self.server.is_some() { "server" } else { "client" })
            .field("addr", &self.remotes)
            .finish()
    }
}

fn resolve(addr: impl ToSocketAddrs) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| Error::transport(NAME, "", format!("cannot resolve the address: {e}")))?
        .next()
        .ok_or_else(|| Error::transport(NAME, "", "the address resolved to nothing"))
}

impl TcpTransport {
    /// Starts a server listening on `addr` (port 0 picks a free port; see
    /// [`TcpTransport::local_addr`]).
    pub fn server(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::server_with(addr, TcpConfig::default())
    }

    /// [`TcpTransport::server`] with explicit tuning.
    pub fn server_with(addr: impl ToSocketAddrs, config: TcpConfig) -> Result<Self> {
        let addr = resolve(addr)?;
        let rt = Arc::new(Rt::new(config.worker_threads, "server")?);
        let state = server::start(&rt, addr, config.clone())?;
        let mut remote = state.local_addr();
        if remote.ip().is_unspecified() {
            remote.set_ip(if remote.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Ok(Self { rt, server: Some(state), remotes: vec![remote], config })
    }

    /// A client of the server at `addr`. Nothing is connected until a subscriber is made.
    pub fn client(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::client_with(addr, TcpConfig::default())
    }

    /// [`TcpTransport::client`] with explicit tuning.
    pub fn client_with(addr: impl ToSocketAddrs, config: TcpConfig) -> Result<Self> {
        let remote = resolve(addr)?;
        let rt = Arc::new(Rt::new(config.worker_threads, "client")?);
        Ok(Self { rt, server: None, remotes: vec![remote], config })
    }

    /// A client of several servers publishing the same topics — a cluster's nodes,
    /// each serving its store's commit stream. A subscriber connects to the first that
    /// answers; when its connection is lost, or a server refuses its resume (behind
    /// the position, or an epoch it does not know yet), it moves on to the next in
    /// order (round robin, backing off after each failed attempt) and resumes there
    /// from the sequence after its last frame, with that frame's epoch (see the crate
    /// documentation for what a server does with it).
    pub fn cluster_client<A: ToSocketAddrs>(addrs: impl IntoIterator<Item = A>) -> Result<Self> {
        Self::cluster_client_with(addrs, TcpConfig::default())
    }

    /// [`TcpTransport::cluster_client`] with explicit tuning.
    pub fn cluster_client_with<A: ToSocketAddrs>(
        addrs: impl IntoIterator<Item = A>,
        config: TcpConfig,
    ) -> Result<Self> {
        let remotes = addrs.into_iter().map(resolve).collect::<Result<Vec<_>>>()?;
        if remotes.is_empty() {
            return Err(Error::InvalidArgument(
                "a cluster client needs at least one server address".to_owned(),
            ));
        }
        let rt = Arc::new(Rt::new(config.worker_threads, "client")?);
        Ok(Self { rt, server: None, remotes, config })
    }

    /// Gives a server's `topic` its log's epoch history, so that a client resuming
    /// after a frame of another history (a primary a failover replaced) is moved back
    /// to what this history rewrote, or refused while this server does not know the
    /// client's epoch (see the crate documentation). Without it a resume is served by
    /// sequence alone. Fails on a client transport.
    pub fn set_history_check(&self, topic: &str, check: HistoryCheckFn) -> Result<()> {
        let Some(server) = &self.server else {
            return Err(Error::InvalidArgument(format!(
                "topic {topic:?}: only a server checks resuming clients against a history"
            )));
        };
        server.set_history_check(topic, check);
        Ok(())
    }

    /// Gives a server's `topic` a way to read its frames back from its log: a client
    /// resuming below what the history ring holds (it was away long, or it moves here
    /// from another node after a failover) gets those frames from the log, then the
    /// ring, then live frames, with no gap and no duplicate, instead of a gap. At most
    /// [`HISTORY_SOURCE_MAX_BYTES`] of payload are read per resume; beyond that, and
    /// where the source fails or its log ends, the client gets a gap as before. Fails
    /// on a client transport.
    pub fn set_history_source(&self, topic: &str, source: HistorySourceFn) -> Result<()> {
        let Some(server) = &self.server else {
            return Err(Error::InvalidArgument(format!(
                "topic {topic:?}: only a server replays a topic's log to resuming clients"
            )));
        };
        server.set_history_source(topic, source);
        Ok(())
    }

    /// The address a server listens on (`None` for a client).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr())
    }

    /// The address subscribers made by this transport connect to first.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remotes[0]
    }

    /// Every address subscribers made by this transport may connect to, in order.
    pub fn remote_addrs(&self) -> &[SocketAddr] {
        &self.remotes
    }

    /// Creates a publisher for `topic` (servers only), as the concrete type.
    pub fn tcp_publisher(&self, topic: &str, options: &PublisherOptions) -> Result<TcpPublisher> {
        match &self.server {
            Some(state) => state.publisher(topic, options),
            None => Err(Error::transport(
                NAME,
                topic,
                "a client transport cannot publish: create the publisher on a TcpTransport::server",
            )),
        }
    }

    /// Creates a subscriber for `topic`, as the concrete type. Returns once the server
    /// accepted the subscription, so every frame published after this returns reaches
    /// it; fails if the server cannot be reached or does not serve the topic.
    pub fn tcp_subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<TcpSubscriber> {
        client::subscribe(self.rt.clone(), self.remotes.clone(), topic, options, None, &self.config)
    }

    /// [`TcpTransport::tcp_subscriber`] resuming at `options.resume_from` after a frame
    /// of `epoch` that the caller holds: a server that knows the topic's epoch history
    /// moves the resume back to whatever that history rewrote since (the caller then
    /// receives frames of a newer epoch at or below its position), or refuses an epoch
    /// it does not know yet (see the crate documentation).
    pub fn tcp_subscriber_after(
        &self,
        topic: &str,
        options: &SubscriberOptions,
        epoch: u64,
    ) -> Result<TcpSubscriber> {
        client::subscribe(
            self.rt.clone(),
            self.remotes.clone(),
            topic,
            options,
            Some(epoch),
            &self.config,
        )
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        if self.server.is_some() {
            // A server's connections end with it, even if endpoints are still alive.
            self.rt.shutdown();
        }
    }
}

impl Transport for TcpTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn publisher(
        &self,
        topic: &str,
        options: &PublisherOptions,
    ) -> Result<Box<dyn TopicPublisher>> {
        Ok(Box::new(self.tcp_publisher(topic, options)?))
    }

    fn subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<Box<dyn TopicSubscriber>> {
        Ok(Box::new(self.tcp_subscriber(topic, options)?))
    }
}
