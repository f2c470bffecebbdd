//! The node's own handling of reads and compare-and-sets, without forwarding: what the
//! register runs locally and what the server runs for a forwarded request.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::state_machine::SmState;
use crate::types::{Command, MAX_VALUE_BYTES, Member, NodeId, Raft, Versioned};

/// A running node's raft handle and state.
#[derive(Clone)]
pub(crate) struct Core {
    pub raft: Raft,
    pub node_id: NodeId,
    pub state: Arc<Mutex<SmState>>,
    pub request_timeout: Duration,
    pub max_frame_bytes: u32,
}

impl Core {
    fn not_leader(&self, f: ForwardToLeader<NodeId, Member>) -> Error {
        Error::NotLeader {
            node: self.node_id,
            leader: f.leader_id,
            leader_addr: f.leader_node.map(|m| m.addr),
        }
    }

    /// A linearizable read served by this node, which must be the leader.
    pub async fn read_local(&self) -> Result<Versioned> {
        let after = self.request_timeout;
        match tokio::time::timeout(after, self.raft.ensure_linearizable()).await {
            Err(_) => Err(Error::Timeout { op: "read", after }),
            // IMPORTANT: the state is read after the leader confirmed its leadership with
            // a quorum and applied everything committed before the read began.
            Ok(Ok(_)) => Ok(self.state.lock().current.clone()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(self.not_leader(f))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
                Err(Error::NoQuorum { reason: q.to_string() })
            }
            Ok(Err(RaftError::Fatal(f))) => Err(Error::Stopped { reason: f.to_string() }),
        }
    }

    /// A compare-and-set proposed by this node, which must be the leader.
    pub async fn compare_and_set_local(
        &self,
        expected_version: u64,
        value: Vec<u8>,
    ) -> Result<Versioned> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "value of {} bytes exceeds the register's maximum of {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        let after = self.request_timeout;
        let write = self.raft.client_write(Command::CompareAndSet { expected_version, value });
        match tokio::time::timeout(after, write).await {
            Err(_) => Err(Error::Timeout { op: "compare_and_set", after }),
            Ok(Ok(resp)) if resp.data.changed => Ok(resp.data.current),
            Ok(Ok(resp)) => Err(Error::VersionMismatch {
                expected: expected_version,
                current: resp.data.current.version,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(self.not_leader(f))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(Error::InvalidArgument(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(Error::Stopped { reason: f.to_string() }),
        }
    }
}
