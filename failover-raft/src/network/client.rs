//! The sending side: openraft's [`RaftNetworkFactory`] / [`RaftNetwork`] over TCP, and
//! the one-shot call a follower uses to forward a client request to the leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use super::frame::{FrameError, read_frame, write_frame};
use super::messages::{Request, Response};
use crate::types::{Member, NodeId, TypeConfig};

/// Why a call failed before an answer arrived.
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made (the peer is down or not listening).
    Connect(std::io::Error),
    /// The connection failed, timed out or carried something that is not an answer.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Failed(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for CallError {}

/// One connection to a peer, opened on first use and dropped after any failure (so a
/// late answer to a timed-out request can never be read as the answer to the next one).
#[derive(Debug)]
pub struct Peer {
    addr: String,
    stream: Option<TcpStream>,
    max_frame_bytes: u32,
}

impl Peer {
    /// A peer at `addr` (not connected yet).
    pub fn new(addr: String, max_frame_bytes: u32) -> Self {
        Self { addr, stream: None, max_frame_bytes }
    }

    /// Sends `req` and waits for its answer, for at most `ttl` in all.
    pub async fn call(&mut self, req: &Request, ttl: Duration) -> Result<Response, CallError> {
        let body = serde_json::to_vec(req)
            .map_err(|e| CallError::Failed(format!("request does not encode: {e}")))?;
        match tokio::time::timeout(ttl, self.exchange(&body)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(CallError::Failed(format!("no answer from {} within {ttl:?}", self.addr)))
            }
        }
    }

    async fn exchange(&mut self, body: &[u8]) -> Result<Response, CallError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            slot => {
                let s = TcpStream::connect(&self.addr).await.map_err(CallError::Connect)?;
                // Small frames, answered at once: do not wait to coalesce them.
                s.set_nodelay(true).map_err(|e| CallError::Failed(format!("set_nodelay: {e}")))?;
                slot.insert(s)
            }
        };
        let max = self.max_frame_bytes;
        let failed =
            |what: &str, e: FrameError| CallError::Failed(format!("{what} {}: {e}", self.addr));
        write_frame(stream, body, max).await.map_err(|e| failed("sending to", e))?;
        let answer =
            read_frame(stream, max).await.map_err(|e| failed("reading the answer from", e))?;
        serde_json::from_slice(&answer).map_err(|e| {
            CallError::Failed(format!("answer from {} does not decode: {e}", self.addr))
        })
    }
}

/// Creates a [`Connection`] per target for openraft.
#[derive(Clone, Debug)]
pub struct Network {
    /// Largest frame sent or accepted.
    pub max_frame_bytes: u32,
    /// How long openraft waits before retrying an unreachable peer.
    pub backoff: Duration,
    /// Addresses this node dials instead of the membership's
    /// ([`RegisterConfig::with_route`](crate::RegisterConfig::with_route)).
    pub routes: Arc<BTreeMap<NodeId, String>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        Connection {
            target,
            peer: Peer::new(
                self.routes.get(&target).unwrap_or(&node.addr).clone(),
                self.max_frame_bytes,
            ),
            backoff: self.backoff,
        }
    }
}

/// openraft's channel to one target.
#[derive(Debug)]
pub struct Connection {
    target: NodeId,
    peer: Peer,
    backoff: Duration,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl Connection {
    async fn rpc(
        &mut self,
        req: &Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>> {
        self.peer.call(req, option.hard_ttl()).await.map_err(|e| match e {
            CallError::Connect(io) => RPCError::Unreachable(Unreachable::new(&io)),
            other => RPCError::Network(NetworkError::new(&other)),
        })
    }

    fn unexpected<E: std::error::Error>(
        &self,
        resp: &Response,
    ) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
        let e = CallError::Failed(format!(
            "node {} answered with a {} response",
            self.target,
            resp.kind()
        ));
        RPCError::Network(NetworkError::new(&e))
    }
}

/// Narrows an RPC error raised while the answer type was unknown.
fn narrow<E: std::error::Error>(
    e: RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
    match e {
        RPCError::Unreachable(u) => RPCError::Unreachable(u),
        RPCError::Timeout(t) => RPCError::Timeout(t),
        RPCError::PayloadTooLarge(p) => RPCError::PayloadTooLarge(p),
        RPCError::Network(n) => RPCError::Network(n),
        RPCError::RemoteError(r) => RPCError::Network(NetworkError::new(&r)),
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.rpc(&Request::AppendEntries(rpc), &option).await.map_err(narrow)? {
            Response::AppendEntries(Ok(r)) => Ok(r),
            Response::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.rpc(&Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(Ok(r)) => Ok(r),
            Response::InstallSnapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.rpc(&Request::Vote(rpc), &option).await.map_err(narrow)? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
