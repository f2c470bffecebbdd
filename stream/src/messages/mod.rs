//! The exchange schema — the one definition of the records an exchange stores and the
//! messages the distribution layer carries — with its keys and encodings.
//!
//! # Types ([`schema`])
//!
//! [`Message`] wraps every kind: [`OrderInsert`] (a new order), [`TradeEvent`] (a fill
//! between two orders), [`AccountUpdate`] (an account's balance and positions,
//! overwritten on every change), [`MarketL2`] (price levels of one symbol's book) and
//! [`Heartbeat`] (a publisher's liveness beacon carrying its last sequence). Every type
//! derives rkyv `Archive`/`Serialize`/`Deserialize` (validated with bytecheck) and serde
//! `Serialize`/`Deserialize` (JSON for the WebSocket gateway: `{"type": "trade", ...}`).
//! Orders, trades and account updates are what an exchange stores; book data and
//! heartbeats are only streamed.
//!
//! # Keys ([`keys`])
//!
//! Binary and big-endian, so lexicographic order is numeric order:
//!
//! | kind | layout | length |
//! |---|---|---|
//! | order | `b'o'`, account (u32 BE), order id (u64 BE) | [`ORDER_KEY_LEN`] |
//! | trade | `b't'`, trade id (u64 BE) | [`TRADE_KEY_LEN`] |
//! | account | `b'a'`, account (u32 BE) | [`ACCOUNT_KEY_LEN`] |
//!
//! # One message ([`Message::encode`], a stored value or a frame's element)
//!
//! An rkyv archive whose root (last in the archive) is an envelope: [`MESSAGE_MAGIC`]
//! (its 4 bytes as they are), the encoding's total length (u32 LE) and the [`Message`].
//! [`Message::decode`] validates the archive with bytecheck and checks magic and length:
//! bytecheck only guarantees memory safety, and a truncated or extended buffer can be a
//! valid archive of some other message. Misaligned input is copied into an aligned
//! buffer first; [`access`] reads the validated archived message in place (zero-copy)
//! and requires input aligned to [`ARCHIVE_ALIGN`].
//!
//! An archive's length is a multiple of [`ARCHIVE_ALIGN`]. To reach an arbitrary byte
//! length (the benchmark workload sizes values exactly), [`Message::encode_to_len`] adds
//! zero padding: whole multiples of [`ARCHIVE_ALIGN`] **before** the archive's objects
//! (bytes no relative pointer refers to, which rkyv ignores) and `len % ARCHIVE_ALIGN`
//! zero bytes **after** the archive. So for any encoding `v`,
//! `&v[..v.len() - v.len() % ARCHIVE_ALIGN]` is a valid rkyv archive and the tail must
//! be zero. [`Message::encode`] never pads.
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
//! Every message starts at a multiple of [`ALIGN`] from the frame start, so a frame
//! received into an aligned buffer is read without copying.

mod encoding;
mod frame;
pub mod keys;
pub mod schema;

/// The aligned buffer encodings are made in (rkyv's), re-exported for decoding callers.
pub use rkyv::util::AlignedVec;

pub use encoding::{ARCHIVE_ALIGN, access, access_or_copy};
pub use frame::{MessageFrame, encode_frame};
pub use keys::{
    ACCOUNT_KEY_LEN, ACCOUNT_PREFIX, ExchangeKey, ORDER_KEY_LEN, ORDER_PREFIX, TRADE_KEY_LEN,
    TRADE_PREFIX, account_key, order_key, trade_key,
};
pub use schema::{
    AccountUpdate, ArchivedMessage, Heartbeat, MarketL2, Message, OrderInsert, Position,
    PriceLevel, Side, TimeInForce, TradeEvent,
};

use crate::error::Result;

/// The magic at the start of every encoded message's root (`SMSG`).
pub const MESSAGE_MAGIC: [u8; 4] = *b"SMSG";
/// Leading magic of a message frame.
pub const FRAME_MAGIC: [u8; 4] = *b"SMF1";
/// Alignment of every message inside a frame and of every buffer an encoding or a
/// decode copy is made in.
pub const ALIGN: usize = 16;
/// Most messages one frame may carry (bounds the length table a frame header declares).
pub const MAX_FRAME_MESSAGES: usize = 1 << 20;

impl Message {
    /// The message as JSON text (the WebSocket gateway's wire form).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Parses JSON text written by [`Message::to_json`].
    pub fn from_json(text: &str) -> Result<Message> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rkyv::util::AlignedVec;

    use super::*;

    fn trade() -> Message {
        Message::Trade(TradeEvent {
            trade_id: 7,
            symbol: "BTC-USD".into(),
            price: 6_500_000,
            qty: 3,
            side: Side::Buy,
            buy_order_id: 70,
            sell_order_id: 71,
            buy_account: 1,
            sell_account: 2,
            ts_nanos: 99,
            venue_ref: "XNAS".into(),
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
}
