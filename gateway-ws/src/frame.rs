//! What the gateway sends: frames validated and rendered once, gap and control notices.
//!
//! # JSON (text) messages
//!
//! | message | when |
//! |---|---|
//! | `{"subscribed":{"topic":"t","from":12,"format":"json"}}` | first message after a subscription is accepted |
//! | `{"stream":1,"seq":12,"span":2,"epoch":3,"messages":[{"type":"trade",...},...]}` | a frame of a `messages` topic (one entry per message, `span` of them) |
//! | `{"stream":1,"seq":12,"span":2,"epoch":3,"ops":[{"seq":12,"op":"put","key":"trade/..","message":{...}},...]}` | a frame of a `commits` topic (one entry per operation of the committed batch); `epoch` is the store's epoch that wrote it |
//! | `{"gap":{"stream":1,"from":5,"to":9}}` | sequences `from .. to` will never be sent on this connection |
//! | `{"rewritten":{"from":6,"to":11,"epoch":4}}` | the store rewrote `from .. to` after the client got them: it resumed with `epoch=` and a crash took them back before they were durable, or, while connected, the store truncated a diverged tail (an old primary rejoining its cluster) — epoch 4 wrote others there; they follow again as the store holds them now |
//! | `{"invalid":{"stream":1,"seq":9,"span":1,"reason":"..."}}` | a frame that failed validation was skipped (its sequences are not sent) |
//! | `{"pong":{}}` | answer to a `{"op":"ping"}` |
//!
//! # Binary messages (`format=binary`)
//!
//! Frames only (the notices above stay text): a 40-byte header then the payload exactly
//! as the transport carried it (an rkyv message frame, or the store's encoded batch).
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `SWF2` (`SWF1` had no epoch) |
//! | 4 | reserved, zero |
//! | 8 | stream id (u64 LE) |
//! | 8 | first sequence (u64 LE) |
//! | 4 | span (u32 LE) |
//! | 4 | payload length (u32 LE) |
//! | 8 | epoch (u64 LE) |
//!
//! Payloads are validated before they are sent in either format: a binary client never
//! receives bytes the gateway could not decode.

use bytes::Bytes;
use serde::Serialize;
use strata_core::{BatchIter, FrameHeader, StreamId, ValueKind};
use strata_stream::Message;
use strata_stream::messages::{FRAME_MAGIC, MessageFrame};

/// Magic of a binary frame message.
pub const BINARY_MAGIC: [u8; 4] = *b"SWF2";
/// Length of a binary frame message's header.
pub const BINARY_HEADER_LEN: usize = 40;

/// How a topic's payloads are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadFormat {
    /// Frames written by `strata_stream::Publisher`: an rkyv message frame (or one
    /// encoded message), validated and rendered as `"messages": [...]`.
    Messages,
    /// Frames of the store's commit stream: an encoded write batch, rendered as
    /// `"ops": [...]`.
    Commits {
        /// How each put's value is rendered.
        values: ValueFormat,
    },
}

impl PayloadFormat {
    /// The configuration name (`"messages"`, `"commits"`, `"commits-raw"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Commits { values: ValueFormat::Message } => "commits",
            Self::Commits { values: ValueFormat::Raw } => "commits-raw",
        }
    }

    /// Parses a configuration name written by [`PayloadFormat::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "messages" => Some(Self::Messages),
            "commits" => Some(Self::Commits { values: ValueFormat::Message }),
            "commits-raw" => Some(Self::Commits { values: ValueFormat::Raw }),
            _ => None,
        }
    }
}

/// How the values of a commit topic are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueFormat {
    /// Every put's value is an encoded [`Message`]; it is validated and rendered as
    /// `"message": {...}`. A value that is not a message makes the frame invalid.
    Message,
    /// Values are opaque bytes: `"value"` (UTF-8 text) or `"value_hex"`.
    Raw,
}

/// What a client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientFormat {
    /// Text messages with JSON.
    #[default]
    Json,
    /// Binary messages with the header and the raw payload.
    Binary,
}

/// A frame as the gateway holds it: header, payload and its rendering (or why it could
/// not be rendered).
#[derive(Debug)]
pub struct GatewayFrame {
    /// The frame's numbering.
    pub header: FrameHeader,
    /// The payload as received.
    pub payload: Bytes,
    /// The JSON text message, or the validation failure.
    pub rendered: Result<String, String>,
}

impl GatewayFrame {
    /// Validates and renders a frame.
    pub fn new(header: FrameHeader, payload: Bytes, format: PayloadFormat) -> Self {
        let rendered = render(&header, &payload, format);
        Self { header, payload, rendered }
    }

    /// Bytes this frame costs to hold.
    pub fn cost(&self) -> usize {
        self.payload.len() + self.rendered.as_ref().map_or_else(String::len, String::len) + 64
    }

    /// The binary message for this frame.
    pub fn binary(&self) -> Bytes {
        let mut out = Vec::with_capacity(BINARY_HEADER_LEN + self.payload.len());
        out.extend_from_slice(&BINARY_MAGIC);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.header.stream.0.to_le_bytes());
        out.extend_from_slice(&self.header.seq.to_le_bytes());
        out.extend_from_slice(&self.header.span.to_le_bytes());
        // Payloads are bounded by the subscriber's max_payload, far below 4 GiB.
        out.extend_from_slice(&u32::try_from(self.payload.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.header.epoch.to_le_bytes());
        out.extend_from_slice(&self.payload);
        Bytes::from(out)
    }

    /// The `{"invalid": ...}` notice for a frame that failed validation.
    pub fn invalid_notice(&self, reason: &str) -> String {
        notice(&Notice::Invalid {
            stream: self.header.stream.0,
            seq: self.header.seq,
            span: self.header.span,
            reason,
        })
    }
}

/// Parses a binary frame message: header and payload.
pub fn parse_binary(bytes: &[u8]) -> Option<(FrameHeader, &[u8])> {
    if bytes.len() < BINARY_HEADER_LEN || bytes[..4] != BINARY_MAGIC {
        return None;
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let u32_at = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let header = FrameHeader {
        stream: StreamId(u64_at(8)),
        seq: u64_at(16),
        span: u32_at(24),
        epoch: u64_at(32),
    };
    let len = u32_at(28) as usize;
    let payload = &bytes[BINARY_HEADER_LEN..];
    (payload.len() == len).then_some((header, payload))
}

/// Control messages, serialized as `{"<name>": {...}}`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Notice<'a> {
    Subscribed { topic: &'a str, from: Option<u64>, format: ClientFormat },
    Gap { stream: u64, from: u64, to: u64 },
    Rewritten { from: u64, to: u64, epoch: u64 },
    Invalid { stream: u64, seq: u64, span: u32, reason: &'a str },
    Pong {},
}

pub(crate) fn notice(n: &Notice<'_>) -> String {
    // Serializing these plain structs cannot fail; fall back to an empty object.
    serde_json::to_string(n).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Serialize)]
struct MessagesJson<'a> {
    stream: u64,
    seq: u64,
    span: u32,
    epoch: u64,
    messages: &'a [Message],
}

#[derive(Serialize)]
struct CommitsJson<'a> {
    stream: u64,
    seq: u64,
    span: u32,
    epoch: u64,
    ops: &'a [OpJson],
}

#[derive(Serialize)]
struct OpJson {
    seq: u64,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn text_or_hex(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(hex(bytes))),
    }
}

fn render(header: &FrameHeader, payload: &[u8], format: PayloadFormat) -> Result<String, String> {
    let span = header.span.max(1);
    let json = match format {
        PayloadFormat::Messages => {
            let messages = if payload.starts_with(&FRAME_MAGIC) {
                MessageFrame::parse(payload)
                    .and_then(|f| f.decode_all())
                    .map_err(|e| e.to_string())?
            } else {
                vec![Message::decode(payload).map_err(|e| e.to_string())?]
            };
            if messages.len() != span as usize {
                return Err(format!(
                    "the frame declares span {span} but holds {} messages",
                    messages.len()
                ));
            }
            serde_json::to_string(&MessagesJson {
                stream: header.stream.0,
                seq: header.seq,
                span,
                epoch: header.epoch,
                messages: &messages,
            })
        }
        PayloadFormat::Commits { values } => {
            let mut ops = Vec::new();
            for (i, op) in BatchIter::new(payload).enumerate() {
                let op = op.map_err(|e| {
                    format!("committed batch damaged at byte {}: {}", e.offset, e.reason)
                })?;
                let (key, key_hex) = text_or_hex(op.key);
                let mut out = OpJson {
                    seq: header.seq + i as u64,
                    op: match op.kind {
                        ValueKind::Put => "put",
                        ValueKind::Delete => "delete",
                    },
                    key,
                    key_hex,
                    message: None,
                    value: None,
                    value_hex: None,
                };
                if op.kind == ValueKind::Put {
                    match values {
                        ValueFormat::Message => {
                            out.message = Some(Message::decode(op.value).map_err(|e| {
                                format!("the value of operation {} (seq {}): {e}", i, out.seq)
                            })?);
                        }
                        ValueFormat::Raw => (out.value, out.value_hex) = text_or_hex(op.value),
                    }
                }
                ops.push(out);
            }
            if ops.len() != span as usize {
                return Err(format!(
                    "the frame declares span {span} but the batch holds {} operations",
                    ops.len()
                ));
            }
            serde_json::to_string(&CommitsJson {
                stream: header.stream.0,
                seq: header.seq,
                span,
                epoch: header.epoch,
                ops: &ops,
            })
        }
    };
    json.map_err(|e| format!("cannot render JSON: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_core::WriteBatch;
    use strata_stream::{Heartbeat, messages::encode_frame};

    fn hb(n: u64) -> Message {
        Message::Heartbeat(Heartbeat { stream: 1, last_seq: n, ts_nanos: n })
    }

    fn header(seq: u64, span: u32) -> FrameHeader {
        FrameHeader { stream: StreamId(3), seq, span, epoch: 0 }
    }

    #[test]
    fn messages_render_and_validate() {
        let frame = encode_frame(&[hb(1), hb(2)]).unwrap();
        let f = GatewayFrame::new(
            header(10, 2),
            Bytes::copy_from_slice(&frame),
            PayloadFormat::Messages,
        );
        let json: serde_json::Value = serde_json::from_str(f.rendered.as_ref().unwrap()).unwrap();
        assert_eq!(json["seq"], 10);
        assert_eq!(json["messages"].as_array().unwrap().len(), 2);
        assert_eq!(json["messages"][1]["last_seq"], 2);

        let single = hb(5).encode().unwrap();
        let f = GatewayFrame::new(
            header(11, 1),
            Bytes::copy_from_slice(&single),
            PayloadFormat::Messages,
        );
        assert!(f.rendered.is_ok());

        // Span mismatch, garbage and truncation are refused, never panic.
        let f = GatewayFrame::new(
            header(12, 3),
            Bytes::copy_from_slice(&frame),
            PayloadFormat::Messages,
        );
        assert!(f.rendered.unwrap_err().contains("span 3"));
        for n in 0..frame.len() {
            let f = GatewayFrame::new(
                header(13, 2),
                Bytes::copy_from_slice(&frame[..n]),
                PayloadFormat::Messages,
            );
            assert!(f.rendered.is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn commits_render_values() {
        let mut b = WriteBatch::new();
        b.put(b"trade/1", hb(1).encode().unwrap().as_slice());
        b.delete(b"trade/0");
        let f = GatewayFrame::new(
            header(20, 2),
            Bytes::copy_from_slice(b.as_bytes()),
            PayloadFormat::Commits { values: ValueFormat::Message },
        );
        let json: serde_json::Value = serde_json::from_str(f.rendered.as_ref().unwrap()).unwrap();
        assert_eq!(json["ops"][0]["key"], "trade/1");
        assert_eq!(json["ops"][0]["message"]["type"], "heartbeat");
        assert_eq!(json["ops"][1]["op"], "delete");
        assert_eq!(json["ops"][1]["seq"], 21);

        let mut raw = WriteBatch::new();
        raw.put([0xff, 0x00], b"text");
        let f = GatewayFrame::new(
            header(1, 1),
            Bytes::copy_from_slice(raw.as_bytes()),
            PayloadFormat::Commits { values: ValueFormat::Message },
        );
        assert!(f.rendered.is_err(), "a value that is not a message is invalid");
        let f = GatewayFrame::new(
            header(1, 1),
            Bytes::copy_from_slice(raw.as_bytes()),
            PayloadFormat::Commits { values: ValueFormat::Raw },
        );
        let json: serde_json::Value = serde_json::from_str(f.rendered.as_ref().unwrap()).unwrap();
        assert_eq!(json["ops"][0]["key_hex"], "ff00");
        assert_eq!(json["ops"][0]["value"], "text");
    }

    #[test]
    fn binary_round_trip() {
        let frame = encode_frame(&[hb(1)]).unwrap();
        let f = GatewayFrame::new(
            header(7, 1),
            Bytes::copy_from_slice(&frame),
            PayloadFormat::Messages,
        );
        let bin = f.binary();
        let (h, payload) = parse_binary(&bin).unwrap();
        assert_eq!(h, header(7, 1));
        assert_eq!(payload, frame.as_slice());
        assert!(parse_binary(&bin[..bin.len() - 1]).is_none());
    }

    #[test]
    fn format_names_round_trip() {
        for f in [
            PayloadFormat::Messages,
            PayloadFormat::Commits { values: ValueFormat::Message },
            PayloadFormat::Commits { values: ValueFormat::Raw },
        ] {
            assert_eq!(PayloadFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(PayloadFormat::from_name("xml"), None);
    }
}
