//! Message frames: one transport frame carrying `n >= 1` encoded messages. See the
//! [module docs](super) for the layout.

use rkyv::util::AlignedVec;

use super::{ALIGN, FRAME_MAGIC, MAX_FRAME_MESSAGES, Message};
use crate::error::{Error, Result};

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
    /// [`Message::decode`], [`access`](super::access) or [`access_or_copy`](super::access_or_copy)).
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
    use super::super::{Heartbeat, Side, TradeEvent, access};
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
            venue_ref: String::new(),
        })
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
