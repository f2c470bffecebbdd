//! The receiving side: accepts peers' connections and serves their frames.
//!
//! Every failure of a connection (a frame with a bad magic, a bad checksum, an oversized
//! length, a body that does not decode, a peer that goes silent) is logged and drops that
//! connection only; the node and its other connections carry on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::frame::{FrameError, read_frame, write_frame};
use super::messages::{ClientFailure, Request, Response};
use crate::core::Core;

/// How the server treats connections.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Largest frame accepted or sent.
    pub max_frame_bytes: u32,
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

/// Accepts connections until the task is aborted (aborting it also ends every
/// connection it serves).
pub async fn serve(listener: TcpListener, core: Core, limits: ServerLimits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = core.node_id, error = %e, "raft listener accept failed");
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(node = core.node_id, %peer, max = limits.max_connections, "too many raft connections; refusing one");
            continue;
        };
        let core = core.clone();
        conns.spawn(async move {
            serve_connection(stream, peer, &core, limits).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    core: &Core,
    limits: ServerLimits,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    loop {
        let body = match tokio::time::timeout(
            limits.idle_timeout,
            read_frame(&mut stream, limits.max_frame_bytes),
        )
        .await
        {
            Err(_) => {
                tracing::debug!(node = core.node_id, %peer, "raft connection idle; closing it");
                return;
            }
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(e)) => {
                tracing::error!(node = core.node_id, %peer, error = %e, "bad frame from raft peer; dropping the connection");
                return;
            }
            Ok(Ok(body)) => body,
        };
        let req: Request = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(node = core.node_id, %peer, error = %e, "raft frame does not hold a request; dropping the connection");
                return;
            }
        };
        let resp = handle(core, req).await;
        let out = match serde_json::to_vec(&resp) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(node = core.node_id, %peer, error = %e, "raft response does not encode; dropping the connection");
                return;
            }
        };
        if let Err(e) = write_frame(&mut stream, &out, limits.max_frame_bytes).await {
            tracing::warn!(node = core.node_id, %peer, error = %e, "cannot answer raft peer; dropping the connection");
            return;
        }
    }
}

async fn handle(core: &Core, req: Request) -> Response {
    match req {
        Request::AppendEntries(r) => Response::AppendEntries(core.raft.append_entries(r).await),
        Request::Vote(r) => Response::Vote(core.raft.vote(r).await),
        Request::InstallSnapshot(r) => {
            Response::InstallSnapshot(core.raft.install_snapshot(r).await)
        }
        Request::Read => {
            Response::Client(core.read_local().await.map_err(ClientFailure::from_error))
        }
        Request::CompareAndSet { expected_version, value } => Response::Client(
            core.compare_and_set_local(expected_version, value)
                .await
                .map_err(ClientFailure::from_error),
        ),
    }
}
