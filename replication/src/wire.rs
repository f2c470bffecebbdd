//! The replication protocol's framing and messages.
//!
//! Every message is one frame: `len` (u32 LE: the bytes after it), `kind` (u8), the
//! body, and a CRC32 of kind and body (u32 LE). A length over [`MAX_FRAME`], a bad
//! checksum, an unknown kind or a body that does not decode is a protocol error and
//! the connection is dropped. Batches and file chunks have binary bodies; the few
//! control messages are JSON.

use std::io::{Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest frame accepted: the largest batch plus headroom.
pub const MAX_FRAME: usize = strata_core::batch::MAX_BATCH_BYTES + 4096;
/// Protocol version in [`Hello`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes of a file sent per chunk during a bootstrap.
pub const CHUNK_BYTES: usize = 1 << 20;

const KIND_CONTROL: u8 = 1;
const KIND_BATCH: u8 = 2;
const KIND_CHUNK: u8 = 3;

/// How a replica starts a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The replica's cluster id (0: none yet, an empty store).
    pub cluster: u64,
    /// The replica's name.
    pub node: String,
    /// The epoch of the newest batch the replica holds.
    pub epoch: u64,
    /// The last sequence it holds.
    pub last_seq: u64,
    /// The last sequence it holds durably (what it acknowledges until it syncs more).
    pub durable: u64,
    /// A bootstrap to resume: its id and the bytes already held of each file.
    pub resume: Option<Resume>,
    /// The replica asks for a checkpoint instead of the log: its diverged tail is
    /// already in flushed tables and cannot be truncated (absent from older replicas).
    #[serde(default)]
    pub rebootstrap: bool,
}

/// A bootstrap the replica had started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The checkpoint's id.
    pub id: u64,
    /// File name → bytes already received and checked.
    pub have: Vec<(String, u64)>,
}

/// What the primary tells a replica after its [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plan {
    /// Batches follow from `from`.
    Follow {
        /// First sequence sent.
        from: u64,
    },
    /// Remove everything after `after` (a tail the primary's history does not have),
    /// then batches follow from `after + 1`.
    Truncate {
        /// Last sequence to keep.
        after: u64,
    },
    /// The primary's log no longer holds the replica's position (or the replica is
    /// empty): a checkpoint follows.
    Bootstrap {
        /// The checkpoint's id (for resuming).
        id: u64,
    },
}

/// The control messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Control {
    /// Replica → primary, first message.
    Hello(Hello),
    /// Primary → replica, answer to `Hello`.
    Welcome {
        /// The primary's cluster id.
        cluster: u64,
        /// The primary's epoch.
        epoch: u64,
        /// What comes next.
        plan: Plan,
    },
    /// Primary → replica when idle: where the primary is.
    Heartbeat {
        /// The primary's last sequence.
        last_seq: u64,
        /// Its wall clock, microseconds since the Unix epoch.
        unix_micros: u64,
    },
    /// Replica → primary: everything up to `durable` is on the replica's disk.
    Ack {
        /// Last durable sequence.
        durable: u64,
    },
    /// Either side, before it closes the connection.
    Refuse {
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// Primary → replica: a checkpoint file begins.
    FileStart {
        /// Its name inside the store directory.
        name: String,
        /// Its full length.
        len: u64,
        /// CRC32 of its full contents.
        crc: u32,
        /// Bytes the replica already has (the chunks start there).
        from: u64,
    },
    /// Primary → replica: every file was sent.
    BootstrapDone {
        /// The checkpoint's id.
        id: u64,
    },
    /// A client → any node: a request, answered by `Reply`.
    Admin(AdminRequest),
    /// A node → client.
    Reply {
        /// Whether the request succeeded.
        ok: bool,
        /// JSON status or a message.
        text: String,
    },
}

/// Operator requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// The node's role, epoch, positions and replicas.
    Status,
    /// Remove a replica from the primary's in-sync set.
    RemoveReplica {
        /// The replica's name.
        node: String,
    },
    /// Promote a replica to primary.
    Promote,
    /// Promote this node through the failover authority even if it is not an in-sync
    /// member; the answer reports what may be lost.
    ForcePromote,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// A control message.
    Control(Control),
    /// A batch of the log.
    Batch(strata_core::WalBatch),
    /// Part of a checkpoint file.
    Chunk {
        /// Offset in the file.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
}

/// Writes one message (not flushed).
pub fn write_msg(w: &mut impl Write, msg: &Msg) -> std::io::Result<()> {
    // The whole frame goes out in one write: on an unbuffered socket with TCP_NODELAY
    // (the replica's acknowledgements) four writes were four segments and as many
    // wake-ups of the reader, which put tens of microseconds on every synchronous write.
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0u8; 4]);
    match msg {
        Msg::Control(c) => {
            frame.push(KIND_CONTROL);
            serde_json::to_writer(&mut frame, c).map_err(std::io::Error::other)?;
        }
        Msg::Batch(b) => {
            frame.reserve(5 + 28 + b.payload.len() + 4);
            frame.push(KIND_BATCH);
            frame.extend_from_slice(&b.first_seq.0.to_le_bytes());
            frame.extend_from_slice(&b.count.to_le_bytes());
            frame.extend_from_slice(&b.epoch.0.to_le_bytes());
            frame.extend_from_slice(&b.payload);
        }
        Msg::Chunk { offset, data } => {
            frame.reserve(5 + 8 + data.len() + 4);
            frame.push(KIND_CHUNK);
            frame.extend_from_slice(&offset.to_le_bytes());
            frame.extend_from_slice(data);
        }
    }
    // The checksum covers the kind and the body.
    let crc = crc32fast::hash(&frame[4..]);
    frame.extend_from_slice(&crc.to_le_bytes());
    let len = u32::try_from(frame.len() - 4).map_err(std::io::Error::other)?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    w.write_all(&frame)
}

/// Reads one message from `peer`; `None` when the peer closed the connection cleanly
/// between frames.
pub fn read_msg(r: &mut impl Read, peer: &str) -> Result<Option<Msg>> {
    let mut len = [0u8; 4];
    // A clean close lies between frames; one inside the length is a cut frame.
    loop {
        match r.read(&mut len[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read frame from", peer, e)),
        }
    }
    r.read_exact(&mut len[1..]).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::protocol(peer, "connection closed inside a frame's length")
        } else {
            Error::io("read frame from", peer, e)
        }
    })?;
    let len = u32::from_le_bytes(len) as usize;
    if len < 5 {
        return Err(Error::protocol(peer, format!("frame length {len} is below the minimum of 5")));
    }
    if len > MAX_FRAME {
        return Err(Error::protocol(
            peer,
            format!("frame length {len} exceeds the maximum of {MAX_FRAME} bytes"),
        ));
    }
    let mut frame = vec![0u8; len];
    r.read_exact(&mut frame).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::protocol(peer, format!("connection closed inside a frame of {len} bytes"))
        } else {
            Error::io("read frame from", peer, e)
        }
    })?;
    let (content, crc) = frame.split_at(len - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(content);
    if stored != actual {
        return Err(Error::protocol(
            peer,
            format!("frame checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    let kind = content[0];
    let body = &content[1..];
    let msg = match kind {
        KIND_CONTROL => Msg::Control(
            serde_json::from_slice(body)
                .map_err(|e| Error::protocol(peer, format!("bad control message: {e}")))?,
        ),
        KIND_BATCH => {
            if body.len() < 20 {
                return Err(Error::protocol(peer, "batch frame shorter than its header"));
            }
            let first = u64::from_le_bytes(body[0..8].try_into().unwrap_or_default());
            let count = u32::from_le_bytes(body[8..12].try_into().unwrap_or_default());
            let epoch = u64::from_le_bytes(body[12..20].try_into().unwrap_or_default());
            if count == 0 || first == 0 {
                return Err(Error::protocol(
                    peer,
                    format!("batch frame with first sequence {first} and {count} operations"),
                ));
            }
            Msg::Batch(strata_core::WalBatch {
                first_seq: strata_core::SeqNo(first),
                count,
                epoch: strata_core::Epoch(epoch),
                payload: Bytes::copy_from_slice(&body[20..]),
            })
        }
        KIND_CHUNK => {
            if body.len() < 8 {
                return Err(Error::protocol(peer, "chunk frame shorter than its header"));
            }
            let offset = u64::from_le_bytes(body[0..8].try_into().unwrap_or_default());
            Msg::Chunk { offset, data: Bytes::copy_from_slice(&body[8..]) }
        }
        other => return Err(Error::protocol(peer, format!("unknown frame kind {other}"))),
    };
    Ok(Some(msg))
}

/// Sends one control message and flushes.
pub fn send(w: &mut impl Write, peer: &str, c: Control) -> Result<()> {
    write_msg(w, &Msg::Control(c))
        .and_then(|()| w.flush())
        .map_err(|e| Error::io("write to", peer, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &Msg) -> Vec<u8> {
        let mut out = Vec::new();
        write_msg(&mut out, msg).expect("in memory");
        out
    }

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            Msg::Control(Control::Ack { durable: 7 }),
            Msg::Batch(strata_core::WalBatch {
                first_seq: strata_core::SeqNo(5),
                count: 2,
                epoch: strata_core::Epoch(3),
                payload: Bytes::from_static(b"abc"),
            }),
            Msg::Chunk { offset: 9, data: Bytes::from_static(b"xyz") },
        ];
        for m in msgs {
            let bytes = frame(&m);
            assert_eq!(read_msg(&mut &bytes[..], "t").expect("valid"), Some(m));
        }
    }

    #[test]
    fn damage_is_a_protocol_error_never_a_panic() {
        let bytes = frame(&Msg::Control(Control::Heartbeat { last_seq: 1, unix_micros: 2 }));
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                let got = read_msg(&mut &bad[..], "t");
                assert!(got.is_err() || got.as_ref().is_ok_and(|m| m.is_none()), "flip at {i}");
            }
        }
        for cut in 1..bytes.len() {
            assert!(read_msg(&mut &bytes[..cut], "t").is_err(), "cut at {cut}");
        }
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_msg(&mut &huge[..], "t").expect_err("oversized");
        assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    }
}
