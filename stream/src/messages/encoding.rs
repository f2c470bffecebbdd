//! One message as bytes: the validated rkyv envelope. See the [module docs](super) for
//! the layout and the padding rule.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::schema::{ArchivedMessage, Message};
use super::{ALIGN, MESSAGE_MAGIC};
use crate::error::{Error, Result};

/// Alignment of an encoded message's archived root; every archive's length is a
/// multiple of it, and a value's trailing `len % ARCHIVE_ALIGN` bytes are padding.
pub const ARCHIVE_ALIGN: usize = align_of::<ArchivedEnvelope<'static>>();

const _: () = assert!(ARCHIVE_ALIGN <= ALIGN && ARCHIVE_ALIGN.is_power_of_two());

/// The archived root of every encoded message: a magic number and the encoding's total
/// length guard against garbage and truncation (bytecheck alone only guarantees memory
/// safety: a truncated archive can still be a valid archive of some other message).
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Envelope<'a> {
    /// [`MESSAGE_MAGIC`] read as a little-endian `u32`, so its bytes appear as is.
    magic: u32,
    /// Length of the whole encoding, padding included.
    len: u32,
    #[rkyv(with = rkyv::with::Inline)]
    message: &'a Message,
}

const MAGIC: u32 = u32::from_le_bytes(MESSAGE_MAGIC);

fn decode_err(reason: String) -> Error {
    Error::decode("message", reason)
}

impl Message {
    /// Encodes the message as a plain envelope (no padding); its length is a multiple of
    /// [`ARCHIVE_ALIGN`] and the buffer is [`ALIGN`]-byte aligned.
    pub fn encode(&self) -> Result<AlignedVec<ALIGN>> {
        self.encode_to_len(0)
    }

    /// The length of the plain encoding ([`Message::encode`]), the smallest length
    /// [`Message::encode_to_len`] can produce.
    pub fn encoded_len(&self) -> Result<usize> {
        Ok(serialize(self, 0, 0)?.len())
    }

    /// Encodes the message into exactly `len` bytes when `len` is at least
    /// [`Message::encoded_len`] (zero padding, see the [module docs](super)); otherwise
    /// returns the plain encoding, which is then longer than `len`. The result always
    /// decodes.
    pub fn encode_to_len(&self, len: usize) -> Result<AlignedVec<ALIGN>> {
        // Optimistically assume no lead padding is needed (callers usually size the
        // message for `len`): then one serialization suffices. The archive's length
        // does not depend on the recorded total length.
        let mut out = serialize(self, 0, len)?;
        let plain = out.len();
        if plain > len {
            return serialize(self, 0, plain);
        }
        let extra = len - plain;
        if extra >= ARCHIVE_ALIGN {
            out = serialize(self, extra - extra % ARCHIVE_ALIGN, len)?;
            if out.len() > len || len - out.len() >= ARCHIVE_ALIGN {
                return Err(Error::Encode(format!(
                    "padded archive is {} bytes, cannot pad it to {len}",
                    out.len()
                )));
            }
        }
        out.resize(len, 0);
        Ok(out)
    }

    /// Validates and decodes bytes written by [`Message::encode`] or
    /// [`Message::encode_to_len`].
    ///
    /// Accepts any alignment (misaligned input is copied into an aligned buffer first).
    /// bytecheck validates the archive; the root's magic and recorded length must match
    /// and trailing padding must be zero. Garbage, truncated or extended input is an
    /// error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let archive = split_padding(bytes)?;
        let decode = |archive: &[u8]| {
            let envelope = access_envelope(archive, bytes.len())?;
            rkyv::deserialize::<Message, rancor::Error>(&envelope.message)
                .map_err(|e| decode_err(e.to_string()))
        };
        if archive.as_ptr().addr().is_multiple_of(ARCHIVE_ALIGN) {
            decode(archive)
        } else {
            let mut aligned = AlignedVec::<ALIGN>::with_capacity(archive.len());
            aligned.extend_from_slice(archive);
            decode(&aligned)
        }
    }
}

impl ArchivedMessage {
    /// Copies the archived message out into an owned [`Message`].
    pub fn to_owned_message(&self) -> Result<Message> {
        rkyv::deserialize::<Message, rancor::Error>(self).map_err(|e| decode_err(e.to_string()))
    }
}

/// Serializes the envelope of `message` after `lead` zero bytes, recording `total_len`.
fn serialize(message: &Message, lead: usize, total_len: usize) -> Result<AlignedVec<ALIGN>> {
    let len = u32::try_from(total_len)
        .map_err(|_| Error::Encode(format!("a message of {total_len} bytes exceeds 4 GiB")))?;
    let mut out = AlignedVec::<ALIGN>::with_capacity(lead.max(total_len));
    // Positions stay aligned (lead is a multiple of the archive alignment) and relative
    // pointers do not care where the archive starts, so the lead bytes are ignored.
    out.resize(lead, 0);
    let envelope = Envelope { magic: MAGIC, len, message };
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(&envelope, out)
        .map_err(|e| Error::Encode(e.to_string()))
}

/// The archive part of an encoding: everything but the trailing padding, which must be
/// zero.
fn split_padding(bytes: &[u8]) -> Result<&[u8]> {
    let (archive, padding) = bytes.split_at(bytes.len() - bytes.len() % ARCHIVE_ALIGN);
    if padding.iter().any(|&b| b != 0) {
        return Err(decode_err(format!(
            "the {} trailing padding bytes are not zero",
            padding.len()
        )));
    }
    if archive.len() < size_of::<ArchivedEnvelope<'static>>() {
        return Err(decode_err(format!("{} bytes is too short for a message", bytes.len())));
    }
    Ok(archive)
}

/// The validated envelope in the aligned `archive` of an encoding `total_len` bytes
/// long, with its magic and length checked.
fn access_envelope(archive: &[u8], total_len: usize) -> Result<&ArchivedEnvelope<'static>> {
    let envelope = rkyv::access::<ArchivedEnvelope<'static>, rancor::Error>(archive)
        .map_err(|e| decode_err(e.to_string()))?;
    let magic = envelope.magic.to_native();
    if magic != MAGIC {
        return Err(decode_err(format!(
            "magic {:02x?} is not {MESSAGE_MAGIC:02x?} (not a message)",
            magic.to_le_bytes()
        )));
    }
    let len = envelope.len.to_native();
    if usize::try_from(len).ok() != Some(total_len) {
        return Err(decode_err(format!(
            "message is {total_len} bytes but was encoded as {len} (truncated or extended)"
        )));
    }
    Ok(envelope)
}

/// The validated archived message inside `bytes` (written by [`Message::encode`] or
/// [`Message::encode_to_len`]), read in place without copying. `bytes` must be aligned
/// to [`ARCHIVE_ALIGN`] (a buffer from [`Message::encode`], an [`AlignedVec`], or a
/// message inside a [`MessageFrame`](super::MessageFrame) received into an aligned
/// buffer); otherwise use [`Message::decode`] or [`access_or_copy`].
pub fn access(bytes: &[u8]) -> Result<&ArchivedMessage> {
    let archive = split_padding(bytes)?;
    if !archive.as_ptr().addr().is_multiple_of(ARCHIVE_ALIGN) {
        return Err(decode_err(format!(
            "zero-copy access needs {ARCHIVE_ALIGN}-byte aligned input (address {:#x}); use Message::decode",
            archive.as_ptr().addr()
        )));
    }
    Ok(&access_envelope(archive, bytes.len())?.message)
}

/// Runs `f` on the validated archived message in `bytes`: in place when aligned, else
/// from an aligned copy (`scratch` is reused across calls). Returns whether it copied.
pub fn access_or_copy<R>(
    bytes: &[u8],
    scratch: &mut AlignedVec<ALIGN>,
    f: impl FnOnce(&ArchivedMessage) -> R,
) -> Result<(R, bool)> {
    if bytes.as_ptr().addr().is_multiple_of(ARCHIVE_ALIGN) {
        return Ok((f(access(bytes)?), false));
    }
    scratch.clear();
    scratch.extend_from_slice(bytes);
    Ok((f(access(scratch)?), true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{
        AccountUpdate, ExchangeKey, OrderInsert, Position, Side, TimeInForce, TradeEvent,
    };
    use super::*;

    fn order() -> Message {
        Message::Order(OrderInsert {
            order_id: 0x0102_0304_0506_0708,
            account: 42,
            symbol: "I7".into(),
            side: Side::Sell,
            price: -12_345,
            qty: 100,
            time_in_force: TimeInForce::ImmediateOrCancel,
            ts_nanos: 1_700_000_000_000_000_000,
            client_order_id: "CL-42-abcdefghijklmnopqrstuvwxyz".into(),
        })
    }

    fn trade() -> Message {
        Message::Trade(TradeEvent {
            trade_id: 99,
            symbol: "BTC-USD".into(),
            price: 1_000_250,
            qty: 5,
            side: Side::Buy,
            buy_order_id: 11,
            sell_order_id: 12,
            buy_account: 1,
            sell_account: 2,
            ts_nanos: 1_700_000_000_000_000_001,
            venue_ref: "XNAS".into(),
        })
    }

    fn account() -> Message {
        Message::Account(AccountUpdate {
            account: 9,
            balance: 10_000_000,
            available: 9_000_000,
            open_orders: 3,
            positions: vec![
                Position { symbol: "I1".into(), qty: -50 },
                Position { symbol: "I4".into(), qty: 25 },
            ],
            ts_nanos: 1_700_000_000_000_000_002,
        })
    }

    fn samples() -> [Message; 3] {
        [order(), trade(), account()]
    }

    #[test]
    fn each_message_round_trips_in_place_and_copied() {
        for m in samples() {
            let bytes = m.encode().unwrap();
            assert_eq!(bytes.len() % ARCHIVE_ALIGN, 0);
            assert_eq!(bytes.len(), m.encoded_len().unwrap());
            assert_eq!(Message::decode(&bytes).unwrap(), m);
            assert_eq!(access(&bytes).unwrap().to_owned_message().unwrap(), m);
            let mut shifted = vec![0u8; bytes.len() + 1];
            shifted[1..].copy_from_slice(&bytes);
            assert_eq!(Message::decode(&shifted[1..]).unwrap(), m);
            let key = m.key().unwrap();
            assert_eq!(ExchangeKey::parse(&key), m.exchange_key());
        }
    }

    #[test]
    fn encode_to_len_hits_every_length_from_the_plain_size() {
        for m in samples() {
            let plain = m.encode().unwrap().len();
            for len in plain..plain + 3 * ARCHIVE_ALIGN + 1 {
                let bytes = m.encode_to_len(len).unwrap();
                assert_eq!(bytes.len(), len);
                assert_eq!(Message::decode(&bytes).unwrap(), m, "len {len}");
                let mut shifted = vec![0u8; len + 3];
                shifted[3..].copy_from_slice(&bytes);
                assert_eq!(Message::decode(&shifted[3..]).unwrap(), m, "len {len}");
            }
            assert_eq!(m.encode_to_len(1).unwrap().len(), plain);
        }
    }

    #[test]
    fn non_zero_padding_is_rejected() {
        let mut bytes = order().encode().unwrap().to_vec();
        bytes.push(1);
        assert!(Message::decode(&bytes).is_err());
    }

    #[test]
    fn truncated_extended_and_empty_input_is_rejected() {
        assert!(Message::decode(&[]).is_err());
        for m in samples() {
            let plain = m.encode().unwrap().len();
            let bytes = m.encode_to_len(plain + 2 * ARCHIVE_ALIGN + 3).unwrap();
            for cut in 0..bytes.len() {
                if let Ok(decoded) = Message::decode(&bytes[..cut]) {
                    panic!("cut at {cut} decoded as {decoded:?}");
                }
                assert!(Message::decode(&bytes[cut + 1..]).is_err(), "front cut at {cut}");
                let mut longer = bytes.to_vec();
                longer.resize(bytes.len() + cut + 1, 0);
                assert!(Message::decode(&longer).is_err(), "extended by {}", cut + 1);
            }
        }
    }

    #[test]
    fn corrupted_enum_tags_are_rejected() {
        let bytes = trade().encode().unwrap();
        let root = bytes.len() - size_of::<ArchivedEnvelope<'static>>();
        let tag = root + std::mem::offset_of!(ArchivedEnvelope<'static>, message);
        let mut corrupt = bytes.to_vec();
        assert!(corrupt[tag] < 5, "the message's tag is the first byte of the message");
        corrupt[tag] = 0xEE;
        assert!(Message::decode(&corrupt).is_err());
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let bytes = account().encode().unwrap();
        let root = bytes.len() - size_of::<ArchivedEnvelope<'static>>();
        let magic = root + std::mem::offset_of!(ArchivedEnvelope<'static>, magic);
        assert_eq!(bytes[magic..magic + 4], MESSAGE_MAGIC, "the magic's bytes appear as is");
        let mut corrupt = bytes.to_vec();
        corrupt[magic] ^= 0x01;
        let err = Message::decode(&corrupt).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
    }
}
