//! Strata's WebSocket gateway: transport topics pushed to browsers and other WebSocket
//! clients as JSON or binary frames, with resume from a sequence.
//!
//! A [`Gateway`] reads each configured topic from a [`Transport`] subscriber on a
//! thread of its own, validates and renders every frame once (see [`frame`] for the
//! wire formats), keeps the most recent frames in a bounded ring, and pushes each frame
//! into the bounded queue of every WebSocket client subscribed to the topic.
//!
//! # Endpoints
//!
//! - `GET /ws?topic=T&from=SEQ&epoch=E&format=json|binary` upgrades to a WebSocket subscribed to
//!   topic `T`. `from` (optional) resumes at sequence `SEQ`: frames the ring still holds
//!   are sent first and — when the topic has the store's log ([`TopicSpec::with_log`]) —
//!   anything older is read from the log, then the client joins the live stream with no
//!   gap and no duplicate. Without `from` the client starts with the next live frame.
//!   Without `topic`, the client must send a subscribe command as its first message:
//!   `{"op":"subscribe","topic":"T","from":SEQ,"format":"json"}`.
//! - `GET /topics` answers the topics' counters as JSON ([`TopicStats`]).
//!
//! Client → server messages after subscribing: `{"op":"ping"}` (answered with
//! `{"pong":{}}`). Anything else — text that is not such a command, a binary message, a
//! message over [`GatewayConfig::max_client_message_bytes`] — closes *that* connection
//! with a close frame giving the reason; the other clients are not affected.
//!
//! # Slow clients
//!
//! Each client has a queue of at most [`GatewayConfig::client_queue_frames`] frames.
//! When it is full, [`GatewayConfig::policy`] applies: `drop-oldest` drops the oldest
//! queued frame and the client later receives `{"gap":{"stream":..,"from":..,"to":..}}`
//! in its place; `disconnect` closes the client with code 1008 and the reason (it
//! resubscribes with `from=`). A slow client never slows the others or the topic.
//!
//! # Holes
//!
//! Each connection tracks the next sequence it expects per stream. A frame that skips
//! sequences (the transport lost frames, or the client resumed below the ring) is
//! preceded by the missing frames read from the store's log when the topic has one,
//! else by a gap notice. Frames already sent (overlap of log, ring and live) are not
//! sent twice.
//!
//! # Rewrites
//!
//! A store that truncates a tail a newer epoch replaced (a replica, or an old primary
//! rejoining its cluster) republishes from the cut with the newer epoch (a rewind, see
//! [`strata_core::TopicPublisher`]). The topic drops the withdrawn frames from its ring
//! and moves its live edge back; each client that was sent any of them gets
//! `{"rewritten":{"from":..,"to":..,"epoch":..}}` and then the batches as the store
//! holds them now. A frame of an older epoch past what a client was sent (a leftover of
//! the truncated tail) is never sent.

#![deny(unsafe_code)]

mod conn;
pub mod frame;
mod hub;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::header::SEC_WEBSOCKET_KEY;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::{Mutex, RwLock};
use strata_core::{SlowSubscriberPolicy, StreamId, SubscriberOptions, Transport};

pub use frame::{ClientFormat, GatewayFrame, PayloadFormat, ValueFormat};
pub use hub::TopicStats;

/// Close code: policy violation (bad input, slow consumer).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code: going away (shutdown).
pub(crate) const CLOSE_AWAY: u16 = 1001;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong setting up or running the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[error("gateway configuration: {0}")]
    Config(String),
    /// A transport or store operation failed.
    #[error(transparent)]
    Core(#[from] strata_core::Error),
    /// A socket or thread operation failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A source of committed batches by sequence (the store's log): the stream crate's
/// trait, so one implementation serves the resumable subscriber and the gateway.
pub use strata_stream::CommitLog;

/// One topic the gateway serves.
#[derive(Clone)]
pub struct TopicSpec {
    /// The topic's name (on the transport and in `?topic=`).
    pub name: String,
    /// How its payloads are read.
    pub format: PayloadFormat,
    /// The store's log and the stream id its commit stream publishes with, for
    /// `commits` topics that serve history.
    pub log: Option<(Arc<dyn CommitLog>, StreamId)>,
}

impl std::fmt::Debug for TopicSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSpec")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("log_stream", &self.log.as_ref().map(|(_, s)| *s))
            .finish()
    }
}

impl TopicSpec {
    /// A topic without history beyond the gateway's ring.
    pub fn new(name: impl Into<String>, format: PayloadFormat) -> Self {
        Self { name: name.into(), format, log: None }
    }

    /// Serves resumes and fills holes of `stream` from `log` (a `commits` topic whose
    /// frames are the store's committed batches, as the commit stream publishes them).
    pub fn with_log(mut self, log: Arc<dyn CommitLog>, stream: StreamId) -> Self {
        self.log = Some((log, stream));
        self
    }
}

/// Tuning of a [`Gateway`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Frames a client may have queued before [`GatewayConfig::policy`] applies.
    pub client_queue_frames: usize,
    /// What happens to a client whose queue is full: drop-oldest (with a gap notice) or
    /// disconnect (with a close reason). `block` is refused: one slow browser must not
    /// stall a topic.
    pub policy: SlowSubscriberPolicy,
    /// Most frames the ring of each topic holds for resuming clients.
    pub ring_frames: usize,
    /// Most bytes (payload plus JSON) the ring of each topic holds.
    pub ring_bytes: usize,
    /// Largest client → server message accepted; a larger one closes the connection.
    pub max_client_message_bytes: usize,
    /// How long a client connected without `?topic=` has to send its subscribe command.
    pub subscribe_timeout: Duration,
    /// Most clients connected at once; more are closed with code 1013.
    pub max_clients: usize,
    /// Batches read from the log per step when a client resumes from history.
    pub log_chunk_batches: usize,
    /// How long a connection has to complete the headers of each HTTP request (the
    /// upgrade request included); a connection that has not is closed. Without it a
    /// client that connects and sends nothing, or half a request, holds a socket and a
    /// task for ever (1,500 such connections stayed open indefinitely).
    pub header_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            client_queue_frames: 1024,
            policy: SlowSubscriberPolicy::DropOldest,
            ring_frames: 8192,
            ring_bytes: 64 << 20,
            max_client_message_bytes: 4096,
            subscribe_timeout: Duration::from_secs(10),
            max_clients: 1024,
            log_chunk_batches: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl GatewayConfig {
    /// Sets [`GatewayConfig::client_queue_frames`].
    #[must_use]
    pub fn with_client_queue_frames(mut self, n: usize) -> Self {
        self.client_queue_frames = n;
        self
    }
    /// Sets [`GatewayConfig::policy`].
    #[must_use]
    pub fn with_policy(mut self, policy: SlowSubscriberPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Sets [`GatewayConfig::ring_frames`].
    #[must_use]
    pub fn with_ring_frames(mut self, n: usize) -> Self {
        self.ring_frames = n;
        self
    }
    /// Sets [`GatewayConfig::max_client_message_bytes`].
    #[must_use]
    pub fn with_max_client_message_bytes(mut self, n: usize) -> Self {
        self.max_client_message_bytes = n;
        self
    }
    /// Sets [`GatewayConfig::subscribe_timeout`].
    #[must_use]
    pub fn with_subscribe_timeout(mut self, d: Duration) -> Self {
        self.subscribe_timeout = d;
        self
    }

    /// Sets [`GatewayConfig::header_timeout`].
    #[must_use]
    pub fn with_header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d;
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        match self.policy {
            SlowSubscriberPolicy::DropOldest | SlowSubscriberPolicy::Disconnect => {}
            _ => {
                return bad(
                    "policy must be drop-oldest or disconnect (block would let one slow client stall the topic)",
                );
            }
        }
        if self.client_queue_frames == 0 {
            return bad("client_queue_frames must be at least 1");
        }
        if self.max_client_message_bytes < 64 {
            return bad("max_client_message_bytes must be at least 64");
        }
        if self.max_clients == 0 {
            return bad("max_clients must be at least 1");
        }
        if self.log_chunk_batches == 0 {
            return bad("log_chunk_batches must be at least 1");
        }
        if self.header_timeout.is_zero() {
            return bad("header_timeout must be more than zero");
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    topics: RwLock<HashMap<String, Arc<hub::Hub>>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) clients: AtomicUsize,
}

impl Inner {
    pub(crate) fn topic(&self, name: &str) -> Option<Arc<hub::Hub>> {
        self.topics.read().get(name).cloned()
    }

    fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("a gateway topic thread panicked");
            }
        }
        self.close_clients();
    }

    fn close_clients(&self) {
        for hub in self.topics.read().values() {
            hub.close_all("the gateway is shutting down");
        }
    }
}

/// The WebSocket gateway; see the crate docs. Dropping it stops the topic threads and
/// closes the clients.
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("topics", &self.inner.topics.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with no topics yet.
    pub fn new(config: GatewayConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                topics: RwLock::new(HashMap::new()),
                stop: Arc::new(AtomicBool::new(false)),
                threads: Mutex::new(Vec::new()),
                clients: AtomicUsize::new(0),
            }),
        })
    }

    /// Starts serving `topic`, read from `transport` with `options`. The subscriber is
    /// created before this returns (so frames published afterwards reach the gateway);
    /// if it fails later it is re-created, resuming after the last sequence received.
    pub fn add_topic(
        &self,
        transport: Arc<dyn Transport>,
        topic: TopicSpec,
        options: SubscriberOptions,
    ) -> Result<()> {
        if topic.name.is_empty() {
            return Err(Error::Config("a topic needs a name".into()));
        }
        if topic.log.is_some() && !matches!(topic.format, PayloadFormat::Commits { .. }) {
            return Err(Error::Config(format!(
                "topic {:?}: history from the log needs a commits topic (format {} cannot be read from the log)",
                topic.name,
                topic.format.name()
            )));
        }
        let mut topics = self.inner.topics.write();
        if topics.contains_key(&topic.name) {
            return Err(Error::Config(format!("topic {:?} is configured twice", topic.name)));
        }
        let first = transport.subscriber(&topic.name, &options)?;
        let hub = Arc::new(hub::Hub::new(
            topic.clone(),
            self.inner.config.ring_frames,
            self.inner.config.ring_bytes,
        ));
        let (hub2, stop) = (Arc::clone(&hub), Arc::clone(&self.inner.stop));
        let thread = std::thread::Builder::new()
            .name(format!("strata-gw-{}", topic.name))
            .spawn(move || hub::run_reader(hub2, transport, options, stop, first))
            .map_err(|source| Error::Io { op: "spawn the topic thread", source })?;
        self.inner.threads.lock().push(thread);
        topics.insert(topic.name, hub);
        Ok(())
    }

    /// The counters of every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicStats> {
        topics_of(&self.inner)
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.inner.clients.load(Ordering::Relaxed)
    }

    /// The HTTP routes (`/ws`, `/topics`), to serve with axum or merge into an app.
    ///
    /// [`GatewayConfig::header_timeout`] is enforced by [`Gateway::serve`], not by the
    /// routes: an app that serves them itself must bound header reads on its own.
    pub fn router(&self) -> Router {
        let max = self.inner.config.max_client_message_bytes;
        // The protocol limit lets messages somewhat over the gateway's own limit through,
        // so such a client gets a close frame with the reason rather than a torn socket.
        let protocol_limit = max.saturating_mul(4).max(64 * 1024);
        Router::new()
            .route(
                "/ws",
                get(
                    move |ws: WebSocketUpgrade,
                          headers: HeaderMap,
                          State(inner): State<Arc<Inner>>,
                          Query(params): Query<HashMap<String, String>>| async move {
                        // The extractor only checks that the key is present; a key that is
                        // not a 16-byte nonce is a broken or hostile client (RFC 6455 4.2.1).
                        let key = headers.get(SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
                        if !key.is_some_and(is_websocket_key) {
                            let resp: Response = (
                                StatusCode::BAD_REQUEST,
                                "Sec-WebSocket-Key must be the base64 encoding of 16 bytes\n",
                            )
                                .into_response();
                            return resp;
                        }
                        let resp: Response = ws
                            .max_message_size(protocol_limit)
                            .max_frame_size(protocol_limit)
                            .on_upgrade(move |socket| conn::run(socket, inner, params))
                            .into_response();
                        resp
                    },
                ),
            )
            .route(
                "/topics",
                get(|State(inner): State<Arc<Inner>>| async move { axum::Json(topics_of(&inner)) }),
            )
            .with_state(Arc::clone(&self.inner))
    }

    /// Serves the routes on `listener` (TCP_NODELAY on every connection) until
    /// `shutdown` completes; then every client is closed (code 1001), connections still
    /// in HTTP finish their current request, and the call returns once they ended.
    ///
    /// A connection that does not complete the headers of a request within
    /// [`GatewayConfig::header_timeout`] is closed.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let router = self.router();
        let header_timeout = self.inner.config.header_timeout;
        // Tells connections still speaking HTTP to finish their request and close.
        let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // Reap finished connection tasks so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let tcp = match accepted {
                        Ok((tcp, _peer)) => tcp,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    // Frames are small and latency matters: no Nagle delay (with the
                    // client's delayed ACKs it held frames back for ~40 ms).
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "gateway: cannot set TCP_NODELAY");
                    }
                    connections.spawn(serve_connection(
                        tcp,
                        router.clone(),
                        header_timeout,
                        closing_rx.clone(),
                    ));
                }
            }
        }
        drop(listener);
        self.inner.close_clients();
        // Only fails when every receiver is gone, i.e. no connection is left to tell.
        let _ = closing_tx.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// Stops the topic threads and closes every client (also done on drop).
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

/// Serves one HTTP connection (and hands it over to the WebSocket task on upgrade).
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    router: Router,
    header_timeout: Duration,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper enforces the header timeout only with a timer; without one a client that
    // never finishes its request holds the connection for ever.
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    let service = hyper_util::service::TowerToHyperService::new(router);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        // `is_ok()` drops the borrow of the watch value before the await below.
        _ = async { closing.wait_for(|closing| *closing).await.is_ok() } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's problem, not the gateway's.
        tracing::debug!(error = %e, "gateway: HTTP connection ended with an error");
    }
}

/// Handles a failed `accept`: errors of one connection are skipped; others (out of file
/// descriptors, …) are logged and retried after a pause, so the loop does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "gateway: accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: the padded base64 encoding of exactly
/// 16 bytes (22 symbols, the last one with its 4 unused bits zero, then `==`).
fn is_websocket_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let [symbols @ .., b'=', b'='] = key else { return false };
    let Some(last) = symbols.last() else { return false };
    symbols.len() == 22
        && symbols.iter().all(|c| ALPHABET.contains(c))
        // The 22nd symbol carries 2 bits of the 16th byte; its other 4 must be zero.
        && ALPHABET.iter().position(|c| c == last).is_some_and(|v| v & 0x0f == 0)
}

fn topics_of(inner: &Inner) -> Vec<TopicStats> {
    let mut v: Vec<TopicStats> = inner.topics.read().values().map(|h| h.stats()).collect();
    v.sort_by(|a, b| a.topic.cmp(&b.topic));
    v
}

#[cfg(test)]
mod tests {
    use super::is_websocket_key;

    #[test]
    fn websocket_keys() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(is_websocket_key(b"/////////////////////w=="));
        for bad in [
            &b""[..],
            b"==",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZSE=",
            b"dGhlIHNhbXBsZSBub25jZQ==AAAA",
            b"dGhlIHNhbXBsZSBub25j-Q==",
            b"/////////////////////x==",
        ] {
            assert!(!is_websocket_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
