//! The wire format.
//!
//! A connection carries a sequence of *messages*. Every message is
//!
//! ```text
//! offset  size  field
//! 0       4     len    u32 little-endian: the number of bytes that follow (kind + body)
//! 4       1     kind   u8: what the body is (below)
//! 5       len-1 body
//! ```
//!
//! `len` is checked against a maximum *before* anything is allocated: for frames it is
//! `1 + FRAME_HEADER_LEN + max_payload` of the receiving side, for handshake messages
//! [`MAX_CONTROL_LEN`]. A longer length, an unknown kind, a body of the wrong size, a
//! bad checksum or a message that is not valid in the connection's state is a protocol
//! error: the receiver logs the reason (`tracing::warn!`) and closes that connection.
//!
//! Kinds and bodies (all integers little-endian):
//!
//! | kind | name | direction | body |
//! |---|---|---|---|
//! | 1 | `FRAME` | server → client | `stream u64, seq u64, span u32, crc32 u32, epoch u64, payload` |
//! | 2 | `GAP` | server → client | `stream u64, from u64, to u64` |
//! | 3 | `GOODBYE` | server → client | `reason` (UTF-8) |
//! | 4 | `HELLO` | client → server | `magic u32 = "STRT", version u8 = 3, flags u8, resume_from u64, resume_epoch u64, max_payload u32, topic_len u16, topic` (UTF-8) |
//! | 5 | `HELLO_ACK` | server → client | `status u8, flags u8, live_next u64, reason` (UTF-8) |
//!
//! - `FRAME`: the [`FrameHeader`] (span ≥ 1) and the payload; `crc32` is CRC-32
//!   (IEEE, `crc32fast`) of the payload; `epoch` is [`FrameHeader::epoch`]. The frame
//!   header is [`FRAME_HEADER_LEN`] (32) bytes, so a frame message is
//!   `4 + 1 + 32 + payload` bytes on the wire. (Version 1 had no epoch.)
//! - `GAP`: sent during a resume when the publisher no longer holds frames
//!   `from .. to` the client asked for (they fell out of its history ring).
//! - `GOODBYE`: the server is closing the connection on purpose (the slow-subscriber
//!   policy `Disconnect`); the client does not reconnect and reports
//!   [`Error::Disconnected`](strata_core::Error::Disconnected).
//! - `HELLO`: the first and only message a client sends. Flag bit 0: `resume_from` is
//!   present (otherwise it is ignored and the subscriber starts at the live edge, plus
//!   the publisher's history). Flag bit 1: `resume_epoch` is present — the epoch of the
//!   frame that ended at `resume_from - 1`, so a server that knows its topic's epoch
//!   history can tell whether the client saw a history it has since rewritten (a
//!   subscriber moving to a new primary). `max_payload` is the largest payload the
//!   client accepts. Version 2 hellos (no `resume_epoch` field) are still accepted.
//! - `HELLO_ACK`: status 0 = subscribed, 1 = unknown topic, 2 = bad hello, 3 =
//!   `resume_from` beyond the topic's live edge, 4 = `resume_epoch` is newer than any
//!   epoch the topic's history knows (this server has not seen that history yet, or
//!   holds another) — the server closes after sending a
//!   non-zero status, whose reason says why. Flag bit 0: `live_next` is valid — the
//!   sequence the topic's next frame is expected to start at (used by a client that
//!   reconnects before it received any frame).

use bytes::{BufMut, Bytes, BytesMut};
use strata_core::{FrameHeader, StreamId};

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Size of a `FRAME` body before the payload: stream, seq, span, crc32, epoch.
pub const FRAME_HEADER_LEN: usize = 8 + 8 + 4 + 4 + 8;
/// Largest handshake message body (`HELLO`, `HELLO_ACK`, `GOODBYE`, `GAP`) accepted.
pub const MAX_CONTROL_LEN: usize = 4096;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;
/// The `HELLO` magic, `"STRT"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"STRT");
/// Protocol version carried in `HELLO` (2: frames carry an epoch; 3: the hello carries
/// the epoch of the frame before `resume_from`).
pub const VERSION: u8 = 3;
/// The oldest `HELLO` version a server accepts (it has no `resume_epoch`).
pub const MIN_VERSION: u8 = 2;

/// Message kind `FRAME`.
pub const KIND_FRAME: u8 = 1;
/// Message kind `GAP`.
pub const KIND_GAP: u8 = 2;
/// Message kind `GOODBYE`.
pub const KIND_GOODBYE: u8 = 3;
/// Message kind `HELLO`.
pub const KIND_HELLO: u8 = 4;
/// Message kind `HELLO_ACK`.
pub const KIND_HELLO_ACK: u8 = 5;

/// `HELLO_ACK` status: subscribed.
pub const ACK_OK: u8 = 0;
/// `HELLO_ACK` status: no publisher ever served this topic on the server.
pub const ACK_UNKNOWN_TOPIC: u8 = 1;
/// `HELLO_ACK` status: the hello was malformed.
pub const ACK_BAD_HELLO: u8 = 2;
/// `HELLO_ACK` status: `resume_from` is beyond the topic's live edge (greater than the
/// sequence its next frame starts at).
pub const ACK_BEYOND_LIVE_EDGE: u8 = 3;
/// `HELLO_ACK` status: `resume_epoch` is newer than every epoch the topic's history
/// knows (the server has not caught up with that history, or holds another one).
pub const ACK_UNKNOWN_EPOCH: u8 = 4;

/// Encodes a whole `FRAME` message (length prefix included) whose payload `fill`
/// writes in place.
pub fn encode_frame_with(header: &FrameHeader, len: usize, fill: impl FnOnce(&mut [u8])) -> Bytes {
    let body = 1 + FRAME_HEADER_LEN + len;
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + body);
    buf.put_u32_le(body as u32);
    buf.put_u8(KIND_FRAME);
    buf.put_u64_le(header.stream.0);
    buf.put_u64_le(header.seq);
    buf.put_u32_le(header.span);
    let crc_at = buf.len();
    buf.put_u32_le(0); // crc, patched below
    buf.put_u64_le(header.epoch);
    let payload_at = buf.len();
    buf.resize(payload_at + len, 0);
    fill(&mut buf[payload_at..]);
    let crc = crc32fast::hash(&buf[payload_at..]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    buf.freeze()
}

/// Encodes a `GAP` message.
pub fn encode_gap(stream: StreamId, from: u64, to: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + 1 + 24);
    buf.put_u32_le(1 + 24);
    buf.put_u8(KIND_GAP);
    buf.put_u64_le(stream.0);
    buf.put_u64_le(from);
    buf.put_u64_le(to);
    buf.freeze()
}

/// Encodes a `GOODBYE` message (the reason is cut to fit [`MAX_CONTROL_LEN`]).
pub fn encode_goodbye(reason: &str) -> Bytes {
    let reason = truncate_utf8(reason, MAX_CONTROL_LEN - 1);
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + 1 + reason.len());
    buf.put_u32_le(1 + reason.len() as u32);
    buf.put_u8(KIND_GOODBYE);
    buf.put_slice(reason.as_bytes());
    buf.freeze()
}

/// What a client asks for in its `HELLO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The topic.
    pub topic: String,
    /// Start at this sequence (replaying the publisher's history from there).
    pub resume_from: Option<u64>,
    /// The epoch of the frame the client received last (the one ending at
    /// `resume_from - 1`), when it received one that carried an epoch.
    pub resume_epoch: Option<u64>,
    /// Largest payload the client accepts.
    pub max_payload: u32,
}

/// Encodes a `HELLO` message.
pub fn encode_hello(hello: &Hello) -> Bytes {
    let topic = truncate_utf8(&hello.topic, MAX_TOPIC_LEN);
    let body = 1 + 4 + 1 + 1 + 8 + 8 + 4 + 2 + topic.len();
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + body);
    buf.put_u32_le(body as u32);
    buf.put_u8(KIND_HELLO);
    buf.put_u32_le(MAGIC);
    buf.put_u8(VERSION);
    buf.put_u8(u8::from(hello.resume_from.is_some()) | u8::from(hello.resume_epoch.is_some()) << 1);
    buf.put_u64_le(hello.resume_from.unwrap_or(0));
    buf.put_u64_le(hello.resume_epoch.unwrap_or(0));
    buf.put_u32_le(hello.max_payload);
    buf.put_u16_le(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    buf.freeze()
}

/// Decodes a `HELLO` body (the bytes after the kind).
pub fn decode_hello(body: &[u8]) -> Result<Hello, String> {
    let mut r = Reader(body);
    let magic = r.u32()?;
    if magic != MAGIC {
        return Err(format!("bad hello magic {magic:#010x} (expected {MAGIC:#010x})"));
    }
    let version = r.u8()?;
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(format!(
            "unsupported protocol version {version} (this server speaks {MIN_VERSION} to {VERSION})"
        ));
    }
    let flags = r.u8()?;
    let resume = r.u64()?;
    let epoch = if version >= 3 { r.u64()? } else { 0 };
    let max_payload = r.u32()?;
    let topic_len = usize::from(r.u16()?);
    let topic = r.take(topic_len)?;
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes after the hello", r.0.len()));
    }
    let topic =
        std::str::from_utf8(topic).map_err(|_| "topic name is not UTF-8".to_owned())?.to_owned();
    Ok(Hello {
        topic,
        resume_from: (flags & 1 != 0).then_some(resume),
        resume_epoch: (version >= 3 && flags & 2 != 0).then_some(epoch),
        max_payload,
    })
}

/// The server's answer to a `HELLO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// [`ACK_OK`], [`ACK_UNKNOWN_TOPIC`], [`ACK_BAD_HELLO`], [`ACK_BEYOND_LIVE_EDGE`] or
    /// [`ACK_UNKNOWN_EPOCH`].
    pub status: u8,
    /// The sequence the topic's next frame is expected at, when known.
    pub live_next: Option<u64>,
    /// Why the hello was refused (empty when accepted).
    pub reason: String,
}

/// Encodes a `HELLO_ACK` message.
pub fn encode_hello_ack(ack: &HelloAck) -> Bytes {
    let reason = truncate_utf8(&ack.reason, MAX_CONTROL_LEN - 16);
    let body = 1 + 1 + 1 + 8 + reason.len();
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + body);
    buf.put_u32_le(body as u32);
    buf.put_u8(KIND_HELLO_ACK);
    buf.put_u8(ack.status);
    buf.put_u8(u8::from(ack.live_next.is_some()));
    buf.put_u64_le(ack.live_next.unwrap_or(0));
    buf.put_slice(reason.as_bytes());
    buf.freeze()
}

/// Decodes a `HELLO_ACK` body.
pub fn decode_hello_ack(body: &[u8]) -> Result<HelloAck, String> {
    let mut r = Reader(body);
    let status = r.u8()?;
    let flags = r.u8()?;
    let live = r.u64()?;
    let reason = String::from_utf8_lossy(r.0).into_owned();
    Ok(HelloAck { status, live_next: (flags & 1 != 0).then_some(live), reason })
}

/// A decoded server → client message.
#[derive(Debug)]
pub enum ServerMessage {
    /// A frame; `payload` is a slice of the received buffer.
    Frame(FrameHeader, Bytes),
    /// Frames `from .. to` of `stream` are no longer held by the publisher.
    Gap(StreamId, u64, u64),
    /// The server closes the connection on purpose.
    Goodbye(String),
}

/// Decodes a server → client message body (`body` starts with the kind).
pub fn decode_server_message(mut body: Bytes) -> Result<ServerMessage, String> {
    let Some(&kind) = body.first() else {
        return Err("empty message (length 0)".to_owned());
    };
    match kind {
        KIND_FRAME => {
            if body.len() < 1 + FRAME_HEADER_LEN {
                return Err(format!(
                    "frame of {} bytes is shorter than its {}-byte header",
                    body.len(),
                    1 + FRAME_HEADER_LEN
                ));
            }
            let mut r = Reader(&body[1..1 + FRAME_HEADER_LEN]);
            let stream = StreamId(r.u64()?);
            let seq = r.u64()?;
            let span = r.u32()?;
            let crc = r.u32()?;
            let epoch = r.u64()?;
            if span == 0 {
                return Err(format!("frame seq {seq} has span 0"));
            }
            let payload = body.split_off(1 + FRAME_HEADER_LEN);
            let found = crc32fast::hash(&payload);
            if found != crc {
                return Err(format!(
                    "frame seq {seq} payload checksum mismatch: header says {crc:#010x}, payload hashes to {found:#010x}"
                ));
            }
            Ok(ServerMessage::Frame(FrameHeader { stream, seq, span, epoch }, payload))
        }
        KIND_GAP => {
            let mut r = Reader(&body[1..]);
            let (stream, from, to) = (r.u64()?, r.u64()?, r.u64()?);
            if !r.0.is_empty() || from >= to {
                return Err(format!("malformed gap message ({} bytes, {from}..{to})", body.len()));
            }
            Ok(ServerMessage::Gap(StreamId(stream), from, to))
        }
        KIND_GOODBYE => {
            Ok(ServerMessage::Goodbye(String::from_utf8_lossy(&body[1..]).into_owned()))
        }
        other => Err(format!("unknown message kind {other}")),
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("message truncated: needed {n} more bytes, {} left", self.0.len()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_corruption() {
        let h = FrameHeader { stream: StreamId(3), seq: 42, span: 2, epoch: 7 };
        let msg = encode_frame_with(&h, 5, |b| b.copy_from_slice(b"hello"));
        assert_eq!(msg.len(), LEN_PREFIX + 1 + FRAME_HEADER_LEN + 5);
        let len = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
        assert_eq!(len, msg.len() - 4);
        match decode_server_message(msg.slice(4..)) {
            Ok(ServerMessage::Frame(got, payload)) => {
                assert_eq!(got, h);
                assert_eq!(&payload[..], b"hello");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut bad = msg.slice(4..).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_server_message(Bytes::from(bad)).is_err());
    }

    #[test]
    fn hello_round_trips_and_rejects_garbage() {
        let h = Hello {
            topic: "t/1".into(),
            resume_from: Some(9),
            resume_epoch: Some(4),
            max_payload: 77,
        };
        let msg = encode_hello(&h);
        assert_eq!(msg[4], KIND_HELLO);
        assert_eq!(decode_hello(&msg[5..]), Ok(h.clone()));
        let no_epoch = Hello { resume_epoch: None, ..h.clone() };
        assert_eq!(decode_hello(&encode_hello(&no_epoch)[5..]), Ok(no_epoch));
        // A version 2 hello (no resume_epoch field) from an older client still decodes.
        let mut v2 = msg[5..].to_vec();
        v2[4] = 2;
        v2.drain(6 + 8..6 + 16);
        assert_eq!(decode_hello(&v2), Ok(Hello { resume_epoch: None, ..h }));
        let mut v9 = msg[5..].to_vec();
        v9[4] = 9;
        assert!(
            decode_hello(&v9).expect_err("version 9").contains("unsupported protocol version 9")
        );
        assert!(decode_hello(b"garbage garbage garbage").is_err());
        assert!(decode_hello(&msg[5..msg.len() - 1]).is_err());
        let ack = HelloAck { status: ACK_OK, live_next: Some(5), reason: String::new() };
        let m = encode_hello_ack(&ack);
        assert_eq!(decode_hello_ack(&m[5..]), Ok(ack));
    }
}
