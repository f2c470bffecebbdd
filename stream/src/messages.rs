//! The exchange messages the distribution layer carries, and their encodings.
//!
//! # Types
//!
//! [`Message`] wraps the four kinds: [`TradeEvent`] (a fill), [`AccountUpdate`] (an
//! account's balance and positions), [`MarketL2`] (price levels of one symbol's book)
//! and [`Heartbeat`] (a publisher's liveness beacon carrying its last sequence). Every
//! type derives rkyv `Archive`/`Serialize`/`Deserialize` (validated with bytecheck) and
//! serde `Serialize`/`Deserialize` (JSON for the WebSocket gateway).
//!
//! # Single-message encoding ([`Message::encode`])
//!
//! An rkyv archive of the [`Message`] followed by an 8-byte trailer: the magic
//! [`MESSAGE_MAGIC`] and the archive's length (u32, little endian). The trailer makes a
//! truncated or extended buffer an error instead of a possibly valid archive of some
//! other message. [`Message::decode`] checks the trailer, validates the archive with
//! bytecheck and deserializes, copying into a 16-byte aligned buffer first when the
//! input is not aligned; [`access`] returns the validated archived message in place
//! (zero-copy) and requires aligned input.
//!
//! # Message frames ([`encode_frame`], [`MessageFrame`])
//!
//! One transport frame carries `n >= 1` messages (the publisher gives it span `n`):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic [`FRAME_MAGIC`] |
//! | 4 | message count `n` (u32 LE) |
//! | 4·n | length of each encoded message (u32 LE) |
//! | pad | zeros up to a multiple of 16 |
//! | … | each encoded message, followed by zeros up to a multiple of 16 |
//!
//! Every message starts at a multiple of 16 from the frame start, so a frame received
//! into an aligned buffer is read without copying.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Trailer magic of an encoded message.
pub const MESSAGE_MAGIC: [u8; 4] = *b"SMSG";
/// Leading magic of a message frame.
pub const FRAME_MAGIC: [u8; 4] = *b"SMF1";
/// Alignment every message inside a frame (and every decode buffer) has.
pub const ALIGN: usize = 16;
/// Most messages one frame may carry (bounds the length table a frame header declares).
pub const MAX_FRAME_MESSAGES: usize = 1 << 20;

const TRAILER_LEN: usize = 8;

/// Which side of the book initiated a trade.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The buyer was the aggressor.
    Buy,
    /// The seller was the aggressor.
    Sell,
}

/// A fill between two orders.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct TradeEvent {
    /// Exchange-wide trade number.
    pub trade_id: u64,
    /// The instrument.
    pub symbol: String,
    /// Price in ticks.
    pub price: i64,
    /// Quantity in lots.
    pub qty: u64,
    /// Aggressor side.
    pub side: Side,
    /// Buying account.
    pub buy_account: u32,
    /// Selling account.
    pub sell_account: u32,
    /// Execution time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// One position of an account.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct Position {
    /// The instrument.
    pub symbol: String,
    /// Signed quantity in lots (negative: short).
    pub qty: i64,
}

/// An account's balance and positions after a change.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct AccountUpdate {
    /// The account.
    pub account: u32,
    /// Cash balance in the smallest currency unit.
    pub balance: i64,
    /// Open positions.
    pub positions: Vec<Position>,
    /// Time of the change, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// One price level of a book side.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct PriceLevel {
    /// Price in ticks.
    pub price: i64,
    /// Total quantity resting at the price.
    pub qty: u64,
}

/// Level-2 market data: the aggregated price levels of one symbol's book.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct MarketL2 {
    /// The instrument.
    pub symbol: String,
    /// Bid levels, best (highest) first.
    pub bids: Vec<PriceLevel>,
    /// Ask levels, best (lowest) first.
    pub asks: Vec<PriceLevel>,
    /// Book time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// A publisher's liveness beacon. It carries the last sequence the publisher sent
/// before it, so an idle subscriber that lost the last frames notices.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct Heartbeat {
    /// The publisher's stream id.
    pub stream: u64,
    /// The last sequence published before this heartbeat (0: none yet).
    pub last_seq: u64,
    /// Send time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// Any message of the exchange feed. JSON form: `{"type": "trade", ...fields}`.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// A fill.
    Trade(TradeEvent),
    /// An account change.
    Account(AccountUpdate),
    /// Level-2 book data.
    L2(MarketL2),
    /// A heartbeat.
    Heartbeat(Heartbeat),
}

impl Message {
    /// Encodes the message (rkyv archive plus trailer, see the module docs). The
    /// returned buffer is 16-byte aligned.
    pub fn encode(&self) -> Result<AlignedVec<ALIGN>> {
        let mut out =
            rkyv::api::high::to_bytes_in::<_, rancor::Error>(self, AlignedVec::<ALIGN>::new())
                .map_err(|e| Error::Encode(e.to_string()))?;
        let len = u32::try_from(out.len())
            .map_err(|_| Error::Encode(format!("archive of {} bytes exceeds 4 GiB", out.len())))?;
        out.extend_from_slice(&MESSAGE_MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        Ok(out)
    }

    /// Decodes bytes written by [`Message::encode`], validating them. Input that is not
    /// 16-byte aligned is copied into an aligned buffer first.
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let archive = split_trailer(bytes)?;
        if archive.as_ptr().addr().is_multiple_of(ALIGN) {
            decode_archive(archive)
        } else {
            let mut aligned = AlignedVec::<ALIGN>::with_capacity(archive.len());
            aligned.extend_from_slice(archive);
            decode_archive(&aligned)
        }
    }

    /// The message as JSON text (the WebSocket gateway's wire form).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Parses JSON text written by [`Message::to_json`].
    pub fn from_json(text: &str) -> Result<Message> {
        Ok(serde_json::from_str(text)?)
    }

    /// A short name of the message kind (`"trade"`, `"account"`, `"l2"`, `"heartbeat"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Trade(_) => "trade",
            Message::Account(_) => "account",
            Message::L2(_) => "l2",
            Message::Heartbeat(_) => "heartbeat",
        }
    }
}

impl ArchivedMessage {
    /// Copies the archived message out into an owned [`Message`].
    pub fn to_owned_message(&self) -> Result<Message> {
        rkyv::deserialize::<Message, rancor::Error>(self)
            .map_err(|e| Error::decode("message", e.to_string()))
    }
}

fn split_trailer(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() < TRAILER_LEN + 1 {
        return Err(Error::decode(
            "message",
            format!(
                "{} bytes is too short for a message (trailer alone is {TRAILER_LEN})",
                bytes.len()
            ),
        ));
    }
    let (archive, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    if trailer[..4] != MESSAGE_MAGIC {
        return Err(Error::decode(
            "message",
            format!(
                "trailer magic {:02x?} is not {:02x?} (truncated or not a message)",
                &trailer[..4],
                MESSAGE_MAGIC
            ),
        ));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&trailer[4..]);
    let len = u32::from_le_bytes(len) as usize;
    if len != archive.len() {
        return Err(Error::decode(
            "message",
            format!("trailer declares a {len}-byte archive but {} bytes precede it", archive.len()),
        ));
    }
    Ok(archive)
}

fn decode_archive(archive: &[u8]) -> Result<Message> {
    rkyv::from_bytes::<Message, rancor::Error>(archive)
        .map_err(|e| Error::decode("message", e.to_string()))
}

/// The validated archived message inside `bytes` (written by [`Message::encode`]),
/// read in place without copying. `bytes` must be aligned to [`ALIGN`] (a buffer from
/// [`Message::encode`], an [`AlignedVec`], or a message inside a [`MessageFrame`]
/// received into an aligned buffer); otherwise use [`Message::decode`] or
/// [`access_or_copy`].
pub fn access(bytes: &[u8]) -> Result<&ArchivedMessage> {
    let archive = split_trailer(bytes)?;
    if !archive.as_ptr().addr().is_multiple_of(ALIGN) {
        return Err(Error::decode(
            "message",
            format!(
                "zero-copy access needs {ALIGN}-byte aligned input (address {:#x}); use Message::decode",
                archive.as_ptr().addr()
            ),
        ));
    }
    rkyv::access::<ArchivedMessage, rancor::Error>(archive)
        .map_err(|e| Error::decode("message", e.to_string()))
}

/// Runs `f` on the validated archived message in `bytes`: in place when aligned, else
/// from an aligned copy (`scratch` is reused across calls). Returns whether it copied.
pub fn access_or_copy<R>(
    bytes: &[u8],
    scratch: &mut AlignedVec<ALIGN>,
    f: impl FnOnce(&ArchivedMessage) -> R,
) -> Result<(R, bool)> {
    if bytes.as_ptr().addr().is_multiple_of(ALIGN) {
        return Ok((f(access(bytes)?), false));
    }
    scratch.clear();
    scratch.extend_from_slice(bytes);
    Ok((f(access(scratch)?), true))
}

fn pad16(n: usize) -> usize {
    n.next_multiple_of(ALIGN)
}

/// Encodes `messages` (at least one) as one frame; see the module docs for the layout.
pub fn encode_frame(messages: &[Message]) -> Result<AlignedVec<ALIGN>> {
    if messages.is_empty() {
        return Err(Error::InvalidArgument("a message frame holds at least one message".into()));
    }
    if messages.len() > MAX_FRAME_MESSAGES {
        return Err(Error::InvalidArgument(format!(
            "{} messages exceed the frame limit of {MAX_FRAME_MESSAGES}",
            messages.len()
        )));
    }
    let encoded: Vec<AlignedVec<ALIGN>> =
        messages.iter().map(Message::encode).collect::<Result<_>>()?;
    let header = pad16(8 + 4 * messages.len());
    let total = header + encoded.iter().map(|e| pad16(e.len())).sum::<usize>();
    let mut out = AlignedVec::<ALIGN>::with_capacity(total);
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for e in &encoded {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
    }
    out.resize(header, 0);
    for e in &encoded {
        out.extend_from_slice(e);
        out.resize(pad16(out.len()), 0);
    }
    Ok(out)
}

/// A parsed, bounds-checked message frame; its messages are validated as they are read.
#[derive(Clone, Copy, Debug)]
pub struct MessageFrame<'a> {
    bytes: &'a [u8],
    count: usize,
    header: usize,
}

impl<'a> MessageFrame<'a> {
    /// Checks the frame's header and that every declared message lies inside `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(Error::decode(
                "message frame",
                format!("{} bytes is shorter than the 8-byte header", bytes.len()),
            ));
        }
        if bytes[..4] != FRAME_MAGIC {
            return Err(Error::decode(
                "message frame",
                format!("magic {:02x?} is not {:02x?}", &bytes[..4], FRAME_MAGIC),
            ));
        }
        let count = read_u32(bytes, 4) as usize;
        if count == 0 || count > MAX_FRAME_MESSAGES || 8 + 4 * count > bytes.len() {
            return Err(Error::decode(
                "message frame",
                format!("message count {count} is impossible in a frame of {} bytes", bytes.len()),
            ));
        }
        let header = pad16(8 + 4 * count);
        let mut end = header;
        for i in 0..count {
            let len = read_u32(bytes, 8 + 4 * i) as usize;
            end = end.checked_add(pad16(len)).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                Error::decode(
                    "message frame",
                    format!(
                        "message {i} of {len} bytes runs past the frame's {} bytes",
                        bytes.len()
                    ),
                )
            })?;
        }
        if end != bytes.len() {
            return Err(Error::decode(
                "message frame",
                format!("{} trailing bytes after the last message", bytes.len() - end),
            ));
        }
        Ok(Self { bytes, count, header })
    }

    /// How many messages the frame holds (its span).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a frame holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded bytes of each message, in order (decode them with
    /// [`Message::decode`], [`access`] or [`access_or_copy`]).
    pub fn messages(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        let mut at = self.header;
        (0..self.count).map(move |i| {
            let len = read_u32(bytes, 8 + 4 * i) as usize;
            let msg = &bytes[at..at + len];
            at += pad16(len);
            msg
        })
    }

    /// Decodes every message into owned values.
    pub fn decode_all(&self) -> Result<Vec<Message>> {
        self.messages().map(Message::decode).collect()
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trade() -> Message {
        Message::Trade(TradeEvent {
            trade_id: 7,
            symbol: "BTC-USD".into(),
            price: 6_500_000,
            qty: 3,
            side: Side::Buy,
            buy_account: 1,
            sell_account: 2,
            ts_nanos: 99,
        })
    }

    #[test]
    fn encode_decode_access_and_json() {
        let m = trade();
        let bytes = m.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        assert_eq!(access(&bytes).unwrap().to_owned_message().unwrap(), m);
        let json = m.to_json().unwrap();
        assert!(json.contains("\"type\":\"trade\""), "{json}");
        assert_eq!(Message::from_json(&json).unwrap(), m);
    }

    #[test]
    fn misaligned_decode_copies_and_access_refuses() {
        let bytes = trade().encode().unwrap();
        let mut shifted = AlignedVec::<ALIGN>::new();
        shifted.push(0);
        shifted.extend_from_slice(&bytes);
        assert_eq!(Message::decode(&shifted[1..]).unwrap(), trade());
        assert!(access(&shifted[1..]).is_err());
        let mut scratch = AlignedVec::new();
        let (kind, copied) =
            access_or_copy(&shifted[1..], &mut scratch, |a| matches!(a, ArchivedMessage::Trade(_)))
                .unwrap();
        assert!(kind && copied);
    }

    #[test]
    fn truncation_is_an_error() {
        let bytes = trade().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(Message::decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn frame_round_trip() {
        let msgs = vec![
            trade(),
            Message::Heartbeat(Heartbeat { stream: 1, last_seq: 5, ts_nanos: 6 }),
            trade(),
        ];
        let frame = encode_frame(&msgs).unwrap();
        let parsed = MessageFrame::parse(&frame).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.decode_all().unwrap(), msgs);
        for m in parsed.messages() {
            assert!(access(m).is_ok(), "messages inside an aligned frame are aligned");
        }
        assert!(encode_frame(&[]).is_err());
        for n in 0..frame.len() {
            assert!(MessageFrame::parse(&frame[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }
}
