//! One WebSocket connection: subscription, catch-up from the log, then the live queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use strata_core::{Epoch, FrameHeader, HistoryCheck, SeqNo, StreamId, WalReader};

use crate::frame::{ClientFormat, GatewayFrame, Notice, notice};
use crate::hub::{ClientQueue, Hub, Out};
use crate::{CLOSE_POLICY, CommitLog, Inner};

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_UNSUPPORTED: u16 = 1003;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_SIZE: u16 = 1009;
const CLOSE_AGAIN: u16 = 1013;
/// Close code: the server hit an error it cannot serve around.
const CLOSE_SERVER_ERROR: u16 = 1011;
/// Items taken from the queue per step.
const TAKE: usize = 64;
/// How long a closing connection waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a client subscribed to.
#[derive(Debug)]
struct Request {
    topic: String,
    from: Option<u64>,
    /// The epoch of the batch the client saw last (`from - 1`), to check the history.
    epoch: Option<u64>,
    format: ClientFormat,
}

/// A client → server command.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Command {
    Subscribe {
        topic: String,
        #[serde(default)]
        from: Option<u64>,
        #[serde(default)]
        epoch: Option<u64>,
        #[serde(default)]
        format: ClientFormat,
    },
    Ping,
}

/// Why the writer stopped.
enum Stop {
    /// Close the connection with this code and reason.
    Close(u16, String),
    /// The socket is gone; nothing more can be sent.
    Gone,
}

/// Decrements the client count when the connection ends.
struct Counted(Arc<Inner>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code, reason: reason[..end].into() }))
}

async fn close_socket(mut ws: WebSocket, code: u16, reason: &str) {
    tracing::info!(code, reason, "gateway: closing a client");
    if ws.send(close_frame(code, reason)).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

fn request_from_params(params: &HashMap<String, String>) -> Result<Option<Request>, String> {
    for key in params.keys() {
        if !matches!(key.as_str(), "topic" | "from" | "epoch" | "format") {
            return Err(format!(
                "unknown query parameter {key:?}; expected topic, from, epoch, format"
            ));
        }
    }
    let from = match params.get("from") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| format!("from={v:?} is not a sequence"))?),
    };
    let epoch = match params.get("epoch") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| format!("epoch={v:?} is not an epoch"))?),
    };
    let format = match params.get("format").map(String::as_str) {
        None | Some("json") => ClientFormat::Json,
        Some("binary") => ClientFormat::Binary,
        Some(other) => return Err(format!("format={other:?}: expected json or binary")),
    };
    Ok(params.get("topic").map(|t| Request { topic: t.clone(), from, epoch, format }))
}

fn parse_command(text: &str) -> Result<Command, String> {
    serde_json::from_str(text).map_err(|e| {
        format!("not a command ({e}); send {{\"op\":\"ping\"}} or {{\"op\":\"subscribe\",...}}")
    })
}

/// Maps a receive error to a close code and reason.
fn receive_error(e: &axum::Error) -> (u16, String) {
    let text = e.to_string();
    let code = if text.contains("too long") || text.contains("Space limit") {
        CLOSE_SIZE
    } else if text.to_ascii_lowercase().contains("utf-8") {
        CLOSE_INVALID
    } else {
        CLOSE_PROTOCOL
    };
    (code, format!("bad message: {text}"))
}

async fn wait_subscribe(ws: &mut WebSocket, inner: &Inner) -> Result<Request, (u16, String)> {
    let limit = inner.config.max_client_message_bytes;
    let timeout = inner.config.subscribe_timeout;
    let first = async {
        loop {
            match ws.recv().await {
                None => return Err((CLOSE_NORMAL, "closed before subscribing".to_owned())),
                Some(Err(e)) => return Err(receive_error(&e)),
                Some(Ok(Message::Text(t))) => {
                    if t.len() > limit {
                        return Err((CLOSE_SIZE, too_large(t.len(), limit)));
                    }
                    return match parse_command(t.as_str()) {
                        Ok(Command::Subscribe { topic, from, epoch, format }) => {
                            Ok(Request { topic, from, epoch, format })
                        }
                        Ok(Command::Ping) => Err((
                            CLOSE_POLICY,
                            "subscribe first: {\"op\":\"subscribe\",\"topic\":...}".to_owned(),
                        )),
                        Err(reason) => Err((CLOSE_POLICY, reason)),
                    };
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err((CLOSE_UNSUPPORTED, binary_refused()));
                }
                Some(Ok(Message::Close(_))) => {
                    return Err((CLOSE_NORMAL, "closed before subscribing".to_owned()));
                }
                Some(Ok(_)) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, first).await {
        Ok(r) => r,
        Err(_) => {
            Err((CLOSE_POLICY, format!("no subscribe command within {} ms", timeout.as_millis())))
        }
    }
}

fn too_large(len: usize, limit: usize) -> String {
    format!("message of {len} bytes exceeds the limit of {limit} bytes")
}

fn binary_refused() -> String {
    "binary messages are not accepted; send JSON text commands".to_owned()
}

/// Runs one connection to its end.
pub(crate) async fn run(mut ws: WebSocket, inner: Arc<Inner>, params: HashMap<String, String>) {
    let count = inner.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let _counted = Counted(Arc::clone(&inner));
    if count > inner.config.max_clients {
        let reason = format!("too many clients (limit {})", inner.config.max_clients);
        return close_socket(ws, CLOSE_AGAIN, &reason).await;
    }
    let request = match request_from_params(&params) {
        Err(reason) => return close_socket(ws, CLOSE_POLICY, &reason).await,
        Ok(Some(r)) => r,
        Ok(None) => match wait_subscribe(&mut ws, &inner).await {
            Ok(r) => r,
            Err((code, reason)) => return close_socket(ws, code, &reason).await,
        },
    };
    let Some(hub) = inner.topic(&request.topic) else {
        let reason = format!("unknown topic {:?}; GET /topics lists them", request.topic);
        return close_socket(ws, CLOSE_POLICY, &reason).await;
    };
    tracing::debug!(topic = %request.topic, from = ?request.from, "gateway: client subscribed");
    let (sink, stream) = ws.split();
    let client = Arc::new(ClientQueue::new(inner.config.client_queue_frames, inner.config.policy));
    let reader = tokio::spawn(read_client(
        stream,
        Arc::clone(&client),
        inner.config.max_client_message_bytes,
    ));
    let mut writer = Writer {
        sink,
        hub: Arc::clone(&hub),
        client: Arc::clone(&client),
        format: request.format,
        from: request.from,
        epoch: request.epoch,
        topic: request.topic.clone(),
        next: Vec::new(),
        sent_epochs: Vec::new(),
        chunk: inner.config.log_chunk_batches,
    };
    let stop = writer.run().await;
    hub.unregister(&client);
    if let Stop::Close(code, reason) = stop {
        tracing::info!(topic = %request.topic, code, %reason, "gateway: closing a client");
        let _ = writer.sink.send(close_frame(code, &reason)).await;
    }
    let abort = reader.abort_handle();
    let _ = tokio::time::timeout(CLOSE_WAIT, reader).await;
    abort.abort();
}

/// Reads what the client sends after subscribing; anything but a ping closes it.
async fn read_client(mut stream: SplitStream<WebSocket>, client: Arc<ClientQueue>, limit: usize) {
    while let Some(msg) = stream.next().await {
        match msg {
            Err(e) => {
                let (code, reason) = receive_error(&e);
                client.close(code, reason);
                return;
            }
            Ok(Message::Text(t)) => {
                if t.len() > limit {
                    client.close(CLOSE_SIZE, too_large(t.len(), limit));
                    return;
                }
                match parse_command(t.as_str()) {
                    Ok(Command::Ping) => client.control(notice(&Notice::Pong {})),
                    Ok(Command::Subscribe { .. }) => {
                        client.close(
                            CLOSE_POLICY,
                            "already subscribed: one topic per connection".to_owned(),
                        );
                        return;
                    }
                    Err(reason) => {
                        client.close(CLOSE_POLICY, reason);
                        return;
                    }
                }
            }
            Ok(Message::Binary(_)) => {
                client.close(CLOSE_UNSUPPORTED, binary_refused());
                return;
            }
            Ok(Message::Close(_)) => {
                client.close(CLOSE_NORMAL, "closed by the client".to_owned());
                return;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
        }
    }
    client.close(CLOSE_NORMAL, "the connection ended".to_owned());
}

/// Reads up to `max` batches from `reader`, stopping before the batch starting at
/// `until` or later; returns the frames and whether the reader is exhausted (caught up
/// with the store, or reached `until`).
fn read_chunk(
    reader: &mut dyn WalReader,
    max: usize,
    until: Option<u64>,
    stream: StreamId,
    hub: &Hub,
) -> strata_core::Result<(Vec<GatewayFrame>, bool)> {
    let mut out = Vec::new();
    for _ in 0..max {
        let Some(b) = reader.next_batch()? else { return Ok((out, true)) };
        if until.is_some_and(|u| b.first_seq.0 >= u) {
            return Ok((out, true));
        }
        let header =
            FrameHeader { stream, seq: b.first_seq.0, span: b.count.max(1), epoch: b.epoch.0 };
        out.push(GatewayFrame::new(header, b.payload, hub.format()));
    }
    Ok((out, false))
}

struct Writer {
    sink: SplitSink<WebSocket, Message>,
    hub: Arc<Hub>,
    client: Arc<ClientQueue>,
    format: ClientFormat,
    /// The resume point: every stream starts expecting it.
    from: Option<u64>,
    /// The epoch of the batch before the resume point, as the client saw it.
    epoch: Option<u64>,
    /// The topic's name (for the subscribed notice).
    topic: String,
    /// The next sequence expected, per stream.
    next: Vec<(StreamId, u64)>,
    /// The epoch of the last frame sent, per stream.
    sent_epochs: Vec<(StreamId, u64)>,
    chunk: usize,
}

impl Writer {
    fn expected(&self, stream: StreamId) -> Option<u64> {
        self.next.iter().find(|(s, _)| *s == stream).map(|(_, n)| *n).or(self.from)
    }

    fn set_expected(&mut self, stream: StreamId, seq: u64) {
        match self.next.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, n)) => *n = seq,
            None => self.next.push((stream, seq)),
        }
    }

    /// The epoch of the last batch the client holds on `stream`: of the last frame
    /// sent, else the one a resuming client named (checked against the history).
    fn sent_epoch(&self, stream: StreamId) -> Option<u64> {
        self.sent_epochs.iter().find(|(s, _)| *s == stream).map(|(_, e)| *e).or(self.epoch)
    }

    /// Whether `f` is a leftover of a tail the store truncated: an older epoch wrote it
    /// than the last batch sent before its position (epochs never decrease along a
    /// log), so it is not in the log as it is now. Epoch 0 is unknown (a publisher
    /// that stamps none), never stale.
    fn is_stale(&self, f: &GatewayFrame) -> bool {
        let stream = f.header.stream;
        match (self.expected(stream), self.sent_epoch(stream)) {
            (Some(n), Some(e)) => f.header.epoch != 0 && f.header.epoch < e && f.header.seq >= n,
            _ => false,
        }
    }

    fn log(&self) -> Option<(Arc<dyn CommitLog>, StreamId)> {
        self.hub.spec.log.as_ref().map(|(l, s)| (Arc::clone(l), *s))
    }

    fn check_closing(&self) -> Result<(), Stop> {
        match self.client.take(0, &mut Vec::new()) {
            Some((code, reason)) => Err(Stop::Close(code, reason)),
            None => Ok(()),
        }
    }

    async fn run(&mut self) -> Stop {
        match self.run_inner().await {
            Ok(()) => Stop::Gone,
            Err(stop) => stop,
        }
    }

    async fn send_subscribed(&mut self) -> Result<(), Stop> {
        let text = notice(&Notice::Subscribed {
            topic: &self.topic,
            from: self.from,
            format: self.format,
        });
        self.feed(Message::Text(text.into())).await?;
        self.flush().await
    }

    /// A resuming client is told it is subscribed first (history follows); a live client
    /// once it is registered, so every frame published after the notice reaches it. A
    /// resume beyond the live edge is closed with the reason instead.
    async fn run_inner(&mut self) -> Result<(), Stop> {
        let rewritten = self.check_history().await?;
        if let Some(from) = self.from {
            self.check_resume(from).await?;
            self.send_subscribed().await?;
        }
        if let Some(text) = rewritten {
            self.feed(Message::Text(text.into())).await?;
        }
        if let (Some(from), Some((log, stream))) = (self.from, self.log()) {
            let covered = self.hub.ring_first(stream).is_some_and(|r| r <= from);
            if !covered {
                self.catch_up(log, stream, from).await?;
            }
        }
        let snapshot = self.hub.register(&self.client, self.from);
        if self.from.is_none() {
            self.send_subscribed().await?;
        }
        for f in snapshot {
            self.deliver_frame(f).await?;
        }
        self.flush().await?;
        let mut batch = Vec::with_capacity(TAKE);
        loop {
            if let Some((code, reason)) = self.client.take(TAKE, &mut batch) {
                return Err(Stop::Close(code, reason));
            }
            if batch.is_empty() {
                self.client.notify.notified().await;
                continue;
            }
            for item in batch.drain(..) {
                match item {
                    Out::Frame(f) => self.deliver_frame(f).await?,
                    Out::Gap { stream, from, to } => self.deliver_gap(stream, from, to).await?,
                    Out::Text(t) => self.feed(Message::Text(t.into())).await?,
                }
            }
            self.flush().await?;
        }
    }

    /// A client resuming at `from` with the `epoch` of the batch it saw last: when the
    /// store rewrote what the client saw (a crash took batches back before they were
    /// durable and a later incarnation wrote others there), the resume moves back to
    /// the rewritten range and the `{"rewritten":..}` notice to send is returned. A
    /// history the store does not know is closed with the reason.
    async fn check_history(&mut self) -> Result<Option<String>, Stop> {
        let (Some(from), Some(epoch), Some((log, _))) = (self.from, self.epoch, self.log()) else {
            return Ok(None);
        };
        if from <= 1 {
            return Ok(None);
        }
        let check =
            tokio::task::spawn_blocking(move || log.check_history(Epoch(epoch), SeqNo(from - 1)))
                .await;
        match check {
            Ok(HistoryCheck::Consistent) => Ok(None),
            // Nothing was rewritten, this store is behind (a replica): the live-edge
            // check refuses the resume and the client tries another node.
            Ok(HistoryCheck::Behind { .. }) => Ok(None),
            Ok(HistoryCheck::Rewritten { from: start, to, store_epoch }) => {
                tracing::warn!(
                    topic = %self.topic,
                    from = start.0,
                    to = to.0,
                    "gateway: a resuming client saw sequences the store rewrote since"
                );
                self.from = Some(start.0);
                // The client's epoch was that of the rewritten range, not of the batch
                // before `start`.
                self.epoch = None;
                Ok(Some(notice(&Notice::Rewritten {
                    from: start.0,
                    to: to.0 + 1,
                    epoch: store_epoch.0,
                })))
            }
            Ok(HistoryCheck::UnknownEpoch { store_epoch }) => Err(Stop::Close(
                CLOSE_POLICY,
                format!(
                    "epoch={epoch} is newer than the store's ({store_epoch}) for {:?}: another store or history",
                    self.topic
                ),
            )),
            Err(e) => {
                tracing::error!(error = %e, "gateway: history check task failed");
                Err(Stop::Close(CLOSE_SERVER_ERROR, "the history check failed".to_owned()))
            }
        }
    }

    /// Refuses a resume at `from` beyond the topic's live edge (its last sequence + 1):
    /// serving it would send nothing until the topic got there, and skip what comes
    /// before. The edge is the newest frame the gateway received, or the store's log
    /// when the topic has one (the commit stream publishes behind the log). A topic
    /// without a log that has received nothing yet cannot tell; the resume is accepted.
    async fn check_resume(&self, from: u64) -> Result<(), Stop> {
        let last = self.hub.last_seq();
        if from <= last.saturating_add(1) {
            return Ok(());
        }
        let beyond = |edge: String| {
            Err(Stop::Close(
                CLOSE_POLICY,
                format!("from={from} is beyond the live edge of {:?}: {edge}", self.topic),
            ))
        };
        let Some((log, _)) = self.log() else {
            if last == 0 {
                return Ok(());
            }
            return beyond(format!("its last sequence is {last}; resume at most at {}", last + 1));
        };
        let probe = tokio::task::spawn_blocking(move || {
            let mut reader = log.read_from(SeqNo(from - 1))?;
            reader.next_batch().map(|b| b.is_some())
        })
        .await;
        match probe {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => beyond(format!(
                "the store's log does not hold sequence {} yet; resume at most at its last sequence + 1",
                from - 1
            )),
            // Before the log's start (or deleted under the probe): not beyond the edge;
            // the catch-up reports what is gone.
            Ok(Err(strata_core::Error::SequenceUnavailable { .. })) => Ok(()),
            Ok(Err(e)) => {
                Err(Stop::Close(CLOSE_SERVER_ERROR, format!("cannot read the store's log: {e}")))
            }
            Err(e) => {
                tracing::error!(error = %e, "gateway: log probe task failed");
                Err(Stop::Close(CLOSE_SERVER_ERROR, "the log probe failed".to_owned()))
            }
        }
    }

    /// Opens the log at `from` to read up to `until` (exclusive; `None`: to its end);
    /// when the segments holding `from` were deleted, at the oldest sequence the log
    /// still holds, after a gap notice for what is gone (never past `until`). `None`
    /// when nothing is left to read or the log cannot be read (logged; the hole is then
    /// reported as a gap).
    async fn open_log(
        &mut self,
        log: Arc<dyn CommitLog>,
        stream: StreamId,
        from: u64,
        until: Option<u64>,
    ) -> Result<Option<Box<dyn WalReader>>, Stop> {
        let opened = tokio::task::spawn_blocking(move || open_log(&*log, from)).await;
        match opened {
            Ok(Ok((reader, start))) => {
                if start > from {
                    let end = until.map_or(start, |u| u.min(start));
                    tracing::info!(topic = %self.hub.spec.name, from, oldest = start,
                        "gateway: the log no longer holds {from} .. {start}; reported as a gap");
                    self.send_gap(stream, from, end).await?;
                    if end < start {
                        return Ok(None);
                    }
                }
                Ok(Some(reader))
            }
            Ok(Err(e)) => {
                tracing::warn!(topic = %self.hub.spec.name, from, error = %e, "gateway: cannot read the log");
                Ok(None)
            }
            Err(e) => {
                tracing::error!(error = %e, "gateway: log reader task failed");
                Ok(None)
            }
        }
    }

    /// Sends history from the log until it reaches what the ring holds (or the end).
    async fn catch_up(
        &mut self,
        log: Arc<dyn CommitLog>,
        stream: StreamId,
        from: u64,
    ) -> Result<(), Stop> {
        // When the log cannot be read, the first frame shows the hole; it is reported
        // as a gap then.
        let Some(mut reader) = self.open_log(log, stream, from, None).await? else {
            return Ok(());
        };
        loop {
            self.check_closing()?;
            let (r, read) = self.read_log(reader, None, stream).await;
            reader = r;
            let Ok((frames, done)) = read else { return Ok(()) };
            for f in frames {
                self.send_in_order(Arc::new(f)).await?;
            }
            self.flush().await?;
            let next = self.expected(stream).unwrap_or(from);
            if done || self.hub.ring_first(stream).is_some_and(|r| r <= next) {
                return Ok(());
            }
        }
    }

    async fn read_log(
        &self,
        mut reader: Box<dyn WalReader>,
        until: Option<u64>,
        stream: StreamId,
    ) -> (Box<dyn WalReader>, Result<(Vec<GatewayFrame>, bool), ()>) {
        let hub = Arc::clone(&self.hub);
        let max = self.chunk;
        let task = tokio::task::spawn_blocking(move || {
            let r = read_chunk(reader.as_mut(), max, until, stream, &hub);
            (reader, r)
        });
        match task.await {
            Ok((reader, Ok(r))) => (reader, Ok(r)),
            Ok((reader, Err(e))) => {
                tracing::warn!(topic = %self.hub.spec.name, error = %e, "gateway: reading the log failed");
                (reader, Err(()))
            }
            Err(e) => {
                // The reader went down with the task; hand back a reader that is done.
                tracing::error!(error = %e, "gateway: log reader task failed");
                (Box::new(Exhausted), Err(()))
            }
        }
    }

    /// Sends `f` after filling any hole before it (from the log, else as a gap).
    async fn deliver_frame(&mut self, f: Arc<crate::GatewayFrame>) -> Result<(), Stop> {
        let stream = f.header.stream;
        if self.is_stale(&f) {
            return Ok(());
        }
        if let Some(n) = self.expected(stream)
            && f.header.seq > n
            && f.header.next_seq() > n
        {
            self.fill(stream, n, f.header.seq).await?;
        }
        self.send_in_order(f).await
    }

    /// Fills `from .. to` of `stream` from the log where possible; what remains is a gap.
    async fn fill(&mut self, stream: StreamId, from: u64, to: u64) -> Result<(), Stop> {
        if let Some((log, log_stream)) = self.log()
            && log_stream == stream
            && let Some(mut reader) = self.open_log(log, stream, from, Some(to)).await?
        {
            loop {
                let (r, read) = self.read_log(reader, Some(to), stream).await;
                reader = r;
                let Ok((frames, done)) = read else { break };
                for f in frames {
                    self.send_in_order(Arc::new(f)).await?;
                }
                if done || self.expected(stream).is_some_and(|n| n >= to) {
                    break;
                }
                self.check_closing()?;
            }
        }
        if let Some(n) = self.expected(stream)
            && n < to
        {
            self.send_gap(stream, n, to).await?;
        }
        Ok(())
    }

    /// Sends `f` unless it was already sent; a hole before it becomes a gap notice. A
    /// frame of a newer epoch below what was sent is a rewind (the store truncated a
    /// tail and that epoch wrote there): the client is told with a `rewritten` notice
    /// for what it held from there on, then gets the frame.
    async fn send_in_order(&mut self, f: Arc<crate::GatewayFrame>) -> Result<(), Stop> {
        let stream = f.header.stream;
        if self.is_stale(&f) {
            return Ok(());
        }
        if let Some(n) = self.expected(stream) {
            let newer = self.sent_epoch(stream).is_some_and(|e| e != 0 && f.header.epoch > e);
            if newer && f.header.seq < n && f.header.seq >= 1 {
                tracing::info!(topic = %self.topic, from = f.header.seq, to = n,
                    epoch = f.header.epoch, "gateway: a client held sequences the store rewrote");
                let text =
                    notice(&Notice::Rewritten { from: f.header.seq, to: n, epoch: f.header.epoch });
                self.feed(Message::Text(text.into())).await?;
                self.set_expected(stream, f.header.seq);
            } else if f.header.next_seq() <= n {
                return Ok(());
            }
            if f.header.seq > n {
                self.send_gap(stream, n, f.header.seq).await?;
            }
        }
        let msg = match (&f.rendered, self.format) {
            (Ok(json), ClientFormat::Json) => Message::Text(json.clone().into()),
            (Ok(_), ClientFormat::Binary) => Message::Binary(f.binary()),
            (Err(reason), _) => Message::Text(f.invalid_notice(reason).into()),
        };
        self.feed(msg).await?;
        self.set_expected(stream, f.header.next_seq());
        match self.sent_epochs.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, e)) => *e = f.header.epoch,
            None => self.sent_epochs.push((stream, f.header.epoch)),
        }
        Ok(())
    }

    /// Reports frames dropped under drop-oldest.
    async fn deliver_gap(&mut self, stream: StreamId, from: u64, to: u64) -> Result<(), Stop> {
        let start = match self.expected(stream) {
            Some(n) if n >= to => return Ok(()),
            Some(n) if n < from => {
                self.fill(stream, n, from).await?;
                from
            }
            Some(n) => n,
            None => from,
        };
        self.send_gap(stream, start, to).await
    }

    async fn send_gap(&mut self, stream: StreamId, from: u64, to: u64) -> Result<(), Stop> {
        let text = notice(&Notice::Gap { stream: stream.0, from, to });
        self.feed(Message::Text(text.into())).await?;
        self.set_expected(stream, to);
        Ok(())
    }

    async fn feed(&mut self, msg: Message) -> Result<(), Stop> {
        self.sink.feed(msg).await.map_err(|_| Stop::Gone)
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        self.sink.flush().await.map_err(|_| Stop::Gone)
    }
}

/// A reader at `from`, or — when the log's segments holding `from` were deleted — at
/// the oldest sequence it still holds; returns the reader and where it starts.
fn open_log(log: &dyn CommitLog, from: u64) -> strata_core::Result<(Box<dyn WalReader>, u64)> {
    let mut at = from;
    let mut tries = 0;
    loop {
        match log.read_from(SeqNo(at)) {
            Ok(r) => return Ok((r, at)),
            // Segments may be deleted between two attempts; a few cover that race.
            Err(strata_core::Error::SequenceUnavailable { oldest, .. })
                if oldest.0 > at && tries < 8 =>
            {
                at = oldest.0;
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A log reader that has nothing (stands in for one lost with a failed task).
#[derive(Debug)]
struct Exhausted;

impl WalReader for Exhausted {
    fn next_batch(&mut self) -> strata_core::Result<Option<strata_core::WalBatch>> {
        Ok(None)
    }
    fn wait_next(
        &mut self,
        _timeout: Duration,
    ) -> strata_core::Result<Option<strata_core::WalBatch>> {
        Ok(None)
    }
}
